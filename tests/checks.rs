//! End-to-end tests of the background checks through the real binary: corruption
//! found by the right check, dbstat and tables against the `sqlite3` CLI, interrupted checks
//! reported unknown, and the `check` CLI with `--full`.

#[path = "util/corrupt.rs"]
mod corrupt;
#[path = "util/exporter.rs"]
mod exporter;
#[path = "util/sqlite3.rs"]
mod sqlite3;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use exporter::{must, value, Exporter};

fn check(args: &[&str]) -> (i32, String) {
    let out = Command::new(exporter::binary())
        .arg("check")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// How long a test waits for the background checks to show in a scrape.
const CHECKS_SHOW: Duration = Duration::from_secs(20);

fn write_config(dir: &Path, body: &str) -> String {
    let p = dir.join("sqlite_exporter.yml");
    std::fs::write(&p, body).unwrap();
    p.to_string_lossy().into_owned()
}

#[test]
fn index_corruption_fails_the_full_check_only_and_table_damage_fails_both() {
    let dir = tempfile::tempdir().unwrap();
    let index = corrupt::index_entry_mismatch(dir.path());
    let table = corrupt::table_page_damage(dir.path());
    let index = index.to_str().unwrap();
    let table = table.to_str().unwrap();

    let (code, out) = check(&["--output=json", index]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["databases"][0]["checks"]["integrity"]["mode"], "quick",
        "{out}"
    );
    assert_eq!(
        v["databases"][0]["checks"]["integrity"]["ok"], true,
        "quick_check must pass: {out}"
    );
    assert_ne!(code, 2, "{out}");

    let (code, out) = check(&["--full", index]);
    assert_eq!(
        code, 2,
        "the full check must find the index mismatch: {out}"
    );
    assert!(
        out.contains("full integrity check failed") && out.contains("missing from index"),
        "{out}"
    );

    for args in [vec![table], vec!["--full", table]] {
        let (code, out) = check(&args);
        assert_eq!(code, 2, "{args:?}: {out}");
        assert!(out.contains("integrity check failed"), "{out}");
    }
}

#[test]
fn the_server_reports_index_corruption_after_the_next_full_check_not_the_quick_one() {
    let dir = tempfile::tempdir().unwrap();
    let index = corrupt::index_entry_mismatch(dir.path());
    let healthy = dir.path().join("aaa.db");
    exporter::build_db(&healthy, "CREATE TABLE t(x);");
    // Two databases: the first (aaa) gets its first full check at once, the second
    // (index-entry-mismatch) half a full_interval later; quick checks run every second.
    let config = write_config(
        dir.path(),
        &format!(
            "defaults:\n  integrity_check: {{ interval: 1s, full_interval: 6s }}\ndatabases:\n  - path: {}\n  - name: idx\n    path: {}\n",
            healthy.display(),
            index.display()
        ),
    );
    let e = Exporter::start(&["--config.file", &config]);
    let l = [("database", "idx")];
    let body = e.metrics_until(CHECKS_SHOW, "a quick check of idx", |b| {
        value(b, "sqlite_integrity_check_success", &l).is_some()
    });
    assert_eq!(
        must(&body, "sqlite_integrity_check_success", &l),
        1.0,
        "quick_check cannot see it"
    );
    let body = e.metrics_until(CHECKS_SHOW, "the full check of idx", |b| {
        value(b, "sqlite_integrity_check_success", &l) == Some(0.0)
    });
    assert_eq!(
        must(
            &body,
            "sqlite_health_status",
            &[("database", "idx"), ("status", "critical")]
        ),
        1.0
    );
    assert!(must(&body, "sqlite_integrity_check_errors", &l) >= 1.0);
    e.wait_log(&["integrity check FAILED", "database=idx", "mode=full"]);
}

#[test]
fn dbstat_and_tables_equal_the_sqlite3_cli() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("stats.db");
    exporter::build_db(
        &db,
        "CREATE TABLE a(id INTEGER PRIMARY KEY, v TEXT);
         CREATE TABLE \"b c\"(id INTEGER PRIMARY KEY, v BLOB);
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000)
         INSERT INTO a(v) SELECT printf('%.*c', x % 300, 'x') FROM c;
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 77)
         INSERT INTO \"b c\"(v) SELECT randomblob(5000) FROM c;
         DELETE FROM a WHERE id % 3 = 0;",
    );
    let config = write_config(
        dir.path(),
        &format!("defaults:\n  integrity_check: {{ interval: 1s }}\n  dbstat: {{ interval: 1s }}\ndatabases:\n  - path: {}\n", db.display()),
    );
    let e = Exporter::start(&[
        "--config.file",
        &config,
        "--collector.dbstat",
        "--collector.tables",
    ]);
    let l = [("database", "stats")];
    let body = e.metrics_until(CHECKS_SHOW, "dbstat and tables", |b| {
        value(b, "sqlite_unused_bytes", &l).is_some()
            && value(b, "sqlite_table_rows", &[("table", "b c")]).is_some()
    });
    let unused: f64 = sqlite3::cli(&db, "SELECT sum(unused) FROM dbstat")
        .parse()
        .unwrap();
    assert_eq!(must(&body, "sqlite_unused_bytes", &l), unused);
    for t in ["a", "b c"] {
        let rows: f64 = sqlite3::cli(&db, &format!("SELECT count(*) FROM \"{t}\""))
            .parse()
            .unwrap();
        assert_eq!(
            must(
                &body,
                "sqlite_table_rows",
                &[("database", "stats"), ("table", t)]
            ),
            rows,
            "{t}"
        );
        let size: f64 = sqlite3::cli(
            &db,
            &format!("SELECT sum(pgsize) FROM dbstat WHERE name = '{t}'"),
        )
        .parse()
        .unwrap();
        assert_eq!(
            must(
                &body,
                "sqlite_table_size_bytes",
                &[("database", "stats"), ("table", t)]
            ),
            size,
            "{t}"
        );
    }
}

#[test]
fn a_check_longer_than_its_timeout_is_interrupted_and_reported_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("big.db");
    sqlite3::large_database(&db, 40);
    let config = write_config(
        dir.path(),
        &format!(
            "defaults:\n  integrity_check: {{ interval: 1s, timeout: 20ms, mode: full }}\n  thresholds: {{ min_indexes: 0 }}\ndatabases:\n  - path: {}\n",
            db.display()
        ),
    );
    let e = Exporter::start(&["--config.file", &config]);
    let l = [("database", "big"), ("collector", "integrity")];
    let body = e.metrics_until(CHECKS_SHOW, "an interrupted check", |b| {
        value(b, "sqlite_scrape_collector_success", &l).is_some()
    });
    assert_eq!(must(&body, "sqlite_scrape_collector_success", &l), 0.0);
    assert_eq!(
        value(
            &body,
            "sqlite_integrity_check_success",
            &[("database", "big")]
        ),
        None,
        "never reported as success"
    );
    assert_eq!(
        must(
            &body,
            "sqlite_health_status",
            &[("database", "big"), ("status", "unknown")]
        ),
        1.0
    );
    e.wait_log(&[
        "integrity check did not complete",
        "database=big",
        "interrupted",
    ]);
}

/// Scheduled checks (O(size) reads) run on a thread of their own at nice +10 and the lowest
/// best-effort I/O priority, so on a busy host they yield the CPU and the disk to the
/// application; never on a thread that later serves scrapes.
#[test]
fn scheduled_checks_run_at_low_cpu_and_io_priority() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("big.db");
    exporter::build_db(
        &db,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 40000)
         INSERT INTO t(v) SELECT randomblob(1000) FROM c;
         CREATE INDEX t_v ON t(v);",
    );
    let config = dir.path().join("sqlite_exporter.yml");
    std::fs::write(
        &config,
        format!(
            "defaults:\n  integrity_check: {{ mode: full, interval: 1s, full_interval: 1s }}\ndatabases:\n  - {{ name: big, path: {} }}\n",
            db.display()
        ),
    )
    .unwrap();
    let e = Exporter::start(&["--config.file", config.to_str().unwrap()]);
    let pid = e.pid();
    // The check's thread is named after the database while it runs.
    let found = (0..3000).find_map(|_| {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
        let found = tasks.flatten().find_map(|t| {
            let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
            if comm.trim() != "check-big" {
                return None;
            }
            let stat = std::fs::read_to_string(t.path().join("stat")).ok()?;
            // Fields after the command's closing parenthesis; nice is field 19 of stat.
            let after = &stat[stat.rfind(')')? + 2..];
            let nice: i64 = after.split(' ').nth(16)?.parse().ok()?;
            let tid: i32 = t.file_name().to_str()?.parse().ok()?;
            // SAFETY: reads another thread's I/O priority; no memory is passed.
            let io = unsafe { libc::syscall(libc::SYS_ioprio_get, 1, tid) };
            Some((nice, io))
        });
        if found.is_none() {
            std::thread::sleep(Duration::from_millis(5));
        }
        found
    });
    let (nice, io) = found.expect("no check-big thread seen in 15 s of checks every second");
    assert_eq!(nice, 10, "nice of the check's thread");
    assert_eq!(
        io,
        (2 << 13) | 7,
        "I/O priority of the check's thread: {io:#x}"
    );
}
