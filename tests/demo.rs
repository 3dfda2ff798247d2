//! `--demo` shows a healthy database under a realistic load: no recommendation and status
//! `healthy` from its first seconds on, so the shipped alerts stay quiet on it.

#[path = "util/exporter.rs"]
mod exporter;

use std::time::Duration;

use exporter::Exporter;

#[test]
fn the_demo_is_healthy_with_no_recommendation() {
    let dir = tempfile::tempdir().unwrap();
    let demo = Exporter::start(&[&format!("--demo={}", dir.path().join("demo").display())]);
    // The first probes (every 5 s in the demo), the first backup and the writer's first WAL
    // cycles (about 25 s of writes fill 200 pages) all happen within these samples.
    std::thread::sleep(Duration::from_secs(3));
    for sample in 0..6 {
        let (code, body) = demo.get("/health");
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let db = &v["databases"][0];
        assert_eq!(
            db["health"]["recommendations"],
            serde_json::json!([]),
            "sample {sample}: the demo recommends something:\n{body}"
        );
        assert_eq!(v["status"], "healthy", "sample {sample}:\n{body}");
        std::thread::sleep(Duration::from_secs(5));
    }
    let metrics = demo.metrics();
    assert_eq!(
        exporter::must(&metrics, "sqlite_health_status", &[("status", "healthy")]),
        1.0
    );
}

#[test]
fn the_demo_drills_its_first_backup_within_a_minute() {
    let dir = tempfile::tempdir().unwrap();
    let demo = Exporter::start(&[&format!("--demo={}", dir.path().join("demo").display())]);
    let body = demo.metrics_until(Duration::from_secs(60), "a passed restore drill", |b| {
        exporter::value(b, "sqlite_backup_drill_success", &[("database", "demo")]) == Some(1.0)
    });
    let duration = exporter::must(&body, "sqlite_backup_drill_duration_seconds", &[]);
    assert!(duration > 0.0 && duration < 60.0, "{duration}");
    // The demo's backup was taken at start, so the one drilled is seconds old.
    let age = exporter::must(&body, "sqlite_backup_drill_backup_age_seconds", &[]);
    assert!((0.0..60.0).contains(&age), "{age}");
}
