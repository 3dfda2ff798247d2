//! Integration tests of the backup and restore engine on real SQLite files, with the sqlite3
//! CLI as an independent oracle and child processes of this test binary as "the application".

#[path = "util/backup_support.rs"]
mod backup_support;
#[path = "util/corrupt.rs"]
mod corrupt;
#[path = "util/sqlite3.rs"]
mod sqlite3;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use backup_support::*;
use rusqlite::Connection;
use sqlite_exporter::actions::backup::{self, BackupInfo, Method, Verify};
use sqlite_exporter::actions::restore;
use sqlite_exporter::actions::ErrorKind;

const WRITER_ENV: &str = "BACKUP_ENGINE_WRITER_DB";
const WRITER_STOP_ENV: &str = "BACKUP_ENGINE_WRITER_STOP";
const HOLDER_ENV: &str = "BACKUP_ENGINE_HOLDER_DB";

fn no_cancel() -> AtomicBool {
    AtomicBool::new(false)
}

fn quiet(_: backup::Progress) {}

/// A progress callback that sets `cancel` at its third call.
fn cancel_at_third_step(cancel: &AtomicBool) -> impl FnMut(backup::Progress) + '_ {
    let mut calls = 0;
    move |_| {
        calls += 1;
        if calls == 3 {
            cancel.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// `backup::create` without progress reports or cancellation.
fn create_quietly(
    database: &str,
    db: &Path,
    opts: &backup::BackupOptions,
    label: Option<&str>,
) -> Result<BackupInfo, backup::BackupError> {
    backup::create(database, db, opts, label, &mut quiet, &no_cancel())
}

/// `restore::restore` without progress reports or cancellation.
fn restore_quietly(
    database: &str,
    db: &Path,
    opts: &backup::BackupOptions,
    backup_file_name: &str,
    save_current: bool,
) -> Result<restore::RestoreReport, restore::RestoreError> {
    restore::restore(
        database,
        db,
        opts,
        backup_file_name,
        save_current,
        &mut quiet,
        &no_cancel(),
    )
}

/// A default-options, unlabelled backup of database `app` at `db` into `backups`.
fn backup_app(db: &Path, backups: &Path) -> backup::BackupInfo {
    create_quietly("app", db, &options(backups), None).unwrap()
}

/// Role of a separate process: commits transfers between accounts as fast as it can until the
/// stop file appears, then prints how many it committed and its longest commit.
#[test]
fn writer_process() {
    let (Ok(db), Ok(stop)) = (std::env::var(WRITER_ENV), std::env::var(WRITER_STOP_ENV)) else {
        return;
    };
    let conn = Connection::open(&db).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn.execute_batch("PRAGMA synchronous=NORMAL").unwrap();
    let accounts: i64 = conn
        .query_row("SELECT count(*) FROM accounts", [], |r| r.get(0))
        .unwrap();
    let (mut commits, mut longest, mut seed) = (0u64, Duration::ZERO, 0x2545_f491_4f6c_dd1du64);
    println!("writer ready");
    while !Path::new(&stop).exists() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let from = (seed % accounts as u64) as i64 + 1;
        let to = ((seed >> 20) % accounts as u64) as i64 + 1;
        let amount = (seed >> 40) as i64 % 50;
        let t = Instant::now();
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE;
             UPDATE accounts SET balance = balance - {amount} WHERE id = {from};
             UPDATE accounts SET balance = balance + {amount} WHERE id = {to};
             UPDATE stats SET commits = commits + 1;
             COMMIT;"
        ))
        .unwrap();
        longest = longest.max(t.elapsed());
        commits += 1;
    }
    println!(
        "writer commits={commits} longest_us={}",
        longest.as_micros()
    );
}

/// Role of a separate process holding the database open: prints the row count, waits for a
/// line on stdin, prints the row count again.
#[test]
fn holder_process() {
    let Ok(db) = std::env::var(HOLDER_ENV) else {
        return;
    };
    let conn = Connection::open(&db).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    let count = |c: &Connection| -> (i64, String) {
        c.query_row("SELECT count(*), max(name) FROM t", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap()
    };
    println!("holder before={:?}", count(&conn));
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    println!("holder after={:?}", count(&conn));
}

fn wait_for_line(reader: &mut impl BufRead, prefix: &str) -> String {
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "child exited before printing {prefix:?}"
        );
        // The harness may have printed "test name ... " before the child's own output.
        if let Some((_, rest)) = line.trim().split_once(prefix) {
            return rest.to_owned();
        }
    }
}

#[test]
fn ten_backups_under_a_concurrent_writer_are_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bank.db");
    let accounts = 5_000;
    make_bank(&db, accounts, 24, true);
    let stop = dir.path().join("stop");
    let mut writer = spawn_self(
        "writer_process",
        &[
            (WRITER_ENV, db.to_str().unwrap()),
            (WRITER_STOP_ENV, stop.to_str().unwrap()),
        ],
    );
    let mut out = BufReader::new(writer.stdout.take().unwrap());
    wait_for_line(&mut out, "writer ready");

    let opts = options(&dir.path().join("backups"));
    let commits = |p: &Path| query_i64(p, "SELECT commits FROM stats");
    let mut made = Vec::new();
    for _ in 0..10 {
        let before = commits(&db);
        let mut steps = 0;
        let info = backup::create("bank", &db, &opts, None, &mut |_| steps += 1, &no_cancel())
            .expect("backup under a concurrent writer");
        let after = commits(&db);
        assert!(
            steps > 1,
            "the copy should take several steps, took {steps}"
        );
        assert!(
            after > before,
            "the writer committed nothing during the backup ({before} -> {after})"
        );
        let in_copy = commits(&info.path);
        assert!(
            (before..=after).contains(&in_copy),
            "snapshot {in_copy} not within the backup window {before}..={after}"
        );
        made.push((info, after - before));
    }
    std::fs::write(&stop, b"").unwrap();
    let summary = wait_for_line(&mut out, "writer commits=");
    assert!(writer.wait().unwrap().success());
    println!("writer: commits={summary}");

    assert_eq!(backup::list("bank", &opts.dir).unwrap().len(), 10);
    for (info, window) in &made {
        assert_eq!(sqlite3::query(&info.path, "PRAGMA integrity_check"), "ok");
        assert_eq!(
            query_i64(&info.path, "SELECT sum(balance) FROM accounts"),
            accounts * BALANCE,
            "{}",
            info.file_name
        );
        assert_eq!(info.meta.schema_version, Some(7));
        backup::verify(info, Verify::Full).unwrap();
        println!(
            "{} committed {window} transfers during its backup",
            info.file_name
        );
    }
    assert_eq!(sqlite3::query(&db, "PRAGMA integrity_check"), "ok");
}

#[test]
fn backups_are_private_verified_and_described_by_their_sidecar() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    make_rows(&db, 500, "a", true);
    let backups = dir.path().join("nested/backups");
    let opts = options(&backups);
    let info = create_quietly("app", &db, &opts, Some("daily")).unwrap();

    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&backups), 0o700);
    assert_eq!(mode(&info.path), 0o600);
    let sidecar = backups.join(format!("{}.meta.json", info.file_name));
    assert_eq!(mode(&sidecar), 0o600);
    assert!(info.file_name.starts_with("app-") && info.file_name.ends_with("-daily.db"));

    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&sidecar).unwrap()).unwrap();
    assert_eq!(json["database"], "app");
    assert_eq!(json["label"], "daily");
    assert_eq!(json["verification"], "ok");
    assert_eq!(json["compressed"], false);
    let sha = sha256_hex(&info.path);
    assert_eq!(json["sha256"], sha.as_str());
    assert_eq!(json["size"], std::fs::metadata(&info.path).unwrap().len());
    assert_eq!(json["page_count"], query_i64(&db, "PRAGMA page_count"));
    assert!(json["created_at"].as_str().unwrap().ends_with('Z'));

    // The copy is a self-contained rollback-journal file: reading it creates no -wal/-shm.
    assert_eq!(sqlite3::query(&info.path, "PRAGMA journal_mode"), "delete");
    assert_eq!(sqlite3::query(&info.path, "SELECT count(*) FROM t"), "500");
    let listed = backup::list("app", &backups).unwrap();
    assert_eq!(listed, vec![info]);
    let names: Vec<_> = std::fs::read_dir(&backups)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "only the backup and its sidecar: {names:?}");
}

fn sha256_hex(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(std::fs::read(path).unwrap());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn rotation_keeps_the_newest_and_other_tools_backups_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    make_rows(&db, 100, "a", true);
    let other = dir.path().join("app-2.db");
    make_rows(&other, 10, "b", false);
    let backups = dir.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    // A backup made by another tool with the same naming, older than ours.
    let foreign = backups.join("app-2001-01-01_00-00-00-manual.db");
    sqlite3::query(&db, &format!(".backup '{}'", foreign.display()));
    // app-2's backups share the directory and must survive app's rotation.
    let opts = backup_support::options(&backups);
    create_quietly("app-2", &other, &opts, None).unwrap();

    let listed = backup::list("app", &backups).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].file_name, "app-2001-01-01_00-00-00-manual.db");
    assert!(!listed[0].has_sidecar);
    assert_eq!(listed[0].meta.label.as_deref(), Some("manual"));
    assert_eq!(listed[0].meta.created_at, "2001-01-01T00:00:00Z");
    assert_eq!(listed[0].meta.sha256, None);
    let checked = backup::verify(&listed[0], Verify::Full).unwrap();
    assert!(!checked.checksum_verified);

    let opts = backup::BackupOptions { keep: 3, ..opts };
    let mut made = Vec::new();
    for i in 0..4 {
        let label = format!("n{i}");
        made.push(create_quietly("app", &db, &opts, Some(&label)).unwrap());
    }
    let names: Vec<String> = backup::list("app", &backups)
        .unwrap()
        .into_iter()
        .map(|b| b.file_name)
        .collect();
    let expected: Vec<String> = made
        .iter()
        .rev()
        .take(3)
        .map(|b| b.file_name.clone())
        .collect();
    assert_eq!(names, expected, "newest first, only `keep` of them");
    assert!(
        !foreign.exists(),
        "the oldest (foreign) backup is rotated away"
    );
    assert!(!backups
        .join(format!("{}.meta.json", made[0].file_name))
        .exists());
    assert!(!made[0].path.exists());
    assert_eq!(backup::list("app-2", &backups).unwrap().len(), 1);
}

#[test]
fn leftover_temp_files_are_removed_and_never_listed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    make_rows(&db, 10, "a", true);
    let backups = dir.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    // What a killed run leaves: a temp copy, its journal, a half-written gzip and sidecar.
    let leftovers = [
        ".app.1700000000000000000-4242.db.tmp",
        ".app.1700000000000000000-4242.db.tmp-journal",
        ".app.1700000000000000001-4242.gz.tmp",
        ".app.1700000000000000002-4242.meta.tmp",
        ".app.1700000000000000003-4242.restore.tmp-wal",
    ];
    for name in leftovers {
        std::fs::write(backups.join(name), b"partial").unwrap();
    }
    std::fs::write(backups.join("notes.txt"), b"keep me").unwrap();
    assert!(backup::list("app", &backups).unwrap().is_empty());

    let mut removed = backup::remove_leftovers(&backups).unwrap();
    removed.sort();
    let mut expected: Vec<_> = leftovers.iter().map(|n| backups.join(n)).collect();
    expected.sort();
    assert_eq!(removed, expected);
    assert!(backups.join("notes.txt").exists());
    assert!(backup::remove_leftovers(&dir.path().join("missing"))
        .unwrap()
        .is_empty());
}

#[test]
fn corrupt_source_is_refused_and_no_backup_appears() {
    for method in [Method::default(), Method::VacuumInto] {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("app.db");
        make_rows(&db, 2000, "a", false);
        corrupt::table_root(&db, "t");
        assert_ne!(
            sqlite3::cli(&db, "PRAGMA quick_check"),
            "ok",
            "test corruption did not take"
        );
        let backups = dir.path().join("backups");
        let opts = backup::BackupOptions {
            method,
            ..options(&backups)
        };
        let err = create_quietly("app", &db, &opts, None).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Refused, "{method:?}: {err}");
        assert!(
            matches!(err, backup::BackupError::CorruptSource { .. }),
            "{method:?}: {err:?}"
        );
        let left: Vec<_> = std::fs::read_dir(&backups).unwrap().collect();
        assert!(left.is_empty(), "{method:?} left {left:?}");
    }
}

#[test]
fn vacuum_into_and_gzip_backups_verify_and_restore() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    make_rows(&db, 30_000, "old", true);
    let backups = dir.path().join("backups");
    let opts = backup::BackupOptions {
        method: Method::VacuumInto,
        compress_above: Some(0),
        ..options(&backups)
    };
    let info = create_quietly("app", &db, &opts, None).unwrap();
    assert!(info.file_name.ends_with(".db.gz"), "{}", info.file_name);
    assert!(info.meta.compressed);
    assert!(info.meta.size < std::fs::metadata(&db).unwrap().len());
    backup::verify(&info, Verify::Full).unwrap();

    make_rows(&db, 10, "new", true);
    let report = restore_quietly("app", &db, &opts, &info.file_name, true).unwrap();
    assert_eq!(report.restored_from, info.file_name);
    assert!(report.checksum_verified);
    assert_eq!(query_i64(&db, "SELECT count(*) FROM t"), 30_000);
    assert_eq!(sqlite3::query(&db, "PRAGMA journal_mode"), "wal");
    assert_eq!(sqlite3::query(&db, "PRAGMA integrity_check"), "ok");
    let saved = report.pre_restore_backup.expect("a pre-restore backup");
    assert!(saved.contains("-pre-restore.db"), "{saved}");
    let pre = backup::list("app", &backups)
        .unwrap()
        .into_iter()
        .find(|b| b.file_name == saved)
        .unwrap();
    let mut copy = pre.path.clone();
    if pre.meta.compressed {
        copy = dir.path().join("pre.db");
        let mut d = flate2::read::GzDecoder::new(std::fs::File::open(&pre.path).unwrap());
        std::io::copy(&mut d, &mut std::fs::File::create(&copy).unwrap()).unwrap();
    }
    assert_eq!(
        query_i64(&copy, "SELECT count(*) FROM t WHERE name LIKE 'new-%'"),
        10
    );
    // No temp files remain.
    for e in std::fs::read_dir(&backups).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        assert!(!name.starts_with('.'), "leftover {name}");
    }
}

fn restore_err(db: &Path, backups: &Path, name: &str) -> restore::RestoreError {
    let opts = options(backups);
    restore_quietly("app", db, &opts, name, true).unwrap_err()
}

#[test]
fn restore_rejects_bad_names_and_leaves_the_database_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    make_rows(&db, 100, "a", true);
    let backups = dir.path().join("backups");
    let info = backup_app(&db, &backups);
    // Something restorable outside the directory, to be sure a path can't reach it.
    std::fs::copy(&info.path, dir.path().join("x")).unwrap();
    make_rows(&db, 50, "b", true);
    let before = snapshot_files(&db);
    let listed_before = backup::list("app", &backups).unwrap();

    for (name, kind) in [
        ("../x", ErrorKind::InvalidInput),
        ("..", ErrorKind::InvalidInput),
        ("/etc/passwd", ErrorKind::InvalidInput),
        (
            &format!("../backups/{}", info.file_name),
            ErrorKind::InvalidInput,
        ),
        ("", ErrorKind::InvalidInput),
        (
            &format!("{}.meta.json", info.file_name),
            ErrorKind::NotFound,
        ),
        ("app-2001-01-01_00-00-00.db", ErrorKind::NotFound),
        ("wrong.db", ErrorKind::NotFound),
    ] {
        let err = restore_err(&db, &backups, name);
        assert_eq!(err.kind(), kind, "{name:?}: {err}");
    }
    // Another database's backup is unknown to this one.
    let err = restore_quietly("ap", &db, &options(&backups), &info.file_name, false).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);

    assert_eq!(snapshot_files(&db), before, "the database changed");
    assert_eq!(backup::list("app", &backups).unwrap(), listed_before);
}

#[test]
fn restore_refuses_an_altered_backup() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    make_rows(&db, 1000, "a", true);
    let backups = dir.path().join("backups");
    let info = backup_app(&db, &backups);
    make_rows(&db, 50, "b", true);

    // One byte changed inside a row: integrity_check would not notice, the checksum does.
    let mut bytes = std::fs::read(&info.path).unwrap();
    let at = bytes.windows(6).position(|w| w == b"a-1000").unwrap();
    bytes[at] = b'z';
    std::fs::write(&info.path, &bytes).unwrap();
    let before = snapshot_files(&db);
    let err = restore_err(&db, &backups, &info.file_name);
    assert_eq!(err.kind(), ErrorKind::Refused, "{err}");
    assert!(err.to_string().contains("sha256"), "{err}");
    assert_eq!(snapshot_files(&db), before, "the database changed");
    assert_eq!(
        backup::list("app", &backups).unwrap().len(),
        1,
        "no pre-restore backup"
    );

    // Without a sidecar the integrity check is the guard: a damaged b-tree is refused too.
    std::fs::remove_file(backups.join(format!("{}.meta.json", info.file_name))).unwrap();
    corrupt::table_root(&info.path, "t");
    let err = restore_err(&db, &backups, &info.file_name);
    assert_eq!(err.kind(), ErrorKind::Refused, "{err}");
    assert!(err.to_string().contains("integrity_check"), "{err}");
    assert_eq!(snapshot_files(&db), before, "the database changed");
}

#[test]
fn restore_while_another_process_holds_the_database_open() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    make_rows(&db, 300, "old", true);
    let backups = dir.path().join("backups");
    let opts = options(&backups);
    let info: BackupInfo = create_quietly("app", &db, &opts, None).unwrap();
    make_rows(&db, 20, "new", true);

    let mut holder = spawn_self("holder_process", &[(HOLDER_ENV, db.to_str().unwrap())]);
    let mut out = BufReader::new(holder.stdout.take().unwrap());
    assert_eq!(wait_for_line(&mut out, "holder before="), "(20, \"new-9\")");

    let mut steps = Vec::new();
    let report = restore::restore(
        "app",
        &db,
        &opts,
        &info.file_name,
        false,
        &mut |p| steps.push(p),
        &no_cancel(),
    )
    .unwrap();
    assert_eq!(report.pre_restore_backup, None);
    assert_eq!(report.backup_created_at, info.meta.created_at);
    assert_eq!(steps.last().map(|p| p.pages_done), Some(report.pages_after));

    writeln!(holder.stdin.take().unwrap()).unwrap();
    assert_eq!(
        wait_for_line(&mut out, "holder after="),
        "(300, \"old-99\")"
    );
    assert!(holder.wait().unwrap().success());
    assert_eq!(sqlite3::query(&db, "PRAGMA integrity_check"), "ok");
}

#[test]
fn restore_into_a_wal_database_with_another_page_size() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    {
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch("PRAGMA page_size=8192; VACUUM;")
            .unwrap();
    }
    make_rows(&db, 2000, "old", false);
    let backups = dir.path().join("backups");
    let opts = options(&backups);
    let info = create_quietly("app", &db, &opts, None).unwrap();
    assert_eq!(info.meta.page_size, Some(8192));
    {
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch("PRAGMA page_size=4096; VACUUM; PRAGMA journal_mode=WAL;")
            .unwrap();
    }
    make_rows(&db, 5, "new", true);

    let report = restore_quietly("app", &db, &opts, &info.file_name, true).unwrap();
    assert!(report.page_size_converted);
    assert_eq!(report.page_size, 4096);
    assert_eq!(query_i64(&db, "SELECT count(*) FROM t"), 2000);
    assert_eq!(sqlite3::query(&db, "PRAGMA journal_mode"), "wal");
    assert_eq!(sqlite3::query(&db, "PRAGMA integrity_check"), "ok");
}

#[test]
fn cancelled_backup_and_restore_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    make_bank(&db, 100, 8, true);
    let backups = dir.path().join("backups");
    let opts = backup::BackupOptions {
        method: Method::OnlineBackup {
            pages_per_step: 16,
            step_pause: Duration::ZERO,
        },
        ..options(&backups)
    };
    let cancel = AtomicBool::new(false);
    let err = backup::create(
        "bank",
        &db,
        &opts,
        None,
        &mut cancel_at_third_step(&cancel),
        &cancel,
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    assert_eq!(std::fs::read_dir(&backups).unwrap().count(), 0);

    let info = create_quietly("bank", &db, &opts, None).unwrap();
    {
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch("DELETE FROM padding").unwrap();
    }
    let before = query_i64(&db, "SELECT count(*) FROM padding");
    cancel.store(false, std::sync::atomic::Ordering::Relaxed);
    let err = restore::restore(
        "bank",
        &db,
        &opts,
        &info.file_name,
        false,
        &mut cancel_at_third_step(&cancel),
        &cancel,
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled, "{err}");
    assert_eq!(query_i64(&db, "SELECT count(*) FROM padding"), before);
    assert_eq!(sqlite3::query(&db, "PRAGMA integrity_check"), "ok");
}

#[test]
fn invalid_label_and_missing_database_are_classified() {
    let dir = tempfile::tempdir().unwrap();
    let backups = dir.path().join("backups");
    let db = dir.path().join("app.db");
    make_rows(&db, 1, "a", false);
    let err = create_quietly("app", &db, &options(&backups), Some("../x")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let err = create_quietly(
        "app",
        &dir.path().join("missing.db"),
        &options(&backups),
        None,
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(!dir.path().join("missing.db").exists());
}

#[test]
fn locked_database_is_reported_after_the_busy_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    make_rows(&db, 100, "a", false);
    let backups = dir.path().join("backups");
    let info = backup_app(&db, &backups);
    let blocker = Connection::open(&db).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let opts = backup::BackupOptions {
        busy_timeout: Duration::from_millis(200),
        ..options(&backups)
    };
    let t = Instant::now();
    let err = create_quietly("app", &db, &opts, None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Locked, "{err}");
    let err = restore_quietly("app", &db, &opts, &info.file_name, false).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Locked, "{err}");
    assert!(t.elapsed() < Duration::from_secs(5));
    blocker.execute_batch("ROLLBACK").unwrap();
}
