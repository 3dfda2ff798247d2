//! The control API over real HTTP: authentication on every route, backups and
//! restores with their error statuses, one action at a time, async jobs, and a backup killed
//! with SIGKILL leaving nothing behind.

#[path = "util/corrupt.rs"]
mod corrupt;
#[path = "util/exporter.rs"]
mod exporter;

use exporter::{api, app_db, big_db, eventually, files, must, value, Setup};
use serde_json::Value;

const ROUTES: &[(&str, &str, Option<&str>)] = &[
    ("GET", "/api/v1/databases", None),
    ("GET", "/api/v1/databases/app/health", None),
    (
        "POST",
        "/api/v1/databases/app/checkpoint",
        Some(r#"{"mode":"passive"}"#),
    ),
    (
        "POST",
        "/api/v1/databases/app/backup",
        Some(r#"{"label":"daily"}"#),
    ),
    ("GET", "/api/v1/databases/app/backups", None),
    (
        "POST",
        "/api/v1/databases/app/restore",
        Some(r#"{"backup":"x.db"}"#),
    ),
    (
        "POST",
        "/api/v1/databases/app/recover",
        Some(r#"{"dry_run":true}"#),
    ),
    ("POST", "/api/v1/databases/app/vacuum", None),
    (
        "POST",
        "/api/v1/databases/app/integrity-check",
        Some(r#"{"mode":"quick"}"#),
    ),
    ("GET", "/api/v1/jobs/nope", None),
];

#[test]
fn every_route_needs_a_valid_token_and_an_enabled_control_api() {
    let dir = tempfile::tempdir().unwrap();
    let db = app_db(dir.path());
    let on = Setup::new(dir, &[("app", &db)], "", true);
    let e = on.start(&[]);
    for (method, path, body) in ROUTES {
        for token in [None, Some("wrong"), Some("s3cret")] {
            let (code, v) = api(&e, method, path, token, *body);
            assert_eq!(code, 401, "{method} {path} with {token:?}: {v}");
            assert!(v["error"].as_str().unwrap().contains("token"), "{v}");
        }
        let (code, v) = api(&e, method, path, Some(&on.token), *body);
        assert!(
            code != 401 && code != 403,
            "{method} {path} with the right token: {code} {v}"
        );
    }
    // The second token in the file works too, and the plain endpoints need none.
    assert_eq!(
        api(&e, "GET", "/api/v1/databases", Some("other-token"), None).0,
        200
    );
    assert_eq!(e.get("/metrics").0, 200);
    // The token file is re-read when it changes: a rotated token works, the old one stops.
    std::fs::write(on.dir.path().join("token"), "rotated-token\n").unwrap();
    assert_eq!(
        api(&e, "GET", "/api/v1/databases", Some("rotated-token"), None).0,
        200
    );
    assert_eq!(
        api(&e, "GET", "/api/v1/databases", Some("other-token"), None).0,
        401
    );

    let dir2 = tempfile::tempdir().unwrap();
    let db2 = app_db(dir2.path());
    let off = Setup::new(dir2, &[("app", &db2)], "", false);
    let e = off.start(&[]);
    for (method, path, body) in ROUTES {
        let (code, v) = api(&e, method, path, Some(&off.token), *body);
        assert_eq!(code, 403, "{method} {path}: {v}");
        assert_eq!(v["error"], "the control API is disabled");
    }
}

#[test]
fn backup_list_and_restore_over_http_with_every_error_status() {
    let dir = tempfile::tempdir().unwrap();
    let db = app_db(dir.path());
    let s = Setup::new(dir, &[("app", &db)], "", true);
    let e = s.start(&[]);
    let t = Some(s.token.as_str());

    let (code, b) = api(
        &e,
        "POST",
        "/api/v1/databases/app/backup",
        t,
        Some(r#"{"label":"daily"}"#),
    );
    assert_eq!(code, 200, "{b}");
    let name = b["file_name"].as_str().unwrap().to_string();
    assert!(
        name.starts_with("app-") && name.ends_with("-daily.db"),
        "{name}"
    );
    assert_eq!(b["meta"]["verification"], "ok");
    let (code, list) = api(&e, "GET", "/api/v1/databases/app/backups", t, None);
    assert_eq!(code, 200);
    assert_eq!(list["backups"][0]["file_name"], name.as_str());

    // The application changes its data; a connection stays open through the restore.
    let app = rusqlite::Connection::open(&db).unwrap();
    app.execute_batch("UPDATE accounts SET balance = 0;")
        .unwrap();
    let sum = |c: &rusqlite::Connection| {
        c.query_row("SELECT sum(balance) FROM accounts", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap()
    };
    assert_eq!(sum(&app), 0);

    let before = std::fs::read(&db).unwrap();
    let bad: &[(&str, u16)] = &[
        (r#"{"backup":"../app.db"}"#, 400),
        (r#"{"backup":"/etc/passwd"}"#, 400),
        (r#"{"backup":"app-2001-01-01_00-00-00.db"}"#, 404),
        (r#"{}"#, 400),
        (r#"{"backup": 5}"#, 400),
        (r#"{"backup":"x","force":true}"#, 400),
        ("not json", 400),
    ];
    for (body, want) in bad {
        let (code, v) = api(&e, "POST", "/api/v1/databases/app/restore", t, Some(body));
        assert_eq!(code, *want, "{body}: {v}");
        assert!(v["error"].is_string(), "{v}");
    }
    assert_eq!(
        api(
            &e,
            "POST",
            "/api/v1/databases/nope/restore",
            t,
            Some(&format!(r#"{{"backup":"{name}"}}"#))
        )
        .0,
        404
    );
    assert_eq!(
        std::fs::read(&db).unwrap(),
        before,
        "a refused restore changed the database"
    );

    let (code, r) = api(
        &e,
        "POST",
        "/api/v1/databases/app/restore",
        t,
        Some(&format!(r#"{{"backup":"{name}"}}"#)),
    );
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["restored_from"], name.as_str());
    assert!(
        r["pre_restore_backup"]
            .as_str()
            .unwrap()
            .contains("pre-restore"),
        "{r}"
    );
    assert_eq!(
        sum(&app),
        50_000,
        "the open connection reads the restored rows"
    );

    // A backup whose bytes changed is refused with 422 and nothing changes.
    let path = s.backups.join(&name);
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 100] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    app.execute_batch("UPDATE accounts SET balance = 1;")
        .unwrap();
    let before = std::fs::read(&db).unwrap();
    let (code, v) = api(
        &e,
        "POST",
        "/api/v1/databases/app/restore",
        t,
        Some(&format!(r#"{{"backup":"{name}"}}"#)),
    );
    assert_eq!(code, 422, "{v}");
    assert_eq!(std::fs::read(&db).unwrap(), before);

    let body = e.metrics();
    assert_eq!(
        must(&body, "sqlite_backups_total", &[("database", "app")]),
        1.0
    );
    assert_eq!(
        must(&body, "sqlite_restores_total", &[("database", "app")]),
        2.0
    );
    assert_eq!(
        must(
            &body,
            "sqlite_restore_failures_total",
            &[("database", "app")]
        ),
        1.0
    );
    let files = |state| {
        must(
            &body,
            "sqlite_backup_files",
            &[("database", "app"), ("state", state)],
        )
    };
    assert_eq!(files("verified"), 1.0, "the pre-restore backup");
    assert_eq!(files("damaged"), 1.0, "the backup whose bytes changed");
    assert!(
        must(
            &body,
            "sqlite_backup_last_success_timestamp_seconds",
            &[("database", "app")]
        ) > 1.7e9
    );
}

#[test]
fn bad_requests_get_specific_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = app_db(dir.path());
    let s = Setup::new(dir, &[("app", &db)], "", true);
    let e = s.start(&[]);
    let t = Some(s.token.as_str());
    let cases: &[(&str, &str, Option<&str>, u16)] = &[
        (
            "POST",
            "/api/v1/databases/app/checkpoint",
            Some(r#"{"mode":"sideways"}"#),
            400,
        ),
        ("POST", "/api/v1/databases/ghost/checkpoint", None, 404),
        ("GET", "/api/v1/databases/ghost/health", None, 404),
        (
            "POST",
            "/api/v1/databases/app/backup",
            Some(r#"{"label":"../../x"}"#),
            400,
        ),
        ("POST", "/api/v1/databases/app/explode", None, 404),
        ("GET", "/api/v1/jobs/0000", None, 404),
    ];
    for (method, path, body, want) in cases {
        let (code, v) = api(&e, method, path, t, *body);
        assert_eq!(code, *want, "{method} {path} {body:?}: {v}");
        assert!(v["error"].is_string(), "{v}");
    }
    let huge = format!(r#"{{"label":"{}"}}"#, "x".repeat(100_000));
    let (code, v) = api(&e, "POST", "/api/v1/databases/app/backup", t, Some(&huge));
    assert_eq!(code, 413, "{v}");
    let (code, h) = api(&e, "GET", "/api/v1/databases/app/health", t, None);
    assert_eq!(code, 200);
    assert!(
        h["checks"]["wal"].is_object() && h["recommendations"].is_array(),
        "{h}"
    );
}

#[test]
fn a_corrupt_source_is_refused_and_no_backup_appears() {
    let dir = tempfile::tempdir().unwrap();
    let db = corrupt::table_page_damage(dir.path());
    let s = Setup::new(dir, &[("bad", &db)], "", true);
    let e = s.start(&[]);
    let (code, v) = api(
        &e,
        "POST",
        "/api/v1/databases/bad/backup",
        Some(&s.token),
        None,
    );
    assert_eq!(code, 422, "{v}");
    assert!(
        files(&s.backups)
            .iter()
            .all(|f| !f.ends_with(".db") && !f.ends_with(".gz")),
        "{:?}",
        files(&s.backups)
    );
    assert_eq!(
        must(
            &e.metrics(),
            "sqlite_backup_failures_total",
            &[("database", "bad")]
        ),
        1.0
    );
}

#[test]
fn an_integrity_check_of_a_file_that_is_not_a_database_is_refused_naming_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let notdb = dir.path().join("notes.db");
    std::fs::write(&notdb, "not a database, just notes\n".repeat(200)).unwrap();
    let s = Setup::new(dir, &[("notdb", &notdb)], "", true);
    let e = s.start(&[]);
    let (code, v) = api(
        &e,
        "POST",
        "/api/v1/databases/notdb/integrity-check",
        Some(&s.token),
        None,
    );
    assert_eq!(code, 422, "{v}");
    assert_eq!(
        v["error"],
        "integrity check could not run: file is not a SQLite database"
    );
    // The CLI refuses it the same way, with the exit code of a refusal.
    let (code, v) = s.cli(&["integrity-check", "notdb"]);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(
        v["error"],
        "integrity check could not run: file is not a SQLite database"
    );
}

#[test]
fn one_action_at_a_time_and_async_jobs_report_progress() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("big.db");
    big_db(&db, 60);
    let s = Setup::new(dir, &[("big", &db)], "", true);
    // A slow backup: small steps with pauses.
    let yaml = std::fs::read_to_string(&s.config).unwrap().replace(
        &format!("    path: {}\n", db.display()),
        &format!("    path: {}\n    backup: {{ pages_per_step: 64, step_pause: 10ms, compress: none }}\n", db.display()),
    );
    std::fs::write(&s.config, yaml).unwrap();
    let e = s.start(&[]);
    let t = Some(s.token.as_str());
    let (code, v) = api(
        &e,
        "POST",
        "/api/v1/databases/big/backup?async=true",
        t,
        Some(r#"{"label":"slow"}"#),
    );
    assert_eq!(code, 202, "{v}");
    let id = v["job"]["id"].as_str().unwrap().to_string();
    assert_eq!(v["job"]["state"], "running");
    let (code, busy) = api(&e, "POST", "/api/v1/databases/big/checkpoint", t, None);
    assert_eq!(code, 409, "{busy}");
    assert_eq!(busy["detail"]["running"], "backup");
    let mut saw_progress = false;
    eventually(120, "the backup job to finish", || {
        let (_, j) = api(&e, "GET", &format!("/api/v1/jobs/{id}"), t, None);
        let done = j["progress"]["pages_done"].as_u64().unwrap_or(0);
        let total = j["progress"]["pages_total"].as_u64().unwrap_or(0);
        saw_progress |= done > 0 && done < total;
        j["state"] == "succeeded"
    });
    assert!(saw_progress, "progress moved while the job ran");
    let (_, j) = api(&e, "GET", &format!("/api/v1/jobs/{id}"), t, None);
    assert!(
        j["result"]["file_name"]
            .as_str()
            .unwrap()
            .ends_with("-slow.db"),
        "{j}"
    );
    assert_eq!(
        api(&e, "POST", "/api/v1/databases/big/checkpoint", t, None).0,
        400,
        "not WAL: a clear 400"
    );
}

#[test]
fn a_backup_killed_with_sigkill_leaves_nothing_counted_and_the_next_start_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("big.db");
    big_db(&db, 60);
    let s = Setup::new(dir, &[("big", &db)], "  \n", true);
    let yaml = std::fs::read_to_string(&s.config).unwrap().replace(
        "defaults:\n  backup:\n",
        "defaults:\n  backup:\n    pages_per_step: 32\n    step_pause: 20ms\n",
    );
    std::fs::write(&s.config, yaml).unwrap();
    let mut e = s.start(&[]);
    let t = Some(s.token.as_str());
    let (code, v) = api(
        &e,
        "POST",
        "/api/v1/databases/big/backup?async=true",
        t,
        None,
    );
    assert_eq!(code, 202, "{v}");
    let id = v["job"]["id"].as_str().unwrap().to_string();
    eventually(30, "the backup to be under way", || {
        let (_, j) = api(&e, "GET", &format!("/api/v1/jobs/{id}"), t, None);
        j["progress"]["pages_done"].as_u64().unwrap_or(0) > 0
    });
    e.kill9();
    let left = files(&s.backups);
    assert!(
        left.iter().any(|f| f.ends_with(".tmp")),
        "a temp file is left by the killed backup: {left:?}"
    );

    let out = std::process::Command::new(exporter::binary())
        .args([
            "backups",
            "--config.file",
            s.config.to_str().unwrap(),
            "big",
        ])
        .output()
        .unwrap();
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        listed,
        Value::Array(vec![]),
        "nothing is listed as a backup"
    );

    let e = s.start(&[]);
    e.wait_log(&["removed temp files of an interrupted backup"]);
    assert!(
        files(&s.backups).iter().all(|f| !f.ends_with(".tmp")),
        "{:?}",
        files(&s.backups)
    );
    let body = e.metrics();
    eventually(10, "the backup scan", || {
        exporter::value(&e.metrics(), "sqlite_backup_files", &[("database", "big")]).is_some()
    });
    assert_eq!(
        must(
            &e.metrics(),
            "sqlite_backup_files",
            &[("database", "big"), ("state", "verified")]
        ),
        0.0
    );
    // A killed backup was never counted: after the restart no backup ran, so the counter
    // is absent (counters appear at a database's first action) or, at full detail, 0.
    let counted = value(&body, "sqlite_backups_total", &[("database", "big")]);
    assert!(matches!(counted, None | Some(0.0)), "{counted:?}");
}

fn truncate(path: &std::path::Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

/// One good backup, two days old, and four damaged files: a truncated foreign file named in
/// the future without a sidecar, a truncated `.db.gz` without one, one with a garbage sidecar,
/// one whose sha256 does not match.
fn one_good_backup_and_four_bad_files(s: &Setup) -> (String, u64) {
    let (code, v) = s.cli(&["backup", "app"]);
    assert_eq!(code, Some(0), "{v}");
    let good = v["file_name"].as_str().unwrap().to_string();
    let good_path = s.backups.join(&good);
    let sidecar = s.backups.join(format!("{good}.meta.json"));
    let mut meta: Value = serde_json::from_slice(&std::fs::read(&sidecar).unwrap()).unwrap();
    let two_days_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        - 48.0 * 3600.0;
    meta["created_at_unix"] = two_days_ago.into();
    std::fs::write(&sidecar, meta.to_string()).unwrap();
    let size = good_path.metadata().unwrap().len();
    assert!(size > 8192, "{size}");

    let foreign = s.backups.join("app-2030-01-01_00-00-00-foreign.db");
    std::fs::copy(&good_path, &foreign).unwrap();
    truncate(&foreign, 4096);
    let gz = s.backups.join("app-2024-01-01_00-00-00.db.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    std::io::Write::write_all(&mut enc, &std::fs::read(&good_path).unwrap()).unwrap();
    enc.finish().unwrap();
    truncate(&gz, gz.metadata().unwrap().len() / 2);
    let garbage = "app-2024-01-02_00-00-00.db";
    std::fs::copy(&good_path, s.backups.join(garbage)).unwrap();
    std::fs::write(s.backups.join(format!("{garbage}.meta.json")), "garbage").unwrap();
    let mismatch = s.backups.join("app-2024-01-03_00-00-00.db");
    let mut bytes = std::fs::read(&good_path).unwrap();
    bytes[5000] ^= 0xff;
    std::fs::write(&mismatch, bytes).unwrap();
    std::fs::copy(
        &sidecar,
        s.backups.join("app-2024-01-03_00-00-00.db.meta.json"),
    )
    .unwrap();
    (good, size)
}

#[test]
fn damaged_backups_never_count() {
    let dir = tempfile::tempdir().unwrap();
    let db = app_db(dir.path());
    let s = Setup::new(dir, &[("app", &db)], "", true);
    let (good, size) = one_good_backup_and_four_bad_files(&s);
    let e = s.start(&[]);
    let files_in = |body: &str, state: &str| {
        exporter::value(
            body,
            "sqlite_backup_files",
            &[("database", "app"), ("state", state)],
        )
    };
    let body = e.metrics_until(std::time::Duration::from_secs(20), "the backup scan", |b| {
        files_in(b, "verified").is_some()
    });
    assert_eq!(files_in(&body, "verified"), Some(1.0), "{body}");
    assert_eq!(files_in(&body, "damaged"), Some(4.0), "{body}");
    assert_eq!(files_in(&body, "unverified"), Some(0.0), "{body}");
    let last = must(
        &body,
        "sqlite_backup_last_success_timestamp_seconds",
        &[("database", "app")],
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (now - last - 48.0 * 3600.0).abs() < 600.0,
        "the good backup's time, two days ago: {last}"
    );
    assert_eq!(
        must(
            &body,
            "sqlite_backup_last_size_bytes",
            &[("database", "app")]
        ),
        size as f64
    );
    assert_eq!(
        must(
            &body,
            "sqlite_recommendation",
            &[("database", "app"), ("recommendation", "backup")]
        ),
        1.0,
        "the newest verified backup is older than backup_max_age"
    );
    assert_eq!(
        must(
            &body,
            "sqlite_health_status",
            &[("database", "app"), ("status", "warning")]
        ),
        1.0
    );

    let t = Some(s.token.as_str());
    let (code, v) = api(&e, "GET", "/api/v1/databases/app/backups", t, None);
    assert_eq!(code, 200, "{v}");
    let listed: Vec<(&str, &str)> = v["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["file_name"].as_str().unwrap(),
                b["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(listed.len(), 5, "{v}");
    for (file, state) in &listed {
        let want = if *file == good { "verified" } else { "damaged" };
        assert_eq!(*state, want, "{file}: {v}");
    }
    for (file, _) in listed.iter().filter(|(f, _)| *f != good) {
        let body = format!(r#"{{"backup":"{file}"}}"#);
        let (code, v) = api(&e, "POST", "/api/v1/databases/app/restore", t, Some(&body));
        assert_eq!(code, 422, "restore of {file}: {v}");
        assert!(
            v["error"].as_str().unwrap().contains("failed verification"),
            "{v}"
        );
    }
    drop(e);

    let (code, v) = s.cli(&["backups", "app"]);
    assert_eq!(code, Some(0), "{v}");
    let states: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["state"].as_str().unwrap())
        .collect();
    assert_eq!(states.iter().filter(|s| **s == "damaged").count(), 4, "{v}");
    let (code, v) = s.cli(&["restore", "app", "app-2024-01-01_00-00-00.db.gz"]);
    assert_eq!(code, Some(1), "refused, as every refusal: {v}");
    assert!(
        v["error"].as_str().unwrap().contains("corrupt gzip data"),
        "{v}"
    );
}
