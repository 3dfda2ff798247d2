//! Live reload, glob rediscovery and graceful shutdown, end to end: the real binary over real
//! HTTP, config files and databases in temp dirs, signals sent to the process.

#[path = "util/exporter.rs"]
mod exporter;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use exporter::{build_db, must, value, Exporter};

const TABLE: &str =
    "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t(v) VALUES ('x');";

/// Replaces `path` the way editors and config management do: write a temp file, rename it over.
fn write_config(path: &Path, text: &str) {
    let tmp = path.with_extension("yml.new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// POST `path`; returns status and body.
fn post(e: &Exporter, path: &str, token: Option<&str>) -> (u16, String) {
    let url = format!("http://{}{}", e.addr, path);
    let mut req = ureq::post(&url).timeout(Duration::from_secs(30));
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    match req.call() {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
        Err(err) => panic!("POST {url}: {err}"),
    }
}

fn up(body: &str, db: &str) -> Option<f64> {
    value(body, "sqlite_up", &[("database", db)])
}

fn reload_ok(body: &str) -> f64 {
    must(body, "sqlite_exporter_config_last_reload_successful", &[])
}

fn reload_time(body: &str) -> f64 {
    must(
        body,
        "sqlite_exporter_config_last_reload_success_timestamp_seconds",
        &[],
    )
}

/// A temp dir holding the databases `dbs` (each with `TABLE`) and a config file
/// `sqlite_exporter.yml` listing only `a.db`, and the exporter started on that file.
fn start_listing_a(dbs: &[&str]) -> (tempfile::TempDir, PathBuf, Exporter) {
    let dir = tempfile::tempdir().unwrap();
    for db in dbs {
        build_db(&dir.path().join(db), TABLE);
    }
    let cfg = dir.path().join("sqlite_exporter.yml");
    write_config(&cfg, "databases:\n  - path: a.db\n");
    let e = start_on(&cfg);
    (dir, cfg, e)
}

/// Starts the exporter on the config file `cfg`.
fn start_on(cfg: &Path) -> Exporter {
    Exporter::start(&[&format!("--config.file={}", cfg.display())])
}

#[test]
fn a_database_added_to_the_config_file_is_exported_without_a_signal() {
    let (_dir, cfg, e) = start_listing_a(&["a.db", "b.db"]);
    let body = e.metrics();
    assert_eq!(up(&body, "a"), Some(1.0));
    assert_eq!(up(&body, "b"), None);

    write_config(&cfg, "databases:\n  - path: a.db\n  - path: b.db\n");
    let body = e.metrics_until(Duration::from_secs(5), "b exported", |b| {
        up(b, "b") == Some(1.0)
    });
    assert_eq!(reload_ok(&body), 1.0);
    assert_eq!(must(&body, "sqlite_exporter_databases", &[]), 2.0);
    e.wait_log(&["configuration reloaded", "trigger=\"file change\""]);
}

#[test]
fn a_broken_config_is_rejected_the_old_one_keeps_serving_and_a_fixed_one_is_taken() {
    let (_dir, cfg, e) = start_listing_a(&["a.db"]);
    let before = reload_time(&e.metrics());

    write_config(
        &cfg,
        "databases:\n  - path: a.db\n    thresholds: { min_utilization: 1.5 }\n",
    );
    let (code, text) = post(&e, "/-/reload", None);
    assert_eq!(code, 500, "{text}");
    assert!(
        text.contains("databases[0].thresholds.min_utilization: expected a ratio between 0 and 1"),
        "{text}"
    );
    let body = e.metrics();
    assert_eq!(reload_ok(&body), 0.0);
    assert_eq!(up(&body, "a"), Some(1.0), "the old config keeps serving");

    std::thread::sleep(Duration::from_millis(1100));
    write_config(&cfg, "databases:\n  - path: a.db\n");
    let (code, text) = post(&e, "/-/reload", None);
    assert_eq!(code, 200, "{text}");
    let body = e.metrics();
    assert_eq!(reload_ok(&body), 1.0);
    let after = reload_time(&body);
    assert!(after > before, "success timestamp {before} -> {after}");
    assert_eq!(e.get("/-/reload").0, 405, "reload is POST only");
}

#[test]
fn sighup_reloads_the_config_file() {
    let (_dir, _, e) = start_listing_a(&["a.db"]);
    let before = reload_time(&e.metrics());
    std::thread::sleep(Duration::from_millis(1100));
    e.signal(libc::SIGHUP);
    e.wait_log(&["configuration reloaded", "trigger=SIGHUP"]);
    let after = reload_time(&e.metrics());
    assert!(after > before, "success timestamp {before} -> {after}");
}

#[test]
fn unchanged_databases_keep_their_histograms_across_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    for db in ["a.db", "b.db"] {
        build_db(&dir.path().join(db), TABLE);
    }
    // The probes run on their own schedule; a short one fills the histogram quickly.
    let probes = "defaults:\n  probes: { interval: 200ms }\n";
    let cfg = dir.path().join("sqlite_exporter.yml");
    write_config(&cfg, &format!("{probes}databases:\n  - path: a.db\n"));
    let e = start_on(&cfg);
    let count = |b: &str| {
        must(
            b,
            "sqlite_query_duration_seconds_count",
            &[("database", "a")],
        )
    };
    let has = |b: &str| b.contains(r#"sqlite_query_duration_seconds_count{database="a"}"#);
    let body = e.metrics_until(Duration::from_secs(20), "four probes of a", |b| {
        has(b) && count(b) >= 4.0
    });
    let before = count(&body);
    assert!(before >= 4.0, "{before}");

    write_config(
        &cfg,
        &format!("{probes}databases:\n  - path: a.db\n  - path: b.db\n"),
    );
    let (code, text) = post(&e, "/-/reload", None);
    assert_eq!(code, 200, "{text}");
    // A restarted histogram would be back near 0 right after the reload.
    let right_after = count(&e.metrics());
    assert!(
        right_after >= before,
        "a's histogram restarted: {before} -> {right_after}"
    );
    let body = e.metrics_until(Duration::from_secs(20), "another probe of a", |b| {
        count(b) > before
    });
    assert_eq!(up(&body, "b"), Some(1.0));
    assert!(
        count(&body) > before,
        "a's histogram restarted: {before} -> {}",
        count(&body)
    );
}

#[test]
fn reload_without_a_config_file_is_a_bad_request() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a.db");
    build_db(&db, TABLE);
    let e = Exporter::start(&[db.to_str().unwrap()]);
    let (code, text) = post(&e, "/-/reload", None);
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("no configuration file"), "{text}");
}

#[test]
fn glob_matches_are_discovered_and_dropped_within_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let tenants = dir.path().join("tenants");
    std::fs::create_dir(&tenants).unwrap();
    // A WAL database held open, so its -wal and -shm files sit beside it: `*` matches them too,
    // and they must not become databases (or name conflicts).
    let first = rusqlite::Connection::open(tenants.join("t1.db")).unwrap();
    first
        .execute_batch(&format!("PRAGMA journal_mode=WAL; {TABLE}"))
        .unwrap();
    assert!(tenants.join("t1.db-wal").exists());
    let cfg = dir.path().join("sqlite_exporter.yml");
    write_config(&cfg, "databases:\n  - glob: tenants/*\n");
    let e = start_on(&cfg);
    let body = e.metrics();
    assert_eq!(up(&body, "t1"), Some(1.0));
    assert_eq!(must(&body, "sqlite_exporter_databases", &[]), 1.0);

    build_db(&tenants.join("t2.db"), TABLE);
    let body = e.metrics_until(Duration::from_secs(5), "t2 discovered", |b| {
        up(b, "t2") == Some(1.0)
    });
    assert_eq!(must(&body, "sqlite_exporter_databases", &[]), 2.0);

    std::fs::remove_file(tenants.join("t2.db")).unwrap();
    e.metrics_until(Duration::from_secs(5), "t2 dropped", |b| {
        up(b, "t2").is_none()
    });
    assert!(
        !e.log_text().contains("database skipped"),
        "{}",
        e.log_text()
    );
    drop(first);
}

#[test]
fn sigterm_during_a_backup_removes_its_temp_file_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("big.db");
    // 100 MB of random pages; copied 32 pages per step with a 5 ms pause, the backup takes
    // several seconds.
    build_db(
        &db,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 100000)
         INSERT INTO t(v) SELECT randomblob(1000) FROM c;",
    );
    let backups = dir.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    exporter::write_token(&dir.path().join("token"), "s3cret\n");
    let cfg = dir.path().join("sqlite_exporter.yml");
    write_config(
        &cfg,
        "defaults:\n  backup: { dir: backups, pages_per_step: 32, step_pause: 5ms, compress: none }\n\
         databases:\n  - path: big.db\ncontrol:\n  enabled: true\n  token_file: token\n",
    );
    let mut e = start_on(&cfg);
    let (code, text) = post(
        &e,
        "/api/v1/databases/big/backup?async=true",
        Some("s3cret"),
    );
    assert_eq!(code, 202, "{text}");
    let temp_files = || -> Vec<String> {
        std::fs::read_dir(&backups)
            .unwrap()
            .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while temp_files().is_empty() {
        assert!(
            Instant::now() < deadline,
            "no backup temp file; log:\n{}",
            e.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));

    e.signal(libc::SIGTERM);
    let status = e.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "log:\n{}", e.log_text());
    assert_eq!(temp_files(), Vec::<String>::new(), "log:\n{}", e.log_text());
    let finished: Vec<_> = std::fs::read_dir(&backups).unwrap().collect();
    assert!(
        finished.is_empty(),
        "the backup should have been cancelled: {finished:?}"
    );
    assert!(e.log_text().contains("shutting down"), "{}", e.log_text());
}

#[test]
fn a_kubernetes_configmap_swap_is_seen() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.db"), dir.path().join("b.db"));
    build_db(&a, TABLE);
    build_db(&b, TABLE);
    // The kubelet's layout: the file links into `..data`, which links to a timestamped dir.
    let mount = dir.path().join("config");
    let version = |n: u32, text: &str| {
        let v = mount.join(format!("..2026_{n}"));
        std::fs::create_dir_all(&v).unwrap();
        std::fs::write(v.join("sqlite_exporter.yml"), text).unwrap();
        format!("..2026_{n}")
    };
    let first = version(1, &format!("databases:\n  - path: {}\n", a.display()));
    symlink(&first, mount.join("..data")).unwrap();
    symlink(
        "..data/sqlite_exporter.yml",
        mount.join("sqlite_exporter.yml"),
    )
    .unwrap();
    let cfg = mount.join("sqlite_exporter.yml");
    let e = start_on(&cfg);
    assert_eq!(up(&e.metrics(), "b"), None);

    let second = version(
        2,
        &format!(
            "databases:\n  - path: {}\n  - path: {}\n",
            a.display(),
            b.display()
        ),
    );
    symlink(&second, mount.join("..data_tmp")).unwrap();
    std::fs::rename(mount.join("..data_tmp"), mount.join("..data")).unwrap();
    e.metrics_until(Duration::from_secs(5), "b exported", |body| {
        up(body, "b") == Some(1.0)
    });
}

#[test]
fn a_reload_refuses_a_token_file_made_readable_by_others() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    build_db(&dir.path().join("app.db"), TABLE);
    let token = dir.path().join("token");
    exporter::write_token(&token, "s3cret\n");
    let cfg = dir.path().join("sqlite_exporter.yml");
    write_config(
        &cfg,
        "databases:\n  - path: app.db\ncontrol:\n  enabled: true\n  token_file: token\n",
    );
    let e = start_on(&cfg);
    assert_eq!(post(&e, "/-/reload", None).0, 200);
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, text) = post(&e, "/-/reload", None);
    assert_eq!(code, 500, "{text}");
    assert!(
        text.contains(&format!("token file {} has mode 0644", token.display())),
        "{text}"
    );
    assert_eq!(reload_ok(&e.metrics()), 0.0);
    // Nor is the file trusted by the running control API.
    let url = format!("http://{}/api/v1/databases", e.addr);
    let r = ureq::get(&url).set("Authorization", "Bearer s3cret").call();
    assert!(matches!(r, Err(ureq::Error::Status(401, _))), "{r:?}");
}
