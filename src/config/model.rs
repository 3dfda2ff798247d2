//! The validated configuration model: every settings section with its one set of built-in
//! defaults, the mode enums, the `Settings` checks that types alone cannot express, and the
//! control API section.
//!
//! Each section is declared once by `section!`, which also yields its raw (all keys optional)
//! twin and the key-by-key overlay; `settings!` does the same for the whole `Settings` and the
//! raw `defaults:` / `databases:` entry types the decoder reads.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{ByteSize, HumanDuration};

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
    /// The limits that turn measurements into recommendations, alerts and the `warning` status;
    /// the defaults suit a typical application database and each can be overridden per database.
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
        /// Checkpoints that copy nothing back for this long, while the WAL grows and the frames
        /// waiting exceed `wal_critical_bytes`, make the database `warning` (checkpoint starved).
        checkpoint_stall: HumanDuration = secs(15 * 60),
    }
}

/// Label names the exporter or Prometheus puts on series itself; a static label may not take
/// one of them (it would clash with, or be renamed by, theirs).
pub const RESERVED_LABELS: &[&str] = &[
    "database",
    "collector",
    "status",
    "recommendation",
    "table",
    "action",
    "mode",
    "state",
    "type",
    "path",
    "journal_mode",
    "auto_vacuum",
    "encoding",
    "sqlite_version",
    "version",
    "revision",
    "le",
    "quantile",
    "job",
    "instance",
    "query",
    "framework",
];

/// Static labels put on every series of a database (`labels: {tenant: acme, tier: gold}`),
/// in name order. Set in `defaults:` or per entry (glob entries too); an entry's labels add to
/// and override the defaults' key by key.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Labels(pub Vec<(String, String)>);

/// `labels:` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(transparent)]
pub(super) struct RawLabels(BTreeMap<String, String>);

impl Labels {
    fn overlay(&mut self, raw: &RawLabels) {
        let mut all: BTreeMap<String, String> = self.0.drain(..).collect();
        all.extend(raw.0.iter().map(|(k, v)| (k.clone(), v.clone())));
        self.0 = all.into_iter().collect();
    }

    /// Why the labels cannot be used, with the offending key.
    fn problem(&self) -> Option<(String, String)> {
        self.0.iter().find_map(|(name, value)| {
            let why = if !is_label_name(name) {
                "expected a label name of letters, digits and `_`, not starting with a digit"
                    .to_string()
            } else if name.starts_with("__") {
                "label names starting with `__` are reserved by Prometheus".to_string()
            } else if RESERVED_LABELS.contains(&name.as_str()) {
                format!("`{name}` is a label the exporter or Prometheus sets itself; choose another name")
            } else if value.is_empty() {
                "expected a value (an empty label value is no label at all)".to_string()
            } else {
                return None;
            };
            Some((name.clone(), why))
        })
    }
}

/// Whether `name` is a label name: letters, digits and `_`, not starting with a digit.
fn is_label_name(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The Prometheus type of a custom query's families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QueryType {
    /// A value that goes up and down.
    #[default]
    Gauge,
    /// A value that only goes up (family names end in `_total`).
    Counter,
}

impl QueryType {
    /// `gauge` or `counter`, as in the `# TYPE` line.
    pub fn as_str(self) -> &'static str {
        match self {
            QueryType::Gauge => "gauge",
            QueryType::Counter => "counter",
        }
    }
}

/// One custom query (`queries:`): SQL run in the background on its own schedule, each result
/// row a series of every value column's family.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomQuery {
    /// Metric name (the family name when there is one value column, else its prefix).
    pub name: String,
    /// HELP text.
    pub help: String,
    /// The SQL, one read-only statement.
    pub sql: String,
    /// Columns holding the values, one family each.
    pub values: Vec<String>,
    /// Columns holding label values, in order.
    pub labels: Vec<String>,
    /// The families' type.
    pub kind: QueryType,
    /// How often it runs.
    pub interval: HumanDuration,
    /// A run taking longer is interrupted.
    pub timeout: HumanDuration,
}

impl CustomQuery {
    /// The family name of each value column, in `values` order: `name` alone for one value
    /// column, `{name}_{column}` for several.
    pub fn families(&self) -> Vec<String> {
        match self.values.as_slice() {
            [_] => vec![self.name.clone()],
            many => many.iter().map(|c| format!("{}_{c}", self.name)).collect(),
        }
    }
}

/// The custom queries of a database, in file order. Set in `defaults:` or per entry; an
/// entry's list replaces the defaults' list (it does not add to it).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Queries(pub Vec<CustomQuery>);

/// One `queries:` item as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping")]
pub(super) struct RawQuery {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    help: Option<String>,
    #[serde(default)]
    sql: Option<String>,
    #[serde(default)]
    values: Option<Vec<String>>,
    #[serde(default)]
    labels: Option<Vec<String>>,
    #[serde(default, rename = "type")]
    kind: Option<QueryType>,
    #[serde(default)]
    interval: Option<HumanDuration>,
    #[serde(default)]
    timeout: Option<HumanDuration>,
}

/// `queries:` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(transparent)]
pub(super) struct RawQueries(Vec<RawQuery>);

/// Metric name prefixes of the exporter's own families; a custom query may not use them.
const OWN_PREFIXES: &[&str] = &["sqlite_", "process_"];

impl Queries {
    /// Replaces the whole list (an entry's queries do not add to the defaults'); each item
    /// takes the built-in `type`, `interval` and `timeout` where it sets none, and what a
    /// required key lacks is reported by [`Queries::problem`].
    fn overlay(&mut self, raw: &RawQueries) {
        self.0 = raw
            .0
            .iter()
            .map(|q| CustomQuery {
                name: q.name.clone().unwrap_or_default(),
                help: q.help.clone().unwrap_or_default(),
                sql: q.sql.clone().unwrap_or_default(),
                values: q.values.clone().unwrap_or_default(),
                labels: q.labels.clone().unwrap_or_default(),
                kind: q.kind.unwrap_or_default(),
                interval: q.interval.unwrap_or(secs(60)),
                timeout: q.timeout.unwrap_or(secs(5)),
            })
            .collect();
    }

    /// Why the queries cannot be used, with the offending key below `queries`
    /// (`[1].labels`); `labels` are the database's static labels.
    fn problem(&self, labels: &Labels) -> Option<(String, String)> {
        let mut families: BTreeMap<String, usize> = BTreeMap::new();
        for (i, q) in self.0.iter().enumerate() {
            let at = |key: &str| format!("[{i}].{key}");
            let name = &q.name;
            if name.is_empty() {
                return Some((at("name"), "expected a metric name".into()));
            }
            if !is_label_name(name) || name.starts_with("__") {
                return Some((
                    at("name"),
                    format!("invalid metric name {name:?}; expected letters, digits and `_`, not starting with a digit or `__`"),
                ));
            }
            if let Some(first) = self.0[..i].iter().position(|other| other.name == *name) {
                return Some((
                    at("name"),
                    format!("name {name:?} is already used by queries[{first}]"),
                ));
            }
            if let Some(p) = OWN_PREFIXES.iter().find(|p| name.starts_with(**p)) {
                return Some((
                    at("name"),
                    format!("metric names starting with `{p}` belong to the exporter's own series; choose another name"),
                ));
            }
            if q.sql.trim().is_empty() {
                return Some((at("sql"), "expected a SQL query".into()));
            }
            if q.values.is_empty() {
                return Some((at("values"), "expected at least one value column".into()));
            }
            let mut columns: Vec<&String> = Vec::new();
            for (key, list) in [("values", &q.values), ("labels", &q.labels)] {
                for (j, c) in list.iter().enumerate() {
                    if c.is_empty() {
                        return Some((at(&format!("{key}[{j}]")), "expected a column name".into()));
                    }
                    if columns.contains(&c) {
                        return Some((
                            at(&format!("{key}[{j}]")),
                            format!("column {c:?} is listed twice (a column is either one value or one label)"),
                        ));
                    }
                    columns.push(c);
                }
            }
            if q.values.len() > 1 {
                if let Some(c) = q
                    .values
                    .iter()
                    .find(|c| !c.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
                {
                    return Some((
                        at("values"),
                        format!("value column {c:?} cannot be part of a metric name ({name}_{c}); with several value columns each must be letters, digits and `_` (rename it with AS)"),
                    ));
                }
            }
            for (j, l) in q.labels.iter().enumerate() {
                let why = if !is_label_name(l) {
                    "expected a label name of letters, digits and `_`, not starting with a digit (rename the column with AS)".to_string()
                } else if l.starts_with("__") {
                    "label names starting with `__` are reserved by Prometheus".to_string()
                } else if l == "database" {
                    "`database` is the label naming the database; choose another name (rename the column with AS)".to_string()
                } else if l == "job" || l == "instance" {
                    format!("`{l}` is a label Prometheus sets itself; choose another name (rename the column with AS)")
                } else if labels.0.iter().any(|(k, _)| k == l) {
                    format!("`{l}` is also a static label of this database (labels.{l}); choose another name")
                } else {
                    continue;
                };
                return Some((at(&format!("labels[{j}]")), why));
            }
            if q.interval.0.is_zero() {
                return Some((
                    at("interval"),
                    "expected a duration greater than zero".into(),
                ));
            }
            if q.timeout.0.is_zero() {
                return Some((
                    at("timeout"),
                    "expected a duration greater than zero".into(),
                ));
            }
            for family in q.families() {
                if family.ends_with("_info") {
                    return Some((
                        at("name"),
                        format!("metric {family:?} ends in `_info`, which OpenMetrics reserves for info families (always 1); choose another name"),
                    ));
                }
                if q.kind == QueryType::Counter && !family.ends_with("_total") {
                    return Some((
                        at("name"),
                        format!("counter {family:?} must end in `_total`"),
                    ));
                }
                if let Some(first) = families.insert(family.clone(), i) {
                    return Some((
                        at("name"),
                        format!("metric {family:?} is already produced by queries[{first}]"),
                    ));
                }
            }
        }
        None
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
    /// The background integrity schedule: the cheap check often, the full one rarely, because a
    /// full `integrity_check` reads every page and index of the database.
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
    /// Backups: where copies go, how often they are made, how many are kept and how each copy is
    /// verified, since an unverified copy cannot be trusted for a restore.
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
        /// Copies of a corrupt database kept under `quarantine/` by recovery, newest first, per
        /// database (each is a full copy of the database and its WAL).
        quarantine_keep: u64 = 3,
        /// Restore drills of the newest backup (see [`Drill`]).
        drill: Drill = Drill::default(),
    }
}

/// Restore drills: on a schedule, the newest backup is restored into a scratch directory
/// under the backup directory, checked (`integrity_check`, `foreign_key_check`), compared with
/// what its sidecar recorded, timed, and deleted. A `drill:` block replaces the whole block it
/// overrides; keys it leaves out take the built-in defaults.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "a mapping")]
pub struct Drill {
    /// Drills run whenever the database has a backup to drill; `false` turns them off.
    pub enabled: bool,
    /// Period of the drills of each database.
    pub interval: HumanDuration,
    /// Recovery time objective: a drill that takes longer raises the RTO alert.
    pub rto: HumanDuration,
    /// Free space the file system of the backup directory must keep beyond the restored copy,
    /// or the drill is refused (not failed).
    pub free_space_margin: ByteSize,
    /// Checks of the restored copy running longer are interrupted, and the drill fails: the
    /// backup was not proven restorable in time.
    pub timeout: HumanDuration,
}

impl Default for Drill {
    fn default() -> Self {
        Drill {
            enabled: true,
            interval: secs(24 * 3600),
            rto: secs(3600),
            free_space_margin: ByteSize(64 * MIB),
            timeout: secs(3600),
        }
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
        /// How long an action waits for a lock held by the application; generous, so an action
        /// waits out the application's ordinary write transactions instead of failing.
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
    /// Opt-in policies; all off by default, because each one acts on a production database
    /// without an operator asking for it.
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

/// How much per-database detail `/metrics` carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Detail {
    /// What a fleet needs, within a budget of 40 series per database: probe histograms with a
    /// few buckets (the latency thresholds among their edges), only the active recommendations,
    /// only the failing collectors, action counters once an action ran (from the start for
    /// the actions a policy runs).
    Basic,
    /// Everything: fine probe buckets, every recommendation and collector (with its duration),
    /// every action counter from the start and the schema cookie; about 100 series per database.
    Full,
}

section! {
    /// What `/metrics` shows of each database; every series of a database is a series in the
    /// Prometheus that scrapes it, times the number of databases.
    Metrics / RawMetrics {
        /// `basic` (the default) or `full`.
        detail: Detail = Detail::Basic,
    }
}

section! {
    /// The migrations collector: which migrations table to read, and where the application's
    /// migration files are (for the pending count and checksum drift).
    Migrations / RawMigrations {
        /// Name of the migrations table; unset, the tables of the known migration tools are
        /// found in the schema (`django_migrations`, `_sqlx_migrations`, ...).
        table: Option<String> = None,
        /// The application's migration files; unset, nothing is pending or drifted.
        dir: Option<PathBuf> = None,
    }
}

section! {
    /// What the schema must contain.
    Schema / RawSchema {
        /// Tables that must exist; a missing one makes the database critical.
        required_tables: Vec<String> = Vec::new(),
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
        pub(super) struct RawSettings {
            $( #[serde(default)] $field: Option<$raw>, )*
        }

        #[derive(Debug, Clone, Default, Deserialize)]
        #[serde(deny_unknown_fields, expecting = "a mapping")]
        pub(super) struct RawDatabase {
            pub(super) name: Option<String>,
            pub(super) path: Option<PathBuf>,
            pub(super) glob: Option<String>,
            $( #[serde(default)] $field: Option<$raw>, )*
        }

        impl RawDatabase {
            pub(super) fn settings(&self) -> RawSettings {
                RawSettings { $( $field: self.$field.clone(), )* }
            }
        }

        impl Settings {
            pub(super) fn overlay(&mut self, raw: &RawSettings) {
                $( if let Some(r) = &raw.$field { self.$field.overlay(r); } )*
            }
        }
    };
}

settings! {
    /// Limits behind recommendations, alerts and status.
    thresholds: Thresholds / RawThresholds,
    /// Background integrity schedule.
    integrity_check: IntegrityCheck / RawIntegrityCheck,
    /// The probes, on their own schedule.
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
    /// Per-database detail in `/metrics`.
    metrics: Metrics / RawMetrics,
    /// Static labels on every series of the database.
    labels: Labels / RawLabels,
    /// Custom SQL metrics.
    queries: Queries / RawQueries,
    /// Required schema.
    schema: Schema / RawSchema,
}

impl Settings {
    /// Checks values that their types alone cannot; `at` is the key path of this settings block.
    pub(super) fn validate(&self, at: &str) -> Result<(), (String, String)> {
        if let Some((name, why)) = self.labels.problem() {
            return Err((format!("{at}labels.{name}"), why));
        }
        if let Some((key, why)) = self.queries.problem(&self.labels) {
            return Err((format!("{at}queries{key}"), why));
        }
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
        positive(
            format!("{at}backup.drill.interval"),
            self.backup.drill.interval,
        )?;
        positive(format!("{at}backup.drill.rto"), self.backup.drill.rto)?;
        positive(
            format!("{at}backup.drill.timeout"),
            self.backup.drill.timeout,
        )?;
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
        if self.backup.quarantine_keep == 0 {
            return Err((
                format!("{at}backup.quarantine_keep"),
                "expected at least 1 quarantined copy to keep".to_string(),
            ));
        }
        if self.backup.pages_per_step == 0 || self.backup.pages_per_step > i32::MAX as u64 {
            return Err((
                format!("{at}backup.pages_per_step"),
                "expected a number of pages between 1 and 2147483647".to_string(),
            ));
        }
        if self
            .migrations
            .table
            .as_deref()
            .is_some_and(|t| t.trim().is_empty())
        {
            return Err((
                format!("{at}migrations.table"),
                "expected a table name, got an empty string".to_string(),
            ));
        }
        if let Some(i) = self
            .schema
            .required_tables
            .iter()
            .position(|t| t.trim().is_empty())
        {
            return Err((
                format!("{at}schema.required_tables[{i}]"),
                "expected a table name, got an empty string".to_string(),
            ));
        }
        Ok(())
    }
}

/// The control API section: off unless enabled, and then only with a token file, because the
/// API can run actions that change the database.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Control {
    /// The control API answers only when enabled.
    pub enabled: bool,
    /// File with bearer tokens, one per line.
    pub token_file: Option<PathBuf>,
}

/// How many thresholds are exported as gauges.
pub const EXPORTED_THRESHOLD_COUNT: usize = 17;

/// The thresholds exported as `sqlite_threshold_*` gauges (metric name, HELP), so that alert
/// rules and dashboards compare against the configuration instead of copies of its numbers.
/// Values are in base units: bytes, seconds, ratios.
pub const EXPORTED_THRESHOLDS: [(&str, &str); EXPORTED_THRESHOLD_COUNT] = [
    (
        "sqlite_threshold_wal_checkpoint_bytes",
        "thresholds.wal_checkpoint_bytes: WAL size above which a checkpoint is recommended.",
    ),
    (
        "sqlite_threshold_wal_critical_bytes",
        "thresholds.wal_critical_bytes: WAL size above which a checkpoint is recommended now and auto.checkpoint truncates; the WAL warning alert.",
    ),
    (
        "sqlite_threshold_wal_alert_bytes",
        "thresholds.wal_alert_bytes: WAL size of the critical WAL alert.",
    ),
    (
        "sqlite_threshold_min_utilization_ratio",
        "thresholds.min_utilization: page utilization below which VACUUM is recommended.",
    ),
    (
        "sqlite_threshold_max_free_ratio",
        "thresholds.max_free_ratio: share of free pages above which VACUUM is recommended.",
    ),
    (
        "sqlite_threshold_archive_bytes",
        "thresholds.archive_bytes: database size above which archiving is recommended.",
    ),
    (
        "sqlite_threshold_size_warning_bytes",
        "thresholds.size_warning_bytes: database size of the size warning alert.",
    ),
    (
        "sqlite_threshold_slow_query_seconds",
        "thresholds.slow_query: read probe latency above which checking indexes is recommended; the slow query alert.",
    ),
    (
        "sqlite_threshold_slow_write_seconds",
        "thresholds.slow_write: write probe latency above which optimizing writes is recommended; the slow write alert.",
    ),
    (
        "sqlite_threshold_min_indexes",
        "thresholds.min_indexes: fewer indexes than this recommends adding indexes (0 disables).",
    ),
    (
        "sqlite_threshold_unhealthy_latency_seconds",
        "thresholds.unhealthy_latency: a probe slower than this makes the status warning.",
    ),
    (
        "sqlite_threshold_backup_max_age_seconds",
        "thresholds.backup_max_age: age of the newest verified backup above which a backup is recommended; the backup age alert.",
    ),
    (
        "sqlite_threshold_integrity_check_interval_seconds",
        "integrity_check.interval: period of the regular integrity check; the staleness alert allows twice this.",
    ),
    (
        "sqlite_threshold_integrity_check_full_interval_seconds",
        "integrity_check.full_interval: period of the full integrity check.",
    ),
    (
        "sqlite_threshold_backup_interval_seconds",
        "backup.interval: period of scheduled backups (auto.backup).",
    ),
    (
        "sqlite_threshold_backup_drill_interval_seconds",
        "backup.drill.interval: period of the restore drills; the drill staleness alert allows twice this.",
    ),
    (
        "sqlite_threshold_backup_drill_rto_seconds",
        "backup.drill.rto: recovery time objective; a restore drill taking longer raises the RTO alert.",
    ),
];

impl Settings {
    /// The values of [`EXPORTED_THRESHOLDS`], in the same order and base units.
    pub fn exported_thresholds(&self) -> [f64; EXPORTED_THRESHOLD_COUNT] {
        let t = &self.thresholds;
        let s = |d: HumanDuration| d.0.as_secs_f64();
        [
            t.wal_checkpoint_bytes.0 as f64,
            t.wal_critical_bytes.0 as f64,
            t.wal_alert_bytes.0 as f64,
            t.min_utilization,
            t.max_free_ratio,
            t.archive_bytes.0 as f64,
            t.size_warning_bytes.0 as f64,
            s(t.slow_query),
            s(t.slow_write),
            t.min_indexes as f64,
            s(t.unhealthy_latency),
            s(t.backup_max_age),
            s(self.integrity_check.interval),
            s(self.integrity_check.full_interval),
            s(self.backup.interval),
            s(self.backup.drill.interval),
            s(self.backup.drill.rto),
        ]
    }
}
