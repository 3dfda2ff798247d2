//! Test helpers for the real binary: SQLite files built from SQL in temp dirs, the exporter
//! started on 127.0.0.1:0, and HTTP over loopback (the `sqlite3` CLI oracle is
//! `util/sqlite3.rs`).
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

/// A running server process that logs the address it bound: its stderr is collected line by
/// line, and it is killed on drop (also when the test panics).
pub struct Daemon {
    child: Child,
    /// `127.0.0.1:PORT` it listens on.
    pub addr: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    /// Takes over `child` (spawned with a piped stderr) and waits up to 20 s for a log line
    /// containing `marker` and `address=ADDR`.
    pub fn watch(mut child: Child, marker: &str) -> Daemon {
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let log = log.clone();
            let marker = marker.to_string();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if line.contains(&marker) {
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
        let mut daemon = Daemon {
            child,
            addr: String::new(),
            log,
        };
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(a) => daemon.addr = a,
            Err(_) => panic!("process did not start; log:\n{}", daemon.log_text()),
        }
        daemon
    }

    /// Everything it logged so far.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
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
                panic!("no log line with {parts:?}; log:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Bytes logged so far (each line with its newline).
    pub fn log_bytes(&self) -> usize {
        self.log.lock().unwrap().iter().map(|l| l.len() + 1).sum()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
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
                    "process still running after {timeout:?}; log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL, and wait.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running exporter; killed on drop.
pub struct Exporter(Daemon);

impl std::ops::Deref for Exporter {
    type Target = Daemon;
    fn deref(&self) -> &Daemon {
        &self.0
    }
}

impl std::ops::DerefMut for Exporter {
    fn deref_mut(&mut self) -> &mut Daemon {
        &mut self.0
    }
}

impl Exporter {
    /// Starts the exporter with `args` plus `--web.listen-address=127.0.0.1:0` and waits until
    /// it logs its address.
    pub fn start(args: &[&str]) -> Exporter {
        Self::start_in(args, None)
    }

    /// Like [`start`](Self::start) with a working directory.
    pub fn start_in(args: &[&str], cwd: Option<&Path>) -> Exporter {
        Self::spawn(Command::new(binary()), args, cwd)
    }

    /// Like [`start`](Self::start), run through `wrapper` (a program that sets something up
    /// and then execs its arguments, such as `prlimit --nofile=200 --`), so the process
    /// started is the exporter itself.
    pub fn start_under(wrapper: &[&str], args: &[&str]) -> Exporter {
        let mut cmd = Command::new(wrapper[0]);
        cmd.args(&wrapper[1..]).arg(binary());
        Self::spawn(cmd, args, None)
    }

    fn spawn(mut cmd: Command, args: &[&str], cwd: Option<&Path>) -> Exporter {
        cmd.arg("--web.listen-address=127.0.0.1:0").args(args);
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        if let Some(d) = cwd {
            cmd.current_dir(d);
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        Exporter(Daemon::watch(child, "msg=listening"))
    }

    /// The `/metrics` body (asserting 200).
    pub fn metrics(&self) -> String {
        let (code, body) = self.get("/metrics");
        assert_eq!(code, 200, "GET /metrics: {body}");
        body
    }

    /// Polls `/metrics` until `done` holds for the body, for at most `limit`; returns that
    /// body, or panics with the last body and the log.
    pub fn metrics_until(
        &self,
        limit: Duration,
        what: &str,
        done: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let body = self.metrics();
            if done(&body) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {limit:?}; last body:\n{body}\nlog:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Creates a database at `path` from `sql`.
pub fn build_db(path: &Path, sql: &str) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch(sql).unwrap();
}

/// `dir/app.db`: a WAL database of 500 accounts holding 100 each.
pub fn app_db(dir: &Path) -> PathBuf {
    let p = dir.join("app.db");
    build_db(
        &p,
        "PRAGMA journal_mode=WAL;
         CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 500)
         INSERT INTO accounts(balance) SELECT 100 FROM c;",
    );
    p
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

/// A request to the control API with an optional bearer token; returns status and JSON body
/// (`Value::Null` for an empty or non-JSON body).
pub fn api(
    e: &Exporter,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    let url = format!("http://{}{}", e.addr, path);
    let mut req = ureq::request(method, &url).timeout(Duration::from_secs(120));
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    let resp = match body {
        Some(b) => req.set("Content-Type", "application/json").send_string(b),
        None => req.call(),
    };
    let (code, text) = match resp {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => panic!("{method} {url}: {e}"),
    };
    (
        code,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

/// A temp dir with a control-enabled config for `databases` (`name: path` pairs) and a token;
/// `extra` is YAML appended under `defaults:` (indented by the caller with two spaces).
pub struct Setup {
    /// The temp dir.
    pub dir: tempfile::TempDir,
    /// The config file.
    pub config: PathBuf,
    /// The backup dir.
    pub backups: PathBuf,
    /// The bearer token.
    pub token: String,
}

impl Setup {
    /// Writes the config and token file.
    pub fn new(
        dir: tempfile::TempDir,
        databases: &[(&str, &Path)],
        defaults: &str,
        control: bool,
    ) -> Setup {
        let token = "s3cret-token-for-tests".to_string();
        let token_file = dir.path().join("token");
        write_token(&token_file, &format!("# a comment\nother-token\n{token}\n"));
        let backups = dir.path().join("backups");
        let mut yaml = format!(
            "defaults:\n  backup:\n    dir: {}\n{defaults}\ndatabases:\n",
            backups.display()
        );
        for (name, path) in databases {
            yaml.push_str(&format!("  - name: {name}\n    path: {}\n", path.display()));
        }
        yaml.push_str(&format!(
            "control:\n  enabled: {control}\n  token_file: {}\n",
            token_file.display()
        ));
        let config = dir.path().join("sqlite_exporter.yml");
        std::fs::write(&config, yaml).unwrap();
        Setup {
            dir,
            config,
            backups,
            token,
        }
    }

    /// Starts the exporter on this config with extra flags.
    pub fn start(&self, flags: &[&str]) -> Exporter {
        let mut args = vec!["--config.file", self.config.to_str().unwrap()];
        args.extend_from_slice(flags);
        Exporter::start(&args)
    }

    /// Runs the CLI with `args` on this config: its exit code and its stdout as JSON.
    pub fn cli(&self, args: &[&str]) -> (Option<i32>, serde_json::Value) {
        let out = Command::new(binary())
            .args(args)
            .args(["--config.file", self.config.to_str().unwrap()])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let v = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
        (out.status.code(), v)
    }
}

/// Writes a control token file readable only by its owner, as the exporter requires.
pub fn write_token(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Waits up to `secs` for `f` to return true.
pub fn eventually(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out after {secs}s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Fills `path` (rollback journal) with about `mb` MB of rows in table `big`.
pub fn big_db(path: &Path, mb: u64) {
    let rows = mb * 1_000_000 / 1100;
    build_db(
        path,
        &format!(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;
             CREATE TABLE big(id INTEGER PRIMARY KEY, v BLOB);
             WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < {rows})
             INSERT INTO big(v) SELECT randomblob(1000) FROM c;
             PRAGMA journal_mode=DELETE;"
        ),
    );
}

/// Every file name in `dir` (sorted; empty when it does not exist).
pub fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A response read off the wire by [`raw`]: what a client without decoding sees.
pub struct Raw {
    pub status: u16,
    /// The head, lower-cased.
    pub head: String,
    /// The body, de-chunked when `transfer-encoding: chunked`, not decoded otherwise.
    pub body: Vec<u8>,
}

/// Sends `request` (a complete HTTP/1.1 request, which should say `Connection: close`) to
/// `addr` and reads the response until the server closes the connection.
pub fn raw(addr: &str, request: &str) -> Raw {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let end = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(&out)));
    let head = String::from_utf8_lossy(&out[..end]).to_lowercase();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut body = out[end + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    Raw { status, head, body }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size_text = String::from_utf8_lossy(&data[..line]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
            .unwrap_or_else(|e| panic!("chunk size {size_text:?}: {e}"));
        data = &data[line + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}
