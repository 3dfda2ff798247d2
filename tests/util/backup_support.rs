//! Shared helpers for the backup engine's integration tests: databases built from SQL in temp
//! dirs and child processes of the test binary (the `sqlite3` CLI oracle is `util/sqlite3.rs`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rusqlite::Connection;
use sqlite_exporter::actions::backup::{BackupOptions, Method, Verify};

/// Starting balance of every account; `sum(balance)` is `ACCOUNTS * BALANCE` forever.
pub const BALANCE: i64 = 1000;

/// A bank: `accounts` rows of `BALANCE`, a one-row `stats(commits)` the writer bumps with every
/// transfer, and `padding_mib` of random blobs so copies take measurable time.
pub fn make_bank(path: &Path, accounts: i64, padding_mib: i64, wal: bool) {
    let conn = Connection::open(path).unwrap();
    let mode = if wal { "WAL" } else { "DELETE" };
    conn.execute_batch(&format!(
        "PRAGMA journal_mode={mode};
         CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
         CREATE TABLE stats(commits INTEGER NOT NULL);
         INSERT INTO stats VALUES (0);
         CREATE TABLE padding(id INTEGER PRIMARY KEY, body BLOB);
         CREATE INDEX padding_len ON padding(length(body));
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {accounts})
         INSERT INTO accounts SELECT i, {BALANCE} FROM n;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {padding_mib} * 256)
         INSERT INTO padding SELECT i, randomblob(4000) FROM n;
         PRAGMA user_version = 7;"
    ))
    .unwrap();
}

/// A small database with table `t(id, name)` holding `rows` rows named `{tag}-{i}`.
pub fn make_rows(path: &Path, rows: i64, tag: &str, wal: bool) {
    let conn = Connection::open(path).unwrap();
    let mode = if wal { "WAL" } else { "DELETE" };
    conn.execute_batch(&format!(
        "PRAGMA journal_mode={mode};
         CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, name TEXT NOT NULL);
         DELETE FROM t;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
         INSERT INTO t SELECT i, '{tag}-' || i FROM n;"
    ))
    .unwrap();
}

pub fn query_i64(path: &Path, sql: &str) -> i64 {
    let conn = Connection::open(path).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Options for a test: backups in `dir`, quick steps.
pub fn options(dir: &Path) -> BackupOptions {
    BackupOptions {
        dir: dir.to_owned(),
        keep: 10,
        compress_above: None,
        verify: Verify::Full,
        method: Method::default(),
        busy_timeout: Duration::from_secs(5),
    }
}

/// Bytes of the main file plus any WAL, for "unchanged" assertions.
pub fn snapshot_files(db: &Path) -> Vec<(PathBuf, Option<Vec<u8>>)> {
    ["", "-wal"]
        .iter()
        .map(|s| {
            let mut p = db.as_os_str().to_owned();
            p.push(s);
            let p = PathBuf::from(p);
            let bytes = std::fs::read(&p).ok();
            (p, bytes)
        })
        .collect()
}

/// Starts this test binary running only `test_name`, with `envs`; the named test function
/// plays a separate process's role when its env var is set.
pub fn spawn_self(test_name: &str, envs: &[(&str, &str)]) -> std::process::Child {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}
