//! The WAL-index header read that shows checkpoint starvation, at two WAL sizes: it must cost
//! the same for a WAL of 256 frames as for one of 16,384 (64 MiB), since it reads a few dozen
//! bytes of the shared memory SQLite already maps, whatever the WAL holds. Baseline: a `stat`
//! of the `-wal` file, the cheapest thing any exporter does per database.
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

fn time(mut f: impl FnMut()) -> Duration {
    f();
    median(
        (0..15)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..READS {
                    f();
                }
                t.elapsed() / READS
            })
            .collect(),
    )
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let mut figures = Vec::new();
    let mut writers = Vec::new();
    for (name, frames) in [("small.db", 256), ("large.db", 16_384)] {
        let (path, writer) = wal_database(dir.path(), name, frames);
        writers.push(writer);
        let conn = open_read_only(&path, Duration::from_secs(1)).unwrap();
        conn.query_row("SELECT count(*) FROM t", [], |_| Ok(()))
            .unwrap();
        let index = wal_index::read(&conn).unwrap();
        assert!(index.max_frame >= frames, "{index:?}");
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let wal = PathBuf::from(wal);
        let read = time(|| {
            wal_index::read(&conn).unwrap();
        });
        let stat = time(|| {
            std::fs::metadata(&wal).unwrap();
        });
        let mib = std::fs::metadata(&wal).unwrap().len() as f64 / (1 << 20) as f64;
        println!(
            "WAL of {} frames ({mib:.1} MiB): header read {:.2} µs, stat of -wal {:.2} µs ({:.2}×)",
            index.max_frame,
            read.as_secs_f64() * 1e6,
            stat.as_secs_f64() * 1e6,
            read.as_secs_f64() / stat.as_secs_f64()
        );
        figures.push(read.as_secs_f64());
    }
    let ratio = figures[1] / figures[0];
    println!(
        "large WAL / small WAL: {ratio:.2}× (target ≤ {TARGET}×: {})",
        if ratio <= TARGET { "met" } else { "MISSED" }
    );
}
