//! Strict YAML decoding: the raw document types, [`Config::load`] / [`Config::from_yaml`] /
//! [`Config::from_files`] that resolve and validate them, and [`ConfigError`] with its exact key
//! path.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::entries::{glob_matches, stem};
use super::model::{CustomQuery, Queries};
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
        defaults.migrations.dir = defaults.migrations.dir.map(|d| base.join(d));
        let mut entries = Vec::new();
        for (i, db) in raw.databases.iter().flatten().enumerate() {
            let at = format!("databases[{i}]");
            let mut settings = defaults.clone();
            settings.overlay(&db.settings());
            settings.backup.dir = base.join(&settings.backup.dir);
            settings.migrations.dir = settings.migrations.dir.map(|d| base.join(d));
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
            // A glob's databases share one schema as a rule (per-tenant files of one app), so
            // a few of its files find a bad query without opening thousands at every load.
            let files = match &source {
                Source::Path(p) => vec![p.clone()],
                Source::Glob(g) => glob_matches(g)
                    .into_iter()
                    .take(PREPARED_GLOB_MATCHES)
                    .map(|(_, p)| p)
                    .collect(),
            };
            for file in &files {
                if let Some((key, message)) = prepare_queries(file, &settings.queries) {
                    return Err(err(format!("{at}.queries{key}"), message));
                }
            }
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
        if let Some((key, message)) = families_agree(&defaults, &entries) {
            return Err(err(key, message));
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

/// How many of a glob entry's files its custom queries are prepared against at load.
const PREPARED_GLOB_MATCHES: usize = 3;

/// Prepares each custom query against the database at `path` (a read-only connection; nothing
/// is executed), so that bad SQL, a missing table or a missing value or label column is found
/// at load. A database that does not exist yet or cannot be opened or read now is skipped:
/// its queries fail at run time instead. Returns the key below `queries` and the reason.
fn prepare_queries(path: &Path, queries: &Queries) -> Option<(String, String)> {
    if queries.0.is_empty() || !path.is_file() {
        return None;
    }
    let conn =
        crate::sqlite::connection::open_read_only(path, std::time::Duration::from_millis(500))
            .ok()?;
    for (i, q) in queries.0.iter().enumerate() {
        if let Some((key, why)) = prepare_one(&conn, q) {
            return Some((format!("[{i}].{key}"), why));
        }
    }
    None
}

fn prepare_one(conn: &rusqlite::Connection, q: &CustomQuery) -> Option<(&'static str, String)> {
    let stmt = match conn.prepare(&q.sql) {
        Ok(stmt) => stmt,
        // SQLITE_ERROR is the statement's fault (syntax, no such table or column); anything
        // else (busy, locked, damaged file) is the database's state now, for run time to see.
        Err(e @ rusqlite::Error::SqliteFailure(f, _)) if f.code == rusqlite::ErrorCode::Unknown => {
            return Some(("sql", format!("the statement does not prepare: {e}")));
        }
        Err(e @ (rusqlite::Error::MultipleStatement | rusqlite::Error::SqlInputError { .. })) => {
            return Some(("sql", format!("the statement does not prepare: {e}")));
        }
        Err(_) => return None,
    };
    if !stmt.readonly() {
        return Some((
            "sql",
            "expected a statement that only reads (SELECT)".into(),
        ));
    }
    let names = stmt.column_names();
    if names.is_empty() {
        return Some(("sql", "the statement returns no columns".into()));
    }
    for (key, list) in [("values", &q.values), ("labels", &q.labels)] {
        if let Some(c) = list.iter().find(|c| !names.contains(&c.as_str())) {
            return Some((
                key,
                format!(
                    "column {c:?} is not among the statement's columns ({})",
                    names.join(", ")
                ),
            ));
        }
    }
    None
}

/// Families of the same name made by queries of different databases must agree on type and
/// help, or the exposition would declare one family twice. Returns the key and the reason.
fn families_agree(defaults: &Settings, entries: &[Entry]) -> Option<(String, String)> {
    let mut seen: std::collections::BTreeMap<String, (&CustomQuery, String)> =
        std::collections::BTreeMap::new();
    let all = std::iter::once(("defaults".to_string(), defaults)).chain(
        entries
            .iter()
            .enumerate()
            .map(|(i, e)| (format!("databases[{i}]"), e.settings.as_ref())),
    );
    for (at, settings) in all {
        for (j, q) in settings.queries.0.iter().enumerate() {
            let key = format!("{at}.queries[{j}]");
            for family in q.families() {
                match seen.get(&family) {
                    Some((first, first_key)) if first.kind != q.kind || first.help != q.help => {
                        return Some((
                            format!("{key}.name"),
                            format!("metric {family:?} is also made by {first_key} with another type or help; one metric has one type and one help"),
                        ));
                    }
                    Some(_) => {}
                    None => {
                        seen.insert(family, (q, key.clone()));
                    }
                }
            }
        }
    }
    None
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
    fn an_entrys_queries_replace_the_defaults_and_are_prepared_against_existing_files() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t1.db");
        rusqlite::Connection::open(&db)
            .unwrap()
            .execute_batch("CREATE TABLE jobs (state TEXT)")
            .unwrap();
        let query = |name: &str, table: &str| {
            format!("\n      - {{ name: {name}, sql: \"SELECT count(*) AS n FROM {table}\", values: [n] }}")
        };
        let text = |entry_queries: &str| {
            format!(
                "defaults:\n  queries:{}{}\ndatabases:\n  - path: missing.db\n  - glob: \"t*.db\"{entry_queries}\n",
                query("a", "jobs"),
                query("b", "jobs"),
            )
        };
        let file = dir.path().join("c.yml");
        let c = Config::from_yaml(&text(""), &file).unwrap();
        assert_eq!(c.entries[1].settings.queries.0.len(), 2);
        let c = Config::from_yaml(
            &text(&format!("\n    queries:{}", query("c", "jobs"))),
            &file,
        )
        .unwrap();
        let names: Vec<&str> = c.entries[1]
            .settings
            .queries
            .0
            .iter()
            .map(|q| q.name.as_str())
            .collect();
        assert_eq!(names, ["c"], "an entry's list replaces the defaults'");
        // The glob's match exists, so its query is prepared; the missing file's is not.
        let e = Config::from_yaml(
            &text(&format!("\n    queries:{}", query("c", "absent"))),
            &file,
        )
        .unwrap_err();
        assert_eq!(e.path, "databases[1].queries[0].sql", "{e}");
        assert!(e.message.contains("no such table: absent"), "{e}");
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
