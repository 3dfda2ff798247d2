//! Scrape cost per database, for fleets of 100 and 1,000 databases, against two baselines:
//!
//! - `syscalls`: what any exporter must pay at least — `stat` of the database, `-wal` and
//!   `-shm` files (no SQLite at all);
//! - `open+pragma`: a bare read-only `sqlite3_open_v2` plus `PRAGMA page_count` per database,
//!   the least SQLite work that reads a header;
//!
//! and our full scrape: every default collector (info, size, wal, schema, read probe, write probe
//! with `lock`) plus rendering the Prometheus text. Prints medians over runs and ratios.
//! Run: `cargo bench --bench scrape` (or `bench/run.sh`).

#[path = "common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};
use sqlite_exporter::collect::CollectorSet;
use sqlite_exporter::config::Config;
use sqlite_exporter::fleet::Fleet;
use sqlite_exporter::metrics;

use common::median;

fn build_fleet(dir: &Path, n: usize) -> Vec<PathBuf> {
    (0..n)
        .map(|i| {
            let p = dir.join(format!("tenant{i:04}.db"));
            let c = Connection::open(&p).unwrap();
            c.execute_batch(
                "PRAGMA journal_mode=WAL;
                 CREATE TABLE IF NOT EXISTS items(id INTEGER PRIMARY KEY, name TEXT, body BLOB);
                 CREATE INDEX IF NOT EXISTS items_name ON items(name);
                 INSERT INTO items(name, body) SELECT 'x' || value, randomblob(100) FROM generate_series(1, 50);",
            )
            .or_else(|_| {
                c.execute_batch(
                    "INSERT INTO items(name, body) VALUES ('a', randomblob(100)), ('b', randomblob(100));",
                )
            })
            .unwrap();
            p
        })
        .collect()
}

fn time(runs: usize, mut f: impl FnMut()) -> Duration {
    f(); // warm-up
    median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect(),
    )
}

fn main() {
    // `cargo test` runs benches only with --benches; keep a quick mode for that.
    let quick = std::env::args().any(|a| a == "--test");
    let sizes: &[usize] = if quick { &[10] } else { &[100, 1000] };
    println!(
        "{:>6}  {:>14}  {:>14}  {:>14}  {:>10}  {:>10}",
        "dbs", "syscalls/db", "open+pragma/db", "scrape/db", "vs syscall", "vs open"
    );
    for &n in sizes {
        let dir = tempfile::tempdir().unwrap();
        let paths = build_fleet(dir.path(), n);
        let runs = if quick {
            3
        } else if n >= 1000 {
            15
        } else {
            41
        };
        let syscalls = time(runs, || {
            for p in &paths {
                for suffix in ["", "-wal", "-shm"] {
                    let mut s = p.as_os_str().to_owned();
                    s.push(suffix);
                    let _ = std::fs::metadata(&s);
                }
            }
        });
        let open = time(runs, || {
            for p in &paths {
                let c = Connection::open_with_flags(p, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
                let _: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap();
            }
        });
        let config = Config::from_files(&paths).unwrap();
        let events = std::sync::Arc::new(metrics::EventMetrics::new());
        let fleet = Fleet::with_events(CollectorSet::defaults(), 1, events.clone());
        fleet.apply(config.databases().0);
        let scrape = time(runs, || {
            let snap = fleet.collect_blocking();
            let body = metrics::render(
                &snap,
                fleet.collectors(),
                &events,
                &fleet.exporter,
                metrics::Format::Text,
            );
            assert!(body.len() > n * 1000);
        });
        let per = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
        println!(
            "{:>6}  {:>11.1} µs  {:>11.1} µs  {:>11.1} µs  {:>9.1}x  {:>9.1}x",
            n,
            per(syscalls),
            per(open),
            per(scrape),
            scrape.as_secs_f64() / syscalls.as_secs_f64(),
            scrape.as_secs_f64() / open.as_secs_f64(),
        );
    }
    println!(
        "(medians; scrape on 1 thread, i.e. --scrape.concurrency=1, including text rendering)"
    );
}
