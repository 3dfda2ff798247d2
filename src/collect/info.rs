//! `info`: the database's static facts (`sqlite_database_info`).

use crate::sqlite::sql::pragma;

use super::series::{Gauge, Series};
use super::{CollectError, Collector, Database, DatabaseInfo, Facts, Scrape};

/// `sqlite_database_info`.
pub const INFO: Gauge = Gauge {
    name: "sqlite_database_info",
    help: "Static facts about the database; always 1.",
    labels: &[
        "database",
        "path",
        "journal_mode",
        "auto_vacuum",
        "encoding",
        "sqlite_version",
    ],
};

/// Collects journal mode, auto_vacuum, encoding and the SQLite version.
pub struct Info;

impl Collector for Info {
    fn name(&self) -> &'static str {
        "info"
    }

    fn update(&self, s: &mut Scrape<'_>) -> Result<(), CollectError> {
        let sqlite_version = rusqlite::version().to_string();
        if let Some(f) = s.files {
            // Only WAL mode is recorded in the file; a connection in any rollback mode starts
            // out as `delete`, which is what PRAGMA journal_mode reports on a new connection.
            let h = &f.header;
            s.facts.info = Some(DatabaseInfo {
                journal_mode: if h.header.is_wal() { "wal" } else { "delete" }.into(),
                auto_vacuum: h.auto_vacuum.name().into(),
                encoding: h.encoding.pragma_name().into(),
                sqlite_version,
            });
            return Ok(());
        }
        let conn = s.conn.get()?;
        let auto_vacuum = match pragma::<i64>(conn, "auto_vacuum")? {
            0 => "none",
            1 => "full",
            2 => "incremental",
            _ => "unknown",
        };
        s.facts.info = Some(DatabaseInfo {
            journal_mode: pragma::<String>(conn, "journal_mode")?.to_lowercase(),
            auto_vacuum: auto_vacuum.to_string(),
            encoding: pragma(conn, "encoding")?,
            sqlite_version,
        });
        Ok(())
    }

    fn series(&self, db: &Database<'_>, facts: &Facts, out: &mut dyn Series) {
        let Some(i) = &facts.info else { return };
        let path = db.path.to_string_lossy();
        let labels = [
            db.name,
            &path,
            &i.journal_mode,
            &i.auto_vacuum,
            &i.encoding,
            &i.sqlite_version,
        ];
        out.set(&INFO, &labels, 1.0);
    }
}
