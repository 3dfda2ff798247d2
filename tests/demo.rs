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
