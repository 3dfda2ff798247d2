//! End-to-end tests of the exporter core: the real binary over real HTTP on loopback, against
//! databases built from SQL in temp dirs, checked against the `sqlite3` CLI and `promtool`.

#[path = "util/exporter.rs"]
mod exporter;
#[path = "util/sqlite3.rs"]
mod sqlite3;
#[path = "util/tools.rs"]
mod tools;

use std::path::Path;

use exporter::{build_db, must, value, Exporter};
use rusqlite::Connection;

/// A WAL database with uncheckpointed frames, held open by `writer` so they stay in the WAL.
/// Its `user_version` is negative: SQLite prints the header word as a signed number.
fn wal_db_with_frames(path: &Path) -> Connection {
    let writer = Connection::open(path).unwrap();
    writer
        .execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;
             CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB); CREATE INDEX t_v ON t(v);
             WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 300)
             INSERT INTO t(v) SELECT randomblob(200) FROM c;
             PRAGMA user_version = -3;",
        )
        .unwrap();
    writer
}

/// A rollback-journal database with free pages.
fn journal_db_with_free_pages(path: &Path) {
    build_db(
        path,
        "CREATE TABLE big(id INTEGER PRIMARY KEY, v BLOB);
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 400)
         INSERT INTO big(v) SELECT randomblob(1000) FROM c;
         DELETE FROM big WHERE id > 150; PRAGMA user_version = 7;",
    );
}

#[test]
fn metrics_equal_sqlite3_and_a_scrape_leaves_the_wal_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.db"), dir.path().join("b.db"));
    let _writer = wal_db_with_frames(&a);
    journal_db_with_free_pages(&b);
    let wal = dir.path().join("a.db-wal");
    let before = (std::fs::read(&a).unwrap(), std::fs::read(&wal).unwrap());
    assert!(before.1.len() > 32, "the WAL should hold frames");

    let e = Exporter::start(&[a.to_str().unwrap(), b.to_str().unwrap()]);
    // The probes run right after start on their own schedule; wait for both databases'.
    let body = e.metrics_until(
        std::time::Duration::from_secs(10),
        "the first probes",
        |body| {
            ["a", "b"].iter().all(|d| {
                body.contains(&format!(
                    r#"sqlite_query_duration_seconds_count{{database="{d}"}}"#
                )) && body.contains(&format!(
                    r#"sqlite_write_duration_seconds_count{{database="{d}"}}"#
                ))
            })
        },
    );
    let _ = e.metrics();

    for (name, path) in [("a", &a), ("b", &b)] {
        let l = [("database", name)];
        assert_eq!(must(&body, "sqlite_up", &l), 1.0);
        let q = |pragma: &str| {
            sqlite3::query_readonly(path, &format!("PRAGMA {pragma}"))
                .parse::<f64>()
                .unwrap()
        };
        assert_eq!(
            must(&body, "sqlite_page_size_bytes", &l),
            q("page_size"),
            "{name} page size"
        );
        assert_eq!(
            must(&body, "sqlite_pages", &l),
            q("page_count"),
            "{name} page count"
        );
        assert_eq!(
            must(&body, "sqlite_freelist_pages", &l),
            q("freelist_count"),
            "{name} freelist"
        );
        assert_eq!(
            must(&body, "sqlite_user_version", &l),
            q("user_version"),
            "{name} user_version"
        );
        let size = std::fs::metadata(path).unwrap().len() as f64;
        assert_eq!(
            must(&body, "sqlite_database_size_bytes", &l),
            size,
            "{name} file size"
        );
    }
    assert_eq!(
        must(&body, "sqlite_wal_size_bytes", &[("database", "a")]),
        before.1.len() as f64
    );
    assert_eq!(
        must(&body, "sqlite_wal_size_bytes", &[("database", "b")]),
        0.0
    );
    // No checkpoint has run, so every frame in the file is a valid frame.
    let page = must(&body, "sqlite_page_size_bytes", &[("database", "a")]) as usize;
    let frames = (before.1.len() - 32) / (24 + page);
    assert_eq!(
        must(&body, "sqlite_wal_frames", &[("database", "a")]),
        frames as f64
    );
    assert!(must(&body, "sqlite_freelist_pages", &[("database", "b")]) > 0.0);
    let util = must(&body, "sqlite_page_utilization_ratio", &[("database", "b")]);
    let (pages, free) = (
        must(&body, "sqlite_pages", &[("database", "b")]),
        must(&body, "sqlite_freelist_pages", &[("database", "b")]),
    );
    assert!((util - (pages - free) / pages).abs() < 1e-12);
    assert_eq!(
        must(
            &body,
            "sqlite_database_info",
            &[("database", "a"), ("journal_mode", "wal")]
        ),
        1.0
    );
    assert_eq!(
        must(
            &body,
            "sqlite_database_info",
            &[("database", "b"), ("journal_mode", "delete")]
        ),
        1.0
    );
    // Both probes ran.
    assert_eq!(
        must(
            &body,
            "sqlite_write_duration_seconds_count",
            &[("database", "a")]
        ),
        1.0
    );
    assert_eq!(
        must(
            &body,
            "sqlite_query_duration_seconds_count",
            &[("database", "b")]
        ),
        1.0
    );

    drop(e);
    let after = (std::fs::read(&a).unwrap(), std::fs::read(&wal).unwrap());
    assert!(before.0 == after.0, "the main database file changed");
    assert!(before.1 == after.1, "the WAL changed");
}

#[test]
fn unreadable_files_are_down_with_a_reason_and_the_rest_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    build_db(
        &d.join("good.db"),
        "CREATE TABLE t(x); INSERT INTO t VALUES (1);",
    );
    std::fs::write(
        d.join("junk.db"),
        "this is not a database, just text\n".repeat(200),
    )
    .unwrap();
    std::fs::write(d.join("empty.db"), b"").unwrap();
    std::fs::create_dir(d.join("folder.db")).unwrap();
    let files = ["good.db", "junk.db", "empty.db", "folder.db", "missing.db"];
    let paths: Vec<String> = files
        .iter()
        .map(|f| d.join(f).to_string_lossy().into_owned())
        .collect();
    let args: Vec<&str> = paths.iter().map(String::as_str).collect();
    let mut e = Exporter::start(&args);
    let body = e.metrics();
    assert_eq!(must(&body, "sqlite_up", &[("database", "good")]), 1.0);
    for (name, cause) in [
        ("junk", "file is not a SQLite database"),
        ("empty", "file is empty (0 bytes)"),
        ("folder", "path is a directory"),
        ("missing", "file does not exist"),
    ] {
        assert_eq!(
            must(&body, "sqlite_up", &[("database", name)]),
            0.0,
            "{name}"
        );
        assert_eq!(
            must(
                &body,
                "sqlite_health_status",
                &[("database", name), ("status", "critical")]
            ),
            1.0
        );
        e.wait_log(&["cannot read database", &format!("database={name}"), cause]);
    }
    let (code, health) = e.get("/health");
    assert_eq!(code, 503, "a critical database makes /health 503");
    assert!(health.contains("\"file does not exist\""), "{health}");
    // Still serving, and the good database is unaffected.
    let again = e.metrics();
    assert_eq!(must(&again, "sqlite_up", &[("database", "good")]), 1.0);
    assert_eq!(must(&again, "sqlite_pages", &[("database", "good")]), 2.0);
    assert!(e.alive());
}

#[test]
fn a_locked_database_is_reported_and_does_not_stall_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let (locked, free) = (dir.path().join("locked.db"), dir.path().join("free.db"));
    build_db(&free, "CREATE TABLE t(x);");
    build_db(&locked, "CREATE TABLE t(x);");
    let holder = Connection::open(&locked).unwrap();
    holder
        .execute_batch("PRAGMA locking_mode=EXCLUSIVE; BEGIN EXCLUSIVE; INSERT INTO t VALUES (1);")
        .unwrap();
    let e = Exporter::start(&[locked.to_str().unwrap(), free.to_str().unwrap()]);
    let body = e.metrics();
    assert_eq!(must(&body, "sqlite_up", &[("database", "locked")]), 0.0);
    assert_eq!(
        must(
            &body,
            "sqlite_health_status",
            &[("database", "locked"), ("status", "unknown")]
        ),
        1.0
    );
    assert_eq!(must(&body, "sqlite_up", &[("database", "free")]), 1.0);
    e.wait_log(&["database=locked", "locked"]);
}

#[test]
fn promtool_check_metrics_finds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.db"), dir.path().join("b.db"));
    let _writer = wal_db_with_frames(&a);
    journal_db_with_free_pages(&b);
    std::fs::write(dir.path().join("bad.db"), "x".repeat(5000)).unwrap();
    let bad = dir.path().join("bad.db");
    let e = Exporter::start(&[
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        bad.to_str().unwrap(),
    ]);
    let body = e.metrics();
    let scrape = dir.path().join("scrape.prom");
    std::fs::write(&scrape, &body).unwrap();
    let out = promtool_check_metrics(&scrape);
    assert!(out.is_empty(), "promtool check metrics reported:\n{out}");
}

/// Asked for OpenMetrics, as Prometheus asks, the exporter answers in it, and a real
/// OpenMetrics parser (the Python client library's, Debian `python3-prometheus-client`) reads
/// every sample the text format has, with the same names, labels and values, plus a
/// `_created` for each of the exporter's counters and histograms. promtool lints only the text
/// format, so the families the parser read are written out again by the same library in the
/// text format and linted: clean.
#[test]
fn openmetrics_is_served_when_asked_and_a_real_parser_reads_every_sample() {
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.db"), dir.path().join("b.db"));
    let _writer = wal_db_with_frames(&a);
    journal_db_with_free_pages(&b);
    std::fs::write(dir.path().join("bad.db"), "x".repeat(5000)).unwrap();
    let bad = dir.path().join("bad.db");
    // Full detail, so the counters of every action are there too.
    let config = dir.path().join("sqlite_exporter.yml");
    std::fs::write(
        &config,
        format!(
            "defaults:\n  metrics:\n    detail: full\n  backup:\n    dir: {}\ndatabases:\n  - path: {}\n  - path: {}\n  - path: {}\n",
            dir.path().join("backups").display(),
            a.display(),
            b.display(),
            bad.display()
        ),
    )
    .unwrap();
    let e = Exporter::start(&["--config.file", config.to_str().unwrap()]);
    // Prometheus's own Accept header.
    let accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                  version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let openmetrics = || {
        let r = exporter::raw(
            &e.addr,
            &format!(
                "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
            ),
        );
        assert_eq!(r.status, 200);
        assert!(
            r.head
                .contains("content-type: application/openmetrics-text; version=1.0.0"),
            "{}",
            r.head
        );
        String::from_utf8(r.body).unwrap()
    };
    let samples = |body: &str| -> std::collections::BTreeSet<String> {
        body.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| l.rsplit_once(' ').unwrap().0.to_string())
            .filter(|s| {
                !s.starts_with("process_")
                    && !s.starts_with("sqlite_exporter_scrape_duration")
                    && !s.split('{').next().unwrap().ends_with("_created")
            })
            .collect()
    };
    // The same series in both formats (background checks add series meanwhile: until two
    // scrapes in a row agree).
    let mut om = openmetrics();
    let mut differ = Vec::new();
    for _ in 0..100 {
        let (text, next) = (e.metrics(), openmetrics());
        let (t, o) = (samples(&text), samples(&next));
        om = next;
        differ = t.symmetric_difference(&o).cloned().collect();
        if differ.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(differ.is_empty(), "series in one format only: {differ:?}");
    assert!(om.ends_with("# EOF\n"), "no # EOF at the end");
    assert!(
        om.contains("# TYPE sqlite_checkpoints counter\n"),
        "counters are named without _total"
    );
    assert!(om.contains("# UNIT sqlite_wal_size_bytes bytes\n"));
    assert!(om.contains("# TYPE sqlite_database info\n"));
    // Every counter and histogram of the exporter's own says when it started from zero: at
    // its first event or when its database was added, so during this test.
    let now = started + 600.0;
    let sample = |name: &str| {
        om.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
    };
    let mut created = 0;
    for line in om.lines().filter(|l| l.starts_with("sqlite_")) {
        let (series, _) = line.rsplit_once(' ').unwrap();
        let (name, labels) = series.split_at(series.find('{').unwrap_or(series.len()));
        let base = name
            .strip_suffix("_total")
            .or_else(|| name.strip_suffix("_count"));
        let Some(base) = base else { continue };
        if base.starts_with("sqlite_custom_") {
            continue;
        }
        let at = sample(&format!("{base}_created{labels}"))
            .unwrap_or_else(|| panic!("no {base}_created{labels}"));
        assert!(
            (started - 1.0..now).contains(&at),
            "{base}_created{labels} {at}"
        );
        created += 1;
    }
    assert!(created > 20, "{created} counters and histograms");
    assert!(sample("sqlite_exporter_scrape_errors_created").is_some());
    let file = dir.path().join("scrape.om");
    std::fs::write(&file, &om).unwrap();
    let relinted = dir.path().join("relinted.prom");
    let parser = "import sys\n\
        from prometheus_client.openmetrics.parser import text_string_to_metric_families\n\
        from prometheus_client.exposition import generate_latest\n\
        from prometheus_client.registry import CollectorRegistry\n\
        families = list(text_string_to_metric_families(open(sys.argv[1]).read()))\n\
        class Read:\n\
        \x20   def collect(self):\n\
        \x20       return families\n\
        registry = CollectorRegistry(auto_describe=False)\n\
        registry.register(Read())\n\
        open(sys.argv[2], 'wb').write(generate_latest(registry))\n\
        print(sum(len(f.samples) for f in families))\n";
    let out = std::process::Command::new("/usr/bin/python3")
        .args([
            "-c",
            parser,
            file.to_str().unwrap(),
            relinted.to_str().unwrap(),
        ])
        .output()
        .unwrap_or_else(|e| panic!("cannot run /usr/bin/python3: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named 'prometheus_client'"),
        "the OpenMetrics parser is missing: install the Debian package python3-prometheus-client \
         (tests/run.sh does)"
    );
    assert!(
        out.status.success(),
        "the OpenMetrics parser refused the body: {stderr}"
    );
    let parsed: usize = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let lines = om
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .count();
    assert_eq!(parsed, lines, "the parser read {parsed} of {lines} samples");
    let out = promtool_check_metrics(&relinted);
    assert!(
        out.is_empty(),
        "promtool check metrics on the OpenMetrics families, as the parser read them:\n{out}"
    );
}

fn promtool_check_metrics(file: &Path) -> String {
    use std::process::{Command, Stdio};
    let input = std::fs::File::open(file).unwrap();
    let out = match Command::new(tools::PROMTOOL.name).args(["check", "metrics"]).stdin(Stdio::from(input)).output() {
        Ok(o) => o,
        Err(_) => panic!("`promtool` is not installed; it is provided by the Debian package `prometheus` (apt-get install prometheus)"),
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() || !text.is_empty(),
        "promtool failed silently"
    );
    text
}

#[test]
fn metrics_are_gzipped_when_asked_with_the_right_content_type() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.db");
    build_db(&a, "CREATE TABLE t(x);");
    let e = Exporter::start(&[a.to_str().unwrap()]);
    let get = |accept: &str| {
        exporter::raw(
            &e.addr,
            &format!("GET /metrics HTTP/1.1\r\nHost: x\r\n{accept}Connection: close\r\n\r\n"),
        )
    };
    for accept in ["gzip, deflate", "GZIP", "br;q=1, gzip;q=0.5"] {
        let r = get(&format!("Accept-Encoding: {accept}\r\n"));
        assert!(
            r.head
                .contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
            "{}",
            r.head
        );
        assert!(
            r.head.contains("content-encoding: gzip"),
            "{accept}: {}",
            r.head
        );
        assert!(
            r.head.contains("vary: accept, accept-encoding"),
            "{}",
            r.head
        );
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&r.body[..]), &mut text)
            .unwrap();
        assert!(text.contains("sqlite_up{database=\"a\"} 1"), "{text}");
    }
    for accept in [
        "",
        "Accept-Encoding: gzip;q=0\r\n",
        "Accept-Encoding: identity\r\n",
    ] {
        let r = get(accept);
        assert!(
            !r.head.contains("content-encoding"),
            "{accept:?}: {}",
            r.head
        );
        assert!(
            r.head.contains("vary: accept, accept-encoding"),
            "{}",
            r.head
        );
        let text = String::from_utf8(r.body).unwrap();
        assert!(text.contains("sqlite_up{database=\"a\"} 1"), "{text}");
    }
    let (code, landing) = e.get("/");
    assert_eq!(code, 200);
    assert!(
        landing.contains("<td>a</td>") && landing.contains("/metrics"),
        "{landing}"
    );
    // Each database's last check and newest backup, the collectors, a link to its health.
    for part in [
        "<th>Last integrity check</th>",
        "<th>Newest verified backup</th>",
        "Collectors: info, size, wal, schema",
        "<a href=\"/health?database=a\">JSON</a>",
    ] {
        assert!(landing.contains(part), "no {part:?} in {landing}");
    }
    let (code, one) = e.get("/health?database=a");
    assert_eq!(code, 200, "{one}");
    let one: serde_json::Value = serde_json::from_str(&one).unwrap();
    assert_eq!(one["name"], "a", "{one}");
    assert_eq!(e.get("/health?database=nope").0, 404);
    exporter::eventually(
        30,
        "the landing page to show the first integrity check",
        || {
            let page = e.get("/").1;
            ["quick", "full"]
                .iter()
                .any(|mode| page.contains(&format!("<td>ok ({mode}, just now)</td>")))
        },
    );
    assert_eq!(e.get("/-/healthy").0, 200);
    assert_eq!(e.get("/-/ready").0, 200);
}

#[test]
fn a_hundred_concurrent_scrapes_all_return_correct_values() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = Vec::new();
    for i in 0..10 {
        let p = dir.path().join(format!("db{i}.db"));
        build_db(&p, &format!("CREATE TABLE t(x); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < {}) INSERT INTO t SELECT randomblob(1000) FROM c;", i * 50));
        args.push(p.to_string_lossy().into_owned());
    }
    let expected: Vec<f64> = (0..10)
        .map(|i| {
            sqlite3::query_readonly(&dir.path().join(format!("db{i}.db")), "PRAGMA page_count")
                .parse()
                .unwrap()
        })
        .collect();
    let e = Exporter::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let bodies: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..100).map(|_| s.spawn(|| e.metrics())).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for body in &bodies {
        for (i, pages) in expected.iter().enumerate() {
            let name = format!("db{i}");
            assert_eq!(
                value(body, "sqlite_pages", &[("database", &name)]),
                Some(*pages)
            );
            assert_eq!(value(body, "sqlite_up", &[("database", &name)]), Some(1.0));
        }
    }
    // Overlapping scrapes share collections: the probes ran fewer times than there were scrapes.
    let last = e.metrics();
    let probes = must(
        &last,
        "sqlite_query_duration_seconds_count",
        &[("database", "db0")],
    );
    assert!(
        probes < 101.0,
        "{probes} probe runs for 101 scrapes: no collection was shared"
    );
    eprintln!("101 scrapes ran {probes} collections");
}

#[test]
fn check_reports_and_exits_by_status() {
    use std::process::Command;
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.db");
    build_db(
        &good,
        "CREATE TABLE t(a, b, c, d, e); CREATE INDEX i1 ON t(a); CREATE INDEX i2 ON t(b); CREATE INDEX i3 ON t(c); CREATE INDEX i4 ON t(d);",
    );
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, "y".repeat(4096)).unwrap();
    let run = |args: &[&Path], json: bool| {
        let mut c = Command::new(exporter::binary());
        c.arg("check");
        if json {
            c.arg("--output=json");
        }
        let out = c.args(args).output().unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, text) = run(&[&good], false);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("good") && text.contains("healthy"), "{text}");
    let (code, text) = run(&[&good, &junk], true);
    assert_eq!(code, 2, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["status"], "critical");
    assert_eq!(v["databases"][1]["error"], "file is not a SQLite database");
    // WAL above 1 MiB → warning (checkpoint recommended).
    let wal = dir.path().join("wal.db");
    let _w = Connection::open(&wal).unwrap();
    _w.execute_batch("PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; CREATE TABLE t(v); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 2000) INSERT INTO t SELECT randomblob(1000) FROM c;").unwrap();
    let (code, text) = run(&[&wal], false);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("checkpoint"), "{text}");
}

/// An exporter watching `NAME.db`, one empty table, with `probes:` settings `probes` (YAML of
/// one key).
fn one_table_db_with_probes(name: &str, probes: &str) -> (tempfile::TempDir, Exporter) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join(format!("{name}.db"));
    build_db(&db, "CREATE TABLE t(x);");
    let config = dir.path().join("c.yml");
    std::fs::write(
        &config,
        format!(
            "defaults:\n  probes:\n    {probes}\ndatabases:\n  - path: {}\n",
            db.display()
        ),
    )
    .unwrap();
    let e = Exporter::start(&["--config.file", config.to_str().unwrap()]);
    (dir, e)
}

#[test]
fn a_runaway_read_probe_is_interrupted_and_reported() {
    let (_dir, e) = one_table_db_with_probes(
        "slow",
        "query: \"WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c) SELECT count(*) FROM c\"",
    );
    let start = std::time::Instant::now();
    // The probe runs on its own schedule; its result shows at the scrapes after it ends.
    let body = e.metrics_until(
        std::time::Duration::from_secs(15),
        "the read probe's result",
        |b| b.contains(r#"sqlite_scrape_collector_success{collector="query""#),
    );
    assert!(
        start.elapsed() < std::time::Duration::from_secs(15),
        "the probe was not bounded"
    );
    assert_eq!(
        must(
            &body,
            "sqlite_scrape_collector_success",
            &[("database", "slow"), ("collector", "query")]
        ),
        0.0
    );
    assert_eq!(must(&body, "sqlite_up", &[("database", "slow")]), 1.0);
    e.wait_log(&["collector failed", "database=slow", "interrupted"]);
}

#[test]
fn the_landing_page_and_health_run_no_probe() {
    let (_dir, e) = one_table_db_with_probes("app", "interval: 1h");
    let count = |b: &str, probe: &str| must(b, probe, &[("database", "app")]);
    // The first probe runs right after start; then not for an hour.
    let body = e.metrics_until(
        std::time::Duration::from_secs(10),
        "the first probes",
        |b| {
            b.contains(r#"sqlite_write_duration_seconds_count{database="app"}"#)
                && b.contains(r#"sqlite_query_duration_seconds_count{database="app"}"#)
        },
    );
    let before = (
        count(&body, "sqlite_query_duration_seconds_count"),
        count(&body, "sqlite_write_duration_seconds_count"),
    );
    assert_eq!(before, (1.0, 1.0));
    for _ in 0..10 {
        assert_eq!(e.get("/").0, 200);
        assert_eq!(e.get("/health").0, 200);
        let _ = e.metrics();
    }
    let after = e.metrics();
    assert_eq!(
        (
            count(&after, "sqlite_query_duration_seconds_count"),
            count(&after, "sqlite_write_duration_seconds_count"),
        ),
        before,
        "loading /, /health or /metrics ran a probe"
    );
}

/// Series of `database` in a body (sample lines only).
fn series_of<'a>(body: &'a str, database: &str) -> Vec<&'a str> {
    let label = format!("database=\"{database}\"");
    body.lines()
        .filter(|l| !l.starts_with('#') && l.contains(&label))
        .collect()
}

/// The per-database budget: a database under the default settings, once its probes and first
/// integrity check have run, is at most 40 series (each is a series per database in the
/// scraping Prometheus); `metrics.detail: full` shows everything, every recommendation and
/// collector included.
#[test]
fn a_database_costs_at_most_40_series_unless_full_detail_is_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    build_db(
        &d.join("basic.db"),
        "PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES (1);",
    );
    build_db(&d.join("full.db"), "CREATE TABLE t(x);");
    let config = d.join("sqlite_exporter.yml");
    std::fs::write(
        &config,
        "# Only the schedules are shortened, so the test sees the probes and the first check;
# the backup directory is the test's own (none exists), whatever the host has.
defaults:
  backup: { dir: backups }
  probes: { interval: 1s }
  integrity_check: { interval: 1s }
databases:
  - { name: basic, path: basic.db }
  - { name: full, path: full.db, metrics: { detail: full } }
",
    )
    .unwrap();
    let e = Exporter::start(&["--config.file", config.to_str().unwrap()]);
    let ready = |b: &str| {
        ["basic", "full"].iter().all(|db| {
            value(b, "sqlite_integrity_check_success", &[("database", db)]).is_some()
                && value(
                    b,
                    "sqlite_write_duration_seconds_count",
                    &[("database", db)],
                )
                .is_some()
                && value(
                    b,
                    "sqlite_query_duration_seconds_count",
                    &[("database", db)],
                )
                .is_some()
        })
    };
    let body = e.metrics_until(
        std::time::Duration::from_secs(20),
        "probes and checks of both databases",
        ready,
    );
    let basic = series_of(&body, "basic");
    assert!(
        basic.len() <= 40,
        "{} series for one database at basic detail:\n{}",
        basic.len(),
        basic.join("\n")
    );
    // The latency thresholds are bucket edges, so alerts on them are exact.
    for le in ["0.02", "0.05", "1"] {
        let bucket = [("database", "basic"), ("le", le)];
        must(&body, "sqlite_write_duration_seconds_bucket", &bucket);
    }
    assert!(!basic
        .iter()
        .any(|l| l.starts_with("sqlite_scrape_collector_duration_seconds")));
    assert!(!basic.iter().any(|l| l.starts_with("sqlite_schema_cookie")));
    let full = series_of(&body, "full");
    let cookie: f64 = sqlite3::query_readonly(&d.join("full.db"), "PRAGMA schema_version")
        .parse()
        .unwrap();
    assert_eq!(
        must(&body, "sqlite_schema_cookie", &[("database", "full")]),
        cookie
    );
    assert!(full.len() > 80, "{} series at full detail", full.len());
    let recommendations = full
        .iter()
        .filter(|l| l.starts_with("sqlite_recommendation{"))
        .count();
    assert_eq!(recommendations, 8, "every recommendation at full detail");
    assert!(full.iter().any(|l| l.starts_with("sqlite_restores_total{")));
}

#[test]
fn the_demo_keeps_its_backups_and_token_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo");
    let e = Exporter::start(&[&format!("--demo={}", demo.display())]);
    let mode = |p: &Path| p.metadata().unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&demo.join("backups")), 0o700, "backup directory");
    assert_eq!(mode(&demo.join("token")), 0o600, "token file");
    drop(e);
    // A demo directory of an older version, with an open backup directory, is tightened.
    std::fs::set_permissions(demo.join("backups"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let _e = Exporter::start(&[&format!("--demo={}", demo.display())]);
    assert_eq!(
        mode(&demo.join("backups")),
        0o700,
        "reused backup directory"
    );
}

/// The process series every client library exports describe the exporter's own process, as
/// `/proc` tells it, and the exporter reports its own scrape duration and errors.
#[test]
fn process_series_describe_the_exporter_process() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a.db");
    build_db(&db, "CREATE TABLE t(x);");
    let e = Exporter::start(&[db.to_str().unwrap()]);
    let body = e.metrics();
    let status = std::fs::read_to_string(format!("/proc/{}/status", e.pid())).unwrap();
    let field = |name: &str| -> f64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| {
                v.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<f64>()
                    .unwrap()
            })
            .unwrap()
    };
    let rss = must(&body, "process_resident_memory_bytes", &[]);
    let vm_rss = field("VmRSS:") * 1024.0;
    assert!(
        rss > vm_rss / 2.0 && rss < vm_rss * 2.0,
        "process_resident_memory_bytes {rss}, VmRSS {vm_rss}"
    );
    // Threads of the blocking pool come and go between the scrape and the read of /proc.
    let threads = must(&body, "process_threads", &[]);
    assert!(
        threads >= 2.0 && (threads - field("Threads:")).abs() <= 8.0,
        "process_threads {threads}, /proc Threads {}",
        field("Threads:")
    );
    let fds = std::fs::read_dir(format!("/proc/{}/fd", e.pid()))
        .unwrap()
        .count() as f64;
    // Descriptors of connections and background work come and go between the scrape and the
    // read of /proc: roughly equal. The limit is exact.
    let open = must(&body, "process_open_fds", &[]);
    assert!(
        open >= 3.0 && (open - fds).abs() <= 16.0,
        "process_open_fds {open}, /proc fd {fds}"
    );
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", e.pid())).unwrap();
    let soft: f64 = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert_eq!(must(&body, "process_max_fds", &[]), soft);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let started = must(&body, "process_start_time_seconds", &[]);
    assert!(
        now - started < 120.0 && started <= now + 1.0,
        "started {started}, now {now}"
    );
    assert!(must(&body, "process_cpu_seconds_total", &[]) >= 0.0);
    let scrape = must(&body, "sqlite_exporter_scrape_duration_seconds", &[]);
    assert!(scrape > 0.0 && scrape < 10.0, "scrape duration {scrape}");
    assert_eq!(must(&body, "sqlite_exporter_scrape_errors_total", &[]), 0.0);
}

/// Static labels (`labels:` in `defaults:`, on a path entry and on a glob entry) are on every
/// series of their database, and only there.
#[test]
fn static_labels_are_on_every_series_of_their_database() {
    let dir = tempfile::tempdir().unwrap();
    let _writer = wal_db_with_frames(&dir.path().join("a.db"));
    journal_db_with_free_pages(&dir.path().join("tenant-b.db"));
    let config = dir.path().join("sqlite_exporter.yml");
    std::fs::write(
        &config,
        format!(
            "defaults:\n  labels: {{region: eu}}\n  metrics: {{detail: full}}\n  backup: {{dir: {d}/backups}}\n\
             databases:\n  - name: a\n    path: {d}/a.db\n    labels: {{tenant: acme, tier: gold}}\n\
             \x20 - glob: \"{d}/tenant-*.db\"\n    labels: {{tenant: bravo, region: us}}\n",
            d = dir.path().display()
        ),
    )
    .unwrap();
    let e = Exporter::start(&["--config.file", config.to_str().unwrap()]);
    let body = e.metrics_until(
        std::time::Duration::from_secs(30),
        "the integrity check of a",
        |b| value(b, "sqlite_integrity_check_success", &[("database", "a")]).is_some(),
    );
    let samples: Vec<&str> = body.lines().filter(|l| !l.starts_with('#')).collect();
    for line in &samples {
        let want: &[&str] = if line.contains("database=\"a\"") {
            &["region=\"eu\"", "tenant=\"acme\"", "tier=\"gold\""]
        } else if line.contains("database=\"tenant-b\"") {
            &["region=\"us\"", "tenant=\"bravo\""]
        } else {
            &[]
        };
        for label in want {
            assert!(line.contains(label), "{line} lacks {label}");
        }
        if want.is_empty() {
            assert!(
                !line.contains("tenant="),
                "an exporter series with a static label: {line}"
            );
        }
    }
    assert!(samples
        .iter()
        .any(|l| l.starts_with("sqlite_write_duration_seconds_bucket{")
            && l.contains("tenant=\"acme\"")));
    let scrape = dir.path().join("scrape.prom");
    std::fs::write(&scrape, &body).unwrap();
    let out = promtool_check_metrics(&scrape);
    assert!(out.is_empty(), "promtool check metrics reported:\n{out}");
}

/// Every label the exporter puts on a series is one a static label may not take.
#[test]
fn every_label_the_exporter_sets_is_reserved() {
    let golden = std::fs::read_to_string(tools::repo_path("tests/testdata/golden.prom")).unwrap();
    for line in golden.lines().filter(|l| !l.starts_with('#')) {
        let Some((_, rest)) = line.split_once('{') else {
            continue;
        };
        let labels = rest.rsplit_once('}').unwrap().0;
        for pair in labels.split("\",") {
            let name = pair.split_once('=').unwrap().0;
            assert!(
                sqlite_exporter::config::RESERVED_LABELS.contains(&name),
                "label {name} (in {line}) is not reserved"
            );
        }
    }
}
