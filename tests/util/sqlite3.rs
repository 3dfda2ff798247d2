//! The `sqlite3` command-line shell as a test oracle (the one place the tests run it), and a
//! builder of large databases.
//!
//! A missing shell is a failure, not a skip: the panic names the Debian package `sqlite3`.
//!
//! Include with `#[path = "util/sqlite3.rs"] mod sqlite3;`.
#![allow(dead_code)] // each test crate uses a different subset

use std::path::Path;
use std::process::Command;

/// How the shell opens the database.
#[derive(Clone, Copy, Debug)]
pub enum Open {
    /// The default: read-write (what an application would do).
    ReadWrite,
    /// `-readonly`: the shell cannot change the file, nor checkpoint a WAL on close.
    ReadOnly,
}

/// What one run of the shell did; stdout and stderr are trimmed.
#[derive(Debug)]
pub struct Output {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// stdout and stderr joined by a newline when both are present (for checks expected to
    /// fail, whose verdict may be on either).
    pub fn combined(&self) -> String {
        match (self.stdout.is_empty(), self.stderr.is_empty()) {
            (_, true) => self.stdout.clone(),
            (true, false) => self.stderr.clone(),
            (false, false) => format!("{}\n{}", self.stdout, self.stderr),
        }
    }
}

/// Runs `sqlite3 [-readonly] DB ARGS...` whatever its exit status. Panics naming the Debian
/// package when the shell is not installed.
pub fn run(db: &Path, open: Open, args: &[&str]) -> Output {
    let mut cmd = Command::new("sqlite3");
    if let Open::ReadOnly = open {
        cmd.arg("-readonly");
    }
    let out = match cmd.arg(db).args(args).output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "`sqlite3` is not installed; it is provided by the Debian package `sqlite3` \
             (apt-get install sqlite3)"
        ),
        Err(e) => panic!("could not run `sqlite3`: {e}"),
    };
    Output {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    }
}

/// Runs `sql` read-write and returns its trimmed stdout, panicking with stderr on failure.
pub fn query(db: &Path, sql: &str) -> String {
    ok(db, Open::ReadWrite, sql)
}

/// Like [`query`] with `-readonly`.
pub fn query_readonly(db: &Path, sql: &str) -> String {
    ok(db, Open::ReadOnly, sql)
}

fn ok(db: &Path, open: Open, sql: &str) -> String {
    let out = run(db, open, &[sql]);
    assert!(
        out.success,
        "sqlite3 {open:?} {} {sql:?} failed: {}",
        db.display(),
        out.stderr
    );
    out.stdout
}

/// Runs `sql` read-write whatever its exit status; returns [`Output::combined`].
pub fn cli(db: &Path, sql: &str) -> String {
    run(db, Open::ReadWrite, &[sql]).combined()
}

/// Whether `sqlite3 -readonly DB 'PRAGMA integrity_check'` says ok (an error exit is not ok).
pub fn integrity_ok(db: &Path) -> bool {
    let out = run(db, Open::ReadOnly, &["PRAGMA integrity_check"]);
    out.success && out.stdout == "ok"
}

/// Creates `path` (rollback-journal mode) holding about `megabytes` MB: a table of random
/// 200-byte values with an index on a random 16-byte key, so that both the b-tree walk and
/// the index cross-check of `integrity_check` have work to do.
pub fn large_database(path: &Path, megabytes: u64) {
    // ~216 bytes of payload per row in the table and ~30 in the index, plus page overhead.
    let rows = megabytes * 1_000_000 / 280;
    let conn = rusqlite::Connection::open(path).expect("create large database");
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = OFF;
         PRAGMA synchronous = OFF;
         PRAGMA cache_size = -200000;
         CREATE TABLE big(id INTEGER PRIMARY KEY, k BLOB NOT NULL, v BLOB NOT NULL);
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {rows})
         INSERT INTO big SELECT x, randomblob(16), randomblob(200) FROM c;
         CREATE INDEX big_k ON big(k);
         PRAGMA journal_mode = DELETE;"
    ))
    .expect("fill large database");
}
