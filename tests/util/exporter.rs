//! Test helpers for the real binary: SQLite files built from SQL in temp dirs, the exporter
//! started on 127.0.0.1:0, HTTP over loopback, and the `sqlite3` CLI as an independent oracle.
#![allow(dead_code)] // each test crate uses a different subset

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The exporter binary built by cargo for these tests.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sqlite_exporter"))
}

/// A running exporter; killed on drop.
pub struct Exporter {
    child: Child,
    /// `127.0.0.1:PORT` it listens on.
    pub addr: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Exporter {
    /// Starts the exporter with `args` plus `--web.listen-address=127.0.0.1:0` and waits until
    /// it logs its address.
    pub fn start(args: &[&str]) -> Exporter {
        Self::start_in(args, None)
    }

    /// Like [`start`](Self::start) with a working directory.
    pub fn start_in(args: &[&str], cwd: Option<&Path>) -> Exporter {
        let mut cmd = Command::new(binary());
        cmd.arg("--web.listen-address=127.0.0.1:0").args(args);
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        if let Some(d) = cwd {
            cmd.current_dir(d);
        }
        let mut child = cmd.spawn().expect("spawn sqlite_exporter");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if line.contains("message=listening") {
                        if let Some(a) = line
                            .split_whitespace()
                            .find_map(|w| w.strip_prefix("address="))
                        {
                            let _ = tx.send(a.to_string());
                        }
                    }
                    log.lock().unwrap().push(line);
                }
            });
        }
        let addr = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "exporter did not start; log:\n{}",
                    log.lock().unwrap().join("\n")
                );
            }
        };
        Exporter { child, addr, log }
    }

    /// GET `path`; returns status and body (any status).
    pub fn get(&self, path: &str) -> (u16, String) {
        let url = format!("http://{}{}", self.addr, path);
        match ureq::get(&url).timeout(Duration::from_secs(30)).call() {
            Ok(r) => (r.status(), r.into_string().unwrap()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
            Err(e) => panic!("GET {url}: {e}"),
        }
    }

    /// The `/metrics` body (asserting 200).
    pub fn metrics(&self) -> String {
        let (code, body) = self.get("/metrics");
        assert_eq!(code, 200, "GET /metrics: {body}");
        body
    }

    /// Waits up to 10 s for a log line containing every one of `parts`.
    pub fn wait_log(&self, parts: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(l) = self
                .log
                .lock()
                .unwrap()
                .iter()
                .find(|l| parts.iter().all(|p| l.contains(p)))
            {
                return l.clone();
            }
            if Instant::now() > deadline {
                panic!(
                    "no log line with {parts:?}; log:\n{}",
                    self.log.lock().unwrap().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Sends `signal` (e.g. `libc::SIGHUP`) to the process.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(rc, 0, "kill({}, {signal})", self.child.id());
    }

    /// Waits up to `timeout` for the process to exit; panics with the log if it does not.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                panic!(
                    "exporter still running after {timeout:?}; log:\n{}",
                    self.log.lock().unwrap().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every log line so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates a database at `path` from `sql`.
pub fn build_db(path: &Path, sql: &str) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch(sql).unwrap();
}

/// Runs `sqlite3 -readonly FILE SQL` and returns its trimmed output. A missing CLI is a failure
/// naming the package.
pub fn sqlite3(db: &Path, sql: &str) -> String {
    let out = match Command::new("sqlite3")
        .arg("-readonly")
        .arg(db)
        .arg(sql)
        .output()
    {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("`sqlite3` is not installed; it is provided by the Debian package `sqlite3` (apt-get install sqlite3)")
        }
        Err(e) => panic!("sqlite3: {e}"),
    };
    assert!(
        out.status.success(),
        "sqlite3 {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The value of the series `name{labels}` (labels given as `k="v"` pairs in any order).
pub fn value(body: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    body.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (series, v) = l.rsplit_once(' ')?;
        let (n, rest) = series.split_once('{').unwrap_or((series, ""));
        if n != name {
            return None;
        }
        let all = labels
            .iter()
            .all(|(k, val)| rest.contains(&format!("{k}=\"{val}\"")));
        all.then(|| v.parse().unwrap())
    })
}

/// Like [`value`] but panics with the body when the series is missing.
pub fn must(body: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    value(body, name, labels)
        .unwrap_or_else(|| panic!("series {name}{labels:?} missing from:\n{body}"))
}
