//! Checkpoint starvation on a real Prometheus with the shipped rules: a reader holds an old
//! snapshot while a writer keeps committing, so checkpoints cannot copy a single frame back and
//! the WAL grows. The exporter's WAL-index read shows the backlog
//! (`sqlite_wal_frames_pending` growing, `sqlite_wal_frames_backfilled` stuck) and
//! `SQLiteCheckpointStarved` fires, and `/health` says "checkpoint starved", while the
//! checkpoint sequence of the `-wal` header stands still; once the reader ends and the
//! application checkpoints, the backlog is gone and the alert clears.

#[path = "util/exporter.rs"]
mod exporter;
#[path = "util/prometheus.rs"]
mod prometheus;
#[path = "util/tools.rs"]
mod tools;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use exporter::{must, Exporter};
use prometheus::{start_prometheus, PATIENCE};
use rusqlite::Connection;
use serde_json::json;

const ALERT: &str = "SQLiteCheckpointStarved";

#[test]
fn a_reader_holding_a_snapshot_starves_checkpoints_and_the_alert_follows() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (starved, healthy) = (dir.join("starved.db"), dir.join("healthy.db"));
    for path in [&starved, &healthy] {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; CREATE TABLE events(id INTEGER PRIMARY KEY, body BLOB);",
        )
        .unwrap();
    }
    // 64 KiB of WAL waiting to be checkpointed is the warning threshold of both, and 3 s
    // without checkpoint progress makes the health model call it starved.
    let config = json!({
        "defaults": { "probes": { "interval": "1s" }, "thresholds": { "wal_critical_bytes": "64KiB", "checkpoint_stall": "3s" } },
        "databases": [
            { "name": "starved", "path": starved },
            { "name": "healthy", "path": healthy },
        ],
    });
    let config_path = dir.join("sqlite_exporter.yml");
    std::fs::write(&config_path, config.to_string()).unwrap();
    let exporter = Exporter::start(&[&format!("--config.file={}", config_path.display())]);

    // The reader's snapshot predates every frame the writers will add.
    let reader = Connection::open(&starved).unwrap();
    reader
        .execute_batch("BEGIN; SELECT count(*) FROM events;")
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = [&starved, &healthy]
        .into_iter()
        .map(|path| spawn_writer(path, stop.clone()))
        .collect();

    let prometheus = start_prometheus(dir, "sqlite", &[&exporter.addr], None);
    prometheus.wait_for_alert(ALERT, "starved", true, PATIENCE);
    let pending = |db: &str| {
        let body = exporter.metrics();
        (
            must(&body, "sqlite_wal_frames_pending", &[("database", db)]),
            must(&body, "sqlite_wal_frames_backfilled", &[("database", db)]),
        )
    };
    exporter.metrics_until(PATIENCE, "health says starved", |body| {
        exporter::value(
            body,
            "sqlite_health_status",
            &[("database", "starved"), ("status", "warning")],
        ) == Some(1.0)
    });
    let (code, text) = exporter.get("/health");
    assert!(text.contains("checkpoint starved"), "{code} {text}");
    let (frames, backfilled) = pending("starved");
    assert!(frames > 16.0, "a 64 KiB backlog at least: {frames}");
    assert_eq!(backfilled, 0.0, "nothing past the reader's snapshot");
    assert!(
        !prometheus
            .firing()
            .contains(&(ALERT.into(), "healthy".into())),
        "the database without a long reader checkpoints as it goes: {:?}",
        prometheus.firing()
    );
    // The checkpoint sequence tells the two apart too: the healthy WAL keeps being restarted
    // after its complete checkpoints, the starved one never is.
    let restarts = |db: &str| {
        let expr = format!("changes(sqlite_wal_checkpoint_sequence{{database=\"{db}\"}}[10m])");
        let samples = prometheus.query(&expr);
        assert_eq!(samples.len(), 1, "`{expr}`: {samples:?}");
        samples[0]["value"][1]
            .as_str()
            .unwrap()
            .parse::<f64>()
            .unwrap()
    };
    let healthy_restarts = prometheus::eventually(PATIENCE, || {
        let n = restarts("healthy");
        (n > 0.0).then_some(n)
    });
    assert!(healthy_restarts.is_some(), "the healthy WAL restarts");
    assert_eq!(restarts("starved"), 0.0, "the starved WAL never restarts");

    // The reader ends; the application's next checkpoint copies the whole backlog.
    stop.store(true, Ordering::SeqCst);
    for writer in writers {
        writer.join().unwrap();
    }
    reader.execute_batch("COMMIT").unwrap();
    drop(reader);
    let app = Connection::open(&starved).unwrap();
    let (busy, log, done): (i64, i64, i64) = app
        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!((busy, done), (0, log), "the checkpoint copies every frame");
    exporter.metrics_until(PATIENCE, "the backlog gone", |body| {
        exporter::value(
            body,
            "sqlite_wal_frames_pending",
            &[("database", "starved")],
        ) == Some(0.0)
    });
    prometheus.wait_for_alert(ALERT, "starved", false, PATIENCE);
    let (code, text) = exporter.get("/health");
    assert!(
        !text.contains("checkpoint starved"),
        "the stall is over: {code} {text}"
    );
    drop(app);
}

/// Commits a 4 KB row every 50 ms to `path` until `stop`, checkpointing automatically as
/// applications do.
fn spawn_writer(path: &Path, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        let conn = Connection::open(&path).unwrap();
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        conn.execute_batch("PRAGMA wal_autocheckpoint=10;").unwrap();
        while !stop.load(Ordering::SeqCst) {
            conn.execute("INSERT INTO events(body) VALUES (randomblob(4000))", [])
                .unwrap();
            std::thread::sleep(Duration::from_millis(50));
        }
    })
}
