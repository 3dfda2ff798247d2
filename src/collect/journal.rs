//! `journal` (off by default): the size of the rollback journal, `-journal`. In rollback mode
//! the journal exists only while a write transaction runs; one that stays across scrapes is a
//! transaction stuck open, or a hot journal left by a crash that the next writer will roll
//! back. In WAL mode it is always absent. One `stat`, no SQLite call.

use super::series::{Gauge, Series};
use super::{CollectError, Collector, Database, Facts, Scrape};
use crate::sqlite::wal;

/// `sqlite_journal_size_bytes`.
pub const JOURNAL_SIZE: Gauge = Gauge {
    name: "sqlite_journal_size_bytes",
    help: "Size of the rollback journal (-journal), 0 when absent.",
    labels: &["database"],
};

const KEY: &str = "journal_bytes";

/// Collects the rollback journal's size.
pub struct Journal;

impl Collector for Journal {
    fn name(&self) -> &'static str {
        "journal"
    }

    fn update(&self, s: &mut Scrape<'_>) -> Result<(), CollectError> {
        let bytes = wal::file_size(&wal::journal_path(s.path))?;
        s.facts.extra.insert(KEY, bytes as f64);
        Ok(())
    }

    fn series(&self, db: &Database<'_>, facts: &Facts, out: &mut dyn Series) {
        if let Some(bytes) = facts.extra.get(KEY) {
            out.set(&JOURNAL_SIZE, &[db.name], *bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::series::Lines;

    #[test]
    fn a_journal_left_behind_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("app.db");
        let writer = rusqlite::Connection::open(&db).unwrap();
        writer
            .execute_batch("PRAGMA journal_mode=DELETE; CREATE TABLE t(x);")
            .unwrap();
        let settings = crate::config::Settings::default();
        let conn = crate::collect::LazyConnection::new(&db, std::time::Duration::from_secs(1));
        let previous = Facts::default();
        let read = |facts: &mut Facts| {
            let mut scrape = Scrape {
                path: &db,
                settings: &settings,
                files: None,
                conn: &conn,
                previous: &previous,
                facts,
            };
            Journal.update(&mut scrape).unwrap();
        };
        let mut facts = Facts::default();
        read(&mut facts);
        assert_eq!(
            facts.extra.get(KEY),
            Some(&0.0),
            "no journal between transactions"
        );
        std::fs::write(wal::journal_path(&db), [0u8; 512]).unwrap();
        read(&mut facts);
        let mut out = Lines::default();
        let path = db.clone();
        Journal.series(
            &Database {
                name: "app",
                path: &path,
                detail: crate::config::Detail::Basic,
            },
            &facts,
            &mut out,
        );
        assert_eq!(
            out.0,
            vec![r#"sqlite_journal_size_bytes{database="app"} 512"#]
        );
    }
}
