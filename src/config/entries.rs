//! Database entries: where each `databases:` entry finds its file(s), glob expansion against
//! the file system, the unique-name rule and the default name (the file stem).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Config, Settings};

/// Where a configured entry finds its database file(s).
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// One file.
    Path(PathBuf),
    /// A glob pattern; each match is a database named after its file stem.
    Glob(String),
}

/// One entry of `databases:`.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The configured name (path entries; defaults to the file stem).
    pub name: String,
    /// Path or glob.
    pub source: Source,
    /// Fully resolved settings for the database(s) of this entry.
    pub settings: Arc<Settings>,
}

/// One database to monitor: a name, a path and its settings.
#[derive(Debug, Clone, PartialEq)]
pub struct DatabaseConfig {
    /// The `database` label; unique.
    pub name: String,
    /// The database file.
    pub path: PathBuf,
    /// Resolved settings.
    pub settings: Arc<Settings>,
}

impl Config {
    /// The databases to monitor now: path entries as configured, glob entries expanded against
    /// the file system. Names must be unique; a later entry whose name is taken is returned as
    /// a conflict (an error at load time, a logged skip when globs are re-evaluated).
    pub fn databases(&self) -> (Vec<DatabaseConfig>, Vec<NameConflict>) {
        let mut out: Vec<DatabaseConfig> = Vec::new();
        let mut taken: BTreeMap<String, usize> = BTreeMap::new();
        let mut conflicts = Vec::new();
        for (i, entry) in self.entries.iter().enumerate() {
            let found: Vec<(String, PathBuf)> = match &entry.source {
                Source::Path(p) => vec![(entry.name.clone(), p.clone())],
                Source::Glob(g) => glob_matches(g),
            };
            for (name, path) in found {
                if let Some(&first) = taken.get(&name) {
                    let glob = |k: usize| matches!(self.entries[k].source, Source::Glob(_));
                    conflicts.push(NameConflict {
                        glob: glob(i) || glob(first),
                        key: format!("databases[{i}]"),
                        message: format!(
                            "duplicate database name {name:?} ({}); already used by databases[{first}]",
                            path.display()
                        ),
                    });
                    continue;
                }
                taken.insert(name.clone(), i);
                out.push(DatabaseConfig {
                    name,
                    path,
                    settings: entry.settings.clone(),
                });
            }
        }
        (out, conflicts)
    }

    /// Directories whose contents decide glob matches (watched for new tenant files).
    pub fn glob_dirs(&self) -> Vec<PathBuf> {
        self.entries
            .iter()
            .filter_map(|e| match &e.source {
                Source::Glob(g) => Some(glob_base(g)),
                Source::Path(_) => None,
            })
            .collect()
    }
}

/// A database name that is already taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameConflict {
    /// Whether a glob entry is involved (so the conflict depends on the files present).
    pub glob: bool,
    /// Key path of the entry that lost.
    pub key: String,
    /// What collided.
    pub message: String,
}

impl fmt::Display for NameConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// A file's stem, the default database name.
pub fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

pub(super) fn glob_matches(pattern: &str) -> Vec<(String, PathBuf)> {
    let Ok(paths) = glob::glob(pattern) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = paths
        .filter_map(Result::ok)
        .filter(|p| !is_companion_file(p) && p.is_file())
        .collect();
    found.sort();
    found.into_iter().map(|p| (stem(&p), p)).collect()
}

/// Whether `path` is one of SQLite's companion files (`-wal`, `-shm`, `-journal`) or a temp
/// file (a leading `.`, a `.tmp` or `~` suffix): never a database of its own, even when a glob
/// such as `tenants/*` matches it.
pub fn is_companion_file(path: &Path) -> bool {
    let Some(name) = path.file_name().map(|n| n.to_string_lossy()) else {
        return true;
    };
    name.starts_with('.')
        || name.ends_with('~')
        || name.ends_with(".tmp")
        || ["-wal", "-shm", "-journal"]
            .iter()
            .any(|s| name.ends_with(s))
}

/// The longest leading directory of a glob pattern without wildcards.
fn glob_base(pattern: &str) -> PathBuf {
    let mut base = PathBuf::new();
    for part in Path::new(pattern).components() {
        let s = part.as_os_str().to_string_lossy();
        if s.contains(['*', '?', '[']) {
            break;
        }
        base.push(part);
    }
    base
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_skip_companion_and_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "a",
            "a-wal",
            "a-shm",
            "b-journal",
            ".c.db.tmp",
            "d~",
            "e.tmp",
        ] {
            std::fs::write(dir.path().join(f), b"").unwrap();
        }
        let found = glob_matches(&format!("{}/*", dir.path().display()));
        let names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, vec!["a"]);
    }

    #[test]
    fn a_glob_name_collision_is_not_a_config_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.db"), b"").unwrap();
        let text = "databases:\n  - path: app.db\n  - glob: \"*.db\"\n";
        let c = Config::from_yaml(text, &dir.path().join("c.yml")).unwrap();
        let (dbs, conflicts) = c.databases();
        assert_eq!(dbs.len(), 1);
        assert!(conflicts[0].glob, "{conflicts:?}");
    }

    #[test]
    fn glob_base_stops_at_wildcards() {
        assert_eq!(glob_base("/var/lib/t/*.db"), PathBuf::from("/var/lib/t"));
    }
}
