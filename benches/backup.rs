//! Backup throughput: `backup::create` against `sqlite3 SRC ".backup DST"` and `VACUUM INTO` on
//! the same database (~200 MB, `BENCH_DB_MB` to change). Prints the median MB/s of each and its
//! ratio to `sqlite3 .backup`.
//!
//! `cargo bench --bench backup`

#[path = "common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use rusqlite::Connection;
use sqlite_exporter::actions::backup::{self, BackupOptions, Method, Verify};

use common::timed;

const RUNS: usize = 3;

/// One way of backing up: writes the copy to the given path, returns how long it took.
type Case<'a> = Box<dyn Fn(&Path) -> Duration + 'a>;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    assert!(
        Path::new("/usr/bin/sqlite3").exists(),
        "install Debian package sqlite3"
    );
    let mb: i64 = std::env::var("BENCH_DB_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| ".".into()))
        .expect("temp dir");
    let db = dir.path().join("bench.db");
    build(&db, mb);
    let size = std::fs::metadata(&db).unwrap().len() as f64 / 1e6;
    println!("database: {size:.0} MB, WAL mode, {RUNS} runs each, median");

    let cases: Vec<(&str, Case)> = vec![
        ("sqlite3 .backup", Box::new(|out| sqlite3_backup(&db, out))),
        ("VACUUM INTO", Box::new(|out| vacuum_into(&db, out))),
        (
            "create (copy only: Quick verify, default steps)",
            Box::new(|out| create(&db, out, Verify::Quick, Method::default())),
        ),
        (
            "create (defaults: Full verify, default steps)",
            Box::new(|out| create(&db, out, Verify::Full, Method::default())),
        ),
        (
            "create (Quick verify, no pause, 16384 pages/step)",
            Box::new(|out| {
                let m = Method::OnlineBackup {
                    pages_per_step: 16384,
                    step_pause: Duration::ZERO,
                };
                create(&db, out, Verify::Quick, m)
            }),
        ),
    ];
    let mut baseline = None;
    for (name, run) in cases {
        let mut times: Vec<Duration> = (0..RUNS)
            .map(|i| {
                let out = dir.path().join(format!("out-{i}"));
                let t = run(&out);
                let _ = std::fs::remove_dir_all(&out);
                let _ = std::fs::remove_file(&out);
                t
            })
            .collect();
        times.sort();
        let median = times[RUNS / 2].as_secs_f64();
        let rate = size / median;
        let base = *baseline.get_or_insert(rate);
        println!(
            "{name:<52} {median:>7.3} s {rate:>8.1} MB/s  x{:.2} of sqlite3 .backup",
            rate / base
        );
    }
}

fn build(db: &Path, mb: i64) {
    let conn = Connection::open(db).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA journal_mode=WAL;
         CREATE TABLE events(id INTEGER PRIMARY KEY, kind TEXT, body BLOB);
         CREATE INDEX events_kind ON events(kind);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {mb} * 1000)
         INSERT INTO events SELECT i, 'kind-' || (i % 97), randomblob(500) || zeroblob(400) FROM n;
         PRAGMA wal_checkpoint(TRUNCATE);"
    ))
    .unwrap();
}

fn sqlite3_backup(db: &Path, out: &Path) -> Duration {
    timed(|| {
        let status = Command::new("/usr/bin/sqlite3")
            .arg(db)
            .arg(format!(".backup '{}'", out.display()))
            .status()
            .unwrap();
        assert!(status.success());
    })
}

fn vacuum_into(db: &Path, out: &Path) -> Duration {
    let conn = Connection::open(db).unwrap();
    timed(|| {
        conn.execute("VACUUM INTO ?1", [out.to_str().unwrap()])
            .unwrap();
    })
}

fn create(db: &Path, out: &Path, verify: Verify, method: Method) -> Duration {
    let opts = BackupOptions {
        dir: out.to_owned(),
        compress_above: None,
        verify,
        method,
        ..BackupOptions::default()
    };
    timed(|| {
        backup::create(
            "bench",
            db,
            &opts,
            None,
            &mut |_| {},
            &AtomicBool::new(false),
        )
        .unwrap();
    })
}
