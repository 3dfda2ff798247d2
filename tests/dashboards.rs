//! Lint of the shipped Grafana dashboards (`dashboards/*.json`): fixed uids, the datasource /
//! job / instance / database variables, a title, description and unit on every panel, modern
//! panel types only, every query on `${DS_PROMETHEUS}` and filtered by the variables, and every
//! metric name one the exporter really exposes (catches typos before a live Prometheus would).
//! Also what a person sees: every health status in a colour and text of its own, counters and
//! histograms only through `rate()` or `increase()` (a raw one drops at every exporter
//! restart), and the `__inputs` / `__requires` with which an import asks for the datasource.

#[path = "util/tools.rs"]
mod tools;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;
use sqlite_exporter::fleet::health::Status;
use tools::{read, read_yaml, repo_path};

/// The datasource of every panel, query and variable: the import input of that name, and
/// the datasource variable of that name when the file is provisioned (provisioning does not
/// go through the import).
const DATASOURCE: &str = "${DS_PROMETHEUS}";
const DATASOURCE_INPUT: &str = "DS_PROMETHEUS";
const PANEL_TYPES: [&str; 6] = [
    "timeseries",
    "stat",
    "table",
    "gauge",
    "bargauge",
    "state-timeline",
];

/// Per-database metrics (label `database`): every gauge and counter the exporter exposes.
const DATABASE_METRICS: &[&str] = &[
    "sqlite_up",
    "sqlite_database_info",
    "sqlite_database_size_bytes",
    "sqlite_wal_size_bytes",
    "sqlite_shm_size_bytes",
    "sqlite_wal_frames",
    "sqlite_page_size_bytes",
    "sqlite_pages",
    "sqlite_freelist_pages",
    "sqlite_page_utilization_ratio",
    "sqlite_user_version",
    "sqlite_schema_cookie",
    "sqlite_schema_objects",
    "sqlite_integrity_check_success",
    "sqlite_integrity_check_errors",
    "sqlite_integrity_check_last_run_timestamp_seconds",
    "sqlite_integrity_check_duration_seconds",
    "sqlite_foreign_key_violations",
    "sqlite_unused_bytes",
    "sqlite_table_rows",
    "sqlite_table_size_bytes",
    "sqlite_migrations_applied",
    "sqlite_migrations_failed",
    "sqlite_migration_last_applied_timestamp_seconds",
    "sqlite_backup_last_success_timestamp_seconds",
    "sqlite_backup_last_size_bytes",
    "sqlite_wal_frames_pending",
    "sqlite_wal_frames_backfilled",
    "sqlite_wal_checkpoint_sequence",
    "sqlite_checkpoint_last_busy",
    "sqlite_backup_files",
    "sqlite_checkpoints_total",
    "sqlite_checkpoint_failures_total",
    "sqlite_backups_total",
    "sqlite_backup_failures_total",
    "sqlite_restores_total",
    "sqlite_restore_failures_total",
    "sqlite_recoveries_total",
    "sqlite_recovery_failures_total",
    "sqlite_vacuums_total",
    "sqlite_vacuum_failures_total",
    "sqlite_health_status",
    "sqlite_recommendation",
    "sqlite_scrape_collector_success",
    "sqlite_scrape_collector_duration_seconds",
    "sqlite_migrations_pending",
    "sqlite_migrations_drifted",
    "sqlite_schema_required_table_missing",
    "sqlite_backup_drill_success",
    "sqlite_backup_drill_last_run_timestamp_seconds",
    "sqlite_backup_drill_duration_seconds",
    "sqlite_backup_drill_backup_age_seconds",
];

/// Per-database histograms: usable with the `_bucket`, `_sum` and `_count` suffixes.
const DATABASE_HISTOGRAMS: &[&str] = &[
    "sqlite_query_duration_seconds",
    "sqlite_write_duration_seconds",
    "sqlite_action_duration_seconds",
];

/// Metrics of the exporter (or of the scrape) that carry no `database` label.
const EXPORTER_METRICS: &[&str] = &[
    "up",
    "sqlite_exporter_build_info",
    "sqlite_exporter_databases",
    "sqlite_exporter_config_last_reload_successful",
    "sqlite_exporter_config_last_reload_success_timestamp_seconds",
];

/// Label names that look like metric names.
const SQLITE_PREFIXED_LABELS: &[&str] = &["sqlite_version"];

enum Scope {
    Database,
    Exporter,
}

fn metric_scope(name: &str) -> Option<Scope> {
    // Thresholds: the defaults have no `database` label (a database's own series has one).
    if sqlite_exporter::config::EXPORTED_THRESHOLDS
        .iter()
        .any(|(n, _)| *n == name)
    {
        return Some(Scope::Exporter);
    }
    if EXPORTER_METRICS.contains(&name) {
        return Some(Scope::Exporter);
    }
    if DATABASE_METRICS.contains(&name) {
        return Some(Scope::Database);
    }
    let base = ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))?;
    DATABASE_HISTOGRAMS
        .contains(&base)
        .then_some(Scope::Database)
}

/// Problems with one PromQL expression: unknown metric names, and selectors that do not filter
/// on `$job`, `$instance` and (for per-database metrics) `$database`.
fn lint_expr(expr: &str) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut problems = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' {
            // Skip string literals (label values, `$variables`).
            i += 1;
            while i < chars.len() && chars[i] != c {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            continue;
        }
        if c == '{' {
            // A bare selector `{...}` without a metric name: skip it, it was checked with its
            // metric or is a label matcher list of a function we do not use.
            while i < chars.len() && chars[i] != '}' {
                i += 1;
            }
            continue;
        }
        if !(c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len()
            && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
        {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect();
        if c.is_ascii_digit() || (start > 0 && chars[start - 1] == '$') {
            continue; // a number, a duration, or a `$variable`
        }
        let mut j = i;
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        let has_selector = chars.get(j) == Some(&'{');
        let looks_like_metric =
            word.starts_with("sqlite_") && !SQLITE_PREFIXED_LABELS.contains(&word.as_str());
        if !has_selector && !looks_like_metric {
            continue; // function, keyword or label name
        }
        let Some(scope) = metric_scope(&word) else {
            problems.push(format!("unknown metric `{word}`"));
            continue;
        };
        if !has_selector {
            problems.push(format!("`{word}` has no label selector"));
            continue;
        }
        let close = chars[j..]
            .iter()
            .position(|&c| c == '}')
            .map_or(chars.len(), |p| j + p);
        let selector: String = chars[j..close]
            .iter()
            .filter(|c| !c.is_whitespace())
            .collect();
        let mut required = vec![r#"job=~"$job""#, r#"instance=~"$instance""#];
        if matches!(scope, Scope::Database) {
            required.push(r#"database=~"$database""#);
        }
        for matcher in required {
            if !selector.contains(matcher) {
                problems.push(format!("`{word}` selector lacks {matcher}"));
            }
        }
        i = close;
    }
    problems
}

fn dashboard_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo_path("dashboards"))
        .expect("dashboards/ exists")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
}

fn load(path: &Path) -> Value {
    serde_json::from_str(&read(path))
        .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()))
}

/// Every panel, with the panels nested in collapsed rows.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut all = Vec::new();
    for panel in dashboard["panels"].as_array().expect("`panels` is a list") {
        all.push(panel);
        if let Some(nested) = panel["panels"].as_array() {
            all.extend(nested);
        }
    }
    all
}

fn lint_panel(panel: &Value) -> Vec<String> {
    let title = panel["title"].as_str().unwrap_or("");
    let kind = panel["type"].as_str().unwrap_or("");
    let mut problems = Vec::new();
    let mut problem = |what: String| problems.push(format!("panel {title:?}: {what}"));
    if kind == "row" {
        if title.is_empty() {
            problem("row without a title".into());
        }
        return problems;
    }
    if title.is_empty() {
        problem("no title".into());
    }
    if !PANEL_TYPES.contains(&kind) {
        problem(format!("type {kind:?} is not one of {PANEL_TYPES:?}"));
    }
    if panel["description"].as_str().unwrap_or("").is_empty() {
        problem("no description".into());
    }
    if panel["fieldConfig"]["defaults"]["unit"]
        .as_str()
        .unwrap_or("")
        .is_empty()
    {
        problem("no fieldConfig.defaults.unit".into());
    }
    if panel["datasource"]["uid"] != DATASOURCE {
        problem(format!("datasource is not {DATASOURCE}"));
    }
    let targets = panel["targets"].as_array().map_or(&[][..], Vec::as_slice);
    if targets.is_empty() {
        problem("no queries".into());
    }
    for target in targets {
        if target["datasource"]["uid"] != DATASOURCE {
            problem(format!("a query's datasource is not {DATASOURCE}"));
        }
        let expr = target["expr"].as_str().unwrap_or("");
        if expr.is_empty() {
            problem("a query has no expr".into());
        }
        for found in lint_expr(expr) {
            problem(format!("{found} in `{expr}`"));
        }
    }
    problems
}

fn variable_query(variable: &Value) -> String {
    let query = &variable["query"];
    query["query"]
        .as_str()
        .or(query.as_str())
        .unwrap_or("")
        .to_string()
}

fn lint_variables(dashboard: &Value) -> Vec<String> {
    let list = dashboard["templating"]["list"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    let find = |name: &str| list.iter().find(|v| v["name"] == name);
    let mut problems = Vec::new();
    match find(DATASOURCE_INPUT) {
        Some(v) if v["type"] == "datasource" && v["query"] == "prometheus" => {}
        _ => problems.push(format!(
            "no `{DATASOURCE_INPUT}` variable of type datasource (prometheus)"
        )),
    }
    // Each variable is a label_values query on sqlite_up, chained on the ones before it.
    let chain = [
        ("job", vec![]),
        ("instance", vec!["$job"]),
        ("database", vec!["$job", "$instance"]),
    ];
    for (name, parents) in chain {
        let Some(v) = find(name) else {
            problems.push(format!("no `{name}` variable"));
            continue;
        };
        let query = variable_query(v);
        let expected_start = "label_values(sqlite_up";
        let expected_end = format!(", {name})");
        if v["type"] != "query"
            || !query.starts_with(expected_start)
            || !query.ends_with(&expected_end)
        {
            problems.push(format!(
                "variable `{name}`: expected a query `{expected_start}...{expected_end}`, got {query:?}"
            ));
        }
        for parent in parents {
            if !query.contains(parent) {
                problems.push(format!("variable `{name}` is not chained on {parent}"));
            }
        }
        if v["datasource"]["uid"] != DATASOURCE {
            problems.push(format!("variable `{name}` does not use {DATASOURCE}"));
        }
    }
    problems
}

/// Whether `name` is a value of `sqlite_health_status`'s `status` label.
fn is_status(name: &str) -> bool {
    Status::ALL.iter().any(|s| s.as_str() == name)
}

/// `(key, status, colour)` of each entry of value mappings that names a health status, by its
/// text (a number standing for a status) or by its key (the status text itself).
fn mapped_statuses(mappings: &Value) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    for mapping in mappings.as_array().map_or(&[][..], Vec::as_slice) {
        if mapping["type"] != "value" {
            continue;
        }
        let Some(options) = mapping["options"].as_object() else {
            continue;
        };
        for (key, result) in options {
            let text = result["text"].as_str().unwrap_or("");
            let status = if is_status(text) { text } else { key.as_str() };
            if let (true, Some(colour)) = (is_status(status), result["color"].as_str()) {
                found.push((key.clone(), status.to_string(), colour.to_string()));
            }
        }
    }
    found
}

/// The colour of a value under the panel's thresholds (the last step at or below it).
fn threshold_colour(panel: &Value, value: f64) -> Option<String> {
    let steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"].as_array()?;
    steps
        .iter()
        .rev()
        .find(|s| s["value"].as_f64().is_none_or(|v| v <= value))
        .and_then(|s| s["color"].as_str())
        .map(str::to_string)
}

/// The number the query gives `status` in an expression like
/// `(sqlite_health_status{…, status="warning"} == 1) * 2 or …`.
fn code_in_expr(expr: &str, status: &str) -> Option<f64> {
    let after = &expr[expr.find(&format!("status=\"{status}\""))?..];
    let end = after[1..].find("status=").map_or(after.len(), |i| i + 1);
    let star = after[..end].find(") *")?;
    let digits: String = after[star + 3..end]
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    digits.parse().ok()
}

/// Problems with how a panel showing `sqlite_health_status` tells the statuses apart: each
/// must have a colour (from value mappings, or from overrides on the series of that status)
/// and no two the same; a status shown as a number must be that number in the query, and the
/// thresholds must give the number the colour its mapping gives.
fn lint_health_colours(panel: &Value) -> Vec<String> {
    let targets = panel["targets"].as_array().map_or(&[][..], Vec::as_slice);
    let exprs: Vec<&str> = targets.iter().filter_map(|t| t["expr"].as_str()).collect();
    if !exprs.iter().any(|e| e.contains("sqlite_health_status")) {
        return Vec::new();
    }
    let mut problems = Vec::new();
    let mut colours: BTreeMap<String, String> = BTreeMap::new();
    let defaults = &panel["fieldConfig"]["defaults"];
    for (key, status, colour) in mapped_statuses(&defaults["mappings"]) {
        if let Ok(code) = key.parse::<f64>() {
            if !exprs.iter().any(|e| code_in_expr(e, &status) == Some(code)) {
                problems.push(format!("the query does not give {status} the value {key}"));
            }
            match threshold_colour(panel, code) {
                Some(t) if t == colour => {}
                t => problems.push(format!(
                    "{status} ({key}) is {colour} by its mapping but {t:?} by the thresholds"
                )),
            }
        }
        colours.insert(status, colour);
    }
    for o in panel["fieldConfig"]["overrides"]
        .as_array()
        .map_or(&[][..], Vec::as_slice)
    {
        if o["matcher"]["id"] != "byName" {
            continue;
        }
        let name = o["matcher"]["options"].as_str().unwrap_or("");
        for property in o["properties"].as_array().map_or(&[][..], Vec::as_slice) {
            let value = &property["value"];
            match (property["id"].as_str(), is_status(name)) {
                (Some("color"), true) => {
                    if let Some(c) = value["fixedColor"].as_str() {
                        colours.insert(name.to_string(), c.to_string());
                    }
                }
                // The series of one status, 1 while it is the current one.
                (Some("mappings"), true) => {
                    let active = value
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find_map(|m| m["options"]["1"]["color"].as_str());
                    if let Some(c) = active {
                        colours.insert(name.to_string(), c.to_string());
                    }
                }
                // A field holding the status text (a table's `status` column).
                (Some("mappings"), false) => {
                    for (_, status, colour) in mapped_statuses(value) {
                        colours.insert(status, colour);
                    }
                }
                _ => {}
            }
        }
    }
    for status in Status::ALL {
        if !colours.contains_key(status.as_str()) {
            problems.push(format!("no colour for status {}", status.as_str()));
        }
    }
    let mut by_colour: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (status, colour) in &colours {
        by_colour.entry(colour).or_default().push(status);
    }
    for (colour, statuses) in by_colour.into_iter().filter(|(_, s)| s.len() > 1) {
        problems.push(format!("statuses {statuses:?} share the colour {colour}"));
    }
    problems
}

/// Counters and histogram series of an expression that are not read through `rate()`,
/// `irate()` or `increase()`: a raw cumulative value restarts from 0 with the exporter, and
/// a quantile of raw buckets describes everything since then, not the time shown.
fn raw_counters(expr: &str) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    // Which characters are inside a string literal.
    let mut quoted = vec![false; chars.len()];
    let mut open: Option<char> = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match open {
            Some(q) => {
                quoted[i] = true;
                if c == '\\' {
                    i += 1;
                    if i < chars.len() {
                        quoted[i] = true;
                    }
                } else if c == q {
                    open = None;
                }
            }
            None if c == '"' || c == '\'' => {
                quoted[i] = true;
                open = Some(c);
            }
            None => {}
        }
        i += 1;
    }
    let word_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut problems = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if quoted[i] || !word_char(chars[i]) || (i > 0 && word_char(chars[i - 1])) {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && word_char(chars[i]) {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect();
        let histogram = ["_bucket", "_sum", "_count"].iter().any(|suffix| {
            word.strip_suffix(suffix)
                .is_some_and(|base| DATABASE_HISTOGRAMS.contains(&base))
        });
        let counter = word.starts_with("sqlite_") && word.ends_with("_total");
        if !(histogram || counter) {
            continue;
        }
        // The function whose parenthesis holds the series.
        let mut depth = 0;
        let mut paren = None;
        for k in (0..start).rev() {
            match chars[k] {
                _ if quoted[k] => {}
                ')' => depth += 1,
                '(' if depth == 0 => {
                    paren = Some(k);
                    break;
                }
                '(' => depth -= 1,
                _ => {}
            }
        }
        let function = paren.map_or(String::new(), |k| function_before(&chars, k));
        if !["rate", "irate", "increase"].contains(&function.as_str()) {
            let within = if function.is_empty() {
                "outside any function".to_string()
            } else {
                format!("inside `{function}(`")
            };
            problems.push(format!(
                "`{word}` is read raw ({within}); use rate() or increase()"
            ));
        }
    }
    problems
}

/// The function or aggregation whose parenthesis opens at `chars[open]`: the word before it,
/// or for `sum by (labels) (`, the aggregation before the `by` or `without` clause.
fn function_before(chars: &[char], open: usize) -> String {
    let word_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let Some(end) = chars[..open].iter().rposition(|c| !c.is_whitespace()) else {
        return String::new();
    };
    if chars[end] == ')' {
        // A `by (…)` or `without (…)` clause: find its `(`, then the words before it.
        let mut depth = 0;
        for k in (0..=end).rev() {
            match chars[k] {
                ')' => depth += 1,
                '(' => {
                    depth -= 1;
                    if depth == 0 {
                        let clause = function_before(chars, k);
                        if clause != "by" && clause != "without" {
                            return clause;
                        }
                        let start = chars[..k].iter().rposition(|c| c.is_ascii_alphabetic());
                        let start = start.map_or(0, |s| s + 1 - clause.len());
                        return function_before(chars, start);
                    }
                }
                _ => {}
            }
        }
        return String::new();
    }
    let begin = chars[..=end]
        .iter()
        .rposition(|c| !word_char(*c))
        .map_or(0, |b| b + 1);
    chars[begin..=end].iter().collect()
}

/// Problems with what an import of the file needs: one `DS_PROMETHEUS` datasource input, and
/// `__requires` naming Grafana (the version the compose stack runs), the Prometheus
/// datasource and exactly the panel types the dashboard uses.
fn lint_import(dashboard: &Value, grafana_version: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let inputs = dashboard["__inputs"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    let prometheus_input = |i: &&Value| {
        i["name"] == DATASOURCE_INPUT
            && i["type"] == "datasource"
            && i["pluginId"] == "prometheus"
            && !i["label"].as_str().unwrap_or("").is_empty()
    };
    if inputs.len() != 1 || !inputs.iter().any(|i| prometheus_input(&i)) {
        problems.push(format!(
            "`__inputs` is not one {DATASOURCE_INPUT} input of type datasource (prometheus) with a label: {inputs:?}"
        ));
    }
    let requires = dashboard["__requires"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    let required =
        |kind: &str, id: &str| requires.iter().find(|r| r["type"] == kind && r["id"] == id);
    match required("grafana", "grafana") {
        Some(r) if r["version"] == grafana_version => {}
        r => problems.push(format!(
            "`__requires` lacks grafana {grafana_version} (the compose stack's): {r:?}"
        )),
    }
    if required("datasource", "prometheus").is_none() {
        problems.push("`__requires` lacks the prometheus datasource".into());
    }
    let used: BTreeSet<&str> = panels(dashboard)
        .iter()
        .filter_map(|p| p["type"].as_str())
        .filter(|t| *t != "row")
        .collect();
    let listed: BTreeSet<&str> = requires
        .iter()
        .filter(|r| r["type"] == "panel")
        .filter_map(|r| r["id"].as_str())
        .collect();
    if used != listed {
        problems.push(format!(
            "`__requires` lists the panels {listed:?}, the dashboard uses {used:?}"
        ));
    }
    problems
}

/// The Grafana version of `examples/docker-compose.yml` (its image tag).
fn compose_grafana_version() -> String {
    let compose = read_yaml(&repo_path("examples/docker-compose.yml"));
    let image = compose["services"]["grafana"]["image"]
        .as_str()
        .expect("the grafana service has an image");
    image
        .rsplit_once(':')
        .expect("the grafana image has a tag")
        .1
        .to_string()
}

#[test]
fn dashboards_pass_the_lint() {
    let files = dashboard_files();
    let names: Vec<_> = files.iter().filter_map(|f| f.file_stem()).collect();
    for expected in ["sqlite-fleet-overview", "sqlite-database"] {
        assert!(
            names.iter().any(|n| *n == expected),
            "dashboards/{expected}.json is missing"
        );
    }
    let grafana_version = compose_grafana_version();
    let mut problems = Vec::new();
    for file in &files {
        let dashboard = load(file);
        let stem = file.file_stem().unwrap().to_string_lossy();
        let mut file_problems = Vec::new();
        if dashboard["uid"] != *stem {
            file_problems.push(format!(
                "uid {} is not the file name {stem:?}",
                dashboard["uid"]
            ));
        }
        if dashboard["schemaVersion"].as_u64().unwrap_or(0) < 39 {
            file_problems.push("schemaVersion below 39".to_string());
        }
        if dashboard["title"].as_str().unwrap_or("").is_empty() {
            file_problems.push("no title".to_string());
        }
        file_problems.extend(lint_variables(&dashboard));
        file_problems.extend(lint_import(&dashboard, &grafana_version));
        let panels = panels(&dashboard);
        if panels.iter().filter(|p| p["type"] != "row").count() < 5 {
            file_problems.push("fewer than 5 panels".to_string());
        }
        let mut ids: Vec<_> = panels.iter().map(|p| p["id"].as_u64()).collect();
        ids.sort();
        ids.dedup();
        if ids.len() != panels.len() || ids.contains(&None) {
            file_problems.push("panel ids are missing or not unique".to_string());
        }
        for panel in panels {
            file_problems.extend(lint_panel(panel));
            let title = panel["title"].as_str().unwrap_or("");
            let found = lint_health_colours(panel).into_iter().chain(
                panel["targets"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|t| raw_counters(t["expr"].as_str().unwrap_or(""))),
            );
            file_problems.extend(found.map(|p| format!("panel {title:?}: {p}")));
        }
        problems.extend(
            file_problems
                .into_iter()
                .map(|p| format!("{}: {p}", file.display())),
        );
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn lint_accepts_filtered_queries() {
    let good = [
        r#"sqlite_wal_size_bytes{job=~"$job", instance=~"$instance", database=~"$database"}"#,
        r#"histogram_quantile(0.95, sum by (instance, database, le) (rate(sqlite_query_duration_seconds_bucket{job=~"$job",instance=~"$instance",database=~"$database"}[$__rate_interval])))"#,
        r#"sum(up{job=~"$job", instance=~"$instance"}) - 500e6"#,
        r#"count by (sqlite_version) (sqlite_exporter_build_info{job=~"$job", instance=~"$instance"})"#,
    ];
    for expr in good {
        assert_eq!(lint_expr(expr), Vec::<String>::new(), "{expr}");
    }
}

#[test]
fn lint_rejects_typos_and_missing_filters() {
    let cases = [
        (
            r#"sqlite_wal_bytes{job=~"$job", instance=~"$instance", database=~"$database"}"#,
            "unknown metric `sqlite_wal_bytes`",
        ),
        (
            r#"sqlite_wal_size_bytes{job=~"$job", instance=~"$instance"}"#,
            r#"`sqlite_wal_size_bytes` selector lacks database=~"$database""#,
        ),
        (
            r#"sum(sqlite_pages) by (database)"#,
            "`sqlite_pages` has no label selector",
        ),
        (
            r#"rate(sqlite_query_duration_seconds_total{job=~"$job", instance=~"$instance", database=~"$database"}[5m])"#,
            "unknown metric `sqlite_query_duration_seconds_total`",
        ),
        (
            r#"node_load1{instance=~"$instance"}"#,
            "unknown metric `node_load1`",
        ),
        (
            r#"up{instance=~"$instance"}"#,
            r#"`up` selector lacks job=~"$job""#,
        ),
    ];
    for (expr, expected) in cases {
        let problems = lint_expr(expr);
        assert!(
            problems.iter().any(|p| p == expected),
            "`{expr}`: expected problem {expected:?}, got {problems:?}"
        );
    }
}

#[test]
fn counters_are_accepted_through_rate_and_increase_only() {
    let good = [
        r#"sum by (mode) (rate(sqlite_checkpoints_total{job=~"$job"}[$__rate_interval])) * 60"#,
        r#"sum(increase(sqlite_backups_total{job=~"$job"}[$__range]))"#,
        r#"histogram_quantile(0.9, sum by (action, le) (increase(sqlite_action_duration_seconds_bucket{job=~"$job"}[$__range])))"#,
        r#"sqlite_wal_size_bytes{job=~"$job", database=~"a(b)"}"#,
    ];
    for expr in good {
        assert_eq!(raw_counters(expr), Vec::<String>::new(), "{expr}");
    }
    let bad = [
        (
            r#"sum(sqlite_checkpoints_total{job=~"$job"})"#,
            "`sqlite_checkpoints_total` is read raw (inside `sum(`); use rate() or increase()",
        ),
        (
            r#"histogram_quantile(0.9, sum by (action, le) (sqlite_action_duration_seconds_bucket{job=~"$job"}))"#,
            "`sqlite_action_duration_seconds_bucket` is read raw (inside `sum(`); use rate() or increase()",
        ),
        (
            r#"sqlite_query_duration_seconds_count{job=~"$job"}"#,
            "`sqlite_query_duration_seconds_count` is read raw (outside any function); use rate() or increase()",
        ),
    ];
    for (expr, expected) in bad {
        assert_eq!(raw_counters(expr), vec![expected.to_string()], "{expr}");
    }
}

#[test]
fn health_colours_must_differ_and_match_the_query_and_thresholds() {
    let expr = r#"max((sqlite_health_status{status="healthy"} == 1) * 0 or (sqlite_health_status{status="unknown"} == 1) * 1 or (sqlite_health_status{status="warning"} == 1) * 2 or (sqlite_health_status{status="critical"} == 1) * 3)"#;
    let panel = |colours: [&str; 4], steps: [&str; 4]| {
        let names = ["healthy", "unknown", "warning", "critical"];
        let options: serde_json::Map<String, Value> = (0..4)
            .map(|i| {
                let result = serde_json::json!({ "text": names[i], "color": colours[i] });
                (i.to_string(), result)
            })
            .collect();
        let steps: Vec<Value> = (0..4)
            .map(|i| {
                let value = if i == 0 { Value::Null } else { i.into() };
                serde_json::json!({ "value": value, "color": steps[i] })
            })
            .collect();
        serde_json::json!({
            "targets": [{ "expr": expr }],
            "fieldConfig": { "defaults": {
                "mappings": [{ "type": "value", "options": options }],
                "thresholds": { "mode": "absolute", "steps": steps },
            }},
        })
    };
    let good = ["green", "blue", "orange", "red"];
    assert_eq!(
        lint_health_colours(&panel(good, good)),
        Vec::<String>::new()
    );
    let same = ["green", "blue", "orange", "green"];
    assert_eq!(
        lint_health_colours(&panel(same, same)),
        [r#"statuses ["critical", "healthy"] share the colour green"#]
    );
    assert_eq!(
        lint_health_colours(&panel(good, ["green", "blue", "orange", "orange"])),
        [r#"critical (3) is red by its mapping but Some("orange") by the thresholds"#]
    );
    let unmapped = serde_json::json!({ "targets": [{ "expr": "sqlite_health_status == 1" }] });
    assert_eq!(
        lint_health_colours(&unmapped).len(),
        4,
        "no status has a colour"
    );
}
