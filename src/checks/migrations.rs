//! Reading an application's schema-migrations table: how many migrations are applied, how many
//! failed, and when the last one was applied (`sqlite_migrations_*`).
//!
//! Migration tools disagree on the table's shape, so the shape is detected from
//! `pragma_table_info` by column name (case-insensitive), not assumed:
//!
//! | role | columns recognised | examples |
//! |---|---|---|
//! | identity (required) | `version`, `version_id`, `version_num`, `name`, `migration`, `migration_name` | every tool |
//! | applied time | `applied_at`, `applied_on`, `applied`, `installed_on`, `executed_at`, `run_on`, `migration_time`, `finished_at`, `created_at`, `tstamp`, `timestamp` | sqlx, Diesel, refinery, knex, Django, goose |
//! | success flag | `success`, `succeeded` — 0/false is a failed migration | sqlx, Flyway |
//! | error text | `error`, `error_message`, `last_error` — non-empty is a failed migration | hand-written migrators |
//! | status | `status`, `state` — `failed`, `failure`, `error`, `errored` is a failed migration | |
//! | dirty flag | `dirty` — 1/true is a failed migration (golang-migrate) | golang-migrate |
//!
//! A row is *failed* when any failure column says so, and *applied* otherwise; so
//! golang-migrate's single `(version, dirty)` row counts as 1 applied, or as 1 failed while
//! dirty, and Rails' `(version)` counts one applied row per migration. `failed` is `None`
//! (metric absent) when the table has no failure column at all: "this tool does not record
//! failures" is not "no failures".
//!
//! Applied times are read as unix seconds, unix milliseconds (integers above 10^11, i.e. after
//! 1973 in ms and after year 5138 in s), unix microseconds (above 10^14), or text: a number,
//! RFC 3339, or SQLite's own `YYYY-MM-DD HH:MM:SS[.SSS]` (UTC, as `datetime('now')` and
//! `CURRENT_TIMESTAMP` write it). Values that parse as none of these are skipped with a warning;
//! `last_applied` is the newest time among applied rows.
//!
//! The table is read with one autocommit `SELECT` on the caller's (read-only) connection:
//! migrations tables hold a row per migration, so this is cheap enough for scrape time.

use chrono::{DateTime, NaiveDateTime};
use rusqlite::types::ValueRef;
use rusqlite::Connection;

use crate::sqlite::sql::quote_identifier;

const IDENTITY: &[&str] = &[
    "version",
    "version_id",
    "version_num",
    "name",
    "migration",
    "migration_name",
];
const APPLIED_AT: &[&str] = &[
    "applied_at",
    "applied_on",
    "applied",
    "installed_on",
    "executed_at",
    "run_on",
    "migration_time",
    "finished_at",
    "created_at",
    "tstamp",
    "timestamp",
];
const SUCCESS: &[&str] = &["success", "succeeded"];
const ERROR: &[&str] = &["error", "error_message", "last_error"];
const STATUS: &[&str] = &["status", "state"];
const DIRTY: &[&str] = &["dirty"];

const FAILED_STATUSES: &[&str] = &["failed", "failure", "error", "errored"];

/// What a migrations table says.
#[derive(Debug, Clone, PartialEq)]
pub struct MigrationStats {
    /// Rows not marked failed (`sqlite_migrations_applied`).
    pub applied: u64,
    /// Rows marked failed; `None` when the table has no column that records failure
    /// (`sqlite_migrations_failed`, absent then).
    pub failed: Option<u64>,
    /// Newest applied time among applied rows, unix seconds; `None` when the table has no
    /// time column or no parseable time (`sqlite_migration_last_applied_timestamp_seconds`).
    pub last_applied: Option<f64>,
}

/// Why a migrations table could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MigrationsError {
    /// The table exists but has no column that identifies a migration.
    #[error(
        "table {table:?} does not look like a migrations table: columns [{}], expected one of [{}]",
        columns.join(", "),
        IDENTITY.join(", ")
    )]
    UnknownShape { table: String, columns: Vec<String> },
    /// SQLite failed to read the table.
    #[error("reading migrations table {table:?}: {source}")]
    Sqlite {
        table: String,
        source: rusqlite::Error,
    },
}

/// The columns of a migrations table that mean something to us, by role.
#[derive(Debug, Default)]
struct Shape {
    applied_at: Option<String>,
    success: Option<String>,
    error: Option<String>,
    status: Option<String>,
    dirty: Option<String>,
}

impl Shape {
    fn detect(table: &str, columns: &[String]) -> Result<Shape, MigrationsError> {
        let find = |names: &[&str]| {
            names.iter().find_map(|want| {
                columns
                    .iter()
                    .find(|c| c.eq_ignore_ascii_case(want))
                    .cloned()
            })
        };
        if find(IDENTITY).is_none() {
            return Err(MigrationsError::UnknownShape {
                table: table.to_owned(),
                columns: columns.to_vec(),
            });
        }
        Ok(Shape {
            applied_at: find(APPLIED_AT),
            success: find(SUCCESS),
            error: find(ERROR),
            status: find(STATUS),
            dirty: find(DIRTY),
        })
    }

    fn records_failures(&self) -> bool {
        self.success.is_some()
            || self.error.is_some()
            || self.status.is_some()
            || self.dirty.is_some()
    }

    /// `SELECT applied_at, success, error, status, dirty FROM table`, with NULL for a role the
    /// table lacks, so every row has the same five positions.
    fn select(&self, table: &str) -> String {
        let column = |c: &Option<String>| c.as_deref().map_or("NULL".to_owned(), quote_identifier);
        format!(
            "SELECT {}, {}, {}, {}, {} FROM {}",
            column(&self.applied_at),
            column(&self.success),
            column(&self.error),
            column(&self.status),
            column(&self.dirty),
            quote_identifier(table)
        )
    }
}

/// Reads the migrations table `table` (in the main schema). `Ok(None)` when there is no such
/// table: the metrics are then absent, which is not an error.
pub fn read(conn: &Connection, table: &str) -> Result<Option<MigrationStats>, MigrationsError> {
    let sqlite = |source| MigrationsError::Sqlite {
        table: table.to_owned(),
        source,
    };
    let columns: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info(?1)")
        .and_then(|mut s| s.query_map([table], |r| r.get(0))?.collect())
        .map_err(sqlite)?;
    if columns.is_empty() {
        return Ok(None);
    }
    let shape = Shape::detect(table, &columns)?;
    let mut stats = MigrationStats {
        applied: 0,
        failed: shape.records_failures().then_some(0),
        last_applied: None,
    };
    let mut unparsed = 0u64;
    let mut stmt = conn.prepare(&shape.select(table)).map_err(sqlite)?;
    let mut rows = stmt.query([]).map_err(sqlite)?;
    while let Some(row) = rows.next().map_err(sqlite)? {
        let failed = row_failed(row).map_err(sqlite)?;
        if failed {
            stats.failed = stats.failed.map(|n| n + 1);
            continue;
        }
        stats.applied += 1;
        match row.get_ref(0).map_err(sqlite)? {
            ValueRef::Null => {}
            value => match unix_seconds(value) {
                Some(t) => stats.last_applied = Some(stats.last_applied.map_or(t, |m| m.max(t))),
                None => unparsed += 1,
            },
        }
    }
    if unparsed > 0 {
        tracing::warn!(
            table,
            column = shape.applied_at.as_deref().unwrap_or_default(),
            rows = unparsed,
            "migration applied times not recognised as unix seconds, milliseconds or a date"
        );
    }
    Ok(Some(stats))
}

/// Whether a row of [`Shape::select`] is marked failed by any of its failure columns.
fn row_failed(row: &rusqlite::Row<'_>) -> rusqlite::Result<bool> {
    Ok(is_false(row.get_ref(1)?)
        || is_nonempty(row.get_ref(2)?)
        || is_failed_status(row.get_ref(3)?)
        || is_true(row.get_ref(4)?))
}

fn as_bool(value: ValueRef<'_>) -> Option<bool> {
    match value {
        ValueRef::Integer(i) => Some(i != 0),
        ValueRef::Real(f) => Some(f != 0.0),
        ValueRef::Text(t) => match String::from_utf8_lossy(t)
            .trim()
            .to_ascii_lowercase()
            .as_str()
        {
            "1" | "true" | "t" | "yes" => Some(true),
            "0" | "false" | "f" | "no" => Some(false),
            _ => None,
        },
        ValueRef::Null | ValueRef::Blob(_) => None,
    }
}

fn is_true(value: ValueRef<'_>) -> bool {
    as_bool(value) == Some(true)
}

fn is_false(value: ValueRef<'_>) -> bool {
    as_bool(value) == Some(false)
}

fn is_nonempty(value: ValueRef<'_>) -> bool {
    match value {
        ValueRef::Null => false,
        ValueRef::Text(t) | ValueRef::Blob(t) => !t.iter().all(u8::is_ascii_whitespace),
        ValueRef::Integer(_) | ValueRef::Real(_) => true,
    }
}

fn is_failed_status(value: ValueRef<'_>) -> bool {
    match value {
        ValueRef::Text(t) => {
            let status = String::from_utf8_lossy(t).trim().to_ascii_lowercase();
            FAILED_STATUSES.contains(&status.as_str())
        }
        _ => false,
    }
}

/// A stored time as unix seconds, if it is in one of the formats of the module docs.
fn unix_seconds(value: ValueRef<'_>) -> Option<f64> {
    match value {
        ValueRef::Integer(i) => Some(scale_epoch(i as f64)),
        ValueRef::Real(f) => Some(scale_epoch(f)),
        ValueRef::Text(t) => parse_time_text(std::str::from_utf8(t).ok()?.trim()),
        ValueRef::Null | ValueRef::Blob(_) => None,
    }
}

/// Unix seconds, milliseconds or microseconds, told apart by magnitude.
fn scale_epoch(n: f64) -> f64 {
    if n.abs() > 1e14 {
        n / 1e6
    } else if n.abs() > 1e11 {
        n / 1e3
    } else {
        n
    }
}

fn parse_time_text(text: &str) -> Option<f64> {
    if let Ok(n) = text.parse::<f64>() {
        return n.is_finite().then(|| scale_epoch(n));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp_micros() as f64 / 1e6);
    }
    const NAIVE: &[&str] = &[
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ];
    if let Some(t) = NAIVE
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
    {
        return Some(t.and_utc().timestamp_micros() as f64 / 1e6);
    }
    // "2024-01-02 03:04:05+02:00" and "... UTC": RFC 3339 with a space, or a named UTC.
    let offset_forms = ["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f%z"];
    if let Some(t) = offset_forms
        .iter()
        .find_map(|f| DateTime::parse_from_str(text, f).ok())
    {
        return Some(t.timestamp_micros() as f64 / 1e6);
    }
    let utc = text
        .strip_suffix(" UTC")
        .or_else(|| text.strip_suffix('Z'))?;
    parse_time_text(utc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_documented_time_format() {
        let t = 1_700_000_000.0; // 2023-11-14 22:13:20 UTC
        let cases: &[(&str, f64)] = &[
            ("1700000000", t),
            ("1700000000000", t),
            ("1700000000000000", t),
            ("1700000000.5", t + 0.5),
            ("2023-11-14 22:13:20", t),
            ("2023-11-14 22:13:20.250", t + 0.25),
            ("2023-11-14T22:13:20", t),
            ("2023-11-14T22:13:20Z", t),
            ("2023-11-14T23:13:20+01:00", t),
            ("2023-11-14 23:13:20+01:00", t),
            ("2023-11-14 22:13:20 UTC", t),
            ("2023-11-14 22:13", t - 20.0),
        ];
        for (text, want) in cases {
            assert_eq!(parse_time_text(text), Some(*want), "{text}");
        }
        assert_eq!(parse_time_text("yesterday"), None);
        assert_eq!(parse_time_text("NaN"), None);
        assert_eq!(unix_seconds(ValueRef::Integer(1_700_000_000_000)), Some(t));
        assert_eq!(unix_seconds(ValueRef::Real(1_700_000_000.0)), Some(t));
    }

    #[test]
    fn booleans_accept_integers_and_words() {
        assert!(is_true(ValueRef::Integer(1)));
        assert!(is_true(ValueRef::Text(b"TRUE")));
        assert!(is_false(ValueRef::Integer(0)));
        assert!(is_false(ValueRef::Text(b"false")));
        assert!(!is_false(ValueRef::Null), "NULL success is not a failure");
        assert!(!is_nonempty(ValueRef::Text(b"  ")));
        assert!(is_failed_status(ValueRef::Text(b" Failed ")));
        assert!(!is_failed_status(ValueRef::Text(b"applied")));
    }
}
