//! Background work on databases nobody touches: a quiet, unchanged database is probed once
//! every `IDLE_PROBE_EVERY` probe intervals and its quick check is not repeated (the passing
//! verdict is renewed); a write, a replaced file or a probe that was not quiet brings the work
//! back at the next run. The full check always runs.
//!
//! One test function: it counts this process's SQLite connections, which other tests running in
//! parallel in the same binary would disturb.

#[path = "util/fleet.rs"]
mod fleet;

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use fleet::fleet_of;
use rusqlite::Connection;
use sqlite_exporter::checks::integrity::Mode;
use sqlite_exporter::checks::timetable::Job;
use sqlite_exporter::fleet::background::run_job;
use sqlite_exporter::fleet::events::NoEvents;
use sqlite_exporter::fleet::files::GRANULARITY;
use sqlite_exporter::fleet::monitor::{Monitor, IDLE_PROBE_EVERY};
use sqlite_exporter::sqlite::connection;

fn settle() {
    std::thread::sleep(GRANULARITY + Duration::from_millis(100));
}

fn write(db: &Path, sql: &str) {
    let c = Connection::open(db).unwrap();
    c.execute_batch(sql).unwrap();
}

fn last_check(m: &Monitor) -> (f64, String) {
    let r = m.checks().integrity.expect("a completed check");
    assert!(r.ok, "{:?}", r.messages);
    (r.finished_at, format!("{:?}", r.mode))
}

#[test]
fn idle_databases_are_probed_rarely_and_not_rechecked() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    write(
        &db,
        "PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES (1);",
    );
    let fleet = fleet_of(&db);
    let m = fleet.monitor("app").expect("monitor");
    let interval = m.config.settings.probes.interval.0;
    let (collectors, events, cancel) = (fleet.collectors(), NoEvents, AtomicBool::new(false));
    let t0 = Instant::now();
    let probe = |at: Duration| m.probe_unless_idle(collectors, &events, t0 + at);

    // Probes. Fresh files are not trusted to be unchanged (racily clean): probed every time.
    assert!(probe(Duration::ZERO), "the first probe runs");
    assert!(
        probe(interval),
        "files changed within the granularity are probed again"
    );
    settle();
    assert!(probe(interval * 2), "the first look after settling probes");
    let opened = connection::opened();
    for k in 3..(IDLE_PROBE_EVERY + 2) {
        assert!(
            !probe(interval * k),
            "an idle database was probed at interval {k}"
        );
    }
    assert_eq!(
        connection::opened(),
        opened,
        "a skipped probe opened SQLite"
    );
    assert!(
        probe(interval * (IDLE_PROBE_EVERY + 2)),
        "an idle database is still probed every {IDLE_PROBE_EVERY} intervals"
    );
    assert!(
        connection::opened() > opened,
        "the probe did not open SQLite"
    );
    // A write brings the probes back at the next interval.
    write(&db, "INSERT INTO t VALUES (2);");
    assert!(
        probe(interval * (IDLE_PROBE_EVERY + 3)),
        "a written database was not probed"
    );

    // Checks. The first quick check runs; once the files settled it runs once more (its stamp
    // was taken too close to the write), then its verdict is renewed without opening SQLite.
    run_job(&m, Job::Integrity(Mode::Quick), collectors, &cancel);
    let (first, _) = last_check(&m);
    settle();
    run_job(&m, Job::Integrity(Mode::Quick), collectors, &cancel);
    let (second, _) = last_check(&m);
    assert!(second > first, "the check after settling did not run");
    let opened = connection::opened();
    std::thread::sleep(Duration::from_millis(20));
    run_job(&m, Job::Integrity(Mode::Quick), collectors, &cancel);
    let (renewed, mode) = last_check(&m);
    assert_eq!(
        connection::opened(),
        opened,
        "an unchanged database was checked again"
    );
    assert!(
        renewed > second,
        "the verdict was not renewed: {second} -> {renewed}"
    );
    assert_eq!(mode, "Quick");
    // The full check always runs, unchanged files or not.
    run_job(&m, Job::Integrity(Mode::Full), collectors, &cancel);
    assert!(connection::opened() > opened, "the full check did not run");
    assert_eq!(last_check(&m).1, "Full");
    // A write makes the next quick check run again.
    write(&db, "INSERT INTO t VALUES (3);");
    let opened = connection::opened();
    run_job(&m, Job::Integrity(Mode::Quick), collectors, &cancel);
    assert!(
        connection::opened() > opened,
        "a written database was not checked"
    );
    assert_eq!(last_check(&m).1, "Quick");

    // A replaced file (a new inode under the same path) is checked.
    settle();
    run_job(&m, Job::Integrity(Mode::Quick), collectors, &cancel);
    let copy = dir.path().join("copy.db");
    write(&db, "PRAGMA wal_checkpoint(TRUNCATE);");
    std::fs::copy(&db, &copy).unwrap();
    std::fs::rename(&copy, &db).unwrap();
    let opened = connection::opened();
    run_job(&m, Job::Integrity(Mode::Quick), collectors, &cancel);
    assert!(
        connection::opened() > opened,
        "a replaced file was not checked"
    );
}
