//! Restore drills: what the last drill of a database's newest backup found, the series it
//! renders, and the per-table row counts a backup records when it is taken and a drill counts
//! again on the restored copy.
//!
//! A backup counts for more once it has been restored: a drill (`actions::drill`) restores
//! the newest backup into a scratch directory, checks the copy (`integrity_check`,
//! `foreign_key_check`), compares it with what the sidecar recorded (sha256, page count, rows
//! per table) and times the whole recovery. Its result is kept here, where the next scrape
//! renders it; a drill that was refused (not enough disk) or interrupted leaves the last
//! result as it was.

use std::collections::BTreeMap;

use rusqlite::Connection;
use serde::Serialize;

use crate::collect::series::{flag, Gauge, Series};
use crate::sqlite::sql::quote_identifier;

const DB: &[&str] = &["database"];

/// `sqlite_backup_drill_success`.
pub const DRILL_SUCCESS: Gauge = Gauge {
    name: "sqlite_backup_drill_success",
    help: "1 if the last restore drill of the newest backup passed: restored, integrity_check and foreign_key_check clean, and it matched what its sidecar recorded; 0 if it failed.",
    labels: DB,
};
/// `sqlite_backup_drill_last_run_timestamp_seconds`.
pub const DRILL_LAST_RUN: Gauge = Gauge {
    name: "sqlite_backup_drill_last_run_timestamp_seconds",
    help: "Unix time the last restore drill finished (passed or failed).",
    labels: DB,
};
/// `sqlite_backup_drill_duration_seconds`.
pub const DRILL_DURATION: Gauge = Gauge {
    name: "sqlite_backup_drill_duration_seconds",
    help: "Wall time of the last restore drill, from reading the backup to a checked copy: a measured recovery time, to compare with backup.drill.rto.",
    labels: DB,
};
/// `sqlite_backup_drill_backup_age_seconds`.
pub const DRILL_BACKUP_AGE: Gauge = Gauge {
    name: "sqlite_backup_drill_backup_age_seconds",
    help: "Age of the backup the last restore drill restored, when the drill ran: the data a recovery from it would lose.",
    labels: DB,
};

/// The last completed drill of one database.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DrillResult {
    /// True when nothing in [`Self::problems`].
    pub passed: bool,
    /// The backup restored (a file name from the backup listing).
    pub backup: String,
    /// When that backup's snapshot was taken (Unix seconds).
    pub backup_taken_at: f64,
    /// When the drill finished (Unix seconds).
    pub finished_at: f64,
    /// Wall time of the drill.
    pub duration_seconds: f64,
    /// What was wrong; empty when it passed.
    pub problems: Vec<String>,
    /// What the copy was compared with (`sha256`, `page_count`, `table_rows`).
    pub compared: Vec<&'static str>,
    /// What could not be compared because the sidecar did not record it (older sidecars have
    /// no row counts; a backup found without a sidecar has nothing).
    pub not_recorded: Vec<&'static str>,
}

impl DrillResult {
    /// Age of the restored backup when the drill finished.
    pub fn backup_age_seconds(&self) -> f64 {
        (self.finished_at - self.backup_taken_at).max(0.0)
    }

    /// Writes the drill series of `database`.
    pub fn series(&self, database: &str, out: &mut dyn Series) {
        out.set(&DRILL_SUCCESS, &[database], flag(self.passed));
        out.set(&DRILL_LAST_RUN, &[database], self.finished_at);
        out.set(&DRILL_DURATION, &[database], self.duration_seconds);
        out.set(&DRILL_BACKUP_AGE, &[database], self.backup_age_seconds());
    }
}

/// Rows of every ordinary table of the database on `conn` (not SQLite's own `sqlite_*`
/// tables, not virtual tables, whose rows live in other tables or outside the file). O(size):
/// for backups and restored copies only, never for a monitored database.
pub fn table_rows(conn: &Connection) -> rusqlite::Result<BTreeMap<String, u64>> {
    let names: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
             AND coalesce(sql, '') NOT LIKE 'CREATE VIRTUAL%'",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    names
        .into_iter()
        .map(|name| {
            let sql = format!("SELECT count(*) FROM {}", quote_identifier(&name));
            let n: i64 = conn.query_row(&sql, [], |r| r.get(0))?;
            Ok((name, n.max(0) as u64))
        })
        .collect()
}

/// The differences between the row counts a backup recorded and those of its restored copy,
/// one line per table.
pub fn row_count_problems(
    recorded: &BTreeMap<String, u64>,
    restored: &BTreeMap<String, u64>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (table, &want) in recorded {
        match restored.get(table) {
            Some(&got) if got == want => {}
            Some(&got) => problems.push(format!(
                "table {table}: {got} rows restored, the backup recorded {want}"
            )),
            None => problems.push(format!(
                "table {table}: missing from the restored copy, the backup recorded {want} rows"
            )),
        }
    }
    for table in restored.keys().filter(|t| !recorded.contains_key(*t)) {
        problems.push(format!(
            "table {table}: in the restored copy but not recorded by the backup"
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_counts_skip_internal_and_virtual_tables_and_quote_names() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            r#"CREATE TABLE t(id INTEGER PRIMARY KEY AUTOINCREMENT, v);
               CREATE TABLE "odd ""name"""(x);
               INSERT INTO t(v) VALUES (1), (2), (3);
               INSERT INTO "odd ""name"""(x) VALUES (1);
               CREATE VIRTUAL TABLE f USING fts5(body);
               INSERT INTO f(body) VALUES ('a');"#,
        )
        .unwrap();
        let rows = table_rows(&conn).unwrap();
        assert_eq!(rows.get("t"), Some(&3));
        assert_eq!(rows.get("odd \"name\""), Some(&1));
        assert!(!rows.contains_key("sqlite_sequence"), "{rows:?}");
        assert!(!rows.contains_key("f"), "{rows:?}");
        // The FTS shadow tables are ordinary tables and are counted.
        assert!(rows.contains_key("f_data"), "{rows:?}");
    }

    #[test]
    fn row_count_differences_name_each_table() {
        let recorded = BTreeMap::from([("a".to_owned(), 2), ("b".to_owned(), 1)]);
        let restored = BTreeMap::from([("a".to_owned(), 1), ("c".to_owned(), 5)]);
        assert_eq!(
            row_count_problems(&recorded, &restored),
            vec![
                "table a: 1 rows restored, the backup recorded 2",
                "table b: missing from the restored copy, the backup recorded 1 rows",
                "table c: in the restored copy but not recorded by the backup",
            ]
        );
        assert!(row_count_problems(&recorded, &recorded).is_empty());
    }
}
