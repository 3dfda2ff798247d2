//! What a full integrity check costs the application and the scrapes (issue 3): on a WAL
//! database of `BENCH_MB` MB (default 540), measures
//!
//! - scrape latency (all default collectors, one database) before and during a full
//!   `integrity_check`, as medians and their ratio (target: within 2×);
//! - a concurrent writer committing one small transaction at a time during the check: commits
//!   per second and the longest commit (target: it keeps committing; a WAL reader never blocks
//!   a writer).
//!
//! Run with `cargo bench --bench check_load` (or `bench/run.sh`).

#[path = "common/mod.rs"]
mod common;

#[path = "../tests/util/sqlite3.rs"]
mod sqlite3;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlite_exporter::checks::integrity::{self, IntegrityOutcome, Mode};
use sqlite_exporter::collect::CollectorSet;
use sqlite_exporter::config::Config;
use sqlite_exporter::fleet::Fleet;

use common::median;

fn main() {
    let megabytes: u64 = std::env::var("BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(540);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.db");
    let built = Instant::now();
    sqlite3::large_database(&path, megabytes);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; CREATE TABLE ledger(id INTEGER PRIMARY KEY, amount INTEGER);",
    )
    .unwrap();
    drop(conn);
    let size = std::fs::metadata(&path).unwrap().len();
    println!(
        "database: {:.0} MB (built in {:.1}s)",
        size as f64 / 1e6,
        built.elapsed().as_secs_f64()
    );

    let fleet = Fleet::new(CollectorSet::defaults(), 1);
    fleet.apply(
        Config::from_files(std::slice::from_ref(&path))
            .unwrap()
            .databases()
            .0,
    );
    let scrape = || {
        let t = Instant::now();
        let snap = fleet.collect_blocking();
        assert!(snap.databases[0].up);
        t.elapsed()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (path, stop) = (path.clone(), stop.clone());
        std::thread::spawn(move || {
            let c = rusqlite::Connection::open(&path).unwrap();
            c.busy_timeout(Duration::from_secs(5)).unwrap();
            let (mut commits, mut longest) = (0u64, Duration::ZERO);
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                c.execute("INSERT INTO ledger(amount) VALUES (?1)", [commits as i64])
                    .unwrap();
                longest = longest.max(t.elapsed());
                commits += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            (commits, longest)
        })
    };
    // The baseline is taken with the writer already committing, as during the check, so both
    // medians are of scrapes of a database that changed since the last one.
    let before = median(
        (0..31)
            .map(|_| {
                let t = scrape();
                std::thread::sleep(Duration::from_millis(20));
                t
            })
            .collect(),
    );
    let checking = Arc::new(AtomicBool::new(true));
    // The check runs as the scheduler runs it: on a thread of lowered priority.
    let check = {
        let (path, checking) = (path.clone(), checking.clone());
        sqlite_exporter::service::scheduler::low_priority_thread("check", move || {
            let t = Instant::now();
            let outcome = integrity::run(
                &path,
                Mode::Full,
                Duration::from_secs(600),
                Duration::from_secs(5),
                &AtomicBool::new(false),
            );
            checking.store(false, Ordering::Relaxed);
            assert!(
                matches!(outcome, IntegrityOutcome::Completed(ref r) if r.ok),
                "{outcome:?}"
            );
            t.elapsed()
        })
        .unwrap()
    };
    let mut during = Vec::new();
    while checking.load(Ordering::Relaxed) {
        during.push(scrape());
        std::thread::sleep(Duration::from_millis(20));
    }
    let check_time = check.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    let (commits, longest) = writer.join().unwrap();
    let during_median = median(during.clone());
    println!("full integrity_check: {:.2}s", check_time.as_secs_f64());
    println!(
        "scrape median: {:.2} ms before, {:.2} ms during the check ({} scrapes) -> ratio {:.2}x (target <= 2x)",
        before.as_secs_f64() * 1e3,
        during_median.as_secs_f64() * 1e3,
        during.len(),
        during_median.as_secs_f64() / before.as_secs_f64()
    );
    println!(
        "writer (baseline, check and after): {commits} commits, longest commit {:.1} ms",
        longest.as_secs_f64() * 1e3
    );
}
