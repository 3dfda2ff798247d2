//! Strict YAML decoding: the raw document types, [`Config::load`] / [`Config::from_yaml`] /
//! [`Config::from_files`] that resolve and validate them, and [`ConfigError`] with its exact key
//! path.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::entries::stem;
use super::model::{RawDatabase, RawSettings};
use super::{token_file, Control, Entry, Settings, Source};

/// A configuration error: the file, the key path and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {path}: {message}")]
pub struct ConfigError {
    /// The config file (or `command line` for positional files).
    pub file: String,
    /// Dotted key path, e.g. `databases[1].thresholds.slow_query`; `.` for the whole document.
    pub path: String,
    /// What was wrong and what was expected.
    pub message: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping")]
struct RawControl {
    #[serde(default)]
    enabled: bool,
    #[serde(default)]
    token_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping")]
struct RawConfig {
    #[serde(default)]
    defaults: Option<RawSettings>,
    #[serde(default)]
    databases: Option<Vec<RawDatabase>>,
    #[serde(default)]
    control: Option<RawControl>,
}

/// A validated configuration.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    /// `databases:` in file order.
    pub entries: Vec<Entry>,
    /// The resolved `defaults:` (used for databases added outside the file, e.g. the demo).
    pub defaults: Arc<Settings>,
    /// Control API settings.
    pub control: Control,
    /// The file this came from, if any.
    pub file: Option<PathBuf>,
}

impl Config {
    /// Reads and validates a config file, and the token file it names when the control API is
    /// enabled (missing, empty, a directory, or readable by other users is an error).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let err = |key: &str, message: String| ConfigError {
            file: path.display().to_string(),
            path: key.to_string(),
            message,
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| err(".", format!("cannot read config file: {e}")))?;
        let config = Config::from_yaml(&text, path)?;
        if let (true, Some(token_file)) = (config.control.enabled, &config.control.token_file) {
            token_file::read(token_file).map_err(|m| err("control.token_file", m))?;
        }
        Ok(config)
    }

    /// What is valid but probably not meant, for `--config.check` to print and the service to
    /// log: a configuration without databases monitors nothing.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.entries.is_empty() {
            warnings.push(
                "no database entries under `databases:`; nothing will be monitored".to_string(),
            );
        }
        warnings
    }

    /// Parses and validates YAML text; `file` names it in errors and anchors relative paths.
    pub fn from_yaml(text: &str, file: &Path) -> Result<Config, ConfigError> {
        let err = |path: String, message: String| ConfigError {
            file: file.display().to_string(),
            path,
            message,
        };
        let raw: RawConfig = if text.trim().is_empty() {
            RawConfig::default()
        } else {
            let de = serde_yaml::Deserializer::from_str(text);
            serde_path_to_error::deserialize(de).map_err(|e| {
                let path = e.path().to_string();
                err(path, yaml_message(&e.into_inner()))
            })?
        };
        let base = file.parent().unwrap_or(Path::new("."));
        let mut defaults = Settings::default();
        if let Some(d) = &raw.defaults {
            defaults.overlay(d);
        }
        defaults.validate("defaults.").map_err(|(p, m)| err(p, m))?;
        defaults.backup.dir = base.join(&defaults.backup.dir);
        let mut entries = Vec::new();
        for (i, db) in raw.databases.iter().flatten().enumerate() {
            let at = format!("databases[{i}]");
            let mut settings = defaults.clone();
            settings.overlay(&db.settings());
            settings.backup.dir = base.join(&settings.backup.dir);
            settings
                .validate(&format!("{at}."))
                .map_err(|(p, m)| err(p, m))?;
            let source =
                match (&db.path, &db.glob) {
                    (Some(_), Some(_)) => {
                        return Err(err(at, "expected either `path` or `glob`, not both".into()))
                    }
                    (None, None) => return Err(err(
                        at,
                        "expected `path` (one database) or `glob` (a pattern of database files)"
                            .into(),
                    )),
                    (Some(p), None) if p.as_os_str().is_empty() => {
                        return Err(err(
                            format!("{at}.path"),
                            "expected a file path, got an empty string".into(),
                        ))
                    }
                    (Some(p), None) => Source::Path(base.join(p)),
                    (None, Some(g)) if g.trim().is_empty() => {
                        return Err(err(
                            format!("{at}.glob"),
                            if g.is_empty() {
                                "expected a glob pattern, got an empty string".into()
                            } else {
                                format!("expected a glob pattern, got only whitespace {g:?}")
                            },
                        ))
                    }
                    (None, Some(g)) => {
                        let pattern = base.join(g).to_string_lossy().into_owned();
                        glob::Pattern::new(&pattern).map_err(|e| {
                            err(
                                format!("{at}.glob"),
                                format!("invalid glob pattern {g:?}: {e}"),
                            )
                        })?;
                        if db.name.is_some() {
                            return Err(err(
                            format!("{at}.name"),
                            "a glob entry names each database after its file stem; remove `name`"
                                .into(),
                        ));
                        }
                        Source::Glob(pattern)
                    }
                };
            let name = match (&db.name, &source) {
                (Some(n), _) => {
                    validate_name(n).map_err(|m| err(format!("{at}.name"), m))?;
                    n.clone()
                }
                (None, Source::Path(p)) => stem(p),
                (None, Source::Glob(g)) => g.clone(),
            };
            entries.push(Entry {
                name,
                source,
                settings: Arc::new(settings),
            });
        }
        let control = raw.control.unwrap_or_default();
        if control.enabled && control.token_file.is_none() {
            return Err(err(
                "control.token_file".into(),
                "expected a token file when the control API is enabled".into(),
            ));
        }
        let config = Config {
            entries,
            defaults: Arc::new(defaults),
            control: Control {
                enabled: control.enabled,
                token_file: control.token_file.map(|p| base.join(p)),
            },
            file: Some(file.to_path_buf()),
        };
        // A glob match colliding with another name depends on the files present at the moment;
        // it is logged and skipped (at start, reload and rediscovery), never a config error.
        let (_, conflicts) = config.databases();
        if let Some(c) = conflicts.into_iter().find(|c| !c.glob) {
            return Err(err(c.key, c.message));
        }
        Ok(config)
    }

    /// Zero-config use: each positional file is a database named after its file stem.
    pub fn from_files(files: &[PathBuf]) -> Result<Config, ConfigError> {
        let defaults = Arc::new(Settings::default());
        let entries = files
            .iter()
            .map(|p| Entry {
                name: stem(p),
                source: Source::Path(std::path::absolute(p).unwrap_or_else(|_| p.clone())),
                settings: defaults.clone(),
            })
            .collect();
        let config = Config {
            entries,
            defaults,
            ..Config::default()
        };
        let (_, conflicts) = config.databases();
        if let Some(c) = conflicts.into_iter().next() {
            return Err(ConfigError {
                file: "command line".into(),
                path: c.key.replace("databases", "files"),
                message: format!("{} (use a config file to name them)", c.message),
            });
        }
        Ok(config)
    }
}

/// serde_yaml's message without its own path prefix (we print the exact key path) and with its
/// location as `(line L, column C)`.
pub(crate) fn yaml_message(e: &serde_yaml::Error) -> String {
    let text = e.to_string();
    let mut msg = text.as_str();
    if let Some((head, rest)) = msg.split_once(": ") {
        if !head.is_empty() && !head.contains(' ') {
            msg = rest;
        }
    }
    if let Some(i) = msg.rfind(" at line ") {
        msg = &msg[..i];
    }
    match e.location() {
        Some(l) => format!("{msg} (line {}, column {})", l.line(), l.column()),
        None => msg.to_string(),
    }
}

fn validate_name(n: &str) -> Result<(), String> {
    let ok = !n.is_empty()
        && n.len() <= 128
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid database name {n:?}; expected 1-128 characters from A-Z a-z 0-9 _ - ."
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::HumanDuration;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_yaml(text, Path::new("/etc/x.yml"))
    }

    #[test]
    fn overrides_are_key_by_key() {
        let c = parse(
            "defaults:\n  thresholds: { slow_query: 10ms, min_indexes: 2 }\ndatabases:\n  - path: /a/app.db\n    thresholds: { min_indexes: 0 }\n",
        )
        .unwrap();
        let (dbs, _) = c.databases();
        assert_eq!(dbs[0].name, "app");
        let t = &dbs[0].settings.thresholds;
        assert_eq!(t.slow_query, HumanDuration(Duration::from_millis(10)));
        assert_eq!(t.min_indexes, 0);
        assert_eq!(t.slow_write, HumanDuration(Duration::from_millis(20)));
    }

    #[test]
    fn relative_paths_follow_the_config_file() {
        let c = parse("databases:\n  - name: a\n    path: data/a.db\n").unwrap();
        assert_eq!(
            c.entries[0].source,
            Source::Path(PathBuf::from("/etc/data/a.db"))
        );
    }
}
