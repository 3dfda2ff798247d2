//! The chaos campaign: the real binary is killed with SIGKILL at random moments of a backup, a
//! restore, a recovery and a VACUUM of a real database, and after every kill:
//!
//! - the live database passes `integrity_check` and holds every row whose commit returned (a
//!   writer commits throughout the backup and VACUUM cases), or, where the action replaces the
//!   content (restore, recovery), holds either the old content or the new one, never a mix;
//! - a recovery killed half-way can be run again to the end;
//! - nothing half-written is listed or counted: a freshly started exporter counts every backup
//!   file as verified (none damaged or unverified), and every quarantined copy is whole;
//! - the temp files of the killed process are gone once the exporter has started again.
//!
//! Each case kills until `CHAOS_KILLS` kills (5 by default, what CI runs; 30 or more for a
//! campaign: `CHAOS_KILLS=30 cargo test --test chaos -- --nocapture`) have landed while the
//! action was running. The moments are drawn uniformly over the time an undisturbed run of
//! the same action took, from a seed printed with the figures (`CHAOS_SEED` replays one).

#[path = "util/corrupt.rs"]
mod corrupt;
#[path = "util/exporter.rs"]
mod exporter;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use exporter::{eventually, files, value, Setup};
use rusqlite::Connection;

/// Kills per case: `CHAOS_KILLS`, at least 1; 5 when unset.
fn kills() -> usize {
    std::env::var("CHAOS_KILLS")
        .ok()
        .map(|v| v.parse().expect("CHAOS_KILLS is a number"))
        .unwrap_or(5)
        .max(1)
}

/// A small xorshift generator: the moments only need to be spread and replayable.
struct Moments(u64);

impl Moments {
    /// Seeded from `CHAOS_SEED`, else from the clock; prints the seed.
    fn new(case: &str) -> Moments {
        let seed = std::env::var("CHAOS_SEED")
            .ok()
            .map(|v| v.parse().expect("CHAOS_SEED is a number"))
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("chaos {case}: seed {seed} (CHAOS_SEED={seed} replays it)");
        Moments(seed | 1)
    }

    /// A moment in `[0, span)`.
    fn within(&mut self, span: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        span.mul_f64((self.0 >> 11) as f64 / (1u64 << 53) as f64)
    }
}

/// A database `app.db` (WAL unless `rollback`) with table `t(id, v)` for the writer's rows and
/// `padding_mib` MiB of random blobs (half of them deleted when `holes`, so VACUUM has work),
/// and a config naming it `app` with a backup directory.
fn setup(padding_mib: i64, holes: bool, rollback: bool) -> (PathBuf, Setup) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let conn = Connection::open(&db).unwrap();
    let mode = if rollback { "DELETE" } else { "WAL" };
    conn.execute_batch(&format!(
        "PRAGMA journal_mode={mode};
         CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB NOT NULL);
         CREATE TABLE padding(id INTEGER PRIMARY KEY, body BLOB);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {padding_mib} * 256)
         INSERT INTO padding SELECT i, randomblob(4000) FROM n;"
    ))
    .unwrap();
    if holes {
        conn.execute_batch("DELETE FROM padding WHERE id % 2 = 0;")
            .unwrap();
    }
    drop(conn);
    let s = Setup::new(dir, &[("app", &db)], "    keep: 1000\n", false);
    (db, s)
}

/// Commits rows `(id, v)` with ids counting up from 1 until stopped; remembers the last id
/// whose commit returned.
struct Writer {
    stop: Arc<AtomicBool>,
    committed: Arc<AtomicI64>,
    handle: std::thread::JoinHandle<()>,
}

impl Writer {
    /// Starts writing after the rows already in `t`.
    fn start(db: &Path) -> Writer {
        let conn = Connection::open(db).unwrap();
        conn.busy_timeout(Duration::from_secs(30)).unwrap();
        let first: i64 = conn
            .query_row("SELECT coalesce(max(id), 0) FROM t", [], |r| r.get(0))
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let committed = Arc::new(AtomicI64::new(first));
        let handle = {
            let (stop, committed) = (stop.clone(), committed.clone());
            std::thread::spawn(move || {
                let mut next = first + 1;
                while !stop.load(Ordering::Relaxed) {
                    // A commit that fails (busy past the timeout) is not counted and retried.
                    if conn
                        .execute("INSERT INTO t VALUES (?1, randomblob(200))", [next])
                        .is_ok()
                    {
                        committed.store(next, Ordering::SeqCst);
                        next += 1;
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        };
        Writer {
            stop,
            committed,
            handle,
        }
    }

    /// Stops and returns the last committed id.
    fn stop(self) -> i64 {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap();
        self.committed.load(Ordering::SeqCst)
    }
}

/// The result of `PRAGMA integrity_check` of `db` (opened read-write, as the application
/// would, so a hot journal left by the killed process is rolled back first).
fn integrity(db: &Path) -> String {
    let conn = Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(30)).unwrap();
    conn.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))
        .unwrap_or_else(|e| e.to_string())
}

/// What identifies the content of `t`: row count, highest id, and a sum over the ids.
fn content(db: &Path) -> (i64, i64, i64) {
    let conn = Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(30)).unwrap();
    conn.query_row(
        "SELECT count(*), coalesce(max(id), 0), coalesce(sum(id * 7919 % 1000003), 0) FROM t",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .unwrap()
}

/// `sqlite_exporter ARGS --config.file CONFIG`, not waited for.
fn spawn(s: &Setup, args: &[&str]) -> std::process::Child {
    Command::new(exporter::binary())
        .args(args)
        .arg("--config.file")
        .arg(&s.config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Runs `args` to the end; asserts exit 0; returns how long it took.
fn run(s: &Setup, args: &[&str]) -> Duration {
    let t = Instant::now();
    let out = Command::new(exporter::binary())
        .args(args)
        .arg("--config.file")
        .arg(&s.config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    t.elapsed()
}

/// Starts `args` and SIGKILLs it after `after`; true when it was still running then.
fn kill_after(s: &Setup, args: &[&str], after: Duration) -> bool {
    let mut child = spawn(s, args);
    std::thread::sleep(after);
    let running = child.try_wait().unwrap().is_none();
    let _ = child.kill(); // SIGKILL
    child.wait().unwrap();
    running
}

/// The backup files in the backup directory: names the exporter would list (no sidecars, no
/// temp files, no quarantine).
fn backup_files(s: &Setup) -> Vec<String> {
    files(&s.backups)
        .into_iter()
        .filter(|n| !n.starts_with('.') && !n.ends_with(".meta.json") && n != "quarantine")
        .collect()
}

/// Starts the exporter on the setup's config and asserts what a restart must show: no temp
/// file left in the backup directory or the quarantine, and every backup file counted as
/// verified (none damaged, none unverified, none missing).
fn assert_clean_after_restart(s: &Setup, case: &str, i: usize) {
    let e = s.start(&[]);
    // No series while the backup directory does not exist (VACUUM makes no backup).
    let expected = s.backups.exists().then(|| backup_files(s).len() as f64);
    let zero = expected.map(|_| 0.0);
    let mut last = String::new();
    eventually(60, "every backup file verified after the restart", || {
        let m = e.metrics();
        let state = |st: &str| value(&m, "sqlite_backup_files", &[("state", st)]);
        let seen = (state("verified"), state("unverified"), state("damaged"));
        last = format!("{seen:?}, {expected:?} files: {:?}", files(&s.backups));
        seen == (expected, zero, zero)
    });
    eprintln!("chaos {case} #{i}: backups (verified, unverified, damaged) = {last}");
    for dir in [s.backups.clone(), s.backups.join("quarantine")] {
        let left: Vec<String> = files(&dir)
            .into_iter()
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(
            left.is_empty(),
            "{case} #{i}: temp files left in {} after the restart: {left:?}",
            dir.display()
        );
    }
    drop(e);
}

/// Fails when too few kills land while the action runs (the draw is over the undisturbed
/// run's duration, and a run can be quicker): `kills()` must land within four times as many.
fn attempts_left(case: &str, attempts: usize, mid_action: usize) {
    assert!(
        attempts < 4 * kills(),
        "{case}: only {mid_action} of {attempts} kills landed while the action ran"
    );
}

/// Prints the tally of one case.
fn report(case: &str, kills: usize, mid_action: usize, undisturbed: Duration) {
    eprintln!(
        "chaos {case}: {kills} SIGKILLs, {mid_action} of them while the action ran \
         (undisturbed run {:.0} ms), 0 failures",
        undisturbed.as_secs_f64() * 1000.0
    );
}

/// Kills a backup while a writer commits: every committed row survives, and the backup
/// directory holds only whole, verified backups once the exporter is back.
#[test]
fn sigkill_during_backup() {
    const CASE: &str = "backup";
    let (db, s) = setup(3, false, false);
    let undisturbed = run(&s, &["backup", "app"]);
    let mut moments = Moments::new("backup");
    let mut mid = 0;
    let mut i = 0;
    while mid < kills() {
        attempts_left(CASE, i, mid);
        let writer = Writer::start(&db);
        mid += usize::from(kill_after(
            &s,
            &["backup", "app"],
            moments.within(undisturbed),
        ));
        let committed = writer.stop();
        assert_eq!(integrity(&db), "ok", "backup #{i}");
        let (rows, max, _) = content(&db);
        assert_eq!(
            (rows, max),
            (committed, committed),
            "backup #{i}: rows lost"
        );
        assert_clean_after_restart(&s, "backup", i);
        i += 1;
    }
    report(CASE, i, mid, undisturbed);
}

/// Kills a VACUUM while a writer commits: every committed row survives.
#[test]
fn sigkill_during_vacuum() {
    const CASE: &str = "vacuum";
    let (db, s) = setup(8, false, false);
    // Every round, the undisturbed one too, starts with 8 MiB of new rows and the oldest
    // 8 MiB deleted, so each VACUUM has the same work.
    let punch = || {
        Connection::open(&db)
            .unwrap()
            .execute_batch(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2048)
                 INSERT INTO padding(body) SELECT randomblob(4000) FROM n;
                 DELETE FROM padding WHERE id IN (SELECT id FROM padding ORDER BY id LIMIT 2048);",
            )
            .unwrap();
    };
    punch();
    let undisturbed = run(&s, &["vacuum", "app"]);
    let mut moments = Moments::new("vacuum");
    let mut mid = 0;
    let mut i = 0;
    while mid < kills() {
        attempts_left(CASE, i, mid);
        punch();
        let writer = Writer::start(&db);
        mid += usize::from(kill_after(
            &s,
            &["vacuum", "app"],
            moments.within(undisturbed),
        ));
        let committed = writer.stop();
        assert_eq!(integrity(&db), "ok", "vacuum #{i}");
        let (rows, max, _) = content(&db);
        assert_eq!(
            (rows, max),
            (committed, committed),
            "vacuum #{i}: rows lost"
        );
        assert_clean_after_restart(&s, "vacuum", i);
        i += 1;
    }
    report(CASE, i, mid, undisturbed);
}

/// Kills a restore: the live database holds either its content from before the restore or
/// the backup's, whole; the pre-restore backup it was taking is never counted half-made.
#[test]
fn sigkill_during_restore() {
    const CASE: &str = "restore";
    let (db, s) = setup(2, false, false);
    let writer = Writer::start(&db);
    std::thread::sleep(Duration::from_millis(200));
    writer.stop();
    run(&s, &["backup", "app"]);
    let backup = backup_files(&s).pop().expect("one backup");
    let from_backup = content(&db);
    let undisturbed = {
        Writer::start(&db).stop();
        run(&s, &["restore", "app", &backup])
    };
    assert_eq!(content(&db), from_backup, "an undisturbed restore restores");
    let mut moments = Moments::new("restore");
    let mut mid = 0;
    let mut i = 0;
    while mid < kills() {
        attempts_left(CASE, i, mid);
        // New rows make the live content differ from the backup's.
        let writer = Writer::start(&db);
        std::thread::sleep(Duration::from_millis(50));
        writer.stop();
        let before = content(&db);
        assert_ne!(before, from_backup);
        mid += usize::from(kill_after(
            &s,
            &["restore", "app", &backup],
            moments.within(undisturbed),
        ));
        assert_eq!(integrity(&db), "ok", "restore #{i}");
        let after = content(&db);
        assert!(
            after == before || after == from_backup,
            "restore #{i}: content {after:?} is neither the old {before:?} nor the backup's \
             {from_backup:?}"
        );
        assert_clean_after_restart(&s, "restore", i);
        i += 1;
    }
    report(CASE, i, mid, undisturbed);
}

/// Kills a recovery of a corrupt database: the live database is either still the corrupt one
/// or the restored backup, whole; a second recovery then finishes; every quarantined copy is
/// a whole copy of the corrupt file.
#[test]
fn sigkill_during_recovery() {
    const CASE: &str = "recovery";
    let (db, s) = setup(4, false, true);
    let writer = Writer::start(&db);
    std::thread::sleep(Duration::from_millis(200));
    writer.stop();
    run(&s, &["backup", "app"]);
    let good = content(&db);
    // The corrupt bytes every round starts from.
    corrupt::table_root(&db, "padding");
    let corrupt_bytes = std::fs::read(&db).unwrap();
    assert_ne!(integrity(&db), "ok");
    let undisturbed = run(&s, &["recover", "app"]);
    assert_eq!((integrity(&db), content(&db)), ("ok".to_owned(), good));
    let mut moments = Moments::new("recovery");
    let mut mid = 0;
    let mut i = 0;
    while mid < kills() {
        attempts_left(CASE, i, mid);
        for side in ["app.db-journal", "app.db-wal", "app.db-shm"] {
            let _ = std::fs::remove_file(db.with_file_name(side));
        }
        std::fs::write(&db, &corrupt_bytes).unwrap();
        mid += usize::from(kill_after(
            &s,
            &["recover", "app"],
            moments.within(undisturbed),
        ));
        if integrity(&db) == "ok" {
            assert_eq!(content(&db), good, "recovery #{i}: restored content");
        } else {
            run(&s, &["recover", "app"]);
            assert_eq!(integrity(&db), "ok", "recovery #{i}: the second run");
            assert_eq!(
                content(&db),
                good,
                "recovery #{i}: the second run's content"
            );
        }
        for copy in files(&s.backups.join("quarantine")) {
            if copy.starts_with('.') {
                continue; // a temp copy: the restart must remove it (checked below)
            }
            let bytes = std::fs::read(s.backups.join("quarantine").join(&copy).join("app.db"))
                .unwrap_or_default();
            assert!(
                bytes == corrupt_bytes,
                "recovery #{i}: quarantined copy {copy} is not a whole copy ({} of {} bytes)",
                bytes.len(),
                corrupt_bytes.len()
            );
        }
        assert_clean_after_restart(&s, "recovery", i);
        i += 1;
    }
    report(CASE, i, mid, undisturbed);
}
