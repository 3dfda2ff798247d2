//! The `sqlite3` command-line shell as a test oracle, and a builder of large databases.
//!
//! Include with `#[path = "util/sqlite3.rs"] mod sqlite3;`.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// Where Debian's `sqlite3` package installs the shell.
pub const CLI: &str = "/usr/bin/sqlite3";

/// Runs `sql` on `db` with the `sqlite3` shell; returns stdout and stderr, trimmed, joined by
/// a newline when both are present.
pub fn cli(db: &Path, sql: &str) -> String {
    assert!(
        Path::new(CLI).exists(),
        "{CLI} not found: install Debian package sqlite3"
    );
    let out = Command::new(CLI)
        .arg(db)
        .arg(sql)
        .output()
        .expect("run sqlite3");
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    match (stdout.is_empty(), stderr.is_empty()) {
        (_, true) => stdout,
        (true, false) => stderr,
        (false, false) => format!("{stdout}\n{stderr}"),
    }
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
