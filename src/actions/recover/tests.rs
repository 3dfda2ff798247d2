//! Tests of the parent module.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::Connection;

use super::*;
use crate::config::{ByteSize, DatabaseConfig, Settings};

fn monitor(path: &Path, dir: &Path, f: impl FnOnce(&mut Settings)) -> Monitor {
    let mut s = Settings::default();
    s.backup.dir = dir.join("backups");
    f(&mut s);
    Monitor::new(
        DatabaseConfig {
            name: "app".into(),
            path: path.to_path_buf(),
            settings: Arc::new(s),
        },
        0.0,
    )
}

fn dry_run(m: &Monitor) -> RecoveryReport {
    run(m, true, &ProgressCell::default(), &AtomicBool::new(false))
}

/// Every file under `dir` with the SHA-256 of its content, to show a dry run changed
/// nothing. The `-shm` is left out: it is SQLite's shared memory, where every reader (the
/// dry run's integrity check included) takes a read mark.
fn snapshot(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if !p.to_string_lossy().ends_with("-shm") {
                let sha = crate::backup_dir::sha256_file(&p).unwrap();
                out.push((p, sha));
            }
        }
    }
    out.sort();
    out
}

/// Table `t` in one leaf page, rollback-journal mode; returns its root page and the page
/// size (as tests/util/corrupt.rs builds its databases).
fn build(path: &Path) -> (u64, usize) {
    let c = Connection::open(path).unwrap();
    c.execute_batch(
        "PRAGMA journal_mode = DELETE; PRAGMA page_size = 4096;
         CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT NOT NULL);
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20)
         INSERT INTO t SELECT x, printf('row-%05d', x) FROM c;",
    )
    .unwrap();
    let root: u64 = c
        .query_row(
            "SELECT rootpage FROM sqlite_schema WHERE name = 't'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let page_size: usize = c.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
    (root, page_size)
}

/// Breaks table `t`'s leaf page: its first cell pointer points past the end of the page
/// (tests/util/corrupt.rs, `table_page_damage`). The file still opens; both checks fail.
fn damage_table_page(path: &Path, root: u64, page_size: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    let start = (root as usize - 1) * page_size;
    let page = &mut bytes[start..start + page_size];
    assert_eq!(page[0], 0x0d, "table root should be a single leaf page");
    page[8] = 0xff;
    page[9] = 0xf0;
    std::fs::write(path, bytes).unwrap();
}

fn backup_now(m: &Monitor) -> String {
    let opts = backup_options(&m.config.settings);
    backup::create(
        "app",
        &m.config.path,
        &opts,
        None,
        &mut |_| {},
        &AtomicBool::new(false),
    )
    .unwrap()
    .file_name
}

fn planned(r: &RecoveryReport, prefix: &str) -> bool {
    r.actions.iter().any(|a| a.starts_with(prefix))
}

fn assert_nothing_restored(r: &RecoveryReport) {
    assert!(r.dry_run);
    assert_eq!(r.quarantine, None, "{r:?}");
    assert_eq!(r.restored_from, None, "{r:?}");
    assert_eq!(r.data_loss_window_seconds, None, "{r:?}");
    assert!(r.skipped_backups.is_empty(), "{r:?}");
}

#[test]
fn a_healthy_database_plans_nothing_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    build(&path);
    let m = monitor(&path, dir.path(), |_| {});
    let before = snapshot(dir.path());
    let r = dry_run(&m);
    assert!(r.success, "{r:?}");
    assert!(!r.corrupt);
    assert_eq!(r.actions, vec!["integrity check passed".to_string()]);
    assert!(r.errors.is_empty(), "{r:?}");
    assert_nothing_restored(&r);
    assert_eq!(snapshot(dir.path()), before, "a dry run changes no file");
    assert!(!m.config.settings.backup.dir.exists());
}

#[test]
fn a_corrupt_database_plans_quarantine_and_the_newest_backup() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let (root, page_size) = build(&path);
    let m = monitor(&path, dir.path(), |_| {});
    let older = backup_now(&m);
    let newest = backup_now(&m);
    assert_ne!(older, newest);
    damage_table_page(&path, root, page_size);
    let before = snapshot(dir.path());

    let r = dry_run(&m);
    assert!(r.corrupt, "{r:?}");
    assert!(r.success, "a plan could be made: {r:?}");
    assert!(r.errors.is_empty(), "{r:?}");
    assert!(planned(&r, "integrity check FAILED"), "{r:?}");
    let quarantine = m.config.settings.backup.dir.join("quarantine");
    assert!(
        r.actions
            .iter()
            .any(|a| a.starts_with("would copy") && a.contains(&quarantine.display().to_string())),
        "{r:?}"
    );
    let restore = format!(
        "would restore the newest backup that verifies, trying {newest} first (2 candidates)"
    );
    assert!(r.actions.contains(&restore), "{r:?}");
    assert!(!planned(&r, "would VACUUM"), "{r:?}");
    assert_nothing_restored(&r);
    assert_eq!(snapshot(dir.path()), before, "nothing moved or written");
    assert!(!quarantine.exists());
}

#[test]
fn a_corrupt_database_without_backups_reports_none_and_moves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let (root, page_size) = build(&path);
    damage_table_page(&path, root, page_size);
    let m = monitor(&path, dir.path(), |_| {});
    let before = snapshot(dir.path());
    let r = dry_run(&m);
    assert!(r.corrupt, "{r:?}");
    assert!(!r.success, "{r:?}");
    assert_eq!(r.errors, vec!["no backup to restore from".to_string()]);
    assert!(!planned(&r, "would restore"), "{r:?}");
    assert_nothing_restored(&r);
    assert_eq!(snapshot(dir.path()), before);
    assert!(!m.config.settings.backup.dir.exists());
}

#[test]
fn a_wal_above_wal_critical_bytes_plans_a_truncate_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let writer = Connection::open(&path).unwrap();
    writer
        .execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; CREATE TABLE t(v);
             WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 200)
             INSERT INTO t SELECT randomblob(500) FROM c;",
        )
        .unwrap();
    let wal = crate::sqlite::wal::file_size(&crate::sqlite::wal::wal_path(&path)).unwrap();
    assert!(wal > 50_000, "{wal}");

    let m = monitor(&path, dir.path(), |s| {
        s.thresholds.wal_critical_bytes = ByteSize(wal - 1)
    });
    let before = snapshot(dir.path());
    let r = dry_run(&m);
    assert!(r.success && !r.corrupt, "{r:?}");
    let expected = format!(
        "would checkpoint (TRUNCATE): WAL is {wal} bytes, above {}",
        wal - 1
    );
    assert!(r.actions.contains(&expected), "{r:?}");
    assert_nothing_restored(&r);
    assert_eq!(snapshot(dir.path()), before, "WAL and database untouched");

    let m = monitor(&path, dir.path(), |s| {
        s.thresholds.wal_critical_bytes = ByteSize(wal)
    });
    let r = dry_run(&m);
    assert!(!planned(&r, "would checkpoint"), "at the threshold: {r:?}");
    drop(writer);
}

#[test]
fn low_utilization_plans_a_vacuum() {
    let dir = tempfile::tempdir().unwrap();
    let path = crate::actions::testing::fragmented_db(dir.path());
    let m = monitor(&path, dir.path(), |_| {});
    let before = snapshot(dir.path());
    let r = dry_run(&m);
    assert!(r.success && !r.corrupt, "{r:?}");
    let vacuum: Vec<&String> = r
        .actions
        .iter()
        .filter(|a| a.starts_with("would VACUUM: utilization "))
        .collect();
    assert_eq!(vacuum.len(), 1, "{r:?}");
    assert!(vacuum[0].ends_with("below 70%"), "{r:?}");
    assert_eq!(snapshot(dir.path()), before, "not vacuumed");

    let m = monitor(&path, dir.path(), |s| s.thresholds.min_utilization = 0.1);
    assert!(
        !planned(&dry_run(&m), "would VACUUM"),
        "above min_utilization"
    );
}

fn recover(m: &Monitor) -> RecoveryReport {
    run(m, false, &ProgressCell::default(), &AtomicBool::new(false))
}

/// Directories under `quarantine/`, sorted.
fn quarantined(m: &Monitor) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(m.config.settings.backup.dir.join("quarantine"))
        .map(|r| {
            r.map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn the_quarantine_keeps_the_newest_copies_of_each_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let (root, page_size) = build(&path);
    let m = monitor(&path, dir.path(), |s| s.backup.quarantine_keep = 2);
    backup_now(&m);
    // Another database's copy, whose name starts with this one's.
    let other = m
        .config
        .settings
        .backup
        .dir
        .join("quarantine/app-2-2020-01-01_00-00-00.000");
    std::fs::create_dir_all(&other).unwrap();
    let mut made = Vec::new();
    for _ in 0..4 {
        damage_table_page(&path, root, page_size);
        let r = recover(&m);
        assert!(r.success && r.corrupt, "{r:?}");
        made.push(r.quarantine.expect("quarantined"));
    }
    let mut want: Vec<String> = made[2..]
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    want.insert(0, "app-2-2020-01-01_00-00-00.000".into());
    assert_eq!(quarantined(&m), want, "the two newest of app, and app-2's");
    assert!(made[3].join("app.db").is_file());
}

#[test]
fn no_quarantine_below_the_disk_margin_but_the_recovery_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let (root, page_size) = build(&path);
    let m = monitor(&path, dir.path(), |s| {
        s.actions.vacuum_disk_margin = ByteSize(u64::MAX / 2)
    });
    let good = backup_now(&m);
    damage_table_page(&path, root, page_size);
    let r = recover(&m);
    assert!(r.corrupt, "{r:?}");
    assert_eq!(r.quarantine, None, "{r:?}");
    assert!(
        planned(&r, "quarantine skipped: the corrupt files need "),
        "{r:?}"
    );
    assert!(quarantined(&m).is_empty(), "nothing copied");
    assert_eq!(r.restored_from.as_deref(), Some(good.as_str()), "{r:?}");
    assert!(r.success, "{r:?}");
}
