//! Reading an application's schema-migrations table: how many migrations are applied, how many
//! failed, and when the last one was applied (`sqlite_migrations_*`).
//!
//! Migration tools disagree on the table's shape, so the shape is detected from
//! `pragma_table_info` by column name (case-insensitive), not assumed:
//!
//! | role | columns recognised | examples |
//! |---|---|---|
//! | identity (required) | `version`, `version_id`, `version_num`, `name`, `migration`, `migration_name`, `MigrationId` | every tool |
//! | applied time | `applied_at`, `applied_on`, `applied`, `installed_on`, `executed_at`, `run_on`, `migration_time`, `finished_at`, `created_at`, `tstamp`, `timestamp` | sqlx, Diesel, refinery, knex, Django, goose |
//! | success flag | `success`, `succeeded` — 0/false is a failed migration | sqlx, Flyway |
//! | error text | `error`, `error_message`, `last_error` — non-empty is a failed migration | hand-written migrators |
//! | status | `status`, `state` — `failed`, `failure`, `error`, `errored` is a failed migration | |
//! | dirty flag | `dirty` — 1/true is a failed migration (golang-migrate) | golang-migrate |
//! | checksum | `checksum` — compared with the migration files (`migration_files`) | sqlx, Flyway, Prisma, refinery |
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
//!
//! Without `migrations.table`, the tables of the known tools are found by name in
//! `sqlite_schema` ([`find_tables`]) and each is read, its series labelled with the tool
//! (`framework`):
//!
//! | framework | table | notes |
//! |---|---|---|
//! | `django` | `django_migrations` | one row per `(app, name)` |
//! | `alembic` | `alembic_version` | one row per head revision: `applied` counts heads |
//! | `golang-migrate` | `schema_migrations` with a `dirty` column | one row, the current version; dirty is failed |
//! | `schema_migrations` | `schema_migrations` otherwise | Rails, dbmate and hand-written migrators |
//! | `sqlx` | `_sqlx_migrations` | `success` 0 is failed |
//! | `diesel` | `__diesel_schema_migrations` | |
//! | `goose` | `goose_db_version` | rows with `is_applied` 0 (rolled back) and goose's version-0 row are not migrations |
//! | `flyway` | `flyway_schema_history` | `success` 0 is failed |
//! | `prisma` | `_prisma_migrations` | neither finished nor rolled back is failed; rolled back is not applied |
//! | `knex` | `knex_migrations` | |
//! | `sequelize` | `SequelizeMeta` | |
//! | `ef_core` | `__EFMigrationsHistory` | |
//! | `refinery` | `refinery_schema_history` | |
//!
//! A configured table is read alone, labelled with the tool its name belongs to, or `custom`.

use chrono::{DateTime, NaiveDateTime};
use rusqlite::types::ValueRef;
use rusqlite::Connection;

use crate::checks::{migration_files, MigrationFigures};
use crate::config::Migrations;
use crate::sqlite::sql::quote_identifier;

const IDENTITY: &[&str] = &[
    "version",
    "version_id",
    "version_num",
    "name",
    "migration",
    "migration_name",
    "migrationid",
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

/// The migration tool that owns a migrations table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Framework {
    /// Django (`django_migrations`).
    Django,
    /// Alembic (`alembic_version`).
    Alembic,
    /// golang-migrate (`schema_migrations(version, dirty)`).
    GolangMigrate,
    /// Rails, dbmate or a hand-written migrator (`schema_migrations`).
    SchemaMigrations,
    /// sqlx (`_sqlx_migrations`).
    Sqlx,
    /// Diesel (`__diesel_schema_migrations`).
    Diesel,
    /// goose (`goose_db_version`).
    Goose,
    /// Flyway (`flyway_schema_history`).
    Flyway,
    /// Prisma (`_prisma_migrations`).
    Prisma,
    /// Knex (`knex_migrations`).
    Knex,
    /// Sequelize (`SequelizeMeta`).
    Sequelize,
    /// Entity Framework Core (`__EFMigrationsHistory`).
    EfCore,
    /// refinery (`refinery_schema_history`).
    Refinery,
    /// A configured table of no known tool.
    Custom,
}

/// The known tools' tables (golang-migrate shares `schema_migrations`; its `dirty` column
/// tells it apart).
const KNOWN_TABLES: &[(&str, Framework)] = &[
    ("django_migrations", Framework::Django),
    ("alembic_version", Framework::Alembic),
    ("schema_migrations", Framework::SchemaMigrations),
    ("_sqlx_migrations", Framework::Sqlx),
    ("__diesel_schema_migrations", Framework::Diesel),
    ("goose_db_version", Framework::Goose),
    ("flyway_schema_history", Framework::Flyway),
    ("_prisma_migrations", Framework::Prisma),
    ("knex_migrations", Framework::Knex),
    ("SequelizeMeta", Framework::Sequelize),
    ("__EFMigrationsHistory", Framework::EfCore),
    ("refinery_schema_history", Framework::Refinery),
];

impl Framework {
    /// The `framework` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Framework::Django => "django",
            Framework::Alembic => "alembic",
            Framework::GolangMigrate => "golang-migrate",
            Framework::SchemaMigrations => "schema_migrations",
            Framework::Sqlx => "sqlx",
            Framework::Diesel => "diesel",
            Framework::Goose => "goose",
            Framework::Flyway => "flyway",
            Framework::Prisma => "prisma",
            Framework::Knex => "knex",
            Framework::Sequelize => "sequelize",
            Framework::EfCore => "ef_core",
            Framework::Refinery => "refinery",
            Framework::Custom => "custom",
        }
    }

    /// The tool a table of this name and these columns belongs to.
    fn of(table: &str, columns: &[String]) -> Framework {
        let known = KNOWN_TABLES
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(table))
            .map_or(Framework::Custom, |(_, f)| *f);
        let dirty = columns.iter().any(|c| c.eq_ignore_ascii_case("dirty"));
        match known {
            Framework::SchemaMigrations if dirty => Framework::GolangMigrate,
            f => f,
        }
    }
}

/// The migrations tables of the known tools in the main schema, by name as stored.
pub fn find_tables(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT name FROM sqlite_schema WHERE type = 'table'")?;
    let names = stmt.query_map([], |r| r.get::<_, String>(0))?;
    let mut found = Vec::new();
    for name in names {
        let name = name?;
        if KNOWN_TABLES
            .iter()
            .any(|(known, _)| known.eq_ignore_ascii_case(&name))
        {
            found.push(name);
        }
    }
    Ok(found)
}

/// An applied migration as its table records it: what identifies it, and its checksum when
/// the table keeps one.
#[derive(Debug, Clone, PartialEq)]
pub struct AppliedMigration {
    /// Its version or name (Django: `app/name`).
    pub key: String,
    /// The recorded checksum: bytes for a BLOB, else the text or number as text.
    pub checksum: Option<Checksum>,
}

/// A checksum as stored.
#[derive(Debug, Clone, PartialEq)]
pub enum Checksum {
    /// Raw bytes (sqlx's SHA-384).
    Bytes(Vec<u8>),
    /// Text (a hex digest).
    Text(String),
    /// An integer (Flyway's CRC32, signed).
    Integer(i64),
}

/// What a migrations table says.
#[derive(Debug, Clone, PartialEq)]
pub struct MigrationStats {
    /// The tool that owns the table.
    pub framework: Framework,
    /// The applied migrations, for comparing with the migration files.
    pub applied_migrations: Vec<AppliedMigration>,
    /// Whether the table has a `checksum` column.
    pub has_checksums: bool,
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
    framework: Option<Framework>,
    identity: String,
    applied_at: Option<String>,
    success: Option<String>,
    error: Option<String>,
    status: Option<String>,
    dirty: Option<String>,
    checksum: Option<String>,
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
        let Some(identity) = find(IDENTITY) else {
            return Err(MigrationsError::UnknownShape {
                table: table.to_owned(),
                columns: columns.to_vec(),
            });
        };
        Ok(Shape {
            framework: Some(Framework::of(table, columns)),
            identity,
            applied_at: find(APPLIED_AT),
            success: find(SUCCESS),
            error: find(ERROR),
            status: find(STATUS),
            dirty: find(DIRTY),
            checksum: find(&["checksum"]),
        })
    }

    fn framework(&self) -> Framework {
        self.framework.unwrap_or(Framework::Custom)
    }

    fn records_failures(&self) -> bool {
        self.success.is_some()
            || self.error.is_some()
            || self.status.is_some()
            || self.dirty.is_some()
            || self.framework() == Framework::Prisma
    }

    /// `SELECT applied_at, success, error, status, dirty, key, checksum, skipped FROM table`,
    /// with NULL for a role the table lacks, so every row has the same positions. `skipped`
    /// is 1 for a row that records no migration (a goose rollback or bootstrap row, a Prisma
    /// rollback).
    fn select(&self, table: &str) -> String {
        let column = |c: &Option<String>| c.as_deref().map_or("NULL".to_owned(), quote_identifier);
        let key = match self.framework() {
            Framework::Django => "app || '/' || name".to_owned(),
            _ => quote_identifier(&self.identity),
        };
        let (failed, skipped) = match self.framework() {
            // Prisma writes a row when a migration starts and fills `finished_at` when it
            // succeeds; a row neither finished nor rolled back is a failed migration.
            Framework::Prisma => (
                "finished_at IS NULL AND rolled_back_at IS NULL",
                "rolled_back_at IS NOT NULL",
            ),
            Framework::Goose => ("NULL", "NOT is_applied OR version_id = 0"),
            _ => ("NULL", "0"),
        };
        format!(
            "SELECT {}, {}, {}, {}, {}, {key}, {}, {skipped}, {failed} FROM {}",
            column(&self.applied_at),
            column(&self.success),
            column(&self.error),
            column(&self.status),
            column(&self.dirty),
            column(&self.checksum),
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
        framework: shape.framework(),
        applied_migrations: Vec::new(),
        has_checksums: shape.checksum.is_some(),
        applied: 0,
        failed: shape.records_failures().then_some(0),
        last_applied: None,
    };
    let mut unparsed = 0u64;
    let mut stmt = conn.prepare(&shape.select(table)).map_err(sqlite)?;
    let mut rows = stmt.query([]).map_err(sqlite)?;
    while let Some(row) = rows.next().map_err(sqlite)? {
        if is_true(row.get_ref(7).map_err(sqlite)?) {
            continue;
        }
        let failed = row_failed(row).map_err(sqlite)?;
        if failed {
            stats.failed = stats.failed.map(|n| n + 1);
            continue;
        }
        stats.applied += 1;
        stats.applied_migrations.push(AppliedMigration {
            key: as_text(row.get_ref(5).map_err(sqlite)?).unwrap_or_default(),
            checksum: checksum(row.get_ref(6).map_err(sqlite)?),
        });
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

/// The migrations tables found in the schema and the schema cookie they were found at.
pub type FoundTables = (i64, Vec<String>);

/// The tables to read: the configured one, or those of the known tools in the schema, found
/// again only when the schema cookie differs from `known`'s. The second part is what to keep
/// for the next call: the tables found and their cookie (nothing for a configured table, so a
/// reload that removes `migrations.table` looks again).
fn tables_to_read(
    conn: &Connection,
    configured: Option<&str>,
    known: Option<FoundTables>,
) -> rusqlite::Result<(Vec<String>, Option<FoundTables>)> {
    if let Some(table) = configured {
        return Ok((vec![table.to_owned()], None));
    }
    let cookie: i64 = conn.query_row("PRAGMA schema_version", [], |r| r.get(0))?;
    let tables = match known {
        Some((c, tables)) if c == cookie => tables,
        _ => find_tables(conn)?,
    };
    Ok((tables.clone(), Some((cookie, tables))))
}

/// What one background read of a database's migrations found.
#[derive(Debug, Default)]
pub struct Survey {
    /// The tables found in the schema, with the schema cookie they were found at (see
    /// [`tables_to_read`]); `None` for a configured table.
    pub tables: Option<FoundTables>,
    /// One entry per table that could be read.
    pub figures: Vec<MigrationFigures>,
    /// What went wrong, if anything: the first table that could not be read, or the files.
    pub error: Option<String>,
}

/// Reads every migrations table of the database on `conn` (see [`tables_to_read`]; `known`
/// is what the last survey found) and compares it with the files of `settings.dir`. The
/// directory belongs to the configured table, or to the only table found; with several
/// tables and none configured it is not used (which table its files are for is unknowable),
/// and the survey says so in its error.
pub fn survey(conn: &Connection, settings: &Migrations, known: Option<FoundTables>) -> Survey {
    let mut out = Survey::default();
    let (tables, keep) = match tables_to_read(conn, settings.table.as_deref(), known) {
        Ok(t) => t,
        Err(e) => {
            out.error = Some(format!("finding migrations tables: {e}"));
            return out;
        }
    };
    let dir = settings.dir.as_deref().filter(|_| tables.len() == 1);
    if settings.dir.is_some() && tables.len() > 1 {
        out.error = Some(format!(
            "migrations.dir is not compared: several migrations tables ({}) and no migrations.table to say which one its files belong to",
            tables.join(", ")
        ));
    }
    for table in &tables {
        let stats = match read(conn, table) {
            Ok(Some(stats)) => stats,
            Ok(None) => continue,
            Err(e) => {
                out.error.get_or_insert(e.to_string());
                continue;
            }
        };
        let mut figures = MigrationFigures::from(&stats);
        if let Some(dir) = dir {
            match migration_files::compare(
                stats.framework,
                stats.has_checksums,
                dir,
                &stats.applied_migrations,
            ) {
                Ok(found) => {
                    figures.pending = found.pending;
                    figures.drifted = found.drifted;
                }
                Err(e) => {
                    out.error
                        .get_or_insert(format!("reading migrations.dir {}: {e}", dir.display()));
                }
            }
        }
        out.figures.push(figures);
    }
    out.tables = keep;
    out
}

/// Whether a row of [`Shape::select`] is marked failed by any of its failure columns.
fn row_failed(row: &rusqlite::Row<'_>) -> rusqlite::Result<bool> {
    Ok(is_false(row.get_ref(1)?)
        || is_nonempty(row.get_ref(2)?)
        || is_failed_status(row.get_ref(3)?)
        || is_true(row.get_ref(4)?)
        || is_true(row.get_ref(8)?))
}

/// A version or name as text, whatever its storage class.
fn as_text(value: ValueRef<'_>) -> Option<String> {
    match value {
        ValueRef::Integer(i) => Some(i.to_string()),
        ValueRef::Real(f) => Some(f.to_string()),
        ValueRef::Text(t) | ValueRef::Blob(t) => Some(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Null => None,
    }
}

fn checksum(value: ValueRef<'_>) -> Option<Checksum> {
    match value {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(Checksum::Integer(i)),
        ValueRef::Blob(b) => Some(Checksum::Bytes(b.to_vec())),
        other => as_text(other).map(|t| Checksum::Text(t.trim().to_owned())),
    }
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
