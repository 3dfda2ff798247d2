//! A real Prometheus for the end-to-end tests: started on loopback with the shipped alert rules
//! (every `for:` cut to 0s), scraping one job every second, and queried through its HTTP API.

#![allow(dead_code)] // each test crate uses a different subset

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::exporter::Daemon;
use super::tools::{read_yaml, repo_path, PROMETHEUS};

/// How long Prometheus and Alertmanager get to reach each expected state.
pub const PATIENCE: Duration = Duration::from_secs(30);
/// The log line with which Prometheus and Alertmanager announce their bound address.
pub const LISTENING: &str = "msg=\"Listening on\"";

/// A running Prometheus and its HTTP API, scraping the targets of one job.
pub struct Prometheus {
    pub daemon: Daemon,
    /// The job its targets are scraped as.
    pub job: String,
    targets: usize,
}

/// Starts Prometheus scraping `targets` every second as job `job`, with the shipped rules,
/// sending alerts to `alertmanager` when given.
pub fn start_prometheus(
    dir: &Path,
    job: &str,
    targets: &[&str],
    alertmanager: Option<&str>,
) -> Prometheus {
    let rules = dir.join("rules.yml");
    std::fs::write(&rules, rules_without_for()).unwrap();
    let mut config = json!({
        "global": { "scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s" },
        "rule_files": [rules],
        "scrape_configs": [{ "job_name": job, "static_configs": [{ "targets": targets }] }],
    });
    if let Some(alertmanager) = alertmanager {
        config["alerting"] =
            json!({ "alertmanagers": [{ "static_configs": [{ "targets": [alertmanager] }] }] });
    }
    let path = dir.join("prometheus.yml");
    std::fs::write(&path, config.to_string()).unwrap();
    let child = PROMETHEUS.spawn(&[
        format!("--config.file={}", path.display()),
        format!("--storage.tsdb.path={}", dir.join("prometheus").display()),
        "--web.listen-address=127.0.0.1:0".to_string(),
    ]);
    let daemon = Daemon::watch(child, LISTENING);
    // It listens before its TSDB is open, and answers 503 until then.
    let ready = eventually(PATIENCE, || (daemon.get("/-/ready").0 == 200).then_some(()));
    assert!(
        ready.is_some(),
        "Prometheus not ready:\n{}",
        daemon.log_text()
    );
    Prometheus {
        daemon,
        job: job.to_string(),
        targets: targets.len(),
    }
}

/// The shipped rule file with every `for:` set to 0s, so alerts fire at the first evaluation
/// whose data satisfies them.
pub fn rules_without_for() -> String {
    let mut rules = read_yaml(&repo_path("alerts/sqlite_exporter.rules.yml"));
    let groups = rules["groups"]
        .as_sequence_mut()
        .expect("`groups` is a list");
    for group in groups {
        let list = group["rules"].as_sequence_mut().expect("`rules` is a list");
        for rule in list {
            if let Some(duration) = rule.get_mut("for") {
                *duration = "0s".into();
            }
        }
    }
    serde_yaml::to_string(&rules).unwrap()
}

impl Prometheus {
    /// GET `/api/v1/{path}` with `params`; returns `data` after checking `status`.
    pub fn api(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let url = format!("http://{}/api/v1/{path}", self.daemon.addr);
        let mut request = ureq::get(&url).timeout(Duration::from_secs(10));
        for (key, value) in params {
            request = request.query(key, value);
        }
        let body: Value = match request.call() {
            Ok(response) => response.into_json().unwrap(),
            Err(ureq::Error::Status(code, response)) => {
                panic!(
                    "GET {url} {params:?}: {code} {}",
                    response.into_string().unwrap()
                )
            }
            Err(e) => panic!("GET {url}: {e}"),
        };
        assert_eq!(body["status"], "success", "GET {url} {params:?}: {body}");
        body["data"].clone()
    }

    /// The samples of the instant query `expr`, each `{"metric": {...}, "value": [t, "v"]}`
    /// (a scalar result becomes one sample without labels).
    pub fn query(&self, expr: &str) -> Vec<Value> {
        let data = self.api("query", &[("query", expr)]);
        match data["resultType"].as_str() {
            Some("vector") => data["result"].as_array().unwrap().clone(),
            Some("scalar") => vec![json!({ "metric": {}, "value": data["result"] })],
            other => panic!("`{expr}`: unexpected result type {other:?}"),
        }
    }

    /// Waits until every target of the job is up and each has at least `samples` scrapes in
    /// the TSDB (rate() needs two; a few more make every panel's range meaningful).
    pub fn wait_for_samples(&self, samples: u32) {
        let job = &self.job;
        let expr = format!("count_over_time(up{{job=\"{job}\"}}[1m]) >= {samples}");
        let waited = eventually(PATIENCE, || {
            let targets = self.api("targets", &[("state", "active")]);
            let healthy = targets["activeTargets"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|t| t["labels"]["job"] == job.as_str() && t["health"] == "up")
                .count();
            (healthy == self.targets && self.query(&expr).len() == self.targets).then_some(())
        });
        waited.unwrap_or_else(|| {
            panic!(
                "Prometheus did not get {samples} samples of all {} targets in {PATIENCE:?}; \
                 targets: {}\nlog:\n{}",
                self.targets,
                self.api("targets", &[]),
                self.daemon.log_text()
            )
        });
    }

    /// The labels of every alert in state firing.
    pub fn firing_labels(&self) -> Vec<Value> {
        let alerts = self.api("alerts", &[]);
        alerts["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["state"] == "firing")
            .map(|a| a["labels"].clone())
            .collect()
    }

    /// `(alertname, database)` of every alert in state firing.
    pub fn firing(&self) -> Vec<(String, String)> {
        self.firing_labels()
            .iter()
            .map(|labels| {
                let label = |k: &str| labels[k].as_str().unwrap_or_default().to_string();
                (label("alertname"), label("database"))
            })
            .collect()
    }

    /// Waits until alert `alert` is firing for `database` (`firing == true`) or no longer is
    /// (`firing == false`); panics with the alerts seen when it does not happen in time.
    pub fn wait_for_alert(&self, alert: &str, database: &str, firing: bool, patience: Duration) {
        let want = (alert.to_string(), database.to_string());
        let reached = eventually(patience, || {
            (self.firing().contains(&want) == firing).then_some(())
        });
        assert!(
            reached.is_some(),
            "{alert} for {database} never became {} in {patience:?}; firing: {:?}",
            if firing { "firing" } else { "quiet" },
            self.firing()
        );
    }
}

/// Calls `attempt` every 500 ms until it returns `Some` or `patience` has passed.
pub fn eventually<T>(patience: Duration, mut attempt: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + patience;
    loop {
        if let Some(done) = attempt() {
            return Some(done);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
