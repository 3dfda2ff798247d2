//! `info`: the database's static facts (`sqlite_database_info`).

use crate::sqlite::sql::pragma;

use super::{CollectError, Collector, DatabaseInfo, Scrape};

/// Collects journal mode, auto_vacuum, encoding and the SQLite version.
pub struct Info;

impl Collector for Info {
    fn name(&self) -> &'static str {
        "info"
    }

    fn update(&self, s: &mut Scrape<'_>) -> Result<(), CollectError> {
        let auto_vacuum = match pragma::<i64>(s.conn, "auto_vacuum")? {
            0 => "none",
            1 => "full",
            2 => "incremental",
            _ => "unknown",
        };
        s.facts.info = Some(DatabaseInfo {
            journal_mode: pragma::<String>(s.conn, "journal_mode")?.to_lowercase(),
            auto_vacuum: auto_vacuum.to_string(),
            encoding: pragma(s.conn, "encoding")?,
            sqlite_version: rusqlite::version().to_string(),
        });
        Ok(())
    }
}
