//! Lint of the shipped Grafana dashboards (`dashboards/*.json`): fixed uids, the datasource /
//! job / instance / database variables, a title, description and unit on every panel, modern
//! panel types only, every query on `${datasource}` and filtered by the variables, and every
//! metric name one the exporter really exposes (catches typos before a live Prometheus would).

#[path = "util/tools.rs"]
mod tools;

use std::path::{Path, PathBuf};

use serde_json::Value;
use tools::{read, repo_path};

const DATASOURCE: &str = "${datasource}";
const PANEL_TYPES: [&str; 6] = [
    "timeseries",
    "stat",
    "table",
    "gauge",
    "bargauge",
    "state-timeline",
];

/// Per-database metrics (label `database`), SPEC §4.
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
    "sqlite_schema_version",
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
    match find("datasource") {
        Some(v) if v["type"] == "datasource" && v["query"] == "prometheus" => {}
        _ => problems.push("no `datasource` variable of type datasource (prometheus)".into()),
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
