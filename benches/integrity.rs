//! Integrity check cost: `integrity::run` against the `sqlite3` shell on the same ~200 MB
//! database, quick and full, median of N runs (`BENCH_RUNS`, default 5; `BENCH_MB` for the
//! size). The shell figures include spawning the process and opening the file; ours include
//! opening the connection, the watcher thread and the foreign-key check, which the shell runs
//! do not do. Run with `cargo bench --bench integrity`.

#[path = "common/mod.rs"]
mod common;

#[path = "../tests/util/sqlite3.rs"]
mod sqlite3;

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use sqlite_exporter::checks::integrity::{self, IntegrityOutcome, Mode};

use common::{env_or, median};

fn sample(runs: u64, mut once: impl FnMut()) -> Duration {
    once(); // warm the page cache
    median(
        (0..runs)
            .map(|_| {
                let started = Instant::now();
                once();
                started.elapsed()
            })
            .collect(),
    )
}

fn ours(path: &Path, mode: Mode) {
    let never = AtomicBool::new(false);
    let outcome = integrity::run(
        path,
        mode,
        Duration::from_secs(3600),
        Duration::from_secs(1),
        &never,
    );
    match outcome {
        IntegrityOutcome::Completed(report) if report.ok => {}
        other => panic!("benchmark database should be healthy: {other:?}"),
    }
}

fn shell(path: &Path, pragma: &str) {
    let out = sqlite3::cli(path, pragma);
    assert_eq!(out, "ok", "sqlite3 {pragma}");
}

fn main() {
    let runs = env_or("BENCH_RUNS", 5);
    let megabytes = env_or("BENCH_MB", 200);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bench.db");
    let started = Instant::now();
    sqlite3::large_database(&path, megabytes);
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "database: {:.1} MB, built in {:.1?}; median of {runs} runs after one warm-up",
        size as f64 / 1e6,
        started.elapsed()
    );
    println!(
        "SQLite: bundled {} (integrity::run), shell {} (/usr/bin/sqlite3)",
        rusqlite::version(),
        sqlite3::cli(&path, "SELECT sqlite_version()")
    );
    println!(
        "{:<6} {:>14} {:<48} {:>10} {:>7}  target <= 1.1x",
        "mode", "integrity::run", "sqlite3 twin (with spawn)", "", "ratio"
    );
    for (mode, pragma) in [
        (Mode::Quick, "PRAGMA quick_check"),
        (Mode::Full, "PRAGMA integrity_check"),
    ] {
        let ours = sample(runs, || ours(&path, mode));
        // Ours also runs foreign_key_check; the twin is shown with and without it.
        let with_fk = format!("{pragma}; PRAGMA foreign_key_check");
        for twin in [pragma, with_fk.as_str()] {
            let shell = sample(runs, || shell(&path, twin));
            let r = ours.as_secs_f64() / shell.as_secs_f64();
            println!(
                "{:<6} {:>14.3?} {:<48} {:>10.3?} {:>7.2}  {}",
                mode.as_str(),
                ours,
                twin,
                shell,
                r,
                if r <= 1.1 { "MET" } else { "MISSED" }
            );
        }
    }
}
