//! Scrape-time collectors: cheap, read-only, O(1) in database size.
//!
//! Each collector fills its part of [`Facts`] for one database through an open read-only
//! connection. Collectors are registered by name in [`REGISTRY`], which is what gives every one
//! of them a `--collector.<name>` / `--no-collector.<name>` flag. A collector that fails is
//! reported as `sqlite_scrape_collector_success{collector} 0` plus a log line; the others run on.
//! Collectors never touch Prometheus types: the metrics layer renders the facts, so metric names
//! live in one place.

mod info;
mod journal;
pub mod query;
pub mod required_tables;
mod schema;
pub mod series;
mod size;
mod wal;
pub mod wal_index;
pub mod write;

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;
use serde::Serialize;

use crate::config::{Detail, Settings};
use crate::sqlite::connection::{self, OpenError};
use crate::sqlite::header;
use series::Series;

/// Why a collector could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// SQLite refused a statement.
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A file could not be read.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The database could not be opened when SQLite was needed.
    #[error("{0}")]
    Open(#[from] OpenError),
}

/// What a database's files say, read without SQLite before the collectors run (sizes from
/// `stat`, page 1 and the WAL's frame headers from the files themselves).
#[derive(Debug, Clone)]
pub struct FileFacts {
    /// Main file size.
    pub database_bytes: u64,
    /// `-wal` size, 0 when absent.
    pub wal_bytes: u64,
    /// `-shm` size, 0 when absent.
    pub shm_bytes: u64,
    /// What page 1 and the WAL say.
    pub header: header::Facts,
    /// The whole of page 1, when it was read (for the schema objects).
    pub page1: Option<Vec<u8>>,
}

/// A read-only SQLite connection opened on first use, for what the files cannot answer, and
/// closed with the scrape.
pub struct LazyConnection<'a> {
    path: &'a Path,
    busy_timeout: Duration,
    conn: OnceCell<Result<Connection, OpenError>>,
}

impl<'a> LazyConnection<'a> {
    /// A connection to `path`, not yet opened.
    pub fn new(path: &'a Path, busy_timeout: Duration) -> Self {
        LazyConnection {
            path,
            busy_timeout,
            conn: OnceCell::new(),
        }
    }

    /// The connection, opened (and read once, since SQLite opens lazily) at the first call.
    pub fn get(&self) -> Result<&Connection, CollectError> {
        let opened = self.conn.get_or_init(|| {
            let conn = connection::open_read_only(self.path, self.busy_timeout)?;
            conn.query_row("PRAGMA schema_version", [], |_| Ok(()))?;
            Ok(conn)
        });
        opened.as_ref().map_err(|e| CollectError::Open(e.clone()))
    }
}

/// What a collector works with.
pub struct Scrape<'a> {
    /// The database file.
    pub path: &'a Path,
    /// Its resolved settings (probes, thresholds).
    pub settings: &'a Settings,
    /// What the files say, when they could answer; `None` sends the collectors to SQLite.
    pub files: Option<&'a FileFacts>,
    /// A read-only connection, opened only if a collector needs SQLite.
    pub conn: &'a LazyConnection<'a>,
    /// What the previous scrape found (to reuse what did not change).
    pub previous: &'a Facts,
    /// What this scrape found so far.
    pub facts: &'a mut Facts,
}

/// A scrape-time collector.
pub trait Collector: Send + Sync {
    /// The name in `--collector.<name>` and in `sqlite_scrape_collector_success{collector}`.
    fn name(&self) -> &'static str;
    /// Reads its facts for one database.
    fn update(&self, scrape: &mut Scrape<'_>) -> Result<(), CollectError>;
    /// Writes the series of the facts it read (nothing for facts it did not read).
    fn series(&self, db: &Database<'_>, facts: &Facts, out: &mut dyn Series);
}

/// The database whose series are being rendered.
pub struct Database<'a> {
    /// The `database` label.
    pub name: &'a str,
    /// Its path (a label of `sqlite_database_info`).
    pub path: &'a Path,
    /// Its `metrics.detail`: series that only some want are shown at full detail only.
    pub detail: Detail,
}

/// How a registered collector runs.
pub enum Kind {
    /// At every scrape in which the database's files changed, from the files where they can
    /// answer and through a read-only connection where they cannot.
    Scrape(fn() -> Box<dyn Collector>),
    /// A probe that times real SQL against the database: on its own staggered schedule
    /// (`probes.interval`), never on the scrape path; scrapes show its latest result.
    Probe(fn() -> Box<dyn Collector>),
    /// In the background on its own schedule (the service layer starts it); scrapes read its cached
    /// result.
    Background,
}

/// A registered collector: its name, whether it runs without a flag, and how it runs.
pub struct Registration {
    /// Flag name.
    pub name: &'static str,
    /// Enabled unless `--no-collector.<name>` or `--collector.disable-defaults`.
    pub default: bool,
    /// One line for `--help`.
    pub help: &'static str,
    /// Scrape-time or background.
    pub kind: Kind,
}

/// Every collector, by name.
pub const REGISTRY: &[Registration] = &[
    Registration {
        name: "info",
        default: true,
        help: "journal mode, encoding, auto_vacuum, SQLite version",
        kind: Kind::Scrape(|| Box::new(info::Info)),
    },
    Registration {
        name: "size",
        default: true,
        help: "file size, pages, freelist, utilization",
        kind: Kind::Scrape(|| Box::new(size::Size)),
    },
    Registration {
        name: "wal",
        default: true,
        help: "WAL and SHM sizes, frames in the WAL",
        kind: Kind::Scrape(|| Box::new(wal::Wal)),
    },
    Registration {
        name: "schema",
        default: true,
        help: "user_version, schema cookie and schema objects",
        kind: Kind::Scrape(|| Box::new(schema::Schema)),
    },
    Registration {
        name: "required_tables",
        default: true,
        help:
            "whether the tables of schema.required_tables exist (looked up when the schema changes)",
        kind: Kind::Scrape(|| Box::new(required_tables::Required)),
    },
    Registration {
        name: "journal",
        default: false,
        help: "rollback journal size (a journal that stays is a stuck or crashed transaction)",
        kind: Kind::Scrape(|| Box::new(journal::Journal)),
    },
    Registration {
        name: "query",
        default: true,
        help: "read probe latency",
        kind: Kind::Probe(|| Box::new(query::Query)),
    },
    Registration {
        name: "wal_index",
        default: true,
        help: "checkpoint progress from the WAL-index header (frames backfilled and pending)",
        kind: Kind::Probe(|| Box::new(wal_index::WalIndex)),
    },
    Registration {
        name: "write",
        default: true,
        help: "write probe latency (probes.write)",
        kind: Kind::Probe(|| Box::new(write::Write)),
    },
    Registration {
        name: INTEGRITY,
        default: true,
        help: "background quick_check/integrity_check and foreign_key_check",
        kind: Kind::Background,
    },
    Registration {
        name: MIGRATIONS,
        default: true,
        help: "background read of the migrations table",
        kind: Kind::Background,
    },
    Registration {
        name: DBSTAT,
        default: false,
        help: "background dbstat scan: free bytes inside pages",
        kind: Kind::Background,
    },
    Registration {
        name: TABLES,
        default: false,
        help: "background per-table rows and sizes",
        kind: Kind::Background,
    },
];

/// Name of the background integrity collector.
pub const INTEGRITY: &str = "integrity";
/// Name of the background migrations collector.
pub const MIGRATIONS: &str = "migrations";
/// Name of the background dbstat collector.
pub const DBSTAT: &str = "dbstat";
/// Name of the background tables collector.
pub const TABLES: &str = "tables";

/// The collectors enabled for this process.
pub struct CollectorSet {
    collectors: Vec<Box<dyn Collector>>,
    probes: Vec<Box<dyn Collector>>,
    background: Vec<&'static str>,
}

impl CollectorSet {
    /// Every default collector.
    pub fn defaults() -> Self {
        Self::select(|r| r.default)
    }

    /// The collectors for which `enabled` says yes.
    pub fn select(enabled: impl Fn(&Registration) -> bool) -> Self {
        let mut set = CollectorSet {
            collectors: Vec::new(),
            probes: Vec::new(),
            background: Vec::new(),
        };
        for r in REGISTRY.iter().filter(|r| enabled(r)) {
            match r.kind {
                Kind::Scrape(make) => set.collectors.push(make()),
                Kind::Probe(make) => set.probes.push(make()),
                Kind::Background => set.background.push(r.name),
            }
        }
        set
    }

    /// The scrape-time collectors, in registry order.
    pub fn iter(&self) -> impl Iterator<Item = &dyn Collector> {
        self.collectors.iter().map(|c| c.as_ref())
    }

    /// The probes, in registry order.
    pub fn probes(&self) -> impl Iterator<Item = &dyn Collector> {
        self.probes.iter().map(|c| c.as_ref())
    }

    /// Whether the background collector `name` is enabled.
    pub fn background(&self, name: &str) -> bool {
        self.background.contains(&name)
    }

    /// Names of every enabled collector.
    pub fn names(&self) -> Vec<&'static str> {
        self.iter()
            .chain(self.probes())
            .map(|c| c.name())
            .chain(self.background.iter().copied())
            .collect()
    }
}

/// Static facts about a database (`sqlite_database_info`).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct DatabaseInfo {
    /// `PRAGMA journal_mode`.
    pub journal_mode: String,
    /// `none`, `full` or `incremental`.
    pub auto_vacuum: String,
    /// `PRAGMA encoding`.
    pub encoding: String,
    /// Version of the SQLite library reading it.
    pub sqlite_version: String,
}

/// Size facts.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct SizeFacts {
    /// Main file size.
    pub database_bytes: Option<u64>,
    /// `PRAGMA page_size`.
    pub page_size_bytes: Option<u64>,
    /// `PRAGMA page_count`.
    pub pages: Option<u64>,
    /// `PRAGMA freelist_count`.
    pub freelist_pages: Option<u64>,
}

impl SizeFacts {
    /// (pages − freelist) / pages; `None` for an empty database.
    pub fn utilization_ratio(&self) -> Option<f64> {
        crate::sqlite::sql::utilization(self.pages?, self.freelist_pages?)
    }

    /// freelist / pages.
    pub fn free_ratio(&self) -> Option<f64> {
        self.utilization_ratio().map(|u| 1.0 - u)
    }
}

/// WAL facts.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct WalFacts {
    /// `-wal` size, 0 when absent.
    pub wal_bytes: Option<u64>,
    /// `-shm` size, 0 when absent.
    pub shm_bytes: Option<u64>,
    /// Frames of the current WAL generation (see [`crate::sqlite::wal::frames`]).
    pub frames: Option<u64>,
}

/// Schema facts.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct SchemaFacts {
    /// `PRAGMA user_version`.
    pub user_version: Option<i64>,
    /// Objects in `sqlite_schema` by type (table, index, view, trigger).
    pub objects: Option<SchemaObjects>,
    /// The schema cookie (`PRAGMA schema_version`) they were counted at: while it is
    /// unchanged, so are they.
    #[serde(skip)]
    pub cookie: Option<u32>,
}

/// Counts of schema objects.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct SchemaObjects {
    /// Tables.
    pub tables: u64,
    /// Indexes (including automatic ones).
    pub indexes: u64,
    /// Views.
    pub views: u64,
    /// Triggers.
    pub triggers: u64,
}

/// Probe results.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct PerformanceFacts {
    /// Read probe latency.
    pub query_seconds: Option<f64>,
    /// Write probe latency.
    pub write_seconds: Option<f64>,
    /// Why the write probe did not run or did not get its lock, when it did not.
    pub write_note: Option<String>,
    /// The WAL-index header as the probe's connection saw it (WAL mode only).
    pub wal_index: Option<crate::sqlite::wal_index::WalIndex>,
    /// How long checkpoints have made no progress, across probes (see [`wal_index`]).
    pub checkpoint_stall: Option<wal_index::CheckpointStall>,
}

/// Everything one scrape learned about one database.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Facts {
    /// Static facts.
    pub info: Option<DatabaseInfo>,
    /// Size and pages.
    pub size: SizeFacts,
    /// WAL.
    pub wal: WalFacts,
    /// Schema.
    pub schema: SchemaFacts,
    /// Probes.
    pub performance: PerformanceFacts,
    /// The required tables and which are missing (only with `schema.required_tables`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required_tables: Option<required_tables::RequiredTables>,
    /// Facts of collectors that only turn them into series (nothing else judges them), by a
    /// key of the collector's choosing: such a collector needs no field here.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<&'static str, f64>,
}

#[cfg(test)]
mod tests {
    use super::series::Lines;
    use super::*;

    fn facts() -> Facts {
        Facts {
            info: Some(DatabaseInfo {
                journal_mode: "wal".into(),
                auto_vacuum: "none".into(),
                encoding: "UTF-8".into(),
                sqlite_version: "3.50.2".into(),
            }),
            size: SizeFacts {
                database_bytes: Some(8192),
                page_size_bytes: Some(4096),
                pages: Some(2),
                freelist_pages: Some(1),
            },
            wal: WalFacts {
                wal_bytes: Some(32),
                shm_bytes: Some(32768),
                frames: Some(0),
            },
            schema: SchemaFacts {
                user_version: Some(7),
                objects: Some(SchemaObjects {
                    tables: 1,
                    indexes: 2,
                    views: 0,
                    triggers: 0,
                }),
                cookie: Some(3),
            },
            performance: PerformanceFacts {
                query_seconds: Some(0.001),
                write_seconds: Some(0.002),
                write_note: None,
                wal_index: Some(crate::sqlite::wal_index::WalIndex {
                    max_frame: 12,
                    backfilled: 5,
                    oldest_read_mark: Some(5),
                    checkpoint_sequence: Some(2),
                }),
                checkpoint_stall: None,
            },
            required_tables: None,
            extra: BTreeMap::new(),
        }
    }

    /// What each collector renders for the same facts, line by line.
    #[test]
    fn each_collector_renders_its_own_series() {
        let want: &[(&str, &[&str])] = &[
            (
                "info",
                &[
                    r#"sqlite_database_info{database="app",path="/d/app.db",journal_mode="wal",auto_vacuum="none",encoding="UTF-8",sqlite_version="3.50.2"} 1"#,
                ],
            ),
            (
                "size",
                &[
                    r#"sqlite_database_size_bytes{database="app"} 8192"#,
                    r#"sqlite_page_size_bytes{database="app"} 4096"#,
                    r#"sqlite_pages{database="app"} 2"#,
                    r#"sqlite_freelist_pages{database="app"} 1"#,
                    r#"sqlite_page_utilization_ratio{database="app"} 0.5"#,
                ],
            ),
            (
                "wal",
                &[
                    r#"sqlite_wal_size_bytes{database="app"} 32"#,
                    r#"sqlite_shm_size_bytes{database="app"} 32768"#,
                    r#"sqlite_wal_frames{database="app"} 0"#,
                ],
            ),
            (
                "schema",
                &[
                    r#"sqlite_user_version{database="app"} 7"#,
                    r#"sqlite_schema_cookie{database="app"} 3"#,
                    r#"sqlite_schema_objects{database="app",type="table"} 1"#,
                    r#"sqlite_schema_objects{database="app",type="index"} 2"#,
                    r#"sqlite_schema_objects{database="app",type="view"} 0"#,
                    r#"sqlite_schema_objects{database="app",type="trigger"} 0"#,
                ],
            ),
            // Only with schema.required_tables, none here.
            ("required_tables", &[]),
            // Facts of its own kind only (in `extra`), none here.
            ("journal", &[]),
        ];
        let set = CollectorSet::select(|r| matches!(r.kind, Kind::Scrape(_)));
        let db = Database {
            name: "app",
            path: Path::new("/d/app.db"),
            detail: Detail::Full,
        };
        let names: Vec<&str> = set.iter().map(|c| c.name()).collect();
        assert_eq!(names, want.iter().map(|(n, _)| *n).collect::<Vec<_>>());
        // The probes' latencies are histograms that accumulate in the event sink: the latency
        // probes render no gauges of their own; the WAL-index probe renders what it read.
        let probes = CollectorSet::select(|r| matches!(r.kind, Kind::Probe(_)));
        let names: Vec<&str> = probes.probes().map(|c| c.name()).collect();
        assert_eq!(names, ["query", "wal_index", "write"]);
        let probe_want: [&[&str]; 3] = [
            &[],
            &[
                r#"sqlite_wal_frames_backfilled{database="app"} 5"#,
                r#"sqlite_wal_frames_pending{database="app"} 7"#,
                r#"sqlite_wal_checkpoint_sequence{database="app"} 2"#,
            ],
            &[],
        ];
        for (c, lines) in probes.probes().zip(probe_want) {
            let mut out = Lines::default();
            c.series(&db, &facts(), &mut out);
            assert_eq!(out.0, lines, "{}", c.name());
            let mut none = Lines::default();
            c.series(&db, &Facts::default(), &mut none);
            assert!(
                none.0.is_empty(),
                "{} renders nothing it did not read",
                c.name()
            );
        }
        for (c, (name, lines)) in set.iter().zip(want) {
            let mut out = Lines::default();
            c.series(&db, &facts(), &mut out);
            assert_eq!(out.0, *lines, "collector {name}");
            let mut none = Lines::default();
            c.series(&db, &Facts::default(), &mut none);
            assert!(none.0.is_empty(), "{name} renders nothing it did not read");
        }
        // At basic detail the schema cookie is left out: a database's default budget is 40
        // series.
        let basic = Database {
            detail: Detail::Basic,
            ..db
        };
        let mut out = Lines::default();
        schema::Schema.series(&basic, &facts(), &mut out);
        let (_, full) = want.iter().find(|(n, _)| *n == "schema").unwrap();
        let without_cookie: Vec<&str> = full
            .iter()
            .copied()
            .filter(|l| !l.starts_with("sqlite_schema_cookie"))
            .collect();
        assert_eq!(out.0, without_cookie);
        assert_eq!(without_cookie.len(), full.len() - 1);
    }
}
