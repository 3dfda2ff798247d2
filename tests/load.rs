//! Load: 1,000 scrapes of `/metrics` from 50 concurrent clients while the control API runs
//! backups, checkpoints, integrity checks and VACUUMs on the same databases and a writer
//! commits to them. Every scrape must answer 200 with every database up; the exporter's
//! resident memory before and after is printed (`--nocapture`) with the scrape latencies.

#[path = "util/exporter.rs"]
mod exporter;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use exporter::{api, build_db, Setup};

const DATABASES: usize = 10;
const CLIENTS: usize = 50;
const SCRAPES: usize = 1_000;

/// `VmRSS` of `pid` in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// One scrape; `Err` says what was wrong with it.
fn scrape(addr: &str) -> Result<(), String> {
    let resp = ureq::get(&format!("http://{addr}/metrics"))
        .timeout(Duration::from_secs(30))
        .call()
        .map_err(|e| format!("request: {e}"))?;
    if resp.status() != 200 {
        return Err(format!("status {}", resp.status()));
    }
    let body = resp.into_string().map_err(|e| format!("body: {e}"))?;
    let up = body
        .lines()
        .filter(|l| l.starts_with("sqlite_up{") && l.ends_with(" 1"))
        .count();
    if up != DATABASES {
        return Err(format!("{up} of {DATABASES} databases up"));
    }
    Ok(())
}

#[test]
fn a_thousand_scrapes_from_fifty_clients_while_actions_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for i in 0..DATABASES {
        let db = dir.path().join(format!("db{i}.db"));
        build_db(
            &db,
            "PRAGMA journal_mode=WAL;
             CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
             INSERT INTO t(v) SELECT randomblob(1000) FROM n;",
        );
        paths.push((format!("db{i}"), db));
    }
    let named: Vec<(&str, &std::path::Path)> = paths
        .iter()
        .map(|(n, p)| (n.as_str(), p.as_path()))
        .collect();
    let s = Setup::new(dir, &named, "", true);
    let e = Arc::new(s.start(&[]));
    let addr = e.addr.clone();
    scrape(&addr).expect("first scrape");
    let rss_before = rss_kib(e.pid());

    let done = Arc::new(AtomicBool::new(false));
    // A writer on every database, so checkpoints, backups and scrapes see changes.
    let writer = {
        let (done, paths) = (done.clone(), paths.clone());
        std::thread::spawn(move || {
            let conns: Vec<rusqlite::Connection> = paths
                .iter()
                .map(|(_, p)| {
                    let c = rusqlite::Connection::open(p).unwrap();
                    c.busy_timeout(Duration::from_secs(10)).unwrap();
                    c
                })
                .collect();
            let mut commits = 0u64;
            while !done.load(Ordering::Relaxed) {
                for c in &conns {
                    if c.execute("INSERT INTO t(v) VALUES (randomblob(500))", [])
                        .is_ok()
                    {
                        commits += 1;
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            commits
        })
    };
    // Actions through the control API, round the databases, until the scrapes are done.
    let actions = {
        let (done, e, token) = (done.clone(), e.clone(), s.token.clone());
        std::thread::spawn(move || {
            let kinds = ["backup", "checkpoint", "integrity-check", "vacuum"];
            let mut ran = Vec::new();
            let mut round = 0;
            while !done.load(Ordering::Relaxed) {
                let kind = kinds[round % kinds.len()];
                let path = format!("/api/v1/databases/db{}/{kind}", round % DATABASES);
                let (code, body) = api(&e, "POST", &path, Some(&token), Some("{}"));
                // 409: another action on that database is still running, which is fine.
                assert!(
                    code == 200 || code == 409,
                    "POST {path} during the load: {code} {body}"
                );
                ran.push((kind, code));
                round += 1;
            }
            ran
        })
    };

    let next = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(Mutex::new(Vec::new()));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(SCRAPES)));
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (next, errors, latencies, addr) = (
                next.clone(),
                errors.clone(),
                latencies.clone(),
                addr.clone(),
            );
            std::thread::spawn(move || {
                while next.fetch_add(1, Ordering::SeqCst) < SCRAPES {
                    let t = Instant::now();
                    let result = scrape(&addr);
                    latencies.lock().unwrap().push(t.elapsed());
                    if let Err(why) = result {
                        errors.lock().unwrap().push(why);
                    }
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let elapsed = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let ran = actions.join().unwrap();
    let commits = writer.join().unwrap();
    let rss_after = rss_kib(e.pid());

    let mut lat = latencies.lock().unwrap().clone();
    lat.sort();
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize].as_secs_f64() * 1000.0;
    let completed = ran.iter().filter(|(_, c)| *c == 200).count();
    eprintln!(
        "load: {} scrapes from {CLIENTS} clients in {:.1} s, {} errors; latency median {:.1} ms, \
         p99 {:.1} ms, max {:.1} ms; {} actions ({completed} completed, the rest 409 busy), \
         {commits} writer commits; exporter RSS {} KiB before, {} KiB after",
        lat.len(),
        elapsed.as_secs_f64(),
        errors.lock().unwrap().len(),
        pct(0.5),
        pct(0.99),
        pct(1.0),
        ran.len(),
        rss_before,
        rss_after,
    );
    let errors = errors.lock().unwrap();
    assert!(errors.is_empty(), "scrape errors: {errors:?}");
    assert_eq!(lat.len(), SCRAPES);
    assert!(
        completed > 0,
        "no action completed during the load: {ran:?}"
    );
    // Still serving, and still well.
    scrape(&addr).expect("a scrape after the load");
    e.metrics();
}
