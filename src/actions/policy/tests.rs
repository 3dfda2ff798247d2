//! Tests of the parent module.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::Connection;

use super::*;
use crate::checks::integrity::Mode as IntegrityMode;
use crate::checks::{BackupSummary, IntegrityResult};
use crate::config::{ByteSize, DatabaseConfig, Settings};

fn monitor(path: &Path, settings: Settings) -> Arc<Monitor> {
    Arc::new(Monitor::new(
        DatabaseConfig {
            name: "app".into(),
            path: path.to_path_buf(),
            settings: Arc::new(settings),
        },
        0.0,
    ))
}

/// Settings with only the given policies on, and backups under `dir`.
fn settings(dir: &Path, f: impl FnOnce(&mut Settings)) -> Settings {
    let mut s = Settings::default();
    s.backup.dir = dir.join("backups");
    f(&mut s);
    s
}

/// A small, fully used database in rollback-journal mode.
fn dense_db(dir: &Path) -> PathBuf {
    let p = dir.join("app.db");
    Connection::open(&p)
        .unwrap()
        .execute_batch("CREATE TABLE t(v); INSERT INTO t VALUES (1), (2);")
        .unwrap();
    p
}

use crate::actions::testing::fragmented_db;

/// A WAL database whose `-wal` holds about 250 KiB: the returned writer keeps it open
/// (closing the last connection would checkpoint and delete the WAL).
fn wal_db(dir: &Path) -> (PathBuf, Connection) {
    let p = dir.join("app.db");
    let c = Connection::open(&p).unwrap();
    c.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; CREATE TABLE t(v);
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 500)
         INSERT INTO t SELECT randomblob(500) FROM c;",
    )
    .unwrap();
    (p, c)
}

fn wal_bytes(db: &Path) -> u64 {
    crate::sqlite::wal::file_size(&crate::sqlite::wal::wal_path(db)).unwrap()
}

fn integrity(ok: bool, finished_at: f64) -> IntegrityResult {
    IntegrityResult {
        mode: IntegrityMode::Quick,
        ok,
        errors: u64::from(!ok),
        messages: if ok {
            vec![]
        } else {
            vec!["row 3 missing from index t_v".into()]
        },
        foreign_key_violations: Some(0),
        duration_seconds: 0.01,
        finished_at,
    }
}

fn plant_integrity(m: &Monitor, ok: bool, finished_at: f64) {
    m.update_checks(|c| c.integrity = Some(integrity(ok, finished_at)));
}

fn due_policy(p: &Policies, m: &Monitor, now: Instant) -> Option<Policy> {
    p.due(m, now).map(|(policy, _, _)| policy)
}

fn record(p: &Policies, m: &Monitor, policy: Policy, ok: bool, now: Instant) {
    let mut states = p.state(&m.config.name);
    states
        .get_mut(&m.config.name)
        .unwrap()
        .record(policy, ok, now);
}

const MIN: Duration = Duration::from_secs(60);

#[test]
fn backoff_starts_at_a_minute_and_doubles_up_to_an_hour() {
    let mut s = PolicyState::default();
    let mut now = Instant::now();
    assert!(s.allowed(Policy::Backup, now), "no failure, no back-off");
    let expected = [1, 2, 4, 8, 16, 32, 60, 60, 60].map(|m| MIN * m);
    for (n, wait) in expected.into_iter().enumerate() {
        s.record(Policy::Backup, false, now);
        assert_eq!(s.failures(Policy::Backup), n as u32 + 1);
        assert!(
            !s.allowed(Policy::Backup, now + wait - Duration::from_millis(1)),
            "failure {}: still backing off just before {wait:?}",
            n + 1
        );
        assert!(
            s.allowed(Policy::Backup, now + wait),
            "failure {}: allowed again after {wait:?}",
            n + 1
        );
        now += wait;
    }
}

#[test]
fn a_success_clears_the_backoff_and_policies_back_off_separately() {
    let mut s = PolicyState::default();
    let now = Instant::now();
    s.record(Policy::Vacuum, false, now);
    s.record(Policy::Vacuum, false, now);
    assert!(!s.allowed(Policy::Vacuum, now + MIN));
    assert!(
        s.allowed(Policy::Checkpoint, now),
        "another policy is not held back"
    );
    assert_eq!(s.failures(Policy::Checkpoint), 0);
    s.record(Policy::Vacuum, true, now);
    assert!(s.allowed(Policy::Vacuum, now), "a success clears it");
    assert_eq!(s.failures(Policy::Vacuum), 0);
    s.record(Policy::Vacuum, false, now);
    assert!(
        s.allowed(Policy::Vacuum, now + MIN),
        "after a success the next failure starts again at 1 min"
    );
}

#[test]
fn checkpoint_fires_when_the_wal_passes_wal_critical_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _writer) = wal_db(dir.path());
    let wal = wal_bytes(&path);
    assert!(wal > 100_000, "the test needs a real WAL, got {wal} bytes");
    let now = Instant::now();

    let above = monitor(
        &path,
        settings(dir.path(), |s| {
            s.auto.checkpoint = true;
            s.thresholds.wal_critical_bytes = ByteSize(wal - 1);
        }),
    );
    let (policy, action, why) = Policies::default().due(&above, now).expect("due");
    assert_eq!(policy, Policy::Checkpoint);
    assert_eq!(
        action,
        Action::Checkpoint(checkpoint::Request::new(checkpoint::Mode::Truncate))
    );
    assert!(why.contains(&wal.to_string()), "{why}");

    let at = monitor(
        &path,
        settings(dir.path(), |s| {
            s.auto.checkpoint = true;
            s.thresholds.wal_critical_bytes = ByteSize(wal);
        }),
    );
    assert_eq!(
        Policies::default().due(&at, now),
        None,
        "a WAL at the threshold is not above it"
    );
}

#[test]
fn checkpoint_backs_off_after_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _writer) = wal_db(dir.path());
    let m = monitor(
        &path,
        settings(dir.path(), |s| {
            s.auto.checkpoint = true;
            s.thresholds.wal_critical_bytes = ByteSize(1);
        }),
    );
    let p = Policies::default();
    let now = Instant::now();
    assert_eq!(due_policy(&p, &m, now), Some(Policy::Checkpoint));
    record(&p, &m, Policy::Checkpoint, false, now);
    assert_eq!(due_policy(&p, &m, now + MIN / 2), None);
    assert_eq!(due_policy(&p, &m, now + MIN), Some(Policy::Checkpoint));
}

#[test]
fn recover_fires_once_per_failed_integrity_check() {
    let dir = tempfile::tempdir().unwrap();
    let path = dense_db(dir.path());
    let m = monitor(&path, settings(dir.path(), |s| s.auto.recover = true));
    let p = Policies::default();
    let now = Instant::now();
    assert_eq!(p.due(&m, now), None, "no check yet");

    plant_integrity(&m, true, 100.0);
    assert_eq!(p.due(&m, now), None, "a passing check");

    plant_integrity(&m, false, 200.0);
    let (policy, action, why) = p.due(&m, now).expect("a failed check");
    assert_eq!(policy, Policy::Recover);
    assert_eq!(action, Action::Recover(recover::Request { dry_run: false }));
    assert!(why.contains("row 3 missing from index t_v"), "{why}");
    assert_eq!(
        p.due(&m, now + MIN * 10),
        None,
        "the same failed check (same finished_at) is acted on once"
    );

    plant_integrity(&m, false, 300.0);
    assert_eq!(
        due_policy(&p, &m, now + MIN * 10),
        Some(Policy::Recover),
        "a newer failed check"
    );
}

#[test]
fn recover_gives_up_after_three_failures_until_a_check_passes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dense_db(dir.path());
    let m = monitor(&path, settings(dir.path(), |s| s.auto.recover = true));
    let p = Policies::default();
    let mut now = Instant::now();
    // Past any back-off.
    let hours = Duration::from_secs(2 * 3600);
    // Three, as documented: the loop does not read RECOVER_ATTEMPTS, so changing it fails.
    for attempt in 0..3 {
        plant_integrity(&m, false, 1000.0 + f64::from(attempt));
        assert_eq!(
            due_policy(&p, &m, now),
            Some(Policy::Recover),
            "attempt {}",
            attempt + 1
        );
        record(&p, &m, Policy::Recover, false, now);
        now += hours;
    }
    plant_integrity(&m, false, 2000.0);
    assert_eq!(
        due_policy(&p, &m, now),
        None,
        "after 3 failed recoveries a new failed check is not acted on"
    );
    assert_eq!(due_policy(&p, &m, now + hours * 10), None, "not even later");

    plant_integrity(&m, true, 3000.0);
    assert_eq!(due_policy(&p, &m, now), None);
    plant_integrity(&m, false, 4000.0);
    assert_eq!(
        due_policy(&p, &m, now),
        Some(Policy::Recover),
        "a passing check cleared the run of failures"
    );
}

#[test]
fn recover_backs_off_between_failed_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dense_db(dir.path());
    let m = monitor(&path, settings(dir.path(), |s| s.auto.recover = true));
    let p = Policies::default();
    let now = Instant::now();
    plant_integrity(&m, false, 1.0);
    assert_eq!(due_policy(&p, &m, now), Some(Policy::Recover));
    record(&p, &m, Policy::Recover, false, now);
    plant_integrity(&m, false, 2.0);
    assert_eq!(due_policy(&p, &m, now + MIN / 2), None, "backing off");
    assert_eq!(due_policy(&p, &m, now + MIN), Some(Policy::Recover));
}

#[test]
fn backup_fires_when_there_is_no_verified_backup_or_it_is_too_old() {
    let dir = tempfile::tempdir().unwrap();
    let path = dense_db(dir.path());
    let s = settings(dir.path(), |s| s.auto.backup = true);
    let interval = s.backup.interval.0.as_secs_f64();
    let m = monitor(&path, s);
    let p = Policies::default();
    let now = Instant::now();
    assert_eq!(
        p.due(&m, now),
        None,
        "the backup directory has not been looked at yet"
    );

    m.refresh_backups();
    let (policy, action, _) = p.due(&m, now).expect("no backup at all");
    assert_eq!(policy, Policy::Backup);
    assert_eq!(
        action,
        Action::Backup(backup::Request {
            label: Some("scheduled".into())
        })
    );

    let opts = crate::actions::backup_options(&m.config.settings);
    backup::create(
        "app",
        &path,
        &opts,
        None,
        &mut |_| {},
        &AtomicBool::new(false),
    )
    .unwrap();
    m.refresh_backups();
    assert!(m.checks().backups.unwrap().newest_file.is_some());
    assert_eq!(p.due(&m, now), None, "a fresh verified backup");

    let summary = |age: f64| BackupSummary {
        verified: 1,
        newest_file: Some("app-old.db".into()),
        newest_created_at: Some(crate::unix_now() - age),
        newest_size_bytes: Some(4096),
        ..Default::default()
    };
    m.update_checks(|c| c.backups = Some(summary(interval - 60.0)));
    assert_eq!(p.due(&m, now), None, "younger than backup.interval");
    m.update_checks(|c| c.backups = Some(summary(interval + 60.0)));
    assert_eq!(due_policy(&p, &m, now), Some(Policy::Backup), "older");
    m.update_checks(|c| c.backups = Some(BackupSummary::default()));
    assert_eq!(
        due_policy(&p, &m, now),
        Some(Policy::Backup),
        "backups, but none verified"
    );
}

#[test]
fn vacuum_fires_below_min_utilization_and_looks_again_after_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let path = fragmented_db(dir.path());
    let s = settings(dir.path(), |s| s.auto.vacuum = true);
    let interval = s.integrity_check.interval.0;
    let m = monitor(&path, s);
    let p = Policies::default();
    let now = Instant::now();
    let (policy, action, why) = p.due(&m, now).expect("fragmented");
    assert_eq!(policy, Policy::Vacuum);
    assert_eq!(action, Action::Vacuum(vacuum::Request {}));
    assert!(why.contains("below min_utilization 70%"), "{why}");
    assert_eq!(
        p.due(&m, now + interval - Duration::from_secs(1)),
        None,
        "not looked at again before integrity_check.interval"
    );
    assert_eq!(due_policy(&p, &m, now + interval), Some(Policy::Vacuum));

    let dense = tempfile::tempdir().unwrap();
    let path = dense_db(dense.path());
    let m = monitor(&path, settings(dense.path(), |s| s.auto.vacuum = true));
    assert_eq!(Policies::default().due(&m, now), None, "fully used");
}

#[test]
fn vacuum_threshold_is_min_utilization() {
    let dir = tempfile::tempdir().unwrap();
    let path = fragmented_db(dir.path());
    let m = monitor(
        &path,
        settings(dir.path(), |s| {
            s.auto.vacuum = true;
            s.thresholds.min_utilization = 0.1;
        }),
    );
    assert_eq!(Policies::default().due(&m, Instant::now()), None);
}

/// A database on which every policy would fire: a failed check, a big WAL, no backup, low
/// utilization.
fn everything_due(dir: &Path, auto: bool) -> (Arc<Monitor>, Connection) {
    let path = fragmented_db(dir);
    let writer = Connection::open(&path).unwrap();
    writer
        .execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;
             INSERT INTO t(v) SELECT randomblob(1000) FROM t LIMIT 50;",
        )
        .unwrap();
    assert!(wal_bytes(&path) > 1);
    let m = monitor(
        &path,
        settings(dir, |s| {
            s.thresholds.wal_critical_bytes = ByteSize(1);
            s.thresholds.min_utilization = 0.99;
            s.auto.checkpoint = auto;
            s.auto.recover = auto;
            s.auto.backup = auto;
            s.auto.vacuum = auto;
        }),
    );
    plant_integrity(&m, false, 1.0);
    m.update_checks(|c| c.backups = Some(BackupSummary::default()));
    (m, writer)
}

#[test]
fn nothing_fires_when_every_policy_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _writer) = everything_due(dir.path(), false);
    assert!(!m.config.settings.auto.any());
    assert_eq!(Policies::default().due(&m, Instant::now()), None);
}

#[test]
fn nothing_fires_while_an_action_runs_on_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _writer) = everything_due(dir.path(), true);
    let p = Policies::default();
    let now = Instant::now();
    let guard = m.begin_action("backup").unwrap();
    assert_eq!(p.due(&m, now), None);
    drop(guard);
    assert_eq!(
        due_policy(&p, &m, now),
        Some(Policy::Recover),
        "once the action is done; recovery comes first"
    );
    // With recovery done for that check, the next in line.
    assert_eq!(due_policy(&p, &m, now), Some(Policy::Checkpoint));
}

#[test]
fn a_policy_in_backoff_lets_the_next_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _writer) = everything_due(dir.path(), true);
    let p = Policies::default();
    let now = Instant::now();
    for policy in [Policy::Recover, Policy::Checkpoint, Policy::Backup] {
        assert_eq!(due_policy(&p, &m, now), Some(policy));
        record(&p, &m, policy, false, now);
    }
    assert_eq!(due_policy(&p, &m, now), Some(Policy::Vacuum));
    record(&p, &m, Policy::Vacuum, false, now);
    assert_eq!(due_policy(&p, &m, now), None, "all backing off");
}
