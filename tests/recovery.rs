//! Checkpoints, recovery, VACUUM and the opt-in policies, over real HTTP and the CLI.

#[path = "util/corrupt.rs"]
mod corrupt;
#[path = "util/exporter.rs"]
mod exporter;
#[path = "util/sqlite3.rs"]
mod sqlite3;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use exporter::{api, build_db, eventually, files, must, value, Setup};
use rusqlite::Connection;
use serde_json::Value;
use sqlite3::integrity_ok;

/// A temp dir with `app.db`, a WAL database of 300 accounts holding 100 each, and a config for
/// it (`defaults` appended under `defaults:`, the control API on when `control`).
fn app(defaults: &str, control: bool) -> (PathBuf, Setup) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    build_db(
        &db,
        "PRAGMA journal_mode=WAL;
         CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
         CREATE INDEX accounts_balance ON accounts(balance);
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 300)
         INSERT INTO accounts(balance) SELECT 100 FROM c;",
    );
    let s = Setup::new(dir, &[("app", &db)], defaults, control);
    (db, s)
}

/// Runs `sqlite_exporter COMMAND... --config.file CONFIG DATABASE` and returns (exit code,
/// stdout JSON).
fn cli(s: &Setup, command: &[&str], database: &str) -> (i32, Value) {
    let out = Command::new(exporter::binary())
        .args(command)
        .arg("--config.file")
        .arg(&s.config)
        .arg(database)
        .output()
        .unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap(), v)
}

/// `POST /api/v1/databases/app/recover` with the token; returns status and JSON body.
fn recover_over_http(e: &exporter::Exporter, s: &Setup, dry_run: bool) -> (u16, Value) {
    let body = format!(r#"{{"dry_run":{dry_run}}}"#);
    api(
        e,
        "POST",
        "/api/v1/databases/app/recover",
        Some(&s.token),
        Some(&body),
    )
}

fn backup_now(s: &Setup, name: &str) -> String {
    let (code, v) = cli(s, &["backup"], name);
    assert_eq!(code, 0, "{v}");
    v["file_name"].as_str().unwrap().to_string()
}

fn count(path: &Path) -> i64 {
    sqlite3::query_readonly(path, "SELECT count(*) FROM accounts")
        .parse()
        .unwrap()
}

#[test]
fn recover_restores_a_database_corrupted_after_its_last_backup() {
    let (db, s) = app("", true);
    let backup = backup_now(&s, "app");
    build_db(&db, "INSERT INTO accounts(balance) VALUES (7), (8);");
    corrupt::table_root(&db, "accounts");
    assert!(!integrity_ok(&db), "the corruption took");

    let e = s.start(&[]);
    let (code, r) = recover_over_http(&e, &s, false);
    assert_eq!(code, 200, "{r:#}");
    assert_eq!(r["success"], true);
    assert_eq!(r["corrupt"], true);
    assert_eq!(r["restored_from"], backup.as_str());
    let window = r["data_loss_window_seconds"].as_f64().unwrap();
    assert!((0.0..120.0).contains(&window), "{window}");
    assert!(
        r["actions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a.as_str().unwrap().contains("changes since then are lost")),
        "{r:#}"
    );
    let q = Path::new(r["quarantine"].as_str().unwrap());
    assert!(q.starts_with(s.backups.join("quarantine")), "{q:?}");
    assert!(files(q).contains(&"app.db".to_string()), "{:?}", files(q));
    assert!(
        !integrity_ok(&q.join("app.db")),
        "the quarantined copy is the corrupt one"
    );
    assert!(integrity_ok(&db));
    assert_eq!(
        count(&db),
        300,
        "the backup's rows; the two later rows are the data-loss window"
    );
    let body = e.metrics();
    assert_eq!(
        must(&body, "sqlite_recoveries_total", &[("database", "app")]),
        1.0
    );
    assert_eq!(
        must(
            &body,
            "sqlite_recovery_failures_total",
            &[("database", "app")]
        ),
        0.0
    );
    assert_eq!(
        must(
            &body,
            "sqlite_integrity_check_success",
            &[("database", "app")]
        ),
        1.0
    );
}

#[test]
fn recovery_skips_a_damaged_newest_backup_and_uses_the_next_one() {
    let (db, s) = app("", true);
    let older = backup_now(&s, "app");
    std::thread::sleep(Duration::from_millis(1100));
    build_db(&db, "INSERT INTO accounts(balance) VALUES (1);");
    let newest = backup_now(&s, "app");
    assert_ne!(older, newest);
    let p = s.backups.join(&newest);
    let mut bytes = std::fs::read(&p).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0x55;
    std::fs::write(&p, bytes).unwrap();
    corrupt::table_root(&db, "accounts");
    assert!(!integrity_ok(&db), "the corruption took");

    let (code, r) = cli(&s, &["recover"], "app");
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["restored_from"], older.as_str(), "{r:#}");
    assert_eq!(r["skipped_backups"][0], newest.as_str());
    assert!(integrity_ok(&db));
    assert_eq!(count(&db), 300);
}

#[test]
fn dry_run_changes_no_byte_of_the_database_or_the_backup_directory() {
    let (db, s) = app("", true);
    backup_now(&s, "app");
    corrupt::table_root(&db, "accounts");
    assert!(!integrity_ok(&db), "the corruption took");
    let snapshot = |p: &Path| -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<(String, Vec<u8>)> = files(p)
            .into_iter()
            .map(|f| (f.clone(), std::fs::read(p.join(&f)).unwrap_or_default()))
            .collect();
        v.push(("db".into(), std::fs::read(&db).unwrap()));
        v
    };
    let before = snapshot(&s.backups);
    let e = s.start(&["--no-collector.integrity"]);
    let (code, r) = recover_over_http(&e, &s, true);
    assert_eq!(code, 200, "{r:#}");
    assert_eq!(r["dry_run"], true);
    assert!(
        r["actions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a.as_str().unwrap().starts_with("would restore")),
        "{r:#}"
    );
    assert_eq!(snapshot(&s.backups), before, "dry run changed something");
    assert!(!s.backups.join("quarantine").exists());
    let (code, r) = cli(&s, &["recover", "--dry-run"], "app");
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["dry_run"], true);
    assert_eq!(
        snapshot(&s.backups),
        before,
        "the CLI dry run changed something"
    );
    // Counters appear at a database's first action: a dry run must not make it appear above 0.
    let counted = value(
        &e.metrics(),
        "sqlite_recoveries_total",
        &[("database", "app")],
    );
    assert!(
        matches!(counted, None | Some(0.0)),
        "a dry run is not a recovery: {counted:?}"
    );
}

#[test]
fn auto_recover_restores_after_the_next_integrity_check_without_a_request() {
    let (db, s) = app(
        "  integrity_check: { interval: 1s }\n  auto: { recover: true }\n",
        false,
    );
    backup_now(&s, "app");
    let e = s.start(&[]);
    eventually(20, "a first integrity check", || {
        value(
            &e.metrics(),
            "sqlite_integrity_check_success",
            &[("database", "app")],
        ) == Some(1.0)
    });
    corrupt::table_root(&db, "accounts");
    assert!(!integrity_ok(&db), "the corruption took");
    eventually(30, "an automatic recovery", || {
        let b = e.metrics();
        value(&b, "sqlite_recoveries_total", &[("database", "app")]) == Some(1.0)
            && value(&b, "sqlite_integrity_check_success", &[("database", "app")]) == Some(1.0)
    });
    e.wait_log(&["policy action", "action=recovery", "integrity check failed"]);
    assert!(integrity_ok(&db));
    assert!(!files(&s.backups.join("quarantine")).is_empty());
}

#[test]
fn auto_checkpoint_brings_the_wal_back_while_the_writer_keeps_going() {
    let (db, s) = app("  thresholds: { wal_critical_bytes: 1MiB }\n  integrity_check: { interval: 1s }\n  auto: { checkpoint: true }\n", false);
    let stop = Arc::new(AtomicBool::new(false));
    let commits = Arc::new(AtomicU64::new(0));
    let writer = {
        let (db, stop, commits) = (db.clone(), stop.clone(), commits.clone());
        std::thread::spawn(move || {
            let c = Connection::open(&db).unwrap();
            c.busy_timeout(Duration::from_secs(5)).unwrap();
            c.execute_batch("PRAGMA wal_autocheckpoint=0;").unwrap();
            while !stop.load(Ordering::Relaxed) {
                c.execute(
                    "INSERT INTO accounts(balance) VALUES (?1)",
                    [commits.load(Ordering::Relaxed) as i64],
                )
                .unwrap();
                c.execute_batch(
                    "CREATE TABLE IF NOT EXISTS pad(v); INSERT INTO pad VALUES (randomblob(8000));",
                )
                .unwrap();
                commits.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let wal = dir_wal(&db);
    let e = s.start(&[]);
    eventually(30, "the WAL to pass 1 MiB", || {
        std::fs::metadata(&wal)
            .map(|m| m.len() > 1 << 20)
            .unwrap_or(false)
            || checkpoints(&e) > 0.0
    });
    eventually(10, "an automatic TRUNCATE checkpoint", || {
        checkpoints(&e) >= 1.0
    });
    let before = commits.load(Ordering::Relaxed);
    eventually(10, "the WAL back under 1 MiB", || {
        std::fs::metadata(&wal)
            .map(|m| m.len() < 1 << 20)
            .unwrap_or(true)
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        commits.load(Ordering::Relaxed) > before,
        "the writer kept committing"
    );
    e.wait_log(&["policy action", "action=checkpoint"]);
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
}

fn dir_wal(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push("-wal");
    s.into()
}

fn checkpoints(e: &exporter::Exporter) -> f64 {
    value(
        &e.metrics(),
        "sqlite_checkpoints_total",
        &[("database", "app"), ("mode", "truncate")],
    )
    .unwrap_or(0.0)
}

#[test]
fn a_checkpoint_blocked_by_a_reader_says_busy_and_what_it_could_not_copy() {
    let (db, s) = app("", true);
    let app = Connection::open(&db).unwrap();
    app.execute_batch("PRAGMA wal_autocheckpoint=0;").unwrap();
    let reader = Connection::open(&db).unwrap();
    reader
        .execute_batch("BEGIN; SELECT count(*) FROM accounts;")
        .unwrap();
    app.execute_batch("UPDATE accounts SET balance = balance + 1;")
        .unwrap();
    let e = s.start(&[]);
    let (code, r) = api(
        &e,
        "POST",
        "/api/v1/databases/app/checkpoint",
        Some(&s.token),
        Some(r#"{"mode":"restart"}"#),
    );
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["busy"], true, "{r}");
    assert!(r["frames_not_checkpointed"].as_i64().unwrap() > 0, "{r}");
    assert!(
        r["log_frames"].as_i64().unwrap() > r["checkpointed_frames"].as_i64().unwrap(),
        "{r}"
    );
    let body = e.metrics();
    assert_eq!(
        must(
            &body,
            "sqlite_checkpoint_failures_total",
            &[("database", "app"), ("mode", "restart")]
        ),
        1.0
    );
    let last_busy = |e: &exporter::Exporter| {
        value(
            &e.metrics(),
            "sqlite_checkpoint_last_busy",
            &[("database", "app")],
        )
    };
    assert_eq!(
        last_busy(&e),
        Some(1.0),
        "the last checkpoint came back busy"
    );
    let (code, _) = cli(&s, &["checkpoint", "--mode=restart"], "app");
    assert_eq!(
        code, 1,
        "the CLI does not report a busy checkpoint as success"
    );
    reader.execute_batch("COMMIT;").unwrap();
    let (code, r) = cli(&s, &["checkpoint", "--mode=truncate"], "app");
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["wal_bytes_after"], 0);
    let (code, r) = api(
        &e,
        "POST",
        "/api/v1/databases/app/checkpoint",
        Some(&s.token),
        Some(r#"{"mode":"passive"}"#),
    );
    assert_eq!((code, &r["busy"]), (200, &serde_json::json!(false)), "{r}");
    assert_eq!(last_busy(&e), Some(0.0), "the last checkpoint finished");
}

/// The length of a file (0 when it does not exist).
fn len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn wal_of(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push("-wal");
    PathBuf::from(p)
}

/// `PRAGMA name` of `conn` as a number.
fn pragma(conn: &Connection, name: &str) -> u64 {
    conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, i64>(0))
        .unwrap() as u64
}

#[test]
fn a_truncate_checkpoint_reports_the_frames_it_copied() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("big.db");
    // The application's connection stays open, so the WAL is not checkpointed when it closes.
    let app = Connection::open(&db).unwrap();
    app.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;
         CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 4000)
         INSERT INTO t(v) SELECT randomblob(1000) FROM c;",
    )
    .unwrap();
    let page_size = pragma(&app, "page_size");
    let wal = wal_of(&db);
    let wal_before = len(&wal);
    assert!(wal_before > 4_000_000, "{wal_before} bytes of WAL");
    // One WAL generation of committed transactions: a 32-byte header, then whole frames.
    let frames = (wal_before - 32) / (24 + page_size);
    let s = Setup::new(dir, &[("big", &db)], "", false);

    let (code, r) = cli(&s, &["checkpoint", "--mode=truncate"], "big");
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["busy"], false, "{r}");
    assert_eq!(r["wal_bytes_before"], wal_before, "{r}");
    assert_eq!(r["wal_bytes_after"], 0, "{r}");
    assert_eq!(len(&wal), 0);
    assert_eq!(r["log_frames"], frames, "the frames the WAL held: {r}");
    assert_eq!(r["checkpointed_frames"], frames, "every one copied: {r}");
    assert_eq!(r["frames_not_checkpointed"], 0, "{r}");
    let message = r["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("({frames} frames copied)")),
        "{message}"
    );
    // They are in the main file now.
    assert_eq!(len(&db), pragma(&app, "page_count") * page_size);
    assert_eq!(pragma(&app, "wal_checkpoint"), 0, "nothing left to copy");
}

/// A WAL database of 4,000 rows of 1 kB checkpointed into its file, then 3,000 of them deleted
/// (those pages are in the WAL), held open by the returned connection.
fn wal_db_with_deleted_rows(db: &Path) -> Connection {
    let app = Connection::open(db).unwrap();
    app.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;
         CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 4000)
         INSERT INTO t(v) SELECT randomblob(1000) FROM c;
         PRAGMA wal_checkpoint(TRUNCATE);
         DELETE FROM t WHERE id > 1000;",
    )
    .unwrap();
    assert!(len(&wal_of(db)) > 0, "the deletion is in the WAL");
    app
}

#[test]
fn vacuum_of_a_wal_database_leaves_the_smaller_file_it_reports() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let app = wal_db_with_deleted_rows(&db);
    let page_size = pragma(&app, "page_size");
    let size_before = len(&db);
    assert!(size_before > 4_000_000, "{size_before}");
    let s = Setup::new(dir, &[("app", &db)], "", false);

    let (code, r) = cli(&s, &["vacuum"], "app");
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["size_bytes_before"], size_before, "{r}");
    let pages_after = r["pages_after"].as_u64().unwrap();
    let size_after = r["size_bytes_after"].as_u64().unwrap();
    assert_eq!(size_after, len(&db), "the file as VACUUM left it: {r}");
    assert_eq!(size_after, pages_after * page_size, "{r}");
    assert!(size_after < size_before / 2, "{r}");
    // VACUUM wrote the rebuilt database into the WAL; the checkpoint after it moved it into
    // the file and emptied the WAL.
    let c = &r["checkpoint"];
    assert_eq!(c["mode"], "truncate", "{r}");
    assert_eq!(c["busy"], false, "{r}");
    assert!(c["log_frames"].as_u64().unwrap() >= pages_after, "{r}");
    assert_eq!(c["wal_bytes_after"], 0, "{r}");
    assert_eq!(len(&wal_of(&db)), 0);
    assert_eq!(pragma(&app, "page_count"), pages_after);
    assert_eq!(pragma(&app, "freelist_count"), 0);
    let rows: i64 = app
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 1000);
    drop(app);
    assert!(integrity_ok(&db));
}

#[test]
fn vacuum_says_when_a_reader_keeps_the_file_from_shrinking() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let app = wal_db_with_deleted_rows(&db);
    let reader = Connection::open(&db).unwrap();
    reader
        .execute_batch("BEGIN; SELECT count(*) FROM t;")
        .unwrap();
    let size_before = len(&db);
    let s = Setup::new(dir, &[("app", &db)], "", false);

    let (code, r) = cli(&s, &["vacuum"], "app");
    assert_eq!(code, 0, "VACUUM itself completed: {r}");
    let c = &r["checkpoint"];
    assert_eq!(
        c["busy"], true,
        "the reader's snapshot needs the old pages: {r}"
    );
    assert!(c["frames_not_checkpointed"].as_u64().unwrap() > 0, "{r}");
    assert!(c["wal_bytes_after"].as_u64().unwrap() > 0, "{r}");
    let size_after = r["size_bytes_after"].as_u64().unwrap();
    assert_eq!(
        size_after,
        len(&db),
        "the file as it is, not as it will be: {r}"
    );
    assert_eq!(size_after, size_before, "{r}");
    reader.execute_batch("COMMIT;").unwrap();
    drop(app);
}

fn fragmented(path: &Path) {
    build_db(
        path,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 3000)
         INSERT INTO t(v) SELECT randomblob(1000) FROM c;
         DELETE FROM t WHERE id > 1500;",
    );
}

#[test]
fn vacuum_raises_utilization_and_is_refused_without_disk() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.db"), dir.path().join("b.db"));
    fragmented(&a);
    fragmented(&b);
    let free: f64 = sqlite3::query_readonly(&a, "PRAGMA freelist_count")
        .parse()
        .unwrap();
    let pages: f64 = sqlite3::query_readonly(&a, "PRAGMA page_count")
        .parse()
        .unwrap();
    assert!(free / pages >= 0.3);
    let s = Setup::new(dir, &[("a", &a), ("b", &b)], "", true);
    let yaml = std::fs::read_to_string(&s.config).unwrap().replace(
        &format!("    path: {}\n", b.display()),
        &format!(
            "    path: {}\n    actions: {{ vacuum_disk_margin: 1000TB }}\n",
            b.display()
        ),
    );
    std::fs::write(&s.config, yaml).unwrap();
    let e = s.start(&[]);
    let (code, r) = api(
        &e,
        "POST",
        "/api/v1/databases/a/vacuum",
        Some(&s.token),
        None,
    );
    assert_eq!(code, 200, "{r}");
    assert!(r["utilization_after"].as_f64().unwrap() >= 0.99, "{r}");
    assert_eq!(sqlite3::query_readonly(&a, "PRAGMA freelist_count"), "0");
    let before = std::fs::read(&b).unwrap();
    let (code, r) = api(
        &e,
        "POST",
        "/api/v1/databases/b/vacuum",
        Some(&s.token),
        None,
    );
    assert_eq!(code, 422, "{r}");
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("free on the database's file system"),
        "{r}"
    );
    assert_eq!(
        std::fs::read(&b).unwrap(),
        before,
        "a refused VACUUM touches nothing"
    );
    let (code, _) = cli(&s, &["vacuum"], "b");
    assert_eq!(code, 1);
    let body = e.metrics();
    assert_eq!(
        must(&body, "sqlite_vacuums_total", &[("database", "a")]),
        1.0
    );
    assert_eq!(
        must(&body, "sqlite_vacuum_failures_total", &[("database", "b")]),
        1.0
    );
}

#[test]
fn recovery_replaces_a_database_whose_header_is_destroyed() {
    let (db, s) = app("", false);
    build_db(&db, "PRAGMA journal_mode=DELETE;");
    backup_now(&s, "app");
    let mut bytes = std::fs::read(&db).unwrap();
    bytes[..100].fill(0x5a);
    std::fs::write(&db, bytes).unwrap();
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let journal = db.with_file_name("app.db-journal");
    // A journal left next to the broken file (zeroed header: not hot, so readers may open).
    std::fs::write(&journal, [0u8; 512]).unwrap();
    let inode = std::fs::metadata(&db).unwrap().ino();
    let (code, r) = cli(&s, &["recover"], "app");
    assert_eq!(code, 0, "{r:#}");
    let said = |needle: &str| {
        r["actions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a.as_str().unwrap().contains(needle))
    };
    assert!(said("rewriting it in place"), "{r:#}");
    assert!(integrity_ok(&db));
    assert_eq!(count(&db), 300);
    let meta = std::fs::metadata(&db).unwrap();
    assert_eq!(
        meta.ino(),
        inode,
        "same file: the application's descriptors stay valid"
    );
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o644,
        "the file keeps its mode"
    );
    assert!(
        !journal.exists(),
        "the crashed journal is not replayed into the restored content"
    );
    let q = Path::new(r["quarantine"].as_str().unwrap());
    assert!(
        files(q).contains(&"app.db-journal".to_string()),
        "{:?}",
        files(q)
    );
}
