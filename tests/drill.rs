//! Restore drills through the real binary: `POST .../drill` and `drill DB` run the same drill
//! and answer the same JSON; a damaged backup fails its drill; a sidecar without row counts is
//! drilled on what it recorded; a drill without the disk space it needs is refused with its
//! reason and counted as no drill at all; drill series appear only once there is a backup.

#[path = "util/exporter.rs"]
mod exporter;

use serde_json::Value;

use exporter::{api, app_db, eventually, value, Exporter, Setup};

fn drill_over_http(s: &Setup, e: &Exporter) -> (u16, Value) {
    api(
        e,
        "POST",
        "/api/v1/databases/app/drill",
        Some(&s.token),
        None,
    )
}

/// The keys of a JSON object, sorted.
fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

/// Overwrites 256 bytes in the second page of `path`.
fn damage(path: &std::path::Path) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(&[0xA5; 256], 4096 + 512).unwrap();
}

#[test]
fn the_api_and_the_cli_run_the_same_drill_and_a_damaged_backup_fails_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = app_db(dir.path());
    let s = Setup::new(dir, &[("app", &db)], "", true);
    let e = s.start(&[]);

    // No backup: nothing to drill, and no drill series.
    let (code, v) = drill_over_http(&s, &e);
    assert_eq!(code, 404, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("no backup of app"),
        "{v}"
    );
    assert_eq!(
        value(&e.metrics(), "sqlite_backup_drill_success", &[]),
        None
    );

    // The token the other routes need.
    let (code, _) = api(&e, "POST", "/api/v1/databases/app/drill", None, None);
    assert_eq!(code, 401);
    let (code, _) = api(
        &e,
        "POST",
        "/api/v1/databases/app/drill",
        Some("wrong"),
        None,
    );
    assert_eq!(code, 401);

    let (code, backup) = api(
        &e,
        "POST",
        "/api/v1/databases/app/backup",
        Some(&s.token),
        None,
    );
    assert_eq!(code, 200, "{backup}");
    assert_eq!(backup["meta"]["table_rows"]["accounts"], 500, "{backup}");
    let file = backup["file_name"].as_str().unwrap();

    let (code, over_http) = drill_over_http(&s, &e);
    assert_eq!(code, 200, "{over_http}");
    assert_eq!(over_http["passed"], true, "{over_http}");
    assert_eq!(over_http["backup"], file);
    assert_eq!(
        over_http["compared"],
        serde_json::json!(["sha256", "page_count", "table_rows"])
    );
    assert_eq!(over_http["not_recorded"], serde_json::json!([]));
    let body = e.metrics();
    assert_eq!(
        value(&body, "sqlite_backup_drill_success", &[("database", "app")]),
        Some(1.0)
    );
    for name in [
        "sqlite_backup_drill_last_run_timestamp_seconds",
        "sqlite_backup_drill_duration_seconds",
        "sqlite_backup_drill_backup_age_seconds",
    ] {
        let v = value(&body, name, &[("database", "app")]);
        assert!(v.is_some_and(|v| v >= 0.0), "{name}: {v:?}\n{body}");
    }
    // The scratch copy is gone, and so is its directory.
    assert!(!s.backups.join("drill").exists());

    let (code, on_the_cli) = s.cli(&["drill", "app"]);
    assert_eq!(code, Some(0), "{on_the_cli}");
    assert_eq!(keys(&on_the_cli), keys(&over_http));
    assert_eq!(on_the_cli["passed"], true);
    assert_eq!(on_the_cli["backup"], file);

    damage(&s.backups.join(file));
    let (code, failed) = s.cli(&["drill", "app"]);
    assert_eq!(code, Some(1), "{failed}");
    assert_eq!(failed["passed"], false, "{failed}");
    let problems = failed["problems"].to_string();
    assert!(
        problems.contains("does not match the")
            && problems.contains("recorded when the backup was taken"),
        "{failed}"
    );
    assert!(
        failed["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("restore drill of {file} FAILED")),
        "{failed}"
    );
    let (code, failed) = drill_over_http(&s, &e);
    assert_eq!(code, 200, "{failed}");
    assert_eq!(failed["passed"], false, "{failed}");
    assert_eq!(
        value(
            &e.metrics(),
            "sqlite_backup_drill_success",
            &[("database", "app")]
        ),
        Some(0.0)
    );
    let (_, health) = api(
        &e,
        "GET",
        "/api/v1/databases/app/health",
        Some(&s.token),
        None,
    );
    assert!(
        health.to_string().contains("restore drill of backup"),
        "{health}"
    );
}

#[test]
fn row_counts_are_compared_when_recorded_and_an_old_sidecar_is_drilled_on_what_it_has() {
    let dir = tempfile::tempdir().unwrap();
    let db = app_db(dir.path());
    let s = Setup::new(dir, &[("app", &db)], "", true);
    let (code, backup) = s.cli(&["backup", "app"]);
    assert_eq!(code, Some(0), "{backup}");
    let sidecar = s.backups.join(format!(
        "{}.meta.json",
        backup["file_name"].as_str().unwrap()
    ));
    let recorded: Value = serde_json::from_slice(&std::fs::read(&sidecar).unwrap()).unwrap();

    // A sidecar whose row count disagrees with the file: the drill names the table.
    let mut wrong = recorded.clone();
    wrong["table_rows"]["accounts"] = 499.into();
    std::fs::write(&sidecar, wrong.to_string()).unwrap();
    let (code, v) = s.cli(&["drill", "app"]);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(
        v["problems"],
        serde_json::json!(["table accounts: 500 rows restored, the backup recorded 499"])
    );

    // A sidecar written before row counts were recorded still loads and is drilled.
    let mut old = recorded.clone();
    old.as_object_mut().unwrap().remove("table_rows");
    std::fs::write(&sidecar, old.to_string()).unwrap();
    let (code, listed) = s.cli(&["backups", "app"]);
    assert_eq!(code, Some(0), "{listed}");
    assert_eq!(listed[0]["state"], "verified", "{listed}");
    let (code, v) = s.cli(&["drill", "app"]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["passed"], true, "{v}");
    assert_eq!(v["compared"], serde_json::json!(["sha256", "page_count"]));
    assert_eq!(v["not_recorded"], serde_json::json!(["table_rows"]));
}

#[test]
fn a_drill_without_the_disk_space_it_needs_is_refused_not_failed() {
    let dir = tempfile::tempdir().unwrap();
    let db = app_db(dir.path());
    // More than any disk has.
    let s = Setup::new(
        dir,
        &[("app", &db)],
        "    drill:\n      free_space_margin: 1000000TiB\n",
        true,
    );
    let (code, v) = s.cli(&["backup", "app"]);
    assert_eq!(code, Some(0), "{v}");

    let (code, v) = s.cli(&["drill", "app"]);
    assert_eq!(code, Some(1), "{v}");
    let why = v["error"].as_str().unwrap();
    assert!(
        why.starts_with("not enough free space in")
            && why.contains("backup.drill.free_space_margin"),
        "{v}"
    );
    assert!(v.get("passed").is_none(), "{v}");

    let e = s.start(&[]);
    let (code, v) = drill_over_http(&s, &e);
    assert_eq!(code, 422, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("not enough free space"),
        "{v}"
    );
    // The scheduled first drill is refused the same way; none is counted, passed or failed.
    let parts = [
        "action failed",
        "action=drill",
        "trigger=policy",
        "not enough free space",
    ];
    eventually(60, "the scheduled drill's refusal in the log", || {
        e.log_text()
            .lines()
            .any(|l| parts.iter().all(|p| l.contains(p)))
    });
    let body = e.metrics();
    assert_eq!(
        value(&body, "sqlite_backup_drill_success", &[]),
        None,
        "{body}"
    );
    assert_eq!(
        value(&body, "sqlite_backup_drill_last_run_timestamp_seconds", &[]),
        None
    );
    assert!(!s.backups.join("drill").exists());
}

#[test]
fn the_drill_proves_the_newest_verified_backup_and_a_damaged_one_only_when_none_is_verified() {
    let dir = tempfile::tempdir().unwrap();
    let db = app_db(dir.path());
    let s = Setup::new(dir, &[("app", &db)], "", true);
    let (_, older) = s.cli(&["backup", "app"]);
    let (_, newer) = s.cli(&["backup", "app"]);
    let (older, newer) = (
        older["file_name"].as_str().unwrap().to_owned(),
        newer["file_name"].as_str().unwrap().to_owned(),
    );
    assert_ne!(older, newer);
    damage(&s.backups.join(&newer));
    let (code, v) = s.cli(&["drill", "app"]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["backup"], older.as_str(), "{v}");

    damage(&s.backups.join(&older));
    let (code, v) = s.cli(&["drill", "app"]);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(v["backup"], newer.as_str(), "{v}");
    assert_eq!(v["passed"], false, "{v}");
}
