//! Golden-file test: the real binary's `/metrics` for a fixed set of databases, diffed against
//! `tests/testdata/golden.prom` with volatile values masked. Set `UPDATE_GOLDEN=1` to rewrite
//! the golden file after an intended change, and review the diff.

#[path = "util/exporter.rs"]
mod exporter;
#[path = "util/golden.rs"]
mod golden;

use exporter::{build_db, Exporter};
use rusqlite::Connection;

/// Series whose values depend on timing or time, masked as `<volatile>`.
const VOLATILE: &[&str] = &[
    "sqlite_query_duration_seconds_bucket",
    "sqlite_query_duration_seconds_sum",
    "sqlite_query_duration_seconds_count",
    "sqlite_write_duration_seconds_count",
    "sqlite_write_duration_seconds_bucket",
    "sqlite_write_duration_seconds_sum",
    "sqlite_scrape_collector_duration_seconds",
    "sqlite_exporter_config_last_reload_success_timestamp_seconds",
    "sqlite_integrity_check_last_run_timestamp_seconds",
    "sqlite_integrity_check_duration_seconds",
    "sqlite_exporter_scrape_duration_seconds",
    "process_cpu_seconds_total",
    "process_open_fds",
    "process_max_fds",
    "process_virtual_memory_bytes",
    "process_virtual_memory_max_bytes",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
    "process_threads",
];

fn mask(body: &str, tmp: &str) -> String {
    let mut out = String::new();
    for line in body.lines() {
        let mut line = line.replace(tmp, "$TMP");
        if let Some(start) = line.find("revision=\"") {
            let end = start + 10 + line[start + 10..].find('"').unwrap();
            line.replace_range(start + 10..end, "<revision>");
        }
        if line.starts_with("sqlite_exporter_build_info") {
            line = line.replace(env!("CARGO_PKG_VERSION"), "<version>");
        }
        let name = line.split(['{', ' ']).next().unwrap_or("");
        if !line.starts_with('#') && VOLATILE.contains(&name) {
            let (series, _) = line.rsplit_once(' ').unwrap();
            line = format!("{series} <volatile>");
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[test]
fn metrics_match_the_golden_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let writer = Connection::open(d.join("app.db")).unwrap();
    writer
        .execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;
             CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT UNIQUE, bio BLOB);
             CREATE INDEX users_bio ON users(bio);
             CREATE VIEW user_emails AS SELECT email FROM users;
             CREATE TRIGGER users_touch AFTER UPDATE ON users BEGIN SELECT 1; END;
             WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 200)
             INSERT INTO users(email, bio) SELECT 'u' || i || '@example.com', zeroblob(300) FROM c;
             CREATE TABLE schema_migrations(version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL);
             INSERT INTO schema_migrations VALUES (1, 1700000000), (2, 1700003600);
             PRAGMA user_version = 12;",
        )
        .unwrap();
    build_db(
        &d.join("tenant.db"),
        "CREATE TABLE notes(id INTEGER PRIMARY KEY, body BLOB);
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 300)
         INSERT INTO notes(body) SELECT zeroblob(2000) FROM c;
         DELETE FROM notes WHERE id > 100;",
    );
    std::fs::write(d.join("junk.db"), "not sqlite\n".repeat(500)).unwrap();
    let config = d.join("sqlite_exporter.yml");
    std::fs::write(
        &config,
        "# Latency thresholds are raised so a slow CI machine cannot change a status.
# A short check interval makes every first background check run within a second.
defaults:
  thresholds: { slow_query: 10s, slow_write: 10s, unhealthy_latency: 10s }
  integrity_check: { interval: 1s, full_interval: 1h }
  # A backup directory that does not exist: no backup metrics, whatever the host has in
  # /var/backups/sqlite.
  backup: { dir: backups-never-created }
databases:
  - name: app
    path: app.db
  - path: tenant.db
    thresholds:
      wal_alert_bytes: 1GiB
      backup_max_age: 8d
  - name: broken
    path: junk.db
  - name: gone
    path: missing.db
",
    )
    .unwrap();
    let e = Exporter::start(&["--config.file", config.to_str().unwrap()]);
    // Wait for the background checks of every readable-or-present file, then scrape.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let body = loop {
        let body = e.metrics();
        let done = ["app", "tenant", "broken"].iter().all(|db| {
                exporter::value(&body, "sqlite_integrity_check_success", &[("database", db)])
                    .is_some()
            }) && exporter::value(&body, "sqlite_migrations_applied", &[("database", "app")])
                .is_some()
                && exporter::value(
                    &body,
                    "sqlite_scrape_collector_success",
                    &[("database", "gone"), ("collector", "integrity")],
                )
                .is_some()
                // The probes run on their own schedule, right after start.
                && ["app", "tenant"].iter().all(|db| {
                    exporter::value(&body, "sqlite_write_duration_seconds_count", &[("database", db)])
                        .is_some()
                });
        if done || std::time::Instant::now() > deadline {
            break e.metrics();
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let got = mask(&body, &d.to_string_lossy());
    golden::compare("golden.prom", "/metrics", &got);
    drop(writer);
}
