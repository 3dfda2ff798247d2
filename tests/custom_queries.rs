//! Custom SQL metrics (`queries:`) through the real binary over HTTP: a labelled multi-row
//! query served with its values, a query failing at run time beside one still served, a slow
//! query interrupted at its timeout while scrapes stay quick, and the config-time errors
//! `--config.check` reports.

#[path = "util/exporter.rs"]
mod exporter;
#[path = "util/tools.rs"]
mod tools;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use exporter::{build_db, must, value, Exporter};

/// How long a test waits for a query's first result.
const SHOWS: Duration = Duration::from_secs(20);

fn write_config(dir: &Path, body: &str) -> String {
    let p = dir.join("sqlite_exporter.yml");
    std::fs::write(&p, body).unwrap();
    p.to_string_lossy().into_owned()
}

fn shop(dir: &Path) -> String {
    let p = dir.join("shop.db");
    build_db(
        &p,
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, status TEXT NOT NULL);
         INSERT INTO orders (status) VALUES ('new'), ('new'), ('new'), ('paid'), ('shipped'), ('shipped');
         CREATE TABLE scratch (x);
         INSERT INTO scratch VALUES (1), (2);",
    );
    p.to_string_lossy().into_owned()
}

/// `--config.check --config.file=FILE`: exit code and stderr.
fn config_check(file: &str) -> (Option<i32>, String) {
    let out = Command::new(exporter::binary())
        .args(["--config.check", "--config.file", file])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_labelled_multi_row_query_is_served_with_its_values() {
    let dir = tempfile::tempdir().unwrap();
    let db = shop(dir.path());
    let config = write_config(
        dir.path(),
        &format!(
            "databases:
  - name: shop
    path: {db}
    labels: {{ tenant: acme }}
    queries:
      - name: shop_orders
        help: Orders by status.
        sql: SELECT status, count(*) AS orders FROM orders GROUP BY status
        values: [orders]
        labels: [status]
        interval: 1s
      - name: shop_orders_created_total
        type: counter
        sql: SELECT max(id) AS created, count(*) AS rows FROM orders
        values: [created]
        interval: 1s
"
        ),
    );
    let e = Exporter::start(&["--config.file", &config]);
    let body = e.metrics_until(SHOWS, "custom query rows", |b| {
        value(b, "shop_orders", &[("status", "new")]).is_some()
            && value(b, "shop_orders_created_total", &[]).is_some()
    });
    let series = |status: &str| {
        must(
            &body,
            "shop_orders",
            &[("database", "shop"), ("status", status), ("tenant", "acme")],
        )
    };
    assert_eq!(series("new"), 3.0);
    assert_eq!(series("paid"), 1.0);
    assert_eq!(series("shipped"), 2.0);
    assert!(body.contains("# TYPE shop_orders gauge\n"), "{body}");
    assert!(
        body.contains("# HELP shop_orders Orders by status.\n"),
        "{body}"
    );
    let counter = must(&body, "shop_orders_created_total", &[("database", "shop")]);
    assert_eq!(counter, 6.0);
    assert!(
        body.contains("# TYPE shop_orders_created_total counter\n"),
        "{body}"
    );
    for q in ["shop_orders", "shop_orders_created_total"] {
        let labels = [("database", "shop"), ("query", q), ("tenant", "acme")];
        assert_eq!(must(&body, "sqlite_custom_query_success", &labels), 1.0);
        let last = must(
            &body,
            "sqlite_custom_query_last_run_timestamp_seconds",
            &labels,
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!((now - last).abs() < 60.0, "last run {last}, now {now}");
        let took = must(&body, "sqlite_custom_query_duration_seconds", &labels);
        assert!((0.0..1.0).contains(&took), "duration {took}");
    }
    // The custom families keep the body valid, in both formats.
    let out = std::process::Command::new(tools::PROMTOOL.name)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(body.as_bytes())?;
            child.wait_with_output()
        })
        .expect("promtool (Debian package `prometheus`)");
    let findings = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(findings.is_empty(), "promtool check metrics:\n{findings}");
    // New rows show at a later run, without a restart.
    build_db(
        Path::new(&db),
        "INSERT INTO orders (status) VALUES ('paid'), ('paid');",
    );
    e.metrics_until(SHOWS, "the next run's rows", |b| {
        value(b, "shop_orders", &[("status", "paid")]) == Some(3.0)
    });
}

#[test]
fn a_query_failing_at_run_time_reports_failure_and_the_others_are_still_served() {
    let dir = tempfile::tempdir().unwrap();
    let db = shop(dir.path());
    let config = write_config(
        dir.path(),
        &format!(
            "defaults:
  queries:
    - name: scratch_rows
      sql: SELECT count(*) AS n FROM scratch
      values: [n]
      interval: 1s
    - name: orders_rows
      sql: SELECT count(*) AS n FROM orders
      values: [n]
      interval: 1s
databases:
  - name: shop
    path: {db}
"
        ),
    );
    let e = Exporter::start(&["--config.file", &config]);
    e.metrics_until(SHOWS, "both queries", |b| {
        value(b, "scratch_rows", &[]) == Some(2.0) && value(b, "orders_rows", &[]) == Some(6.0)
    });
    build_db(Path::new(&db), "DROP TABLE scratch;");
    let success = |b: &str, q: &str| {
        value(
            b,
            "sqlite_custom_query_success",
            &[("database", "shop"), ("query", q)],
        )
    };
    let body = e.metrics_until(SHOWS, "the failed run", |b| {
        success(b, "scratch_rows") == Some(0.0)
    });
    assert_eq!(value(&body, "scratch_rows", &[]), None, "{body}");
    assert_eq!(success(&body, "orders_rows"), Some(1.0), "{body}");
    assert_eq!(must(&body, "orders_rows", &[("database", "shop")]), 6.0);
    assert_eq!(must(&body, "sqlite_up", &[("database", "shop")]), 1.0);
    // Logged once per change of error, not at every run (it runs every second).
    std::thread::sleep(Duration::from_secs(3));
    let log = e.log_text();
    let failures = log
        .lines()
        .filter(|l| l.contains("custom query failed") && l.contains("scratch_rows"))
        .count();
    assert_eq!(failures, 1, "{log}");
    assert!(log.contains("no such table: scratch"), "{log}");
    // Back when the table is.
    build_db(
        Path::new(&db),
        "CREATE TABLE scratch (x); INSERT INTO scratch VALUES (7);",
    );
    e.metrics_until(SHOWS, "the query back", |b| {
        success(b, "scratch_rows") == Some(1.0) && value(b, "scratch_rows", &[]) == Some(1.0)
    });
}

#[test]
fn a_slow_query_is_interrupted_at_its_timeout_and_scrapes_stay_quick() {
    let dir = tempfile::tempdir().unwrap();
    let db = shop(dir.path());
    let config = write_config(
        dir.path(),
        &format!(
            "databases:
  - name: shop
    path: {db}
    queries:
      - name: slow_count
        sql: WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) SELECT max(x) AS n FROM c
        values: [n]
        interval: 1s
        timeout: 200ms
      - name: quick_count
        sql: SELECT count(*) AS n FROM orders
        values: [n]
        interval: 1s
"
        ),
    );
    let e = Exporter::start(&["--config.file", &config]);
    let labels = [("database", "shop"), ("query", "slow_count")];
    let body = e.metrics_until(SHOWS, "the interrupted run", |b| {
        value(b, "sqlite_custom_query_success", &labels) == Some(0.0)
    });
    let took = must(&body, "sqlite_custom_query_duration_seconds", &labels);
    assert!((0.19..0.7).contains(&took), "duration {took}");
    assert_eq!(value(&body, "slow_count", &[]), None, "{body}");
    assert_eq!(must(&body, "quick_count", &[("database", "shop")]), 6.0);
    assert!(
        e.log_text().contains("timeout after 200ms"),
        "{}",
        e.log_text()
    );
    // The slow query runs every second for 200 ms; scrapes meanwhile are served from the
    // cache, well under its timeout.
    let mut slowest = Duration::ZERO;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        let t = Instant::now();
        e.metrics();
        slowest = slowest.max(t.elapsed());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        slowest < Duration::from_millis(100),
        "slowest scrape {slowest:?}"
    );
}

#[test]
fn config_errors_name_the_query_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = shop(dir.path());
    let cases = [
        (
            "sql: SELEC count(*) AS n FROM orders\n        values: [n]",
            "databases[0].queries[1].sql: the statement does not prepare",
            "syntax error",
        ),
        (
            "sql: SELECT count(*) AS n FROM no_such_table\n        values: [n]",
            "databases[0].queries[1].sql: the statement does not prepare",
            "no such table: no_such_table",
        ),
        (
            "sql: SELECT count(*) AS n FROM orders\n        values: [total]",
            "databases[0].queries[1].values: column \"total\" is not among the statement's columns (n)",
            "",
        ),
        (
            "sql: SELECT status, count(*) AS n FROM orders GROUP BY status\n        values: [n]\n        labels: [state]",
            "databases[0].queries[1].labels: column \"state\" is not among the statement's columns (status, n)",
            "",
        ),
    ];
    for (query, expected, detail) in cases {
        let config = write_config(
            dir.path(),
            &format!(
                "databases:
  - path: {db}
    queries:
      - name: fine
        sql: SELECT 1 AS v
        values: [v]
      - name: broken
        {query}
"
            ),
        );
        let (code, err) = config_check(&config);
        assert_eq!(code, Some(1), "{query}: {err}");
        assert!(
            err.contains(&format!("{config}: {expected}")),
            "{query}: {err}"
        );
        assert!(err.contains(detail), "{query}: {err}");
    }
    // Names that clash: with the exporter's own families, between queries, with labels.
    let cases = [
        (
            "- name: sqlite_orders\n        sql: SELECT 1 AS v\n        values: [v]",
            "defaults.queries[0].name: metric names starting with `sqlite_` belong to the exporter's own series",
        ),
        (
            "- name: a\n        sql: SELECT 1 AS v, 2 AS w\n        values: [v, w]\n      - name: a_v\n        sql: SELECT 1 AS v\n        values: [v]",
            "defaults.queries[1].name: metric \"a_v\" is already produced by queries[0]",
        ),
        (
            "- name: a_total\n        type: counter\n        sql: SELECT 1 AS v, 2 AS w\n        values: [v, w]",
            "defaults.queries[0].name: counter \"a_total_v\" must end in `_total`",
        ),
        (
            "- name: a\n        sql: SELECT 1 AS v, 'x' AS database\n        values: [v]\n        labels: [database]",
            "defaults.queries[0].labels[0]: `database` is the label naming the database",
        ),
        (
            "- name: a\n        sql: SELECT 1 AS v, 'x' AS tenant\n        values: [v]\n        labels: [tenant]",
            "defaults.queries[0].labels[0]: `tenant` is also a static label of this database",
        ),
        (
            "- name: build_info\n        sql: SELECT 1 AS v\n        values: [v]",
            "defaults.queries[0].name: metric \"build_info\" ends in `_info`",
        ),
        (
            "- name: 9lives\n        sql: SELECT 1 AS v\n        values: [v]",
            "defaults.queries[0].name: invalid metric name \"9lives\"",
        ),
    ];
    for (queries, expected) in cases {
        let config = write_config(
            dir.path(),
            &format!(
                "defaults:
  labels: {{ tenant: acme }}
  queries:
      {queries}
databases:
  - path: {db}
"
            ),
        );
        let (code, err) = config_check(&config);
        assert_eq!(code, Some(1), "{queries}: {err}");
        assert!(
            err.contains(&format!("{config}: {expected}")),
            "{queries}: {err}"
        );
    }
    // A database that does not exist yet cannot be prepared against: its queries are
    // accepted, and fail at run time instead.
    let config = write_config(
        dir.path(),
        &format!(
            "databases:
  - path: {}
    queries:
      - name: later
        sql: SELECT count(*) AS n FROM not_yet
        values: [n]
",
            dir.path().join("missing.db").display()
        ),
    );
    let (code, err) = config_check(&config);
    assert_eq!(code, Some(0), "{err}");
}
