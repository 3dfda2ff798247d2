//! Regression test: the exporter must never release the POSIX locks its own SQLite connections
//! hold. Closing any descriptor of a file drops every lock the process holds on it, so opening
//! and closing the database or `-shm` file "just to look" while an action holds the write lock
//! would let another process write underneath it (lost commits, corruption). Here a connection
//! of this process holds the write lock; a full scrape and an integrity check run in the same
//! process; another process must still find the database locked.

#[path = "util/sqlite3.rs"]
mod sqlite3;

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use rusqlite::Connection;
use sqlite3::Open;
use sqlite_exporter::checks::integrity::{self, Mode};
use sqlite_exporter::collect::CollectorSet;
use sqlite_exporter::config::Config;
use sqlite_exporter::fleet::Fleet;

/// Tries to write from another process; true when it is refused as locked.
fn other_process_is_locked_out(db: &Path) -> bool {
    let out = sqlite3::run(
        db,
        Open::ReadWrite,
        &[".timeout 200", "INSERT INTO t VALUES (99);"],
    );
    !out.success && out.stderr.contains("locked")
}

fn check(journal: &str, lock: &str) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let holder = Connection::open(&db).unwrap();
    holder
        .execute_batch(&format!(
            "PRAGMA journal_mode={journal}; CREATE TABLE t(x); INSERT INTO t VALUES (1);"
        ))
        .unwrap();
    holder.execute_batch(lock).unwrap();
    assert!(
        other_process_is_locked_out(&db),
        "{journal}: the lock holds before the scrape"
    );

    let fleet = Fleet::new(CollectorSet::defaults(), 1);
    fleet.apply(
        Config::from_files(std::slice::from_ref(&db))
            .unwrap()
            .databases()
            .0,
    );
    let snapshot = fleet.collect_blocking();
    assert_eq!(snapshot.databases.len(), 1);
    let _ = integrity::run(
        &db,
        Mode::Quick,
        Duration::from_secs(2),
        Duration::from_millis(100),
        &AtomicBool::new(false),
    );

    assert!(
        other_process_is_locked_out(&db),
        "{journal}: a scrape released this process's lock"
    );
    holder
        .execute_batch("INSERT INTO t VALUES (2); COMMIT;")
        .unwrap();
    let rows: i64 = holder
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 2);
}

#[test]
fn a_scrape_keeps_the_write_lock_of_a_wal_transaction() {
    check("WAL", "BEGIN IMMEDIATE;");
}

#[test]
fn a_scrape_keeps_the_exclusive_lock_of_a_rollback_transaction() {
    check("DELETE", "BEGIN EXCLUSIVE;");
}
