//! Writer stalls during a backup: a ≥ 500 MB WAL database (`BENCH_DB_MB`), a writer committing
//! one small transaction at a time (`synchronous=FULL`: every commit syncs the WAL, the
//! worst case for I/O contention), and a backup with each candidate step setting. Prints the
//! writer's longest commit and p99 with no backup running and during each backup, and the
//! backup's duration. The defaults in `backup.rs` come from this.
//!
//! `cargo bench --bench backup_stall`

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use sqlite_exporter::actions::backup::{self, BackupOptions, Method, Verify};

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let mb: i64 = std::env::var("BENCH_DB_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let dir = tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| ".".into()))
        .expect("temp dir");
    let db = dir.path().join("stall.db");
    build(&db, mb);
    let size = std::fs::metadata(&db).unwrap().len() as f64 / 1e6;
    println!("database: {size:.0} MB, WAL, writer: one UPDATE per transaction, synchronous=FULL");

    let idle = measure(&db, Duration::from_secs(5), |_| {});
    report("no backup (baseline, 5 s)", &idle, None);

    let candidates = [
        (
            "default",
            backup::DEFAULT_PAGES_PER_STEP,
            backup::DEFAULT_STEP_PAUSE,
        ),
        ("256 pages, 1 ms", 256, Duration::from_millis(1)),
        ("4096 pages, 5 ms", 4096, Duration::from_millis(5)),
        ("16384 pages, no pause", 16384, Duration::ZERO),
        ("-1 (one step)", -1, Duration::ZERO),
    ];
    for (name, pages, pause) in candidates {
        let out = dir.path().join(format!("backups-{pages}"));
        let mut took = Duration::ZERO;
        let stats = measure(&db, Duration::ZERO, |_| {
            let opts = BackupOptions {
                dir: out.clone(),
                compress_above: None,
                verify: Verify::Quick,
                method: if pages < 0 {
                    Method::OnlineBackup {
                        pages_per_step: i32::MAX,
                        step_pause: pause,
                    }
                } else {
                    Method::OnlineBackup {
                        pages_per_step: pages,
                        step_pause: pause,
                    }
                },
                ..BackupOptions::default()
            };
            let t = Instant::now();
            backup::create(
                "stall",
                &db,
                &opts,
                None,
                &mut |_| {},
                &AtomicBool::new(false),
            )
            .unwrap();
            took = t.elapsed();
        });
        report(
            &format!("backup {name} ({pages} pages/step, {pause:?} pause)"),
            &stats,
            Some(took),
        );
        let _ = std::fs::remove_dir_all(&out);
    }
}

struct Stats {
    commits: usize,
    longest: Duration,
    p99: Duration,
}

fn report(name: &str, s: &Stats, took: Option<Duration>) {
    let took = took.map_or(String::new(), |t| {
        format!(", backup took {:.2} s", t.as_secs_f64())
    });
    println!(
        "{name:<58} commits {:>6}, longest commit {:>7.1} ms, p99 {:>6.2} ms{took}",
        s.commits,
        s.longest.as_secs_f64() * 1e3,
        s.p99.as_secs_f64() * 1e3
    );
}

/// Runs the writer while `during` runs (or for `at_least`), returning its commit latencies.
fn measure(db: &Path, at_least: Duration, during: impl FnOnce(&Path)) -> Stats {
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = Arc::clone(&stop);
        let db = db.to_owned();
        thread::spawn(move || {
            let conn = Connection::open(&db).unwrap();
            conn.busy_timeout(Duration::from_secs(30)).unwrap();
            conn.execute_batch("PRAGMA synchronous=FULL").unwrap();
            let mut lat = Vec::new();
            let mut i = 0i64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let t = Instant::now();
                conn.execute("UPDATE counters SET n = n + 1 WHERE id = ?1", [i % 100 + 1])
                    .unwrap();
                lat.push(t.elapsed());
            }
            lat
        })
    };
    let t = Instant::now();
    thread::sleep(Duration::from_millis(200));
    during(db);
    if let Some(rest) = at_least.checked_sub(t.elapsed()) {
        thread::sleep(rest);
    }
    stop.store(true, Ordering::Relaxed);
    let mut lat = writer.join().unwrap();
    lat.sort();
    Stats {
        commits: lat.len(),
        longest: lat.last().copied().unwrap_or_default(),
        p99: lat
            .get(lat.len().saturating_sub(1) * 99 / 100)
            .copied()
            .unwrap_or_default(),
    }
}

fn build(db: &Path, mb: i64) {
    let conn = Connection::open(db).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA journal_mode=WAL;
         CREATE TABLE counters(id INTEGER PRIMARY KEY, n INTEGER);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100)
         INSERT INTO counters SELECT i, 0 FROM n;
         CREATE TABLE bulk(id INTEGER PRIMARY KEY, body BLOB);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {mb} * 1000)
         INSERT INTO bulk SELECT i, randomblob(500) || zeroblob(400) FROM n;
         PRAGMA wal_checkpoint(TRUNCATE);"
    ))
    .unwrap();
}
