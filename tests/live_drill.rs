//! Restore drills on a real Prometheus with the shipped rules: the newest backup of `app` is
//! damaged on disk, its drill fails (`sqlite_backup_drill_success 0`) and
//! `SQLiteBackupDrillFailed` fires for `app` only, while the live database and its `-wal` stay
//! byte for byte what they were; a new backup, drilled on request, clears the alert.

#[path = "util/exporter.rs"]
mod exporter;
#[path = "util/prometheus.rs"]
mod prometheus;
#[path = "util/tools.rs"]
mod tools;

use std::path::{Path, PathBuf};

use exporter::{api, app_db, value, Exporter, Setup};
use prometheus::{start_prometheus, PATIENCE};
use rusqlite::Connection;
use serde_json::Value;

const ALERT: &str = "SQLiteBackupDrillFailed";

/// The bytes of the database and of its `-wal`.
fn live_bytes(db: &Path) -> (Vec<u8>, Vec<u8>) {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    (
        std::fs::read(db).unwrap(),
        std::fs::read(PathBuf::from(wal)).unwrap(),
    )
}

/// POSTs `action` on `db`, waiting out a scheduled drill that holds the database (409).
fn post(e: &Exporter, s: &Setup, db: &str, action: &str) -> Value {
    let path = format!("/api/v1/databases/{db}/{action}");
    for _ in 0..50 {
        let (code, v) = api(e, "POST", &path, Some(&s.token), None);
        if code != 409 {
            assert_eq!(code, 200, "POST {path}: {v}");
            return v;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("POST {path}: the database stayed busy");
}

#[test]
fn a_damaged_newest_backup_fails_its_drill_and_the_alert_follows_without_touching_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_db(dir.path());
    let other = dir.path().join("other.db");
    std::fs::copy(&app, &other).unwrap();
    // The application: a connection that stays open with committed frames in the -wal.
    let application = Connection::open(&app).unwrap();
    application
        .execute_batch(
            "PRAGMA wal_autocheckpoint=0; UPDATE accounts SET balance = balance + 1 WHERE id <= 50;",
        )
        .unwrap();
    let s = Setup::new(dir, &[("app", &app), ("other", &other)], "", true);
    let e = s.start(&[]);

    let backup = post(&e, &s, "app", "backup");
    post(&e, &s, "other", "backup");
    assert_eq!(post(&e, &s, "app", "drill")["passed"], true);
    assert_eq!(post(&e, &s, "other", "drill")["passed"], true);
    let before = live_bytes(&app);
    assert!(!before.1.is_empty(), "the test needs frames in the -wal");

    // Bit rot in the newest backup of app.
    let file = s.backups.join(backup["file_name"].as_str().unwrap());
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
        f.write_all_at(&[0x5A; 512], 4096 + 256).unwrap();
    }
    let failed = post(&e, &s, "app", "drill");
    assert_eq!(failed["passed"], false, "{failed}");
    let body = e.metrics();
    assert_eq!(
        value(&body, "sqlite_backup_drill_success", &[("database", "app")]),
        Some(0.0)
    );
    assert_eq!(
        value(
            &body,
            "sqlite_backup_drill_success",
            &[("database", "other")]
        ),
        Some(1.0)
    );

    let prometheus = start_prometheus(s.dir.path(), "sqlite", &[&e.addr], None);
    prometheus.wait_for_alert(ALERT, "app", true, PATIENCE);
    assert!(
        !prometheus
            .firing()
            .contains(&(ALERT.to_string(), "other".to_string())),
        "{:?}",
        prometheus.firing()
    );
    let rto = prometheus.query("sqlite_threshold_backup_drill_rto_seconds");
    assert_eq!(rto.len(), 1, "{rto:?}");
    assert_eq!(rto[0]["value"][1], "3600");
    assert!(
        live_bytes(&app) == before,
        "a drill changed the live database"
    );

    // A good backup, drilled on request: the newest backup is proven again.
    post(&e, &s, "app", "backup");
    let passed = post(&e, &s, "app", "drill");
    assert_eq!(passed["passed"], true, "{passed}");
    assert_ne!(passed["backup"], failed["backup"]);
    prometheus.wait_for_alert(ALERT, "app", false, PATIENCE);
    assert!(
        live_bytes(&app) == before,
        "a drill changed the live database"
    );
    drop(application);
}
