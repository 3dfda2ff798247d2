//! Configuration: the YAML file of SPEC §3, decoded strictly into validated types.
//!
//! Decoding happens in two layers. The *raw* layer mirrors the file: every key optional, unknown
//! keys rejected, each value checked by its type (durations, sizes, enums) with serde tracking
//! the key path for the error. The *resolved* layer is what the rest of the program sees: every
//! database has a complete [`Settings`] built from the built-in defaults, then the file's
//! `defaults:`, then the database's own overrides, key by key. Code that needs a valid config can
//! only receive a [`Config`], and a `Config` only comes out of [`Config::load`] /
//! [`Config::from_yaml`] / [`Config::from_files`], which validate everything.

pub mod units;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

pub use units::{ByteSize, HumanDuration};

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

/// Declares one settings section twice: the resolved struct with its defaults, and the raw
/// struct whose keys are all optional, plus the key-by-key overlay of raw onto resolved.
macro_rules! section {
    (
        $(#[$meta:meta])*
        $name:ident / $raw:ident {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty = $default:expr ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl Default for $name {
            fn default() -> Self {
                Self { $( $field: $default, )* }
            }
        }

        #[derive(Debug, Clone, Default, Deserialize)]
        #[serde(deny_unknown_fields, expecting = "a mapping")]
        struct $raw {
            $( #[serde(default)] $field: Option<$ty>, )*
        }

        impl $name {
            fn overlay(&mut self, raw: &$raw) {
                $( if let Some(v) = &raw.$field { self.$field = v.clone(); } )*
            }
        }
    };
}

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

fn ms(n: u64) -> HumanDuration {
    HumanDuration(Duration::from_millis(n))
}
fn secs(n: u64) -> HumanDuration {
    HumanDuration(Duration::from_secs(n))
}

section! {
    /// The thresholds of SPEC §6; each names the document it comes from there.
    Thresholds / RawThresholds {
        /// WAL size above which `checkpoint` is recommended.
        wal_checkpoint_bytes: ByteSize = ByteSize(MIB),
        /// WAL size above which `checkpoint_now` is recommended and auto-checkpoint runs TRUNCATE.
        wal_critical_bytes: ByteSize = ByteSize(10 * MIB),
        /// WAL size of the critical alert (used by the shipped alert rules and `check`).
        wal_alert_bytes: ByteSize = ByteSize(100 * MIB),
        /// Page utilization below which `vacuum` is recommended.
        min_utilization: f64 = 0.70,
        /// Free-page ratio above which `vacuum` is recommended.
        max_free_ratio: f64 = 0.30,
        /// Database size above which `archive` is recommended.
        archive_bytes: ByteSize = ByteSize(100 * MIB),
        /// Database size of the size warning alert.
        size_warning_bytes: ByteSize = ByteSize(500_000_000),
        /// Read probe latency above which `check_indexes` is recommended.
        slow_query: HumanDuration = ms(50),
        /// Write probe latency above which `optimize_writes` is recommended.
        slow_write: HumanDuration = ms(20),
        /// Fewer indexes than this recommends `add_indexes` (0 disables).
        min_indexes: u64 = 4,
        /// A probe slower than this makes the database `warning`.
        unhealthy_latency: HumanDuration = secs(1),
        /// Newest verified backup older than this recommends `backup`.
        backup_max_age: HumanDuration = secs(25 * 3600),
    }
}

/// Which SQLite check to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IntegrityMode {
    /// `PRAGMA quick_check`: page structure, record formats, NOT NULL and CHECK constraints;
    /// does not verify that indexes match their tables. Several times faster.
    Quick,
    /// `PRAGMA integrity_check`: everything `quick_check` does, plus index contents, UNIQUE
    /// constraints and key ordering.
    Full,
}

impl std::str::FromStr for IntegrityMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "quick" => Ok(IntegrityMode::Quick),
            "full" => Ok(IntegrityMode::Full),
            other => Err(format!(
                "invalid integrity check mode {other:?}; expected quick or full"
            )),
        }
    }
}

impl IntegrityMode {
    /// `quick` or `full`, as in the config file, the API and log lines.
    pub fn as_str(self) -> &'static str {
        match self {
            IntegrityMode::Quick => "quick",
            IntegrityMode::Full => "full",
        }
    }
}

section! {
    /// The background integrity schedule (SPEC §3, §6).
    IntegrityCheck / RawIntegrityCheck {
        /// The check run every `interval`.
        mode: IntegrityMode = IntegrityMode::Quick,
        /// Period of the regular check.
        interval: HumanDuration = secs(300),
        /// Period of the full `integrity_check`.
        full_interval: HumanDuration = secs(24 * 3600),
        /// A check running longer is interrupted and reported unknown.
        timeout: HumanDuration = secs(600),
    }
}

/// How the write probe measures write latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WriteProbe {
    /// No write probe.
    Off,
    /// `BEGIN IMMEDIATE; ROLLBACK`: measures lock acquisition, writes nothing.
    Lock,
    /// A committed write to `_sqlite_exporter_probe`: measures a real commit (fsync included).
    Table,
}

section! {
    /// The probes: real SQL timed against the database on their own schedule, never at a
    /// scrape (a scrape serves their latest result).
    Probes / RawProbes {
        /// The read probe: a query timed at every probe run (it must be cheap).
        query: String = "SELECT count(*) FROM sqlite_schema".to_string(),
        /// The write probe.
        write: WriteProbe = WriteProbe::Lock,
        /// How often the probes run on each database (staggered across the fleet).
        interval: HumanDuration = secs(60),
    }
}

/// Backup compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Never compress.
    None,
    /// gzip backups larger than `compress_above`.
    Gzip,
}

/// How a backup copy is verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verification {
    /// `PRAGMA integrity_check` on the copy.
    Full,
    /// `PRAGMA quick_check` on the copy.
    Quick,
}

/// How a backup copy is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupMethod {
    /// SQLite's online backup API, stepwise.
    Online,
    /// `VACUUM INTO`: a compacted copy in one statement.
    VacuumInto,
}

section! {
    /// Backups (SPEC §7).
    Backup / RawBackup {
        /// Directory holding this database's backups (shared by databases; names carry the database).
        dir: PathBuf = PathBuf::from("/var/backups/sqlite"),
        /// Period of scheduled backups (`auto.backup`).
        interval: HumanDuration = secs(24 * 3600),
        /// Backups kept by rotation.
        keep: u64 = 10,
        /// Compression of backup files.
        compress: Compression = Compression::Gzip,
        /// Only backups larger than this are compressed.
        compress_above: ByteSize = ByteSize(MIB),
        /// Verification of each copy before it becomes a backup.
        verify: Verification = Verification::Full,
        /// Copy method.
        method: BackupMethod = BackupMethod::Online,
        /// Pages copied per step of the online backup; writers commit between steps.
        pages_per_step: u64 = 1024,
        /// Pause between steps of the online backup.
        step_pause: HumanDuration = ms(5),
    }
}

section! {
    /// The schedule of the dbstat-based collectors (`dbstat`, `tables`; off by default).
    Dbstat / RawDbstat {
        /// How often they scan (each scan reads every page).
        interval: HumanDuration = secs(3600),
        /// A longer scan is interrupted.
        timeout: HumanDuration = secs(300),
    }
}

section! {
    /// How actions (checkpoint, backup, restore, recovery, VACUUM) treat the application.
    Actions / RawActions {
        /// How long an action waits for a lock held by the application (SPEC §6, from 003).
        busy_timeout: HumanDuration = secs(30),
        /// How long a FULL, RESTART or TRUNCATE checkpoint may wait for readers and writers.
        /// While it waits, SQLite holds off new writers, so this bounds how long the
        /// application can be stalled by a checkpoint (Litestream #724: a RESTART checkpoint
        /// without such a bound hung an application).
        checkpoint_timeout: HumanDuration = secs(1),
        /// VACUUM runs only when free disk space exceeds the database size plus this margin.
        vacuum_disk_margin: ByteSize = ByteSize(100 * MIB),
    }
}

section! {
    /// Opt-in policies (SPEC §7); all off by default.
    Auto / RawAuto {
        /// Checkpoint TRUNCATE when the WAL passes `wal_critical_bytes`.
        checkpoint: bool = false,
        /// Scheduled backups every `backup.interval`.
        backup: bool = false,
        /// Recovery when an integrity check fails.
        recover: bool = false,
        /// VACUUM when utilization is below `min_utilization`.
        vacuum: bool = false,
    }
}

impl Auto {
    /// Whether any policy is on.
    pub fn any(&self) -> bool {
        self.checkpoint || self.backup || self.recover || self.vacuum
    }
}

section! {
    /// The migrations collector.
    Migrations / RawMigrations {
        /// Name of the migrations table.
        table: String = "schema_migrations".to_string(),
    }
}

/// Declares the settings sections once: the resolved [`Settings`], the raw `defaults:` block,
/// the raw `databases:` entry (its own keys plus every section, as serde cannot flatten with
/// `deny_unknown_fields`), and the section-by-section overlay.
macro_rules! settings {
    ($( $(#[$doc:meta])* $field:ident : $ty:ident / $raw:ident ),* $(,)?) => {
        /// Everything that may be set in `defaults:` and overridden per database.
        #[derive(Debug, Clone, PartialEq, Default)]
        pub struct Settings {
            $( $(#[$doc])* pub $field: $ty, )*
        }

        #[derive(Debug, Clone, Default, Deserialize)]
        #[serde(deny_unknown_fields, expecting = "a mapping")]
        struct RawSettings {
            $( #[serde(default)] $field: Option<$raw>, )*
        }

        #[derive(Debug, Clone, Default, Deserialize)]
        #[serde(deny_unknown_fields, expecting = "a mapping")]
        struct RawDatabase {
            name: Option<String>,
            path: Option<PathBuf>,
            glob: Option<String>,
            $( #[serde(default)] $field: Option<$raw>, )*
        }

        impl RawDatabase {
            fn settings(&self) -> RawSettings {
                RawSettings { $( $field: self.$field.clone(), )* }
            }
        }

        impl Settings {
            fn overlay(&mut self, raw: &RawSettings) {
                $( if let Some(r) = &raw.$field { self.$field.overlay(r); } )*
            }
        }
    };
}

settings! {
    /// SPEC §6 thresholds.
    thresholds: Thresholds / RawThresholds,
    /// Background integrity schedule.
    integrity_check: IntegrityCheck / RawIntegrityCheck,
    /// Scrape-time probes.
    probes: Probes / RawProbes,
    /// Backups.
    backup: Backup / RawBackup,
    /// Policies.
    auto: Auto / RawAuto,
    /// Migrations collector.
    migrations: Migrations / RawMigrations,
    /// dbstat-based collectors.
    dbstat: Dbstat / RawDbstat,
    /// Actions.
    actions: Actions / RawActions,
}

impl Settings {
    /// Checks values that their types alone cannot; `at` is the key path of this settings block.
    fn validate(&self, at: &str) -> Result<(), (String, String)> {
        let t = &self.thresholds;
        let ratio = |key: &str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err((
                    format!("{at}thresholds.{key}"),
                    format!("expected a ratio between 0 and 1, got {v}"),
                ))
            }
        };
        ratio("min_utilization", t.min_utilization)?;
        ratio("max_free_ratio", t.max_free_ratio)?;
        let positive = |key: String, d: HumanDuration| {
            if d.0.is_zero() {
                Err((key, "expected a duration greater than zero".to_string()))
            } else {
                Ok(())
            }
        };
        let ic = &self.integrity_check;
        positive(format!("{at}integrity_check.interval"), ic.interval)?;
        positive(
            format!("{at}integrity_check.full_interval"),
            ic.full_interval,
        )?;
        positive(format!("{at}integrity_check.timeout"), ic.timeout)?;
        positive(format!("{at}backup.interval"), self.backup.interval)?;
        positive(format!("{at}dbstat.interval"), self.dbstat.interval)?;
        positive(format!("{at}dbstat.timeout"), self.dbstat.timeout)?;
        positive(
            format!("{at}actions.busy_timeout"),
            self.actions.busy_timeout,
        )?;
        positive(
            format!("{at}actions.checkpoint_timeout"),
            self.actions.checkpoint_timeout,
        )?;
        if self.probes.query.trim().is_empty() {
            return Err((
                format!("{at}probes.query"),
                "expected a SQL query, got an empty string".to_string(),
            ));
        }
        if self.backup.keep == 0 {
            return Err((
                format!("{at}backup.keep"),
                "expected at least 1 backup to keep".to_string(),
            ));
        }
        if self.backup.pages_per_step == 0 || self.backup.pages_per_step > i32::MAX as u64 {
            return Err((
                format!("{at}backup.pages_per_step"),
                "expected a number of pages between 1 and 2147483647".to_string(),
            ));
        }
        if self.migrations.table.trim().is_empty() {
            return Err((
                format!("{at}migrations.table"),
                "expected a table name, got an empty string".to_string(),
            ));
        }
        Ok(())
    }
}

/// The control API section (SPEC §5).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Control {
    /// The control API answers only when enabled.
    pub enabled: bool,
    /// File with bearer tokens, one per line.
    pub token_file: Option<PathBuf>,
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
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            path: ".".to_string(),
            message: format!("cannot read config file: {e}"),
        })?;
        Config::from_yaml(&text, path)
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

/// A file's stem, the default database name.
pub fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

fn glob_matches(pattern: &str) -> Vec<(String, PathBuf)> {
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
