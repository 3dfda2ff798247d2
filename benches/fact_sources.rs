//! Two ways to read the facts of databases that changed since the last scrape, measured side
//! by side on the same files in the same run:
//!
//! - **files** (what the exporter does): `stat`s, then page 1 through a kept descriptor and
//!   the WAL frame headers the WAL grew by (`fleet::files::read`), no SQLite;
//! - **connections**: a persistent read-only SQLite connection per database, kept open
//!   between scrapes (a cache with room for all of them: the best case for it), asked
//!   `PRAGMA page_count, freelist_count, user_version, schema_version` at every scrape.
//!
//! Between rounds every database gets one committed write, so every database is "changed" at
//! every round. Prints the median per round of each way, their ratio, and what each holds
//! between scrapes (descriptors, RSS). `BENCH_DBS` databases (default 1,000), `BENCH_RUNS`
//! rounds (default 7).
//!
//! `cargo bench --bench fact_sources`

#[path = "common/mod.rs"]
mod common;

use std::fs::File;
use std::path::PathBuf;
use std::time::Instant;

use rusqlite::{Connection, OpenFlags};
use sqlite_exporter::fleet::files::{self, Stamp};
use sqlite_exporter::sqlite::header::WalCursor;

use common::{env_or, median};

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n = env_or("BENCH_DBS", 1000) as usize;
    let runs = env_or("BENCH_RUNS", 7) as usize;
    let dir = tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| ".".into()))
        .expect("temp dir");
    // The application: one connection per database, kept open (as an app does), writing in
    // WAL mode.
    let paths: Vec<PathBuf> = (0..n)
        .map(|i| dir.path().join(format!("db{i:05}.db")))
        .collect();
    let apps: Vec<Connection> = paths
        .iter()
        .map(|p| {
            let c = Connection::open(p).unwrap();
            c.execute_batch(
                "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;
                 CREATE TABLE t(id INTEGER PRIMARY KEY, body TEXT);
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
                 INSERT INTO t(body) SELECT hex(randomblob(100)) FROM n;",
            )
            .unwrap();
            c
        })
        .collect();
    let write_all = || {
        for c in &apps {
            c.execute("INSERT INTO t(body) VALUES (hex(randomblob(100)))", [])
                .unwrap();
        }
    };
    println!("{n} WAL databases, each written once between rounds; median of {runs} rounds");

    // Files: a kept descriptor per database and the WAL cursor, as a monitor keeps them.
    let (fds0, rss0) = (open_fds(), rss_kb());
    let kept: Vec<File> = paths.iter().map(|p| File::open(p).unwrap()).collect();
    let mut cursors: Vec<Option<WalCursor>> = vec![None; n];
    let files_round = |cursors: &mut Vec<Option<WalCursor>>| {
        let t = Instant::now();
        let mut pages = 0;
        for (i, p) in paths.iter().enumerate() {
            let stamp = Stamp::read(p).unwrap();
            let (facts, cursor) = files::read(p, &kept[i], &stamp, cursors[i].as_ref(), |_| false)
                .unwrap_or_else(|e| panic!("{}: {e:?}", p.display()));
            pages += facts.header.pages;
            cursors[i] = Some(cursor);
        }
        assert!(pages > 0);
        t.elapsed()
    };
    files_round(&mut cursors);
    let files_held = (open_fds() - fds0, rss_kb().saturating_sub(rss0));

    // Connections: one read-only connection per database, kept open.
    let (fds1, rss1) = (open_fds(), rss_kb());
    let conns: Vec<Connection> = paths
        .iter()
        .map(|p| {
            Connection::open_with_flags(
                p,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .unwrap()
        })
        .collect();
    let conns_round = || {
        let t = Instant::now();
        let mut pages = 0u64;
        for (i, c) in conns.iter().enumerate() {
            // The stat that tells a changed database from an unchanged one, as above.
            let _ = Stamp::read(&paths[i]).unwrap();
            let (p, _f, _u, _s): (u64, u64, i64, i64) = c
                .query_row(
                    "SELECT * FROM pragma_page_count(), pragma_freelist_count(), \
                     pragma_user_version(), pragma_schema_version()",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .unwrap();
            pages += p;
        }
        assert!(pages > 0);
        t.elapsed()
    };
    conns_round();
    let conns_held = (open_fds() - fds1, rss_kb().saturating_sub(rss1));

    let (mut f, mut c) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        write_all();
        f.push(files_round(&mut cursors));
        write_all();
        c.push(conns_round());
    }
    let (f, c) = (median(f), median(c));
    println!(
        "{:<44} {:>10} {:>14} {:>12}",
        "way", "per round", "descriptors", "RSS held"
    );
    println!(
        "{:<44} {:>8.1?} {:>14} {:>9} kB",
        "files: page 1 + new WAL frame headers", f, files_held.0, files_held.1
    );
    println!(
        "{:<44} {:>8.1?} {:>14} {:>9} kB",
        "connections: persistent read-only, 4 pragmas", c, conns_held.0, conns_held.1
    );
    println!(
        "connections / files: {:.2}x",
        c.as_secs_f64() / f.as_secs_f64()
    );
    drop(conns);
    drop(apps);
}
