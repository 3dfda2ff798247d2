//! The shipped dashboards and alert rules on a real Prometheus and Alertmanager.
//!
//! Two exporters are scraped every second by one job `sqlite`: the demo (`--demo=DIR`), and one
//! whose config lists the databases the alerts are about — a corrupt one, a missing path, a
//! file that is not a database, and WAL databases held open with 20 MiB and 110 MiB of
//! uncheckpointed frames, and two more with thresholds of their own in the config file (2 MiB
//! over its 1 MiB, 20 MiB under its 1 GiB), which the alerts must follow. Prometheus loads `alerts/sqlite_exporter.rules.yml` with every `for:`
//! cut to 0s and sends to an Alertmanager running `examples/alertmanager.yml` with its webhook
//! URLs pointed at a receiver inside this test and its group timers cut to a second.
//!
//! Then every panel query and every variable of `dashboards/*.json` must return data, both for
//! the whole job and for the demo alone (two PASSIVE checkpoints of the demo give the panels of
//! actions in the time range one to show); the integrity, unreadable and WAL alerts must fire for
//! exactly the databases that deserve them (never the demo); and Alertmanager must deliver
//! them, routed by severity, with the critical WAL alert inhibiting the warning one. Last, a
//! threshold lowered in the config file (and reloaded) makes its alert fire.

#[path = "util/corrupt.rs"]
mod corrupt;
#[path = "util/exporter.rs"]
mod exporter;
#[path = "util/prometheus.rs"]
mod prometheus;
#[path = "util/tools.rs"]
mod tools;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use exporter::{Daemon, Exporter};
use prometheus::{eventually, start_prometheus, Prometheus, LISTENING, PATIENCE};
use rusqlite::Connection;
use serde_json::{json, Value};
use tools::{read, read_yaml, repo_path, ALERTMANAGER};

const JOB: &str = "sqlite";
const MIB: u64 = 1024 * 1024;
/// The alerts this test is about; the others may or may not fire on these databases.
const WATCHED_ALERTS: [&str; 4] = [
    "SQLiteIntegrityCheckFailed",
    "SQLiteDatabaseUnreadable",
    "SQLiteWALLarge",
    "SQLiteWALTooLarge",
];

#[test]
fn dashboards_and_alerts_work_on_a_live_prometheus_and_alertmanager() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let webhook = Webhook::start();
    let alertmanager = start_alertmanager(dir, &webhook.url());
    let demo = Exporter::start(&[&format!("--demo={}", dir.join("demo").display())]);
    let (config, _wal_writers) = special_databases(dir);
    let special = Exporter::start(&[&format!("--config.file={}", config.display())]);
    let prometheus = start_prometheus(
        dir,
        JOB,
        &[&demo.addr, &special.addr],
        Some(&alertmanager.addr),
    );

    prometheus.wait_for_samples(5);
    checkpoint_the_demo(&prometheus, &demo, &dir.join("demo"));
    check_dashboards(&prometheus, &demo.addr, &special.addr);
    check_openmetrics_ingestion(&prometheus, &special.addr);

    let mut expected = expected_alerts(&special.addr);
    check_alerts(&prometheus, &expected);
    check_notifications(&webhook, &alertmanager, &expected);

    // A threshold changed in the config file moves the alert, with no change to the rules.
    let mut edited: Value = serde_json::from_str(&read(&config)).unwrap();
    for entry in edited["databases"].as_array_mut().unwrap() {
        if entry["name"] == "wal_tolerant" {
            entry["thresholds"]["wal_critical_bytes"] = "1MiB".into();
        }
    }
    std::fs::write(&config, edited.to_string()).unwrap();
    special.signal(libc::SIGHUP);
    special.wait_log(&["configuration reloaded"]);
    expected.insert((
        "SQLiteWALLarge".to_string(),
        "wal_tolerant".to_string(),
        special.addr.clone(),
    ));
    check_alerts(&prometheus, &expected);
}

/// Runs PASSIVE checkpoints (they never wait for anyone) of the demo through its control API,
/// so an action lands inside the time range the action panels look at. The first one creates
/// the series of the checkpoint's duration, which `increase()` cannot see grow from nothing;
/// the second, after Prometheus has scraped the first, makes it grow.
fn checkpoint_the_demo(prometheus: &Prometheus, demo: &Exporter, demo_dir: &Path) {
    let token = read(&demo_dir.join("token"));
    let checkpoint = || {
        let (code, body) = exporter::api(
            demo,
            "POST",
            "/api/v1/databases/demo/checkpoint",
            Some(token.trim()),
            Some(r#"{"mode":"passive"}"#),
        );
        assert_eq!(code, 200, "{body}");
    };
    checkpoint();
    let series = format!(
        "sqlite_action_duration_seconds_count{{job=\"{JOB}\", instance=\"{}\", action=\"checkpoint\"}}",
        demo.addr
    );
    let scraped = eventually(PATIENCE, || {
        (!prometheus.query(&series).is_empty()).then_some(())
    });
    assert!(scraped.is_some(), "Prometheus never scraped `{series}`");
    checkpoint();
}

/// Prometheus asks for OpenMetrics (this version always prefers it), and ingests every family
/// the exporter serves in it: each metric name of an OpenMetrics scrape of `exporter` is in the
/// TSDB for that target.
fn check_openmetrics_ingestion(prometheus: &Prometheus, exporter: &str) {
    let accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                  version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let r = exporter::raw(
        exporter,
        &format!(
            "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert!(
        r.head.contains("application/openmetrics-text"),
        "{}",
        r.head
    );
    let body = String::from_utf8(r.body).unwrap();
    let served: BTreeSet<String> = body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect();
    let mut missing = Vec::new();
    let ingested = eventually(PATIENCE, || {
        let found: BTreeSet<String> = prometheus
            .query(&format!(
                "count by (__name__) ({{job=\"{JOB}\", instance=\"{exporter}\"}})"
            ))
            .iter()
            .filter_map(|s| s["metric"]["__name__"].as_str().map(str::to_string))
            .collect();
        missing = served.difference(&found).cloned().collect();
        missing.is_empty().then_some(())
    });
    assert!(
        ingested.is_some(),
        "served in OpenMetrics but not in Prometheus: {missing:?}"
    );
}

/// A database name and the alerts it should fire (all on the special exporter).
const SPECIAL: [(&str, &[&str]); 7] = [
    ("corrupt", &["SQLiteIntegrityCheckFailed"]),
    ("missing", &["SQLiteDatabaseUnreadable"]),
    ("not_a_database", &["SQLiteDatabaseUnreadable"]),
    ("wal_warning", &["SQLiteWALLarge"]),
    ("wal_critical", &["SQLiteWALLarge", "SQLiteWALTooLarge"]),
    // Thresholds of their own in the config file, which the rules follow: a 2 MiB WAL over
    // its 1 MiB wal_critical_bytes warns, a 20 MiB one under its 1 GiB ones does not.
    ("wal_strict", &["SQLiteWALLarge"]),
    ("wal_tolerant", &[]),
];

/// The `thresholds:` of the special databases that set their own.
fn own_thresholds(name: &str) -> Option<Value> {
    match name {
        "wal_strict" => Some(json!({ "wal_critical_bytes": "1MiB" })),
        "wal_tolerant" => Some(json!({ "wal_critical_bytes": "1GiB", "wal_alert_bytes": "1GiB" })),
        _ => None,
    }
}

/// Builds the special databases as `dir/{name}.db` (`missing` stays missing) and writes the
/// exporter's config listing them. Returns the config and the connections that keep the WALs
/// from being checkpointed.
fn special_databases(dir: &Path) -> (PathBuf, Vec<Connection>) {
    let path = |name: &str| dir.join(format!("{name}.db"));
    std::fs::rename(corrupt::table_page_damage(dir), path("corrupt")).unwrap();
    let text = "this is a text file, not SQLite\n".repeat(200);
    std::fs::write(path("not_a_database"), text).unwrap();
    let wal_writers = vec![
        large_wal(&path("wal_warning"), 20),
        large_wal(&path("wal_critical"), 110),
        large_wal(&path("wal_strict"), 2),
        large_wal(&path("wal_tolerant"), 20),
    ];
    let databases: Vec<Value> = SPECIAL
        .iter()
        .map(|(name, _)| {
            let mut entry = json!({ "name": name, "path": path(name) });
            if let Some(t) = own_thresholds(name) {
                entry["thresholds"] = t;
            }
            entry
        })
        .collect();
    // Probes every second, like the 1 s scrapes, so the 1-minute rate windows of the
    // latency panels have samples within the test's lifetime.
    let config = json!({
        "defaults": { "backup": { "dir": dir.join("backups") }, "probes": { "interval": "1s" } },
        "databases": databases,
    });
    let config_path = dir.join("sqlite_exporter.yml");
    std::fs::write(&config_path, config.to_string()).unwrap();
    (config_path, wal_writers)
}

/// A WAL database whose `-wal` file holds more than `mib` MiB: automatic checkpoints are off,
/// and the returned connection must stay open (closing the last connection checkpoints).
fn large_wal(path: &Path, mib: u64) -> Connection {
    let blobs = mib * 16; // 64 KiB each, plus page and frame overhead
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;
         CREATE TABLE blobs(id INTEGER PRIMARY KEY, body BLOB NOT NULL);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {blobs})
         INSERT INTO blobs(body) SELECT randomblob(65536) FROM n;"
    ))
    .unwrap();
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let size = std::fs::metadata(&wal).unwrap().len();
    assert!(size > mib * MIB, "{} is only {size} bytes", path.display());
    conn
}

/// `(alertname, database, instance)` of every watched alert that must fire: those of
/// [`SPECIAL`], and none for the healthy demo.
fn expected_alerts(special: &str) -> BTreeSet<(String, String, String)> {
    SPECIAL
        .iter()
        .flat_map(|(database, alerts)| {
            alerts
                .iter()
                .map(move |alert| (alert.to_string(), database.to_string(), special.to_string()))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Dashboards

/// One query of a dashboard: where it is, and its expression with Grafana's variables.
struct DashboardQuery {
    place: String,
    expr: String,
}

/// Values for the dashboard variables: all of the job, or one database of one instance.
struct Scope<'a> {
    name: &'a str,
    instance: &'a str,
    database: &'a str,
}

impl Scope<'_> {
    /// `expr` with Grafana's variables replaced as Grafana would for this scope (longest names
    /// first, so `$__interval` does not eat `$__interval_ms`).
    fn substitute(&self, expr: &str) -> String {
        let values = [
            ("__rate_interval", "1m"),
            ("__interval_ms", "15000"),
            ("__interval", "15s"),
            ("__range", "5m"),
            ("database", self.database),
            ("instance", self.instance),
            ("job", JOB),
        ];
        let mut expr = expr.to_string();
        for (name, value) in values {
            expr = expr.replace(&format!("${{{name}}}"), value);
            expr = expr.replace(&format!("${name}"), value);
        }
        assert!(!expr.contains('$'), "unknown variable left in `{expr}`");
        expr
    }
}

/// Every panel query (with the panels of collapsed rows) and every `label_values` variable of
/// every dashboard.
fn dashboard_queries() -> (Vec<DashboardQuery>, Vec<DashboardQuery>) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo_path("dashboards"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no dashboards");
    let (mut panels, mut variables) = (Vec::new(), Vec::new());
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let dashboard: Value = serde_json::from_str(&read(&file)).unwrap();
        let top = dashboard["panels"].as_array().unwrap();
        let nested = top.iter().filter_map(|p| p["panels"].as_array()).flatten();
        for panel in top.iter().chain(nested) {
            for target in panel["targets"].as_array().into_iter().flatten() {
                panels.push(DashboardQuery {
                    place: format!("{name} panel {}", panel["title"]),
                    expr: target["expr"].as_str().unwrap_or("").to_string(),
                });
            }
        }
        let list = dashboard["templating"]["list"].as_array().unwrap();
        for variable in list.iter().filter(|v| v["type"] == "query") {
            let query = &variable["query"];
            variables.push(DashboardQuery {
                place: format!("{name} variable {}", variable["name"]),
                expr: query["query"]
                    .as_str()
                    .or(query.as_str())
                    .unwrap()
                    .to_string(),
            });
        }
    }
    (panels, variables)
}

/// Whether a query result would draw something in Grafana: a sample that is not NaN (what
/// `histogram_quantile` gives when nothing was observed in the range).
fn has_data(samples: &[Value]) -> bool {
    samples.iter().any(|s| s["value"][1] != "NaN")
}

/// `label_values(SELECTOR, LABEL)` → (SELECTOR, LABEL).
fn parse_label_values(query: &str) -> (&str, &str) {
    query
        .strip_prefix("label_values(")
        .and_then(|q| q.strip_suffix(')'))
        .and_then(|q| q.rsplit_once(','))
        .map(|(selector, label)| (selector.trim(), label.trim()))
        .unwrap_or_else(|| panic!("not a label_values(selector, label) query: {query}"))
}

/// Runs every dashboard query in both scopes until all return data (background checks and
/// rates may need a few more scrapes); panics listing the ones that never did.
fn check_dashboards(prometheus: &Prometheus, demo: &str, special: &str) {
    let (panels, variables) = dashboard_queries();
    let scopes = [
        Scope {
            name: "whole job",
            instance: ".*",
            database: ".*",
        },
        Scope {
            name: "demo only",
            instance: demo,
            database: "demo",
        },
    ];
    let mut failures = Vec::new();
    let passed = eventually(PATIENCE, || {
        failures.clear();
        for scope in &scopes {
            for query in &panels {
                let expr = scope.substitute(&query.expr);
                if !has_data(&prometheus.query(&expr)) {
                    failures.push(format!(
                        "[{}] {}: no data (or only NaN) for `{expr}`",
                        scope.name, query.place
                    ));
                }
            }
            for query in &variables {
                let (selector, label) = parse_label_values(&query.expr);
                let selector = scope.substitute(selector);
                let values =
                    prometheus.api(&format!("label/{label}/values"), &[("match[]", &selector)]);
                if values.as_array().is_none_or(Vec::is_empty) {
                    failures.push(format!(
                        "[{}] {}: no values of {label} for `{selector}`",
                        scope.name, query.place
                    ));
                }
            }
        }
        failures.is_empty().then_some(())
    });
    assert!(
        passed.is_some(),
        "{} dashboard queries returned no data:\n{}",
        failures.len(),
        failures.join("\n")
    );
    check_variable_values(prometheus, demo, special);
}

/// The variables offer every job, instance and database (the unreadable ones included: their
/// `sqlite_up` is 0, not absent).
fn check_variable_values(prometheus: &Prometheus, demo: &str, special: &str) {
    let values = |label: &str| -> BTreeSet<String> {
        let selector = format!("sqlite_up{{job=~\"{JOB}\"}}");
        let data = prometheus.api(&format!("label/{label}/values"), &[("match[]", &selector)]);
        serde_json::from_value(data).unwrap()
    };
    assert_eq!(values("job"), BTreeSet::from([JOB.to_string()]));
    assert_eq!(
        values("instance"),
        BTreeSet::from([demo.to_string(), special.to_string()])
    );
    let mut databases: BTreeSet<String> = SPECIAL.iter().map(|(n, _)| n.to_string()).collect();
    databases.insert("demo".to_string());
    assert_eq!(values("database"), databases);
}

// ---------------------------------------------------------------------------------------------
// Alerts

/// `(alertname, database, instance)` of the firing watched alerts Prometheus reports.
fn firing_watched_alerts(prometheus: &Prometheus) -> BTreeSet<(String, String, String)> {
    prometheus
        .firing_labels()
        .iter()
        .filter_map(watched)
        .collect()
}

/// `(alertname, database, instance)` of `labels` when it is one of the watched alerts.
fn watched(labels: &Value) -> Option<(String, String, String)> {
    let label = |name: &str| labels[name].as_str().unwrap_or("").to_string();
    let alertname = label("alertname");
    WATCHED_ALERTS
        .contains(&alertname.as_str())
        .then(|| (alertname, label("database"), label("instance")))
}

/// The watched alerts firing in Prometheus are exactly `expected`: each on its database, none
/// on the healthy demo, and the critical WAL alert not on the 20 MiB WAL.
fn check_alerts(prometheus: &Prometheus, expected: &BTreeSet<(String, String, String)>) {
    let mut firing = BTreeSet::new();
    let settled = eventually(PATIENCE, || {
        firing = firing_watched_alerts(prometheus);
        (firing == *expected).then_some(())
    });
    assert!(
        settled.is_some(),
        "watched alerts firing in Prometheus differ from the expected ones\n\
         missing: {:?}\nunexpected: {:?}\nall alerts: {}",
        expected.difference(&firing).collect::<Vec<_>>(),
        firing.difference(expected).collect::<Vec<_>>(),
        prometheus.api("alerts", &[])
    );
}

// ---------------------------------------------------------------------------------------------
// Alertmanager and its webhook

/// Starts Alertmanager on `examples/alertmanager.yml`, with every webhook pointed at `webhook`
/// and the group timers cut from 30s/5m to 1s so notifications come at once.
fn start_alertmanager(dir: &Path, webhook: &str) -> Daemon {
    let mut config = read_yaml(&repo_path("examples/alertmanager.yml"));
    config["route"]["group_wait"] = "1s".into();
    config["route"]["group_interval"] = "1s".into();
    for receiver in config["receivers"].as_sequence_mut().unwrap() {
        let hooks = receiver
            .get_mut("webhook_configs")
            .and_then(|h| h.as_sequence_mut());
        for hook in hooks.into_iter().flatten() {
            hook["url"] = webhook.into();
        }
    }
    let path = dir.join("alertmanager.yml");
    std::fs::write(&path, serde_yaml::to_string(&config).unwrap()).unwrap();
    let child = ALERTMANAGER.spawn(&[
        format!("--config.file={}", path.display()),
        format!("--storage.path={}", dir.join("alertmanager").display()),
        "--web.listen-address=127.0.0.1:0".to_string(),
        "--cluster.listen-address=".to_string(),
    ]);
    Daemon::watch(child, LISTENING)
}

/// Alertmanager delivered every expected alert through the receiver its severity routes to
/// (critical → `pager`, warning → `team-webhook`), never one for the demo, and not the WAL
/// warning of the database whose critical WAL alert inhibits it.
fn check_notifications(
    webhook: &Webhook,
    alertmanager: &Daemon,
    expected: &BTreeSet<(String, String, String)>,
) {
    let routed = |(alertname, database, instance): &(String, String, String)| {
        let receiver = if alertname == "SQLiteWALLarge" {
            "team-webhook"
        } else {
            "pager"
        };
        (
            receiver.to_string(),
            alertname.clone(),
            database.clone(),
            instance.clone(),
        )
    };
    let inhibited = (
        "team-webhook".to_string(),
        "SQLiteWALLarge".to_string(),
        "wal_critical".to_string(),
    );
    let wanted: BTreeSet<_> = expected
        .iter()
        .map(routed)
        .filter(|(r, a, d, _)| (r, a, d) != (&inhibited.0, &inhibited.1, &inhibited.2))
        .collect();
    let mut got = BTreeSet::new();
    let delivered = eventually(Duration::from_secs(60), || {
        got = webhook.firing_watched();
        wanted.is_subset(&got).then_some(())
    });
    assert!(
        delivered.is_some(),
        "Alertmanager did not deliver {:?}\ngot: {got:?}\nAlertmanager log:\n{}",
        wanted.difference(&got).collect::<Vec<_>>(),
        alertmanager.log_text()
    );
    assert_eq!(
        got, wanted,
        "Alertmanager delivered unexpected notifications (the critical WAL alert must inhibit \
         the warning one; nothing for the demo)"
    );
}

/// An HTTP server on loopback standing in for the paging and chat webhooks: it records every
/// JSON body posted to it and answers 200.
struct Webhook {
    addr: String,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl Webhook {
    fn start() -> Webhook {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let recorded = bodies.clone();
        // Detached: it blocks in accept() until the test process exits.
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                if let Some(body) = receive(stream) {
                    recorded.lock().unwrap().push(body);
                }
            }
        });
        Webhook { addr, bodies }
    }

    fn url(&self) -> String {
        format!("http://{}/alerts", self.addr)
    }

    /// `(receiver, alertname, database, instance)` of every firing watched alert notified.
    fn firing_watched(&self) -> BTreeSet<(String, String, String, String)> {
        let bodies = self.bodies.lock().unwrap();
        let mut notified = BTreeSet::new();
        for body in bodies.iter() {
            let receiver = body["receiver"].as_str().unwrap_or("").to_string();
            let alerts = body["alerts"].as_array().into_iter().flatten();
            for alert in alerts.filter(|a| a["status"] == "firing") {
                if let Some((alertname, database, instance)) = watched(&alert["labels"]) {
                    notified.insert((receiver.clone(), alertname, database, instance));
                }
            }
        }
        notified
    }
}

/// Reads one HTTP/1.1 request with a `Content-Length` body, answers `200 OK` and closes the
/// connection; returns the body parsed as JSON (`None` for anything else).
fn receive(stream: TcpStream) -> Option<Value> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(&stream);
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    (&stream)
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .ok()?;
    serde_json::from_slice(&body).ok()
}
