//! The deep-check engine against real SQLite files: integrity checks on healthy and corrupt
//! databases (with the `sqlite3` shell as oracle), interruption, writers during a check,
//! dbstat figures, and every supported migrations-table shape.

#[path = "util/corrupt.rs"]
mod corrupt;
#[path = "util/sqlite3.rs"]
mod sqlite3;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use sqlite_exporter::checks::integrity::{self, IntegrityOutcome, IntegrityReport, Mode};
use sqlite_exporter::checks::{dbstat, migrations};
use sqlite_exporter::sqlite::connection::open_read_only;
use sqlite_exporter::sqlite::interrupt::Stop;

const BUSY: Duration = Duration::from_secs(1);
const LONG: Duration = Duration::from_secs(600);

fn db_from_sql(dir: &Path, sql: &str) -> PathBuf {
    let path = dir.join("app.db");
    Connection::open(&path)
        .and_then(|c| c.execute_batch(sql))
        .expect("build database from SQL");
    path
}

fn check(path: &Path, mode: Mode) -> IntegrityOutcome {
    integrity::run(path, mode, LONG, BUSY, &AtomicBool::new(false))
}

fn completed(outcome: IntegrityOutcome) -> IntegrityReport {
    match outcome {
        IntegrityOutcome::Completed(report) => report,
        other => panic!("expected a completed check, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// integrity

#[test]
fn healthy_database_passes_both_checks() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_from_sql(
        dir.path(),
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT UNIQUE);
         CREATE INDEX t_v2 ON t(v, id);
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5000)
         INSERT INTO t SELECT x, hex(randomblob(20)) FROM c;",
    );
    for mode in [Mode::Quick, Mode::Full] {
        let report = completed(check(&path, mode));
        assert_eq!(report.mode, mode);
        assert!(report.ok, "{report:?}");
        assert_eq!(report.errors, 0);
        assert!(report.messages.is_empty());
        assert_eq!(report.foreign_key_violations, Some(0));
        assert!(report.duration > Duration::ZERO);
    }
}

#[test]
fn index_entry_mismatch_is_found_by_full_check_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = corrupt::index_entry_mismatch(dir.path());
    assert_eq!(sqlite3::cli(&path, "PRAGMA quick_check"), "ok");
    let oracle = sqlite3::cli(&path, "PRAGMA integrity_check");
    assert_ne!(oracle, "ok", "the builder must corrupt the index");

    let quick = completed(check(&path, Mode::Quick));
    assert!(quick.ok, "quick_check does not compare indexes: {quick:?}");
    let full = completed(check(&path, Mode::Full));
    assert!(!full.ok);
    assert!(full.errors >= 1);
    assert!(
        full.messages.iter().any(|m| m.contains("t_v")),
        "messages name the index: {:?} (sqlite3 said {oracle:?})",
        full.messages
    );
}

#[test]
fn table_page_damage_is_found_by_both_checks() {
    let dir = tempfile::tempdir().unwrap();
    let path = corrupt::table_page_damage(dir.path());
    assert_ne!(sqlite3::cli(&path, "PRAGMA quick_check"), "ok");
    assert_ne!(sqlite3::cli(&path, "PRAGMA integrity_check"), "ok");
    for mode in [Mode::Quick, Mode::Full] {
        let report = completed(check(&path, mode));
        assert!(!report.ok, "{mode:?}: {report:?}");
        assert!(report.errors >= 1);
        assert!(!report.messages.is_empty());
    }
}

#[test]
fn corruption_that_aborts_the_check_is_a_failed_check_not_an_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let path = corrupt::malformed_schema(dir.path());
    let oracle = sqlite3::cli(&path, "PRAGMA quick_check");
    assert!(oracle.contains("malformed"), "sqlite3 said {oracle:?}");
    for mode in [Mode::Quick, Mode::Full] {
        let report = completed(check(&path, mode));
        assert!(!report.ok);
        assert_eq!(report.errors, 1);
        assert!(
            report.messages[0].contains("malformed"),
            "{:?}",
            report.messages
        );
        assert_eq!(
            report.foreign_key_violations, None,
            "FK check cannot run on a corrupt schema: absent, not 0"
        );
    }
}

#[test]
fn foreign_key_violations_are_counted_separately_from_integrity() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_from_sql(
        dir.path(),
        "PRAGMA foreign_keys = OFF;
         CREATE TABLE parent(id INTEGER PRIMARY KEY);
         CREATE TABLE child(id INTEGER PRIMARY KEY, parent_id REFERENCES parent(id));
         INSERT INTO parent VALUES (1);
         INSERT INTO child VALUES (1, 1), (2, 2), (3, 3), (4, 99);",
    );
    let oracle = sqlite3::cli(&path, "SELECT count(*) FROM pragma_foreign_key_check");
    assert_eq!(oracle, "3");
    for mode in [Mode::Quick, Mode::Full] {
        let report = completed(check(&path, mode));
        assert!(report.ok, "FK violations are not integrity errors");
        assert_eq!(report.foreign_key_violations, Some(3));
    }
}

#[test]
fn unreadable_inputs_fail_with_a_classified_error() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"this is not a database, just some text".repeat(200)).unwrap();
    assert!(matches!(
        check(&junk, Mode::Quick),
        IntegrityOutcome::Failed(sqlite_exporter::sqlite::connection::OpenError::NotADatabase)
    ));
    assert!(matches!(
        check(dir.path(), Mode::Quick),
        IntegrityOutcome::Failed(sqlite_exporter::sqlite::connection::OpenError::Directory)
    ));
}

#[test]
fn long_check_is_interrupted_by_timeout_and_by_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.db");
    sqlite3::large_database(&path, 60);
    let full = completed(check(&path, Mode::Full));
    assert!(full.ok);
    let budget = full.duration / 20;

    let started = Instant::now();
    let never = AtomicBool::new(false);
    match integrity::run(&path, Mode::Full, budget, BUSY, &never) {
        IntegrityOutcome::Interrupted {
            mode,
            after,
            reason,
        } => {
            assert_eq!(mode, Mode::Full);
            assert_eq!(reason, Stop::Timeout(budget));
            assert!(after >= budget);
            assert!(
                started.elapsed() < full.duration * 3 / 5,
                "stopped promptly: {:?} of a {:?} check",
                started.elapsed(),
                full.duration
            );
        }
        other => panic!("expected a timeout, got {other:?}"),
    }

    let cancel = AtomicBool::new(false);
    let outcome = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(budget);
            cancel.store(true, Ordering::Relaxed);
        });
        integrity::run(&path, Mode::Full, LONG, BUSY, &cancel)
    });
    match outcome {
        IntegrityOutcome::Interrupted { reason, after, .. } => {
            assert_eq!(reason, Stop::Cancelled);
            assert!(after < full.duration * 3 / 5, "{after:?}");
        }
        other => panic!("expected a cancellation, got {other:?}"),
    }
}

#[test]
fn full_check_on_wal_database_never_blocks_a_writer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.db");
    sqlite3::large_database(&path, 30);
    Connection::open(&path)
        .and_then(|c| c.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE log(at, n);"))
        .unwrap();

    let stop = AtomicBool::new(false);
    let commits = AtomicU64::new(0);
    let (report, during) = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let conn = Connection::open(&path).unwrap();
            // No waiting allowed: any lock the check held against us would fail a commit.
            conn.busy_timeout(Duration::ZERO).unwrap();
            let mut n = 0i64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                conn.execute("INSERT INTO log VALUES (julianday('now'), ?1)", [n])
                    .expect("writer commit must never be blocked by the check");
                commits.fetch_add(1, Ordering::Relaxed);
            }
        });
        while commits.load(Ordering::Relaxed) == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let before = commits.load(Ordering::Relaxed);
        let report = completed(check(&path, Mode::Full));
        let during = commits.load(Ordering::Relaxed) - before;
        stop.store(true, Ordering::Relaxed);
        writer.join().expect("writer thread");
        (report, during)
    });
    assert!(report.ok, "{report:?}");
    assert!(
        during >= 20,
        "writer committed only {during} times during a {:?} check",
        report.duration
    );
}

// ---------------------------------------------------------------------------------------------
// dbstat

#[test]
fn unused_bytes_matches_the_sqlite3_shell() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_from_sql(
        dir.path(),
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000)
         INSERT INTO t SELECT x, randomblob(abs(random()) % 700) FROM c;
         DELETE FROM t WHERE id % 3 = 0;",
    );
    let oracle: u64 = sqlite3::cli(&path, "SELECT sum(unused) FROM dbstat")
        .parse()
        .expect("sqlite3 prints a number");
    let conn = open_read_only(&path, BUSY).unwrap();
    let never = AtomicBool::new(false);
    assert_eq!(dbstat::unused_bytes(&conn, LONG, &never).unwrap(), oracle);
    assert!(oracle > 0);
}

#[test]
fn table_rows_and_sizes_match_count_and_dbstat() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_from_sql(
        dir.path(),
        r#"CREATE TABLE users(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT);
           CREATE INDEX users_name ON users(name);
           CREATE TABLE "order items"(id INTEGER PRIMARY KEY, body BLOB);
           CREATE TABLE kv(k TEXT PRIMARY KEY, v) WITHOUT ROWID;
           WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1234)
           INSERT INTO users(name) SELECT hex(randomblob(8)) FROM c;
           WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 50)
           INSERT INTO "order items"(body) SELECT randomblob(6000) FROM c;
           INSERT INTO kv VALUES ('a', 1), ('b', 2);"#,
    );
    let conn = open_read_only(&path, BUSY).unwrap();
    let never = AtomicBool::new(false);
    let stats = dbstat::tables(&conn, LONG, &never).unwrap();
    let names: Vec<&str> = stats.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        ["kv", "order items", "users"],
        "sqlite_sequence skipped"
    );
    for table in &stats {
        let quoted = table.name.replace('\'', "''");
        let rows = sqlite3::cli(&path, &format!("SELECT count(*) FROM \"{}\"", table.name));
        assert_eq!(table.rows.to_string(), rows, "{}", table.name);
        let size = sqlite3::cli(
            &path,
            &format!("SELECT sum(pgsize) FROM dbstat WHERE name = '{quoted}'"),
        );
        assert_eq!(table.size_bytes.to_string(), size, "{}", table.name);
    }
    let items = &stats[1];
    assert!(items.size_bytes >= 50 * 6000, "overflow pages counted");
}

#[test]
fn dbstat_scans_stop_on_cancel_and_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.db");
    sqlite3::large_database(&path, 20);
    let conn = open_read_only(&path, BUSY).unwrap();
    let cancelled = AtomicBool::new(true);
    assert!(matches!(
        dbstat::unused_bytes(&conn, LONG, &cancelled),
        Err(dbstat::DbstatError::Interrupted(Stop::Cancelled))
    ));
    let never = AtomicBool::new(false);
    let tiny = Duration::from_millis(1);
    assert!(matches!(
        dbstat::tables(&conn, tiny, &never),
        Err(dbstat::DbstatError::Interrupted(Stop::Timeout(t))) if t == tiny
    ));
    // The connection is left usable and holds no snapshot.
    assert!(dbstat::unused_bytes(&conn, LONG, &never).is_ok());
    assert!(conn.is_autocommit());
}

// ---------------------------------------------------------------------------------------------
// migrations

fn migrations_of(
    sql: &str,
) -> Result<Option<migrations::MigrationStats>, migrations::MigrationsError> {
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(sql).unwrap();
    migrations::read(&conn, "schema_migrations")
}

fn stats(sql: &str) -> migrations::MigrationStats {
    migrations_of(sql)
        .expect("known shape")
        .expect("table exists")
}

const T0: f64 = 1_700_000_000.0;

#[test]
fn migrations_version_and_unix_seconds() {
    let s = stats(
        "CREATE TABLE schema_migrations(version INTEGER PRIMARY KEY, applied_at INTEGER);
         INSERT INTO schema_migrations VALUES (1, 1699990000), (2, 1700000000);",
    );
    assert_eq!(s.applied, 2);
    assert_eq!(s.failed, None, "no failure column: metric absent");
    assert_eq!(s.last_applied, Some(T0));
}

#[test]
fn migrations_version_name_and_text_times() {
    let s = stats(
        "CREATE TABLE schema_migrations(version TEXT, name TEXT, applied_at TEXT);
         INSERT INTO schema_migrations VALUES
           ('001', 'init', '2023-11-14 21:00:00'),
           ('002', 'users', '2023-11-14T22:13:20Z'),
           ('003', 'orders', '2023-11-14 22:13:19');",
    );
    assert_eq!(s.applied, 3);
    assert_eq!(s.last_applied, Some(T0));
}

#[test]
fn migrations_unix_milliseconds() {
    let s = stats(
        "CREATE TABLE schema_migrations(version, description, applied_at);
         INSERT INTO schema_migrations VALUES (1, 'a', 1700000000000), (2, 'b', 1600000000000);",
    );
    assert_eq!(s.last_applied, Some(T0));
}

#[test]
fn migrations_success_error_and_status_columns_mark_failures() {
    let s = stats(
        "CREATE TABLE schema_migrations(version, name, applied_at, execution_ms, success, error_message);
         INSERT INTO schema_migrations VALUES
           (1, 'a', '2023-11-14 22:13:20', 5, 1, NULL),
           (2, 'b', '2023-11-15 00:00:00', 7, 0, 'no such column: x'),
           (3, 'c', '2023-11-15 00:00:01', 9, 1, 'duplicate column');",
    );
    assert_eq!(s.applied, 1);
    assert_eq!(s.failed, Some(2));
    assert_eq!(
        s.last_applied,
        Some(T0),
        "failed rows do not count as applied"
    );

    let s = stats(
        "CREATE TABLE schema_migrations(version, applied_at, status);
         INSERT INTO schema_migrations VALUES
           (1, 1700000000, 'applied'), (2, 1700000100, 'FAILED'), (3, 1700000200, 'error');",
    );
    assert_eq!((s.applied, s.failed), (1, Some(2)));

    let s = stats(
        "CREATE TABLE schema_migrations(version, applied_at, success);
         INSERT INTO schema_migrations VALUES (1, 1700000000, 1), (2, 1700000001, 1);",
    );
    assert_eq!(
        (s.applied, s.failed),
        (2, Some(0)),
        "a failure column with no failure is 0"
    );
}

#[test]
fn migrations_golang_migrate_dirty_flag() {
    let dirty = stats(
        "CREATE TABLE schema_migrations(version uint64, dirty bool);
         INSERT INTO schema_migrations VALUES (42, 1);",
    );
    assert_eq!(
        (dirty.applied, dirty.failed, dirty.last_applied),
        (0, Some(1), None)
    );
    let clean = stats(
        "CREATE TABLE schema_migrations(version uint64, dirty bool);
         INSERT INTO schema_migrations VALUES (42, 0);",
    );
    assert_eq!((clean.applied, clean.failed), (1, Some(0)));
}

#[test]
fn migrations_rails_version_only() {
    let s = stats(
        "CREATE TABLE schema_migrations(version varchar NOT NULL PRIMARY KEY);
         INSERT INTO schema_migrations VALUES ('20231114221320'), ('20231115090000');",
    );
    assert_eq!((s.applied, s.failed, s.last_applied), (2, None, None));
}

#[test]
fn migrations_unknown_shape_names_the_columns() {
    let err =
        migrations_of("CREATE TABLE schema_migrations(foo, bar);").expect_err("unknown shape");
    let text = err.to_string();
    assert!(text.contains("foo, bar"), "{text}");
    assert!(text.contains("version"), "{text}");
}

#[test]
fn migrations_missing_table_is_absent_not_an_error() {
    assert!(migrations_of("CREATE TABLE other(version);")
        .unwrap()
        .is_none());
}

#[test]
fn migrations_table_name_is_quoted() {
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(
        r#"CREATE TABLE "my ""odd"" migrations"(version, applied_at);
           INSERT INTO "my ""odd"" migrations" VALUES (1, 1700000000);"#,
    )
    .unwrap();
    let s = migrations::read(&conn, r#"my "odd" migrations"#)
        .unwrap()
        .unwrap();
    assert_eq!(s.applied, 1);
    // A name that would inject SQL if interpolated is just a missing table.
    let hostile = r#"x"; DROP TABLE "my ""odd"" migrations"; --"#;
    assert!(migrations::read(&conn, hostile).unwrap().is_none());
}
