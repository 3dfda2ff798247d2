//! The shipped alert rules (`alerts/`) are valid, unit-tested, and documented: promtool
//! accepts them and passes their unit tests, every alert has a firing and a quiet test case,
//! carries severity/summary/description/runbook_url, and its runbook_url points at a section of
//! `docs/runbooks.md` that exists.

#[path = "util/tools.rs"]
mod tools;

use std::collections::{BTreeMap, BTreeSet};

use serde_yaml::Value;
use tools::{read, read_yaml, repo_path, run_ok, PROMTOOL};

const RULES: &str = "sqlite_exporter.rules.yml";
const RULE_TESTS: &str = "sqlite_exporter.rules.test.yml";
const RUNBOOK_BASE: &str =
    "https://github.com/sqlite-exporter/sqlite_exporter/blob/main/docs/runbooks.md#";
const SEVERITIES: [&str; 3] = ["critical", "warning", "info"];

/// Every alerting rule of the rule file, by alert name.
fn alerts() -> BTreeMap<String, Value> {
    let rules = read_yaml(&repo_path("alerts").join(RULES));
    let mut alerts = BTreeMap::new();
    for group in rules["groups"].as_sequence().expect("`groups` is a list") {
        for rule in group["rules"].as_sequence().expect("`rules` is a list") {
            if let Some(name) = rule["alert"].as_str() {
                let previous = alerts.insert(name.to_string(), rule.clone());
                assert!(previous.is_none(), "alert {name} is defined twice");
            }
        }
    }
    assert!(!alerts.is_empty(), "no alerts in {RULES}");
    alerts
}

fn str_field<'a>(rule: &'a Value, section: &str, key: &str) -> &'a str {
    rule[section][key].as_str().unwrap_or("")
}

/// GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces to dashes.
fn github_anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Anchors of the `## ` sections of docs/runbooks.md, with each section's body.
fn runbook_sections() -> BTreeMap<String, String> {
    let text = read(&repo_path("docs/runbooks.md"));
    let mut sections = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            if let Some((anchor, body)) = current.take() {
                sections.insert(anchor, body);
            }
            current = Some((github_anchor(heading), String::new()));
        } else if let Some((_, body)) = current.as_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    if let Some((anchor, body)) = current {
        sections.insert(anchor, body);
    }
    sections
}

#[test]
fn promtool_accepts_the_rules() {
    run_ok(&PROMTOOL, &repo_path("alerts"), &["check", "rules", RULES]);
}

#[test]
fn promtool_unit_tests_pass() {
    let output = run_ok(
        &PROMTOOL,
        &repo_path("alerts"),
        &["test", "rules", RULE_TESTS],
    );
    assert!(output.contains("SUCCESS"), "promtool output:\n{output}");
}

#[test]
fn every_alert_has_a_firing_and_a_quiet_test_case() {
    let alerts = alerts();
    let tests = read_yaml(&repo_path("alerts").join(RULE_TESTS));
    let mut firing = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for test in tests["tests"].as_sequence().expect("`tests` is a list") {
        let Some(cases) = test["alert_rule_test"].as_sequence() else {
            continue;
        };
        for case in cases {
            let name = case["alertname"].as_str().expect("alertname").to_string();
            assert!(
                alerts.contains_key(&name),
                "{RULE_TESTS} tests {name}, which {RULES} does not define"
            );
            let expected = case["exp_alerts"].as_sequence().map_or(0, Vec::len);
            if expected == 0 {
                quiet.insert(name);
            } else {
                firing.insert(name);
            }
        }
    }
    let missing_firing: Vec<_> = alerts.keys().filter(|a| !firing.contains(*a)).collect();
    let missing_quiet: Vec<_> = alerts.keys().filter(|a| !quiet.contains(*a)).collect();
    assert!(
        missing_firing.is_empty() && missing_quiet.is_empty(),
        "alerts without a firing test case: {missing_firing:?}; \
         alerts without a not-firing test case: {missing_quiet:?}"
    );
}

#[test]
fn every_alert_has_severity_summary_description_and_runbook() {
    let mut problems = Vec::new();
    for (name, rule) in alerts() {
        let is_camel_case = name.chars().all(|c| c.is_ascii_alphanumeric());
        if !name.starts_with("SQLite") || !is_camel_case {
            problems.push(format!(
                "{name}: name must be CamelCase with the SQLite prefix"
            ));
        }
        let severity = str_field(&rule, "labels", "severity");
        if !SEVERITIES.contains(&severity) {
            problems.push(format!(
                "{name}: severity {severity:?} not in {SEVERITIES:?}"
            ));
        }
        if str_field(&rule, "annotations", "summary").is_empty() {
            problems.push(format!("{name}: no summary"));
        }
        let description = str_field(&rule, "annotations", "description");
        if !description.contains("{{ $labels.instance }}") {
            problems.push(format!("{name}: description does not name the instance"));
        }
        let per_database = !name.starts_with("SQLiteExporter");
        if per_database && !description.contains("{{ $labels.database }}") {
            problems.push(format!("{name}: description does not name the database"));
        }
        let expected_url = format!("{RUNBOOK_BASE}{}", name.to_lowercase());
        let url = str_field(&rule, "annotations", "runbook_url");
        if url != expected_url {
            problems.push(format!(
                "{name}: runbook_url {url:?}, expected {expected_url:?}"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_runbook_url_points_at_a_runbook_section() {
    let sections = runbook_sections();
    let mut problems = Vec::new();
    for (name, rule) in alerts() {
        let url = str_field(&rule, "annotations", "runbook_url");
        let anchor = url.rsplit_once('#').map_or("", |(_, anchor)| anchor);
        match sections.get(anchor) {
            None => problems.push(format!("{name}: docs/runbooks.md has no #{anchor} section")),
            Some(body) => {
                for part in ["**Meaning.**", "**Confirm.**", "**Fix.**"] {
                    if !body.contains(part) {
                        problems.push(format!("{name}: runbook section lacks {part}"));
                    }
                }
            }
        }
    }
    let alert_anchors: BTreeSet<String> = alerts().keys().map(|a| a.to_lowercase()).collect();
    for anchor in sections.keys() {
        if !alert_anchors.contains(anchor) {
            problems.push(format!("docs/runbooks.md section #{anchor} has no alert"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn github_anchor_matches_githubs_rules() {
    assert_eq!(github_anchor("SQLiteWALTooLarge"), "sqlitewaltoolarge");
    assert_eq!(github_anchor(" Backup age (p95)!"), "backup-age-p95");
}
