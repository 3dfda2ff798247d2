//! `--demo` shows a healthy database under a realistic load: no recommendation and status
//! `healthy` from its first seconds on, so the shipped alerts stay quiet on it.

#[path = "util/exporter.rs"]
mod exporter;

use std::time::Duration;

use exporter::Exporter;

#[test]
fn the_demo_is_healthy_with_no_recommendation() {
    let dir = tempfile::tempdir().unwrap();
    let demo = Exporter::start(&[&format!("--demo={}", dir.path().join("demo").display())]);
    // The first probes (every 5 s in the demo), the first backup and the writer's first WAL
    // cycles (about 25 s of writes fill 200 pages) all happen within these samples.
    std::thread::sleep(Duration::from_secs(3));
    for sample in 0..6 {
        let (code, body) = demo.get("/health");
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let db = &v["databases"][0];
        assert_eq!(
            db["health"]["recommendations"],
            serde_json::json!([]),
            "sample {sample}: the demo recommends something:\n{body}"
        );
        assert_eq!(v["status"], "healthy", "sample {sample}:\n{body}");
        std::thread::sleep(Duration::from_secs(5));
    }
    let metrics = demo.metrics();
    assert_eq!(
        exporter::must(&metrics, "sqlite_health_status", &[("status", "healthy")]),
        1.0
    );
    // Its WAL is read from the WAL index like any other: checkpoints keep up with the writer,
    // so the frames waiting for one stay under the WAL threshold.
    let pending = exporter::must(&metrics, "sqlite_wal_frames_pending", &[]);
    let page = exporter::must(&metrics, "sqlite_page_size_bytes", &[]);
    let critical = exporter::must(&metrics, "sqlite_threshold_wal_critical_bytes", &[]);
    assert!(
        pending * page < critical,
        "{pending} frames of {page} bytes pending"
    );
    exporter::must(&metrics, "sqlite_wal_frames_backfilled", &[]);
}

/// The demo application migrates with sqlx-shaped `_sqlx_migrations` and ships its migration
/// files, one of them not yet applied (deployed two minutes in), and requires its three main
/// tables: the migrations and schema series appear without any configuration of the table.
#[test]
fn the_demo_shows_its_migrations_and_required_tables() {
    let dir = tempfile::tempdir().unwrap();
    let demo = Exporter::start(&[&format!("--demo={}", dir.path().join("demo").display())]);
    let sqlx = [("database", "demo"), ("framework", "sqlx")];
    let body = demo.metrics_until(Duration::from_secs(30), "the first migrations read", |b| {
        exporter::value(b, "sqlite_migrations_pending", &sqlx).is_some()
    });
    assert_eq!(
        exporter::must(&body, "sqlite_migrations_applied", &sqlx),
        3.0
    );
    assert_eq!(
        exporter::must(&body, "sqlite_migrations_failed", &sqlx),
        0.0
    );
    assert_eq!(
        exporter::must(&body, "sqlite_migrations_pending", &sqlx),
        1.0
    );
    assert_eq!(
        exporter::must(&body, "sqlite_migrations_drifted", &sqlx),
        0.0
    );
    let applied_at = exporter::must(
        &body,
        "sqlite_migration_last_applied_timestamp_seconds",
        &sqlx,
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (now - applied_at).abs() < 120.0,
        "applied at {applied_at}, now {now}"
    );
    for table in ["customers", "orders", "order_items"] {
        let labels = [("database", "demo"), ("table", table)];
        assert_eq!(
            exporter::must(&body, "sqlite_schema_required_table_missing", &labels),
            0.0,
            "{table}"
        );
    }
}

#[test]
fn the_demo_drills_its_first_backup_within_a_minute() {
    let dir = tempfile::tempdir().unwrap();
    let demo = Exporter::start(&[&format!("--demo={}", dir.path().join("demo").display())]);
    let body = demo.metrics_until(Duration::from_secs(60), "a passed restore drill", |b| {
        exporter::value(b, "sqlite_backup_drill_success", &[("database", "demo")]) == Some(1.0)
    });
    let duration = exporter::must(&body, "sqlite_backup_drill_duration_seconds", &[]);
    assert!(duration > 0.0 && duration < 60.0, "{duration}");
    // The demo's backup was taken at start, so the one drilled is seconds old.
    let age = exporter::must(&body, "sqlite_backup_drill_backup_age_seconds", &[]);
    assert!((0.0..60.0).contains(&age), "{age}");
}
