//! The command line as an operator meets it, through the real binary: exit codes and JSON of
//! bad requests, usage errors of `check`, one message per error, flags after the subcommand,
//! `check --fail-on`, a quiet `check`, `--version`.

#[path = "util/exporter.rs"]
mod exporter;

use std::path::Path;
use std::process::Command;

use exporter::build_db;

/// Exit code, stdout and stderr of the binary run with `args` in `dir`.
fn run(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(exporter::binary())
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code().expect("exited"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A database no check complains about (four indexes, no WAL).
fn good_db(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("good.db");
    build_db(
        &p,
        "CREATE TABLE t(a, b, c, d); CREATE INDEX i1 ON t(a); CREATE INDEX i2 ON t(b);
         CREATE INDEX i3 ON t(c); CREATE INDEX i4 ON t(d); INSERT INTO t VALUES (1, 2, 3, 4);",
    );
    p
}

#[test]
fn bad_requests_exit_2_with_a_json_result_and_one_message() {
    let dir = tempfile::tempdir().unwrap();
    good_db(dir.path());
    let cases: [(&[&str], &str); 4] = [
        (
            &["checkpoint", "--mode=bogus", "good.db"],
            "invalid checkpoint mode",
        ),
        (&["vacuum", "nosuch"], "file does not exist"),
        (
            &["backup", "--config.file=f.yml", "nosuch"],
            "cannot read config file",
        ),
        (
            &["recover", "--dry-run", "nosuch.db"],
            "file does not exist",
        ),
    ];
    for (args, why) in cases {
        let (code, stdout, stderr) = run(dir.path(), args);
        assert_eq!(code, 2, "{args:?}: stdout {stdout} stderr {stderr}");
        let v: serde_json::Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("{args:?}: stdout is not JSON ({e}): {stdout:?}"));
        let error = v["error"].as_str().unwrap_or_default();
        assert!(error.contains(why), "{args:?}: {v}");
        assert_eq!(
            stderr.matches(why).count(),
            1,
            "{args:?}: the error is not printed exactly once on stderr:\n{stderr}"
        );
    }
}

#[test]
fn a_recovery_that_cannot_run_says_why_in_words() {
    let dir = tempfile::tempdir().unwrap();
    let (_, stdout, stderr) = run(dir.path(), &["recover", "--dry-run", "nosuch.db"]);
    for text in [&stdout, &stderr] {
        assert!(
            !text.contains("Failed(") && !text.contains("Missing"),
            "Rust debug text in the output:\n{text}"
        );
    }
    assert!(stdout.contains("file does not exist"), "{stdout}");
}

#[test]
fn a_failed_backup_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let backups = dir.path().join("not").join("yet");
    let (code, stdout, _) = run(
        dir.path(),
        &[
            "backup",
            &format!("--backup.dir={}", backups.display()),
            "nosuch.db",
        ],
    );
    assert_eq!(code, 2, "{stdout}");
    assert!(
        !dir.path().join("not").exists(),
        "a backup of a missing file created {}",
        backups.display()
    );
}

#[test]
fn usage_errors_of_check_are_unknown_not_critical() {
    let dir = tempfile::tempdir().unwrap();
    good_db(dir.path());
    let (code, stdout, stderr) = run(dir.path(), &["check", "--bogus", "good.db"]);
    assert_eq!(code, 3, "{stdout}{stderr}");
    assert!(stderr.contains("--bogus"), "{stderr}");
    let (code, _, stderr) = run(dir.path(), &["check", "--config.file=nosuch.yml"]);
    assert_eq!(code, 3, "{stderr}");
    assert_eq!(
        stderr.matches("cannot read config file").count(),
        1,
        "{stderr}"
    );
}

#[test]
fn collector_flags_are_accepted_after_the_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    good_db(dir.path());
    for flag in [
        "--no-collector.write",
        "--collector.tables",
        "--collector.disable-defaults",
    ] {
        let (code, stdout, stderr) = run(dir.path(), &["check", flag, "good.db"]);
        assert_eq!(code, 0, "check {flag}: {stdout}{stderr}");
        assert!(stdout.contains("healthy"), "{stdout}");
    }
    let (code, stdout, stderr) = run(
        dir.path(),
        &["integrity-check", "--no-collector.write", "good.db"],
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
}

#[test]
fn check_is_quiet_on_stderr_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    good_db(dir.path());
    let (code, stdout, stderr) = run(dir.path(), &["check", "good.db"]);
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(stderr, "", "check wrote to stderr");
    let (_, _, stderr) = run(dir.path(), &["check", "--log.level=info", "good.db"]);
    assert!(
        stderr.contains("msg=\"integrity check passed\""),
        "{stderr}"
    );
}

#[test]
fn fail_on_critical_lets_a_recommendation_pass() {
    let dir = tempfile::tempdir().unwrap();
    let warn = dir.path().join("warn.db");
    build_db(&warn, "CREATE TABLE t(a);"); // no index: add_indexes is recommended
    std::fs::write(dir.path().join("junk.db"), "y".repeat(4096)).unwrap();
    let (code, stdout, _) = run(dir.path(), &["check", "warn.db"]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("add_indexes"), "{stdout}");
    let (code, stdout, _) = run(dir.path(), &["check", "--fail-on=critical", "warn.db"]);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("warning"),
        "the report still says warning: {stdout}"
    );
    let (code, stdout, _) = run(
        dir.path(),
        &["check", "--fail-on=critical", "warn.db", "junk.db"],
    );
    assert_eq!(code, 2, "{stdout}");
}

#[test]
fn check_shows_sizes_for_people() {
    let dir = tempfile::tempdir().unwrap();
    let wal = dir.path().join("wal.db");
    let _writer = rusqlite::Connection::open(&wal).unwrap();
    _writer
        .execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; CREATE TABLE t(v);
             WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 2000)
             INSERT INTO t SELECT randomblob(1000) FROM c;",
        )
        .unwrap();
    let (code, stdout, _) = run(dir.path(), &["check", "wal.db"]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains(" MiB (above 1.0 MiB), run a checkpoint"),
        "{stdout}"
    );
    assert!(!stdout.contains(" bytes"), "raw byte counts in:\n{stdout}");
}

#[test]
fn version_names_the_revision() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, _) = run(dir.path(), &["--version"]);
    assert_eq!(code, 0);
    let rev = stdout
        .split("revision ")
        .nth(1)
        .and_then(|r| r.split([',', ')']).next())
        .unwrap_or_else(|| panic!("no revision in {stdout:?}"));
    assert!(
        rev.len() == 12 && rev.chars().all(|c| c.is_ascii_hexdigit()),
        "revision {rev:?} in {stdout:?} is not a git revision"
    );
}
