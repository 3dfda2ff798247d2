//! Page-level statistics from SQLite's `dbstat` virtual table: free bytes inside pages
//! (`sqlite_unused_bytes`, collector `dbstat`) and per-table rows and sizes
//! (`sqlite_table_rows`, `sqlite_table_size_bytes`, collector `tables`).
//!
//! Both walk every page of the database (O(size)), so they are for the background scheduler,
//! never for a scrape, and both are bounded by a timeout and a cancel flag like the integrity
//! check ([`crate::sqlite::interrupt`]). Pass a read-only connection ([`crate::sqlite::connection`]); each
//! statement is autocommit, so no snapshot outlives it.
//!
//! `dbstat` exists only when SQLite was compiled with `SQLITE_ENABLE_DBSTAT_VTAB`. The bundled
//! SQLite of `libsqlite3-sys` is; a build against a system SQLite may not be, and then every
//! call fails with [`DbstatError::Unavailable`] rather than an obscure "no such table".
//!
//! Choices made here:
//! - A table's size is the bytes of its own b-tree (`sum(pgsize)` where dbstat's `name` is the
//!   table, overflow pages included), not of its indexes. That is unambiguous (the same
//!   number `sqlite3_analyzer` prints as the table's own size), and index sizes can be added
//!   later as a separate series without changing this one's meaning.
//! - SQLite's internal tables (`sqlite_%`: `sqlite_schema`, `sqlite_sequence`, `sqlite_stat1`)
//!   and virtual tables (no b-tree of their own; their shadow tables are listed) are skipped:
//!   the series are about the application's data.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::sqlite::interrupt::{self, Guard, Stop};
use crate::sqlite::sql::quote_identifier;

/// Why a dbstat scan produced no figure.
#[derive(Debug, thiserror::Error)]
pub enum DbstatError {
    /// This SQLite was built without the dbstat virtual table.
    #[error("SQLite was built without the dbstat virtual table (SQLITE_ENABLE_DBSTAT_VTAB)")]
    Unavailable,
    /// The scan ran past its timeout or was cancelled.
    #[error("dbstat scan stopped: {0}")]
    Interrupted(Stop),
    /// SQLite failed to read the database.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// One application table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableStats {
    /// The table's name as in `sqlite_schema` (the `table` label).
    pub name: String,
    /// `count(*)` of the table.
    pub rows: u64,
    /// Bytes of the table's own b-tree pages, overflow pages included, indexes excluded.
    pub size_bytes: u64,
}

/// Fails with [`DbstatError::Unavailable`] when this SQLite has no dbstat virtual table.
pub fn ensure_available(conn: &Connection) -> Result<(), DbstatError> {
    let compiled: bool = conn.query_row(
        "SELECT sqlite_compileoption_used('ENABLE_DBSTAT_VTAB')",
        [],
        |r| r.get(0),
    )?;
    if compiled {
        Ok(())
    } else {
        Err(DbstatError::Unavailable)
    }
}

/// Free bytes inside the pages of the main database: `SELECT sum(unused) FROM dbstat`.
/// Freelist pages are not included (they are `sqlite_freelist_pages`).
pub fn unused_bytes(
    conn: &Connection,
    timeout: Duration,
    cancel: &AtomicBool,
) -> Result<u64, DbstatError> {
    scan(conn, timeout, cancel, |conn, _| {
        conn.query_row(
            "SELECT coalesce(sum(unused), 0) FROM dbstat('main')",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map(non_negative)
    })
}

/// Rows and size of every application table, ordered by name.
pub fn tables(
    conn: &Connection,
    timeout: Duration,
    cancel: &AtomicBool,
) -> Result<Vec<TableStats>, DbstatError> {
    scan(conn, timeout, cancel, table_stats)
}

fn scan<T>(
    conn: &Connection,
    timeout: Duration,
    cancel: &AtomicBool,
    work: impl FnOnce(&Connection, &Guard) -> rusqlite::Result<T>,
) -> Result<T, DbstatError> {
    ensure_available(conn)?;
    let (result, stop) = interrupt::bounded(conn, Instant::now(), timeout, cancel, work);
    match stop {
        Some(stop) => Err(DbstatError::Interrupted(stop)),
        None => Ok(result?),
    }
}

fn table_stats(conn: &Connection, guard: &Guard) -> rusqlite::Result<Vec<TableStats>> {
    let names: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_schema
             WHERE type = 'table' AND rootpage > 0 AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
             ORDER BY name",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let sizes: HashMap<String, u64> = conn
        .prepare("SELECT name, pgsize FROM dbstat('main', 1)")?
        .query_map([], |r| Ok((r.get(0)?, non_negative(r.get(1)?))))?
        .collect::<rusqlite::Result<_>>()?;
    let mut stats = Vec::with_capacity(names.len());
    for name in names {
        if guard.stopped().is_some() {
            break;
        }
        let sql = format!("SELECT count(*) FROM main.{}", quote_identifier(&name));
        let rows = conn.query_row(&sql, [], |r| r.get::<_, i64>(0))?;
        stats.push(TableStats {
            size_bytes: sizes.get(&name).copied().unwrap_or(0),
            rows: non_negative(rows),
            name,
        });
    }
    Ok(stats)
}

/// SQLite integers are signed; counts and sizes never are.
fn non_negative(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_sqlite_has_dbstat() {
        let conn = Connection::open_in_memory().unwrap();
        ensure_available(&conn).unwrap();
    }

    #[test]
    fn skips_internal_and_virtual_tables_and_quotes_names() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            r#"CREATE TABLE "odd ""name""" (id INTEGER PRIMARY KEY AUTOINCREMENT, v);
               INSERT INTO "odd ""name""" (v) VALUES (1), (2), (3);
               CREATE TABLE plain (a);
               ANALYZE;
               CREATE VIRTUAL TABLE pages USING dbstat;"#,
        )
        .unwrap();
        let never = AtomicBool::new(false);
        let stats = tables(&conn, Duration::from_secs(5), &never).unwrap();
        let names: Vec<&str> = stats.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, [r#"odd "name""#, "plain"]);
        assert_eq!(stats[0].rows, 3);
        assert_eq!(stats[1].rows, 0);
        assert!(stats.iter().all(|t| t.size_bytes > 0), "{stats:?}");
    }
}
