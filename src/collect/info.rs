//! `info`: the database's static facts (`sqlite_database_info`).

use super::{single, CollectError, Collector, DatabaseInfo, Scrape};

/// Collects journal mode, auto_vacuum, encoding and the SQLite version.
pub struct Info;

impl Collector for Info {
    fn name(&self) -> &'static str {
        "info"
    }

    fn update(&self, s: &mut Scrape<'_>) -> Result<(), CollectError> {
        let auto_vacuum = match single::<i64>(s.conn, "PRAGMA auto_vacuum")? {
            0 => "none",
            1 => "full",
            2 => "incremental",
            _ => "unknown",
        };
        s.facts.info = Some(DatabaseInfo {
            journal_mode: single::<String>(s.conn, "PRAGMA journal_mode")?.to_lowercase(),
            auto_vacuum: auto_vacuum.to_string(),
            encoding: single(s.conn, "PRAGMA encoding")?,
            sqlite_version: rusqlite::version().to_string(),
        });
        Ok(())
    }
}
