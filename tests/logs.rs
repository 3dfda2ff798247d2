//! The log lines of the real binary have the shape of Prometheus's and node_exporter's: `ts`,
//! `level`, `msg`, then flat keys, in logfmt and in JSON; values are what an operator reads
//! (no Rust `Debug` text, no exponent notation), and a corrupt monitored database is a `warn`,
//! not an `error` (reserved for the exporter's own failures).

#[path = "util/corrupt.rs"]
mod corrupt;
#[path = "util/exporter.rs"]
mod exporter;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs the exporter on a sound and a corrupt database with `--log.format=FORMAT` until both
/// integrity checks are logged; returns every line it wrote to stderr by then.
fn log_lines(format: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let good = exporter::app_db(dir.path());
    let bad = corrupt::table_page_damage(dir.path());
    let config = dir.path().join("sqlite_exporter.yml");
    std::fs::write(
        &config,
        format!(
            "defaults:\n  integrity_check: {{ interval: 1s }}\ndatabases:\n  - name: good\n    path: {}\n  - name: bad\n    path: {}\n",
            good.display(),
            bad.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(exporter::binary())
        .arg("--web.listen-address=127.0.0.1:0")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--log.format={format}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut lines = Vec::new();
    let done = |lines: &[String]| {
        lines.iter().any(|l| l.contains("integrity check passed"))
            && lines.iter().any(|l| l.contains("integrity check FAILED"))
    };
    while !done(&lines) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => lines.push(l),
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "both integrity checks not logged in 30 s:\n{}",
                    lines.join("\n")
                );
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    lines
}

fn line_with<'a>(lines: &'a [String], text: &str) -> &'a str {
    lines
        .iter()
        .find(|l| l.contains(text))
        .unwrap_or_else(|| panic!("no line with {text:?}:\n{}", lines.join("\n")))
}

/// No Rust `Debug` rendering of an `Option`, an enum or a float.
fn assert_plain(lines: &[String]) {
    for l in lines {
        for debug in [
            "Some(", "None", "Manual", "Policy", "Failed(", "e-5", "e-6", "e-7",
        ] {
            assert!(!l.contains(debug), "Rust debug text {debug:?} in: {l}");
        }
    }
}

#[test]
fn logfmt_lines_are_ts_level_msg_then_flat_keys() {
    let lines = log_lines("logfmt");
    for l in &lines {
        let keys: Vec<&str> = l
            .split(' ')
            .filter_map(|w| w.split_once('=').map(|(k, _)| k))
            .take(3)
            .collect();
        assert_eq!(keys, ["ts", "level", "msg"], "line shape: {l}");
        assert!(!l.contains("message="), "{l}");
    }
    assert_plain(&lines);
    let passed = line_with(&lines, "msg=\"integrity check passed\"");
    assert!(passed.contains(" level=info "), "{passed}");
    assert!(passed.contains(" database=good "), "{passed}");
    assert!(passed.contains(" foreign_key_violations=0"), "{passed}");
    let seconds = passed
        .split(' ')
        .find_map(|w| w.strip_prefix("duration_seconds="))
        .unwrap_or_else(|| panic!("no duration_seconds in {passed}"));
    let (int, frac) = seconds
        .split_once('.')
        .unwrap_or_else(|| panic!("{seconds}"));
    assert!(
        int.parse::<u64>().is_ok() && frac.len() == 6 && frac.parse::<u64>().is_ok(),
        "duration_seconds={seconds} is not a plain decimal"
    );
    let failed = line_with(&lines, "msg=\"integrity check FAILED\"");
    assert!(
        failed.contains(" level=warn "),
        "a corrupt database is not a warning: {failed}"
    );
    assert!(failed.contains(" database=bad "), "{failed}");
}

#[test]
fn json_lines_are_flat_objects_with_the_same_keys() {
    let lines = log_lines("json");
    assert_plain(&lines);
    for l in &lines {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        // Key order as written (a parsed object does not keep it).
        let level = l
            .strip_prefix("{\"ts\":\"")
            .and_then(|rest| rest.split_once("\",\"level\":\""))
            .and_then(|(_, rest)| rest.split_once("\",\"msg\":"))
            .map(|(level, _)| level);
        assert!(level.is_some_and(|l| !l.contains('"')), "line shape: {l}");
        assert!(v.get("fields").is_none(), "nested fields: {l}");
        for (k, val) in v.as_object().unwrap() {
            assert!(!val.is_object() && !val.is_array(), "{k} is not flat: {l}");
        }
    }
    let passed: serde_json::Value =
        serde_json::from_str(line_with(&lines, "\"integrity check passed\"")).unwrap();
    assert_eq!(passed["level"], "info");
    assert_eq!(passed["database"], "good");
    assert_eq!(passed["foreign_key_violations"], 0);
    assert!(passed["duration_seconds"].is_f64(), "{passed}");
    let failed: serde_json::Value =
        serde_json::from_str(line_with(&lines, "\"integrity check FAILED\"")).unwrap();
    assert_eq!(failed["level"], "warn", "{failed}");
}
