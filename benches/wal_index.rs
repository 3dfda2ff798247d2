//! The WAL-index header read that shows checkpoint starvation, at two WAL sizes: it must cost
//! the same for a WAL of 256 frames as for one of 16,384 (64 MiB), since it reads a few dozen
//! bytes of the shared memory SQLite already maps, whatever the WAL holds. Baseline: a `stat`
//! of the `-wal` file, the cheapest thing any exporter does per database. The read includes
//! the 32-byte `-wal` header (the checkpoint sequence), read through SQLite's own handle.
//! Run: `cargo bench --bench wal_index` (or `bench/run.sh`).

#[path = "common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use sqlite_exporter::sqlite::connection::open_read_only;
use sqlite_exporter::sqlite::wal_index;

use common::median;

/// Reads per timed run, so each run is long enough to measure.
const READS: u32 = 2000;
/// Target: the large WAL's read at most this many times the small one's.
const TARGET: f64 = 1.5;

/// A WAL database with `frames` 4 KiB frames left in the WAL; the writer stays open so the
/// WAL is not checkpointed away.
fn wal_database(dir: &Path, name: &str, frames: u32) -> (PathBuf, Connection) {
    let path = dir.join(name);
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;
         CREATE TABLE t(body BLOB);
         BEGIN;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {frames})
         INSERT INTO t SELECT randomblob(3900) FROM n;
         COMMIT;"
    ))
    .unwrap();
    (path, conn)
}

/// The mean time of one call of `f` over `READS` calls.
fn run(f: &mut dyn FnMut()) -> Duration {
    let t = Instant::now();
    for _ in 0..READS {
        f();
    }
    t.elapsed() / READS
}

/// Median times of each of `fs`, whose runs alternate so that the machine's drift (this
/// machine is shared) falls on all of them alike.
fn interleaved(fs: &mut [&mut dyn FnMut()]) -> Vec<Duration> {
    for f in fs.iter_mut() {
        f();
    }
    let mut runs = vec![Vec::new(); fs.len()];
    for _ in 0..31 {
        for (f, r) in fs.iter_mut().zip(&mut runs) {
            r.push(run(*f));
        }
    }
    runs.into_iter().map(median).collect()
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let mut writers = Vec::new();
    let mut dbs = Vec::new();
    for (name, frames) in [("small.db", 256), ("large.db", 16_384)] {
        let (path, writer) = wal_database(dir.path(), name, frames);
        writers.push(writer);
        let conn = open_read_only(&path, Duration::from_secs(1)).unwrap();
        conn.query_row("SELECT count(*) FROM t", [], |_| Ok(()))
            .unwrap();
        let index = wal_index::read(&conn).unwrap();
        assert!(index.max_frame >= frames, "{index:?}");
        assert!(index.checkpoint_sequence.is_some(), "{index:?}");
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        dbs.push((conn, PathBuf::from(wal), index.max_frame));
    }
    let [(small, small_wal, _), (large, large_wal, _)] = &dbs[..] else {
        unreachable!()
    };
    let times = interleaved(&mut [
        &mut || {
            wal_index::read(small).unwrap();
        },
        &mut || {
            wal_index::read(large).unwrap();
        },
        &mut || {
            std::fs::metadata(small_wal).unwrap();
        },
        &mut || {
            std::fs::metadata(large_wal).unwrap();
        },
    ]);
    for (i, (_, wal, frames)) in dbs.iter().enumerate() {
        let (read, stat) = (times[i], times[2 + i]);
        let mib = std::fs::metadata(wal).unwrap().len() as f64 / (1 << 20) as f64;
        println!(
            "WAL of {frames} frames ({mib:.1} MiB): header read {:.2} µs, stat of -wal {:.2} µs ({:.2}×)",
            read.as_secs_f64() * 1e6,
            stat.as_secs_f64() * 1e6,
            read.as_secs_f64() / stat.as_secs_f64()
        );
    }
    let ratio = times[1].as_secs_f64() / times[0].as_secs_f64();
    println!(
        "large WAL / small WAL: {ratio:.2}× (target ≤ {TARGET}×: {})",
        if ratio <= TARGET { "met" } else { "MISSED" }
    );
}
