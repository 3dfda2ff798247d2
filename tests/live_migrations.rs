//! Migrations and the required schema on a real Prometheus with the shipped rules: an
//! application database migrated sqlx-style, with its migration files as `migrations.dir` and
//! `schema.required_tables`. Dropping a required table fires `SQLiteRequiredTableMissing` (and
//! `/health` turns critical); recreating it clears it. Editing an applied migration's file
//! fires `SQLiteMigrationChecksumDrift`; restoring the file clears it. A migration recorded as
//! failed fires `SQLiteMigrationFailed` until the row is repaired. A second database, left
//! alone, fires none of them.

#[path = "util/exporter.rs"]
mod exporter;
#[path = "util/prometheus.rs"]
mod prometheus;
#[path = "util/tools.rs"]
mod tools;

use std::path::Path;

use exporter::Exporter;
use prometheus::{start_prometheus, PATIENCE};
use rusqlite::Connection;
use serde_json::json;
use sha2::{Digest, Sha384};

const MISSING: &str = "SQLiteRequiredTableMissing";
const DRIFT: &str = "SQLiteMigrationChecksumDrift";
const FAILED: &str = "SQLiteMigrationFailed";

const USERS: &str = "CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT);\n";
const ORDERS: &str = "CREATE TABLE orders(id INTEGER PRIMARY KEY, user_id INTEGER);\n";

/// A database migrated the way sqlx does, and its migration files in `<dir>/<name>-migrations`.
fn migrated(dir: &Path, name: &str) -> (Connection, std::path::PathBuf) {
    let files = dir.join(format!("{name}-migrations"));
    std::fs::create_dir_all(&files).unwrap();
    let conn = Connection::open(dir.join(format!("{name}.db"))).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode=WAL;
         CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL, checksum BLOB NOT NULL, execution_time BIGINT NOT NULL);",
    )
    .unwrap();
    for (version, desc, sql) in [(1, "users", USERS), (2, "orders", ORDERS)] {
        std::fs::write(files.join(format!("{version:04}_{desc}.sql")), sql).unwrap();
        conn.execute_batch(sql).unwrap();
        conn.execute(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (?1, ?2, TRUE, ?3, 1)",
            rusqlite::params![version, desc, Sha384::digest(sql.as_bytes()).to_vec()],
        )
        .unwrap();
    }
    (conn, files)
}

#[test]
fn required_tables_drift_and_failed_migrations_fire_and_clear() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (app, app_files) = migrated(dir, "app");
    let (_calm, calm_files) = migrated(dir, "calm");
    let config = json!({
        "defaults": {
            "backup": { "dir": "backups" },
            "integrity_check": { "interval": "1s" },
            "schema": { "required_tables": ["users", "orders"] },
        },
        "databases": [
            { "name": "app", "path": dir.join("app.db"), "migrations": { "dir": app_files } },
            { "name": "calm", "path": dir.join("calm.db"), "migrations": { "dir": calm_files } },
        ],
    });
    let config_path = dir.join("sqlite_exporter.yml");
    std::fs::write(&config_path, config.to_string()).unwrap();
    let exporter = Exporter::start(&[&format!("--config.file={}", config_path.display())]);
    let sqlx = |db: &'static str| [("database", db), ("framework", "sqlx")];
    let body = exporter.metrics_until(PATIENCE, "the first migrations read and probes", |b| {
        exporter::value(b, "sqlite_migrations_drifted", &sqlx("app")) == Some(0.0)
            && exporter::value(b, "sqlite_migrations_drifted", &sqlx("calm")) == Some(0.0)
            && exporter::value(
                b,
                "sqlite_write_duration_seconds_count",
                &[("database", "app")],
            )
            .is_some()
    });
    // What the features cost a database at basic detail: five series for its migrations
    // table, and none for required tables while they exist.
    let mut feature_series: Vec<&str> = body
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains("database=\"app\""))
        .filter(|l| l.starts_with("sqlite_migration") || l.starts_with("sqlite_schema_required"))
        .filter_map(|l| l.split('{').next())
        .collect();
    feature_series.sort();
    assert_eq!(
        feature_series,
        vec![
            "sqlite_migration_last_applied_timestamp_seconds",
            "sqlite_migrations_applied",
            "sqlite_migrations_drifted",
            "sqlite_migrations_failed",
            "sqlite_migrations_pending",
        ]
    );
    let prometheus = start_prometheus(dir, "sqlite", &[&exporter.addr], None);
    prometheus.wait_for_samples(3);
    let ours = |p: &prometheus::Prometheus| -> Vec<(String, String)> {
        p.firing()
            .into_iter()
            .filter(|(alert, _)| [MISSING, DRIFT, FAILED].contains(&alert.as_str()))
            .collect()
    };
    assert_eq!(ours(&prometheus), vec![], "nothing is wrong yet");

    // A required table is dropped, then recreated.
    app.execute_batch("DROP TABLE orders;").unwrap();
    prometheus.wait_for_alert(MISSING, "app", true, PATIENCE);
    let (code, health) = exporter.get("/health");
    assert_eq!(code, 503, "a missing required table is critical: {health}");
    assert!(
        health.contains("required tables missing: orders"),
        "{health}"
    );
    let body = exporter.metrics();
    let table = |t: &'static str| [("database", "app"), ("table", t)];
    assert_eq!(
        exporter::must(
            &body,
            "sqlite_schema_required_table_missing",
            &table("orders")
        ),
        1.0
    );
    assert_eq!(
        exporter::value(
            &body,
            "sqlite_schema_required_table_missing",
            &table("users")
        ),
        None,
        "at basic detail only the missing table has a series"
    );
    app.execute_batch(ORDERS).unwrap();
    prometheus.wait_for_alert(MISSING, "app", false, PATIENCE);
    assert_eq!(exporter.get("/health").0, 200);

    // An applied migration's file is edited, then restored.
    let orders_file = app_files.join("0002_orders.sql");
    std::fs::write(
        &orders_file,
        "CREATE TABLE orders(id INTEGER PRIMARY KEY, total INTEGER);\n",
    )
    .unwrap();
    prometheus.wait_for_alert(DRIFT, "app", true, PATIENCE);
    assert_eq!(
        exporter::must(
            &exporter.metrics(),
            "sqlite_migrations_drifted",
            &sqlx("app")
        ),
        1.0
    );
    std::fs::write(&orders_file, ORDERS).unwrap();
    prometheus.wait_for_alert(DRIFT, "app", false, PATIENCE);

    // A migration recorded as failed, then repaired.
    app.execute_batch("UPDATE _sqlx_migrations SET success = FALSE WHERE version = 2;")
        .unwrap();
    prometheus.wait_for_alert(FAILED, "app", true, PATIENCE);
    app.execute_batch("UPDATE _sqlx_migrations SET success = TRUE WHERE version = 2;")
        .unwrap();
    prometheus.wait_for_alert(FAILED, "app", false, PATIENCE);

    assert!(
        !ours(&prometheus).iter().any(|(_, db)| db == "calm"),
        "the database left alone fires nothing: {:?}",
        prometheus.firing()
    );
}
