//! Bad inputs, table by table, through the real binary: configuration files, database files,
//! command lines, HTTP requests and web configs. Each table is a list of cases (name, input,
//! the exact exit code or HTTP status, and a fragment of the message the user gets); a small
//! runner per kind feeds every case to the binary and collects every case that does not get
//! its answer, so one run names all of them. After the HTTP and the database-file cases the
//! exporter that took them must still serve `/metrics` and still report its good database.

#[path = "util/corrupt.rs"]
mod corrupt;
#[path = "util/exporter.rs"]
mod exporter;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use exporter::{app_db, build_db, value, Exporter, Setup};

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

/// What a finished run of the binary gave.
struct Out {
    /// `None` when it was killed by a signal or had to be killed after the time limit.
    code: Option<i32>,
    stdout: String,
    stderr: String,
    timed_out: bool,
}

impl Out {
    /// The output for a failure message.
    fn show(&self) -> String {
        format!(
            "  exit: {:?}{}\n  stdout: {}\n  stderr: {}",
            self.code,
            if self.timed_out {
                " (killed: still running after the time limit)"
            } else {
                ""
            },
            indent(&self.stdout),
            indent(&self.stderr)
        )
    }

    /// stderr with logfmt's escaped quotes (`\"`) turned back into quotes, so a fragment with
    /// quotes matches inside a log line's quoted `error="..."` value too.
    fn stderr_plain(&self) -> String {
        self.stderr.replace("\\\"", "\"")
    }
}

fn indent(text: &str) -> String {
    let t = text.trim_end();
    if t.is_empty() {
        "(empty)".into()
    } else {
        t.lines().collect::<Vec<_>>().join("\n    ")
    }
}

/// Runs the binary with `args` in `dir`, killed after `limit`: a bad input must never make it
/// hang (or, for a usage error, start serving).
fn run_in(dir: &Path, args: &[String], limit: Duration) -> Out {
    let mut child = Command::new(exporter::binary())
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {args:?}: {e}"));
    let reader = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = r.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = reader(Box::new(child.stdout.take().unwrap()));
    let err = reader(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + limit;
    let mut timed_out = false;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            timed_out = true;
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Out {
        code: status.code(),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
        timed_out,
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// Panics naming every failed case of a table.
fn report(kind: &str, total: usize, failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} of {total} {kind} cases failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// A database no check complains about (given `min_indexes: 0` where it is served).
fn good_db(path: &Path) -> PathBuf {
    build_db(
        path,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
         INSERT INTO t(v) VALUES ('one'), ('two'), ('three');",
    );
    path.to_path_buf()
}

// ---------------------------------------------------------------------------------------------
// (1) Configuration files
// ---------------------------------------------------------------------------------------------

/// The configuration file a case gives the binary.
enum CfgFile {
    Yaml(&'static str),
    Bytes(&'static [u8]),
    /// YAML made at run time (too long or too repetitive to write out).
    Made(fn() -> String),
    /// A directory where the file should be.
    Directory,
    /// No file at the path.
    Missing,
}

struct ConfigCase {
    name: &'static str,
    file: CfgFile,
    /// Prepares other files in the case's directory (a token file).
    prepare: Option<fn(&Path)>,
    /// Exit code of `--config.check`.
    code: i32,
    /// Follows `FILE: ` in the message: the key path and what was wrong. `{dir}` is the case's
    /// directory.
    fragment: &'static str,
    /// Also start the serving exporter with it: it must exit 1 with the same message, before
    /// it listens.
    serve: bool,
}

const fn cfg(name: &'static str, yaml: &'static str, fragment: &'static str) -> ConfigCase {
    ConfigCase {
        name,
        file: CfgFile::Yaml(yaml),
        prepare: None,
        code: 1,
        fragment,
        serve: false,
    }
}

const fn served(mut c: ConfigCase) -> ConfigCase {
    c.serve = true;
    c
}

fn token_0640(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let t = dir.join("token");
    std::fs::write(&t, "s3cret\n").unwrap();
    std::fs::set_permissions(&t, std::fs::Permissions::from_mode(0o640)).unwrap();
}

fn long_name() -> String {
    format!(
        "databases:\n  - name: {}\n    path: a.db\n",
        "a".repeat(129)
    )
}

fn deep_yaml() -> String {
    format!("defaults: {}{}\n", "[".repeat(2000), "]".repeat(2000))
}

const CONFIGS: &[ConfigCase] = &[
    cfg(
        "top level is a list",
        "- a\n- b\n",
        ".: invalid type: sequence, expected a mapping (line 1, column 1)",
    ),
    cfg(
        "top level is a scalar",
        "hello\n",
        ".: invalid type: string \"hello\", expected a mapping (line 1, column 1)",
    ),
    cfg(
        "two YAML documents",
        "databases: []\n---\ndatabases: []\n",
        ".: deserializing from YAML containing more than one document is not supported",
    ),
    cfg(
        "duplicate top-level key",
        "databases: []\ndatabases: []\n",
        ".: duplicate field `databases` (line 1, column 1)",
    ),
    cfg(
        "tab indentation",
        "databases:\n\t- name: a\n",
        "databases: found character that cannot start any token (line 2, column 1)",
    ),
    ConfigCase {
        name: "deeply nested flow sequences",
        file: CfgFile::Made(deep_yaml),
        ..cfg(
            "",
            "",
            "defaults: invalid type: sequence, expected a mapping (line 1, column 11)",
        )
    },
    cfg(
        "defaults is a list",
        "defaults: [1, 2]\n",
        "defaults: invalid type: sequence, expected a mapping (line 1, column 11)",
    ),
    cfg(
        "a database entry is a bare string",
        "databases:\n  - app.db\n",
        "databases[0]: invalid type: string \"app.db\", expected a mapping (line 2, column 5)",
    ),
    ConfigCase {
        name: "database name of 129 characters",
        file: CfgFile::Made(long_name),
        ..cfg(
            "",
            "",
            "databases[0].name: invalid database name \"aaaaaaaaaa",
        )
    },
    cfg(
        "empty database name",
        "databases:\n  - name: \"\"\n    path: a.db\n",
        "databases[0].name: invalid database name \"\"; expected 1-128 characters from A-Z a-z 0-9 _ - .",
    ),
    served(cfg(
        "empty path",
        "databases:\n  - name: a\n    path: \"\"\n",
        "databases[0].path: expected a file path, got an empty string",
    )),
    // Refused like an empty `path`: accepted, it would silently monitor nothing.
    cfg("empty glob", "databases:\n  - glob: \"\"\n", "databases[0].glob: "),
    served(cfg(
        "negative ratio",
        "defaults:\n  thresholds:\n    min_utilization: -0.1\n",
        "defaults.thresholds.min_utilization: expected a ratio between 0 and 1, got -0.1",
    )),
    cfg(
        "ratio is a word",
        "defaults:\n  thresholds:\n    max_free_ratio: abc\n",
        "defaults.thresholds.max_free_ratio: invalid type: string \"abc\", expected f64 (line 3, column 21)",
    ),
    cfg(
        "size beyond any integer",
        "defaults:\n  thresholds:\n    wal_checkpoint_bytes: 99999999999999999999999\n",
        "defaults.thresholds.wal_checkpoint_bytes: invalid type: integer `99999999999999999999999`",
    ),
    cfg(
        "size is a word",
        "defaults:\n  thresholds:\n    archive_bytes: lots\n",
        "defaults.thresholds.archive_bytes: invalid size \"lots\"; expected bytes or a size such as 10MiB or 500MB (line 3, column 20)",
    ),
    cfg(
        "negative index count",
        "defaults:\n  thresholds:\n    min_indexes: -1\n",
        "defaults.thresholds.min_indexes: invalid type: integer `-1`",
    ),
    cfg(
        "duration with an unknown unit",
        "defaults:\n  probes:\n    interval: 1 fortnight\n",
        "defaults.probes.interval: invalid duration \"1 fortnight\" (unknown time unit \"fortnight\"",
    ),
    cfg(
        "duration too large",
        "defaults:\n  thresholds:\n    slow_query: 99999999999999999999h\n",
        "defaults.thresholds.slow_query: invalid duration \"99999999999999999999h\" (number is too large",
    ),
    cfg(
        "negative duration",
        "defaults:\n  actions:\n    busy_timeout: -5s\n",
        "defaults.actions.busy_timeout: invalid duration \"-5s\" (expected number at 0); expected a duration such as 250ms, 5m or 24h (line 3, column 19)",
    ),
    cfg(
        "zero integrity timeout",
        "defaults:\n  integrity_check:\n    timeout: 0s\n",
        "defaults.integrity_check.timeout: expected a duration greater than zero",
    ),
    cfg(
        "zero dbstat interval",
        "defaults:\n  dbstat:\n    interval: 0s\n",
        "defaults.dbstat.interval: expected a duration greater than zero",
    ),
    cfg(
        "unknown compression",
        "defaults:\n  backup:\n    compress: bzip2\n",
        "defaults.backup.compress: unknown variant `bzip2`, expected `none` or `gzip` (line 3, column 15)",
    ),
    cfg(
        "unknown backup method",
        "defaults:\n  backup:\n    method: rsync\n",
        "defaults.backup.method: unknown variant `rsync`, expected `online` or `vacuum_into` (line 3, column 13)",
    ),
    cfg(
        "unknown backup verification",
        "defaults:\n  backup:\n    verify: none\n",
        "defaults.backup.verify: unknown variant `none`, expected `full` or `quick` (line 3, column 13)",
    ),
    cfg(
        "negative backups to keep",
        "defaults:\n  backup:\n    keep: -1\n",
        "defaults.backup.keep: invalid type: integer `-1`",
    ),
    cfg(
        "zero pages per backup step",
        "defaults:\n  backup:\n    pages_per_step: 0\n",
        "defaults.backup.pages_per_step: expected a number of pages between 1 and 2147483647",
    ),
    cfg(
        "unknown metrics detail",
        "defaults:\n  metrics:\n    detail: verbose\n",
        "defaults.metrics.detail: unknown variant `verbose`, expected `basic` or `full` (line 3, column 13)",
    ),
    cfg(
        "unknown threshold",
        "defaults:\n  thresholds:\n    wal_bytes: 1MiB\n",
        "defaults.thresholds.wal_bytes: unknown field `wal_bytes`, expected one of `wal_checkpoint_bytes`",
    ),
    cfg(
        "unknown auto policy",
        "defaults:\n  auto:\n    defrag: true\n",
        "defaults.auto.defrag: unknown field `defrag`, expected one of `checkpoint`, `backup`, `recover`, `vacuum` (line 3, column 5)",
    ),
    cfg(
        "bad per-database override",
        "databases:\n  - name: a\n    path: a.db\n    probes:\n      write: sometimes\n",
        "databases[0].probes.write: unknown variant `sometimes`, expected one of `off`, `lock`, `table` (line 5, column 14)",
    ),
    cfg(
        "empty migrations table",
        "defaults:\n  migrations:\n    table: \"\"\n",
        "defaults.migrations.table: expected a table name, got an empty string",
    ),
    cfg(
        "control enabled: yes (a string in YAML 1.2)",
        "control:\n  enabled: yes\n",
        "control.enabled: invalid type: string \"yes\", expected a boolean (line 2, column 12)",
    ),
    cfg(
        "unknown control key",
        "control:\n  enabled: false\n  tokenfile: x\n",
        "control.tokenfile: unknown field `tokenfile`, expected `enabled` or `token_file` (line 3, column 3)",
    ),
    cfg(
        "token file missing",
        "control:\n  enabled: true\n  token_file: no-such-token\n",
        "control.token_file: cannot read token file {dir}/no-such-token: No such file or directory (os error 2)",
    ),
    ConfigCase {
        name: "token file readable by the group",
        prepare: Some(token_0640),
        serve: true,
        ..cfg(
            "",
            "control:\n  enabled: true\n  token_file: token\n",
            "control.token_file: token file {dir}/token has mode 0640",
        )
    },
    ConfigCase {
        name: "config file is a directory",
        file: CfgFile::Directory,
        serve: true,
        ..cfg(
            "",
            "",
            ".: cannot read config file: Is a directory (os error 21)",
        )
    },
    ConfigCase {
        name: "config file missing",
        file: CfgFile::Missing,
        ..cfg(
            "",
            "",
            ".: cannot read config file: No such file or directory (os error 2)",
        )
    },
    ConfigCase {
        name: "config file is not UTF-8",
        file: CfgFile::Bytes(b"\xff\xfe\x00databases: []\n"),
        ..cfg(
            "",
            "",
            ".: cannot read config file: stream did not contain valid UTF-8",
        )
    },
    cfg(
        "empty required table",
        "defaults:\n  schema:\n    required_tables: [users, \" \"]\n",
        "defaults.schema.required_tables[1]: expected a table name, got an empty string",
    ),
    cfg(
        "required tables not a list",
        "defaults:\n  schema:\n    required_tables: users\n",
        "defaults.schema.required_tables: invalid type: string \"users\", expected a sequence (line 3, column 22)",
    ),
];

/// Bad configurations written over a serving exporter's config file and reloaded with
/// `POST /-/reload`: 500 naming the problem, and the old configuration keeps serving.
struct ReloadCase {
    name: &'static str,
    /// `None` removes the file.
    yaml: Option<&'static str>,
    fragment: &'static str,
}

const RELOADS: &[ReloadCase] = &[
    ReloadCase {
        name: "reload: YAML syntax error",
        yaml: Some("databases:\n  - name: good\n    path: \"unterminated\n"),
        fragment: "databases[0].path: found unexpected end of stream",
    },
    ReloadCase {
        name: "reload: unknown key",
        yaml: Some("databasez: []\n"),
        fragment: "databasez: unknown field `databasez`",
    },
    ReloadCase {
        name: "reload: invalid ratio",
        yaml: Some("defaults:\n  thresholds:\n    min_utilization: 2\n"),
        fragment: "defaults.thresholds.min_utilization: expected a ratio between 0 and 1, got 2",
    },
    ReloadCase {
        name: "reload: config file removed",
        yaml: None,
        fragment: ".: cannot read config file: No such file or directory (os error 2)",
    },
];

fn run_config_case(c: &ConfigCase) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = d.join("sqlite_exporter.yml");
    match &c.file {
        CfgFile::Yaml(y) => std::fs::write(&file, y).unwrap(),
        CfgFile::Bytes(b) => std::fs::write(&file, b).unwrap(),
        CfgFile::Made(f) => std::fs::write(&file, f()).unwrap(),
        CfgFile::Directory => std::fs::create_dir(&file).unwrap(),
        CfgFile::Missing => {}
    }
    if let Some(p) = c.prepare {
        p(d);
    }
    let want = format!(
        "{}: {}",
        file.display(),
        c.fragment.replace("{dir}", &d.display().to_string())
    );
    let mut problems = Vec::new();
    let check = run_in(
        d,
        &strings(&["--config.check", "--config.file", file.to_str().unwrap()]),
        Duration::from_secs(20),
    );
    if check.code != Some(c.code) {
        problems.push(format!(
            "--config.check: exit {:?}, want {}",
            check.code, c.code
        ));
    }
    if !check.stderr.contains(&want) {
        problems.push(format!("--config.check: stderr lacks {want:?}"));
    }
    let mut shown = format!("--config.check:\n{}", check.show());
    if c.serve {
        let serve = run_in(
            d,
            &strings(&[
                "--web.listen-address=127.0.0.1:0",
                "--config.file",
                file.to_str().unwrap(),
            ]),
            Duration::from_secs(20),
        );
        let stderr = serve.stderr_plain();
        if serve.code != Some(1) {
            problems.push(format!("serving: exit {:?}, want 1", serve.code));
        }
        if !(stderr.contains("msg=fatal") && stderr.contains(&want)) {
            problems.push(format!("serving: no fatal log line with {want:?}"));
        }
        if stderr.contains("msg=listening") {
            problems.push("serving: it listened before failing".into());
        }
        shown.push_str(&format!("\nserving:\n{}", serve.show()));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}\n{shown}", problems.join("; ")))
    }
}

/// `POST /-/reload` on `e` over a plain connection: status and body.
fn post_reload(e: &Exporter) -> Result<(u16, String), String> {
    exchange(
        &e.addr,
        b"POST /-/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .map(|r| (r.status, String::from_utf8_lossy(&r.body).into_owned()))
}

fn run_reload_case(e: &Exporter, file: &Path, c: &ReloadCase) -> Result<(), String> {
    match c.yaml {
        Some(y) => std::fs::write(file, y).unwrap(),
        None => std::fs::remove_file(file).unwrap(),
    }
    let want = format!(
        "failed to reload config: {}: {}",
        file.display(),
        c.fragment
    );
    let (status, body) = post_reload(e)?;
    let mut problems = Vec::new();
    if status != 500 {
        problems.push(format!("POST /-/reload: status {status}, want 500"));
    }
    if !body.contains(&want) {
        problems.push(format!("POST /-/reload: body lacks {want:?}"));
    }
    let (code, metrics) = e.get("/metrics");
    if code != 200 {
        problems.push(format!("GET /metrics afterwards: status {code}"));
    }
    if value(&metrics, "sqlite_up", &[("database", "good")]) != Some(1.0) {
        problems.push("the old configuration's database `good` is no longer up".into());
    }
    if value(
        &metrics,
        "sqlite_exporter_config_last_reload_successful",
        &[],
    ) != Some(0.0)
    {
        problems.push("sqlite_exporter_config_last_reload_successful is not 0".into());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}\n  body: {}",
            problems.join("; "),
            indent(&body)
        ))
    }
}

#[test]
fn bad_configuration_files_are_refused_with_file_key_path_and_reason() {
    let mut failures = Vec::new();
    for c in CONFIGS {
        if let Err(e) = run_config_case(c) {
            failures.push(format!("[config] {}: {e}", c.name));
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let db = good_db(&dir.path().join("good.db"));
    let file = dir.path().join("sqlite_exporter.yml");
    std::fs::write(
        &file,
        format!("databases:\n  - name: good\n    path: {}\n", db.display()),
    )
    .unwrap();
    let e = Exporter::start(&["--config.file", file.to_str().unwrap()]);
    assert_eq!(
        value(&e.metrics(), "sqlite_up", &[("database", "good")]),
        Some(1.0),
        "the good configuration serves"
    );
    for c in RELOADS {
        if let Err(err) = run_reload_case(&e, &file, c) {
            failures.push(format!("[config] {}: {err}", c.name));
        }
    }
    report("configuration", CONFIGS.len() + RELOADS.len(), &failures);
}

// ---------------------------------------------------------------------------------------------
// (2) Database files
// ---------------------------------------------------------------------------------------------

struct DbCase {
    /// Also the database's name in the configuration.
    name: &'static str,
    /// Creates the bad file (or the lack of one) in the directory; returns the configured path.
    make: fn(&Path) -> PathBuf,
    /// `sqlite_up`.
    up: bool,
    /// The `sqlite_health_status` that is 1.
    status: &'static str,
    /// Found in the database's error and problems in `/health`, or in its `/metrics` lines.
    fragment: &'static str,
}

/// A rollback-journal database of about 30 pages of 4096 bytes: enough to cut in the middle.
fn sized_db(path: &Path) -> Vec<u8> {
    build_db(
        path,
        "PRAGMA page_size = 4096; PRAGMA journal_mode = DELETE;
         CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 100)
         INSERT INTO t(v) SELECT randomblob(1000) FROM c;",
    );
    std::fs::read(path).unwrap()
}

fn write_bytes(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// A sound database at `dir/name`, cut to `len(bytes)` bytes.
fn truncated(dir: &Path, name: &str, len: impl Fn(usize) -> usize) -> PathBuf {
    let p = dir.join(name);
    let bytes = sized_db(&p);
    std::fs::write(&p, &bytes[..len(bytes.len())]).unwrap();
    p
}

/// A sound database at `dir/name` with `edit` applied to its bytes.
fn edited(dir: &Path, name: &str, edit: impl Fn(&mut Vec<u8>)) -> PathBuf {
    let p = dir.join(name);
    let mut bytes = sized_db(&p);
    edit(&mut bytes);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// A WAL database with a WAL of several frames left by a writer that did not checkpoint, as
/// (main file, WAL bytes); the WAL file is then replaced by the caller.
fn wal_db(dir: &Path, name: &str) -> (PathBuf, Vec<u8>) {
    let p = dir.join(name);
    let c = rusqlite::Connection::open(&p).unwrap();
    c.execute_batch(
        "PRAGMA page_size = 4096; PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
         CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 20)
         INSERT INTO t(v) SELECT randomblob(500) FROM c;",
    )
    .unwrap();
    let wal = std::fs::read(format!("{}-wal", p.display())).unwrap();
    assert!(wal.len() > 32 + 2 * (24 + 4096), "the WAL has frames");
    // Copy the files aside while the connection is open (closing would checkpoint them away).
    let main = std::fs::read(&p).unwrap();
    drop(c);
    std::fs::write(&p, main).unwrap();
    for ext in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", p.display()));
    }
    (p, wal)
}

fn set_page_size(bytes: &mut [u8], size: u16) {
    bytes[16..18].copy_from_slice(&size.to_be_bytes());
}

fn db_cases(root_reads_anyway: bool) -> Vec<DbCase> {
    let mut cases = vec![
        DbCase {
            name: "text_file",
            make: |d| {
                write_bytes(
                    d,
                    "notes.db",
                    "not a database, just notes\n".repeat(200).as_bytes(),
                )
            },
            up: false,
            status: "critical",
            fragment: "file is not a SQLite database",
        },
        DbCase {
            name: "random_bytes",
            make: |d| {
                let bytes: Vec<u8> = (0..8192u32)
                    .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                    .collect();
                write_bytes(d, "random.db", &bytes)
            },
            up: false,
            status: "critical",
            fragment: "file is not a SQLite database",
        },
        DbCase {
            name: "wrong_magic",
            make: |d| {
                edited(d, "magic.db", |b| {
                    b[..16].copy_from_slice(b"SQLite format 4\0")
                })
            },
            up: false,
            status: "critical",
            fragment: "file is not a SQLite database",
        },
        DbCase {
            name: "zero_length",
            make: |d| write_bytes(d, "empty.db", b""),
            up: false,
            status: "critical",
            fragment: "file is empty (0 bytes), not a SQLite database",
        },
        // A file cut inside the 100-byte header is down like one cut right after it. SQLite
        // alone opens it (the missing bytes read as zeros) and fails only at the first read
        // past the header.
        DbCase {
            name: "truncated_inside_header",
            make: |d| truncated(d, "cut50.db", |_| 50),
            up: false,
            status: "critical",
            fragment: "database disk image is malformed",
        },
        DbCase {
            name: "truncated_after_header",
            make: |d| truncated(d, "cut100.db", |_| 100),
            up: false,
            status: "critical",
            fragment: "database is corrupt: database disk image is malformed",
        },
        DbCase {
            name: "truncated_mid_page",
            make: |d| truncated(d, "cut-mid-page.db", |_| 4096 + 2048),
            up: false,
            status: "critical",
            fragment: "database is corrupt: database disk image is malformed",
        },
        DbCase {
            name: "truncated_to_half",
            make: |d| truncated(d, "cut-half.db", |n| n / 2),
            up: false,
            status: "critical",
            fragment: "database is corrupt: database disk image is malformed",
        },
        DbCase {
            name: "page_size_not_a_power_of_two",
            make: |d| edited(d, "page1000.db", |b| set_page_size(b, 1000)),
            up: false,
            status: "critical",
            fragment: "file is not a SQLite database",
        },
        DbCase {
            name: "page_size_below_minimum",
            make: |d| edited(d, "page256.db", |b| set_page_size(b, 256)),
            up: false,
            status: "critical",
            fragment: "file is not a SQLite database",
        },
        DbCase {
            name: "page_size_zero",
            make: |d| edited(d, "page0.db", |b| set_page_size(b, 0)),
            up: false,
            status: "critical",
            fragment: "file is not a SQLite database",
        },
        DbCase {
            name: "zeroed_table_page",
            make: |d| edited(d, "zero-page2.db", |b| b[4096..8192].fill(0)),
            up: true,
            status: "critical",
            fragment: "integrity check failed",
        },
        DbCase {
            name: "table_page_damage",
            make: corrupt::table_page_damage,
            up: true,
            status: "critical",
            fragment: "integrity check failed",
        },
        DbCase {
            name: "index_entry_mismatch",
            make: corrupt::index_entry_mismatch,
            up: true,
            status: "critical",
            fragment: "t_v",
        },
        DbCase {
            name: "malformed_schema",
            make: corrupt::malformed_schema,
            up: true,
            status: "critical",
            fragment: "malformed database schema",
        },
        DbCase {
            name: "wal_table_root_broken",
            make: |d| {
                let sub = d.join("wal-app");
                std::fs::create_dir(&sub).unwrap();
                let p = app_db(&sub);
                corrupt::table_root(&p, "accounts");
                p
            },
            up: true,
            status: "critical",
            fragment: "integrity check failed",
        },
        DbCase {
            name: "directory",
            make: |d| {
                let p = d.join("dir.db");
                std::fs::create_dir(&p).unwrap();
                p
            },
            up: false,
            status: "critical",
            fragment: "path is a directory, not a database file",
        },
        DbCase {
            name: "missing_file",
            make: |d| d.join("missing.db"),
            up: false,
            status: "critical",
            fragment: "cannot read database: file does not exist",
        },
        DbCase {
            name: "dangling_symlink",
            make: |d| {
                let p = d.join("dangling.db");
                std::os::unix::fs::symlink(d.join("nowhere.db"), &p).unwrap();
                p
            },
            up: false,
            status: "critical",
            fragment: "cannot read database: file does not exist",
        },
        DbCase {
            name: "symlink_loop",
            make: |d| {
                std::os::unix::fs::symlink(d.join("loop-b.db"), d.join("loop-a.db")).unwrap();
                std::os::unix::fs::symlink(d.join("loop-a.db"), d.join("loop-b.db")).unwrap();
                d.join("loop-a.db")
            },
            up: false,
            status: "unknown",
            fragment: "Too many levels of symbolic links",
        },
        DbCase {
            name: "parent_is_a_file",
            make: |d| {
                std::fs::write(d.join("plain-file"), "x").unwrap();
                d.join("plain-file").join("app.db")
            },
            up: false,
            status: "unknown",
            fragment: "Not a directory",
        },
        DbCase {
            name: "named_pipe",
            make: |d| {
                let p = d.join("fifo.db");
                let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
                // SAFETY: mkfifo(3) on a NUL-terminated path.
                assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
                p
            },
            up: false,
            status: "critical",
            fragment: "not a SQLite database",
        },
        DbCase {
            name: "garbage_wal_beside_rollback_db",
            make: |d| {
                let p = good_db(&d.join("stray-wal.db"));
                std::fs::write(format!("{}-wal", p.display()), b"garbage!".repeat(1000)).unwrap();
                p
            },
            up: true,
            status: "healthy",
            fragment: "sqlite_wal_frames{database=\"garbage_wal_beside_rollback_db\"} 0",
        },
        DbCase {
            name: "wal_with_bad_magic",
            make: |d| {
                let (p, mut wal) = wal_db(d, "wal-magic.db");
                wal[..4].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
                std::fs::write(format!("{}-wal", p.display()), wal).unwrap();
                p
            },
            up: true,
            status: "healthy",
            fragment: "sqlite_wal_frames{database=\"wal_with_bad_magic\"} 0",
        },
        DbCase {
            name: "wal_cut_inside_first_frame",
            make: |d| {
                let (p, wal) = wal_db(d, "wal-cut.db");
                std::fs::write(format!("{}-wal", p.display()), &wal[..32 + 24 + 1000]).unwrap();
                p
            },
            up: true,
            status: "healthy",
            fragment: "sqlite_wal_frames{database=\"wal_cut_inside_first_frame\"} 0",
        },
        DbCase {
            name: "garbage_shm",
            make: |d| {
                let (p, wal) = wal_db(d, "shm-garbage.db");
                std::fs::write(format!("{}-wal", p.display()), wal).unwrap();
                std::fs::write(format!("{}-shm", p.display()), vec![0xffu8; 32768]).unwrap();
                p
            },
            up: true,
            status: "healthy",
            fragment: "sqlite_schema_objects{database=\"garbage_shm\",type=\"table\"} 1",
        },
    ];
    // Mode 000: refused to an ordinary user; root (CAP_DAC_OVERRIDE) reads it regardless, and
    // so does the exporter it runs, which then sees a sound database.
    cases.push(DbCase {
        name: "mode_000",
        make: |d| {
            use std::os::unix::fs::PermissionsExt;
            let p = good_db(&d.join("mode000.db"));
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o000)).unwrap();
            p
        },
        up: root_reads_anyway,
        status: if root_reads_anyway {
            "healthy"
        } else {
            "critical"
        },
        fragment: if root_reads_anyway {
            "sqlite_integrity_check_success{database=\"mode_000\"} 1"
        } else {
            "cannot read database: permission denied"
        },
    });
    cases
}

/// Whether this process reads a file of mode 000 (it runs as root), probed by trying.
fn reads_mode_000(dir: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join("probe");
    std::fs::write(&p, "x").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o000)).unwrap();
    let readable = std::fs::read(&p).is_ok();
    std::fs::remove_file(&p).unwrap();
    readable
}

/// One database's entry in `/health`.
fn health_entry<'a>(health: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    health["databases"]
        .as_array()?
        .iter()
        .find(|d| d["name"] == name)
}

fn check_db_case(c: &DbCase, health: &serde_json::Value, metrics: &str) -> Result<(), String> {
    let Some(entry) = health_entry(health, c.name) else {
        return Err("not in /health".into());
    };
    let label = format!("database=\"{}\"", c.name);
    let lines: Vec<&str> = metrics
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains(&label))
        .collect();
    let mut problems = Vec::new();
    let up = value(metrics, "sqlite_up", &[("database", c.name)]);
    if up != Some(if c.up { 1.0 } else { 0.0 }) {
        problems.push(format!("sqlite_up {up:?}, want {}", u8::from(c.up)));
    }
    let status = value(
        metrics,
        "sqlite_health_status",
        &[("database", c.name), ("status", c.status)],
    );
    if status != Some(1.0) {
        problems.push(format!(
            "health status {}, want {}",
            entry["health"]["status"], c.status
        ));
    }
    let mut said: Vec<String> = entry["error"]
        .as_str()
        .map(String::from)
        .into_iter()
        .collect();
    if let Some(p) = entry["health"]["problems"].as_array() {
        said.extend(p.iter().filter_map(|m| m.as_str().map(String::from)));
    }
    let found =
        said.iter().any(|s| s.contains(c.fragment)) || lines.iter().any(|l| l.contains(c.fragment));
    if !found {
        problems.push(format!(
            "{:?} is in neither its errors nor its series",
            c.fragment
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}\n  error and problems: {said:?}\n  integrity: {}\n  collectors: {}",
            problems.join("; "),
            entry["checks"]["integrity"],
            entry["collectors"]
        ))
    }
}

#[test]
fn bad_database_files_are_reported_by_one_exporter_that_keeps_serving_the_good_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases = db_cases(reads_mode_000(d));
    let good = good_db(&d.join("good.db"));
    let mut yaml = format!(
        "defaults:\n  integrity_check: {{ mode: full, interval: 1s }}\n  thresholds: {{ min_indexes: 0 }}\n  backup: {{ dir: {} }}\ndatabases:\n  - name: good\n    path: {}\n",
        d.join("no-backups").display(),
        good.display()
    );
    for c in &cases {
        let path = (c.make)(d);
        yaml.push_str(&format!(
            "  - name: {}\n    path: {}\n",
            c.name,
            path.display()
        ));
    }
    let config = d.join("sqlite_exporter.yml");
    std::fs::write(&config, yaml).unwrap();
    let e = Exporter::start(&["--config.file", config.to_str().unwrap()]);

    // Every database has had an integrity check (or learned it could not run one).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut health;
    loop {
        let (_, body) = e.get("/health");
        health = serde_json::from_str::<serde_json::Value>(&body)
            .unwrap_or_else(|err| panic!("/health is not JSON ({err}): {body}"));
        let waiting: Vec<&str> = std::iter::once("good")
            .chain(cases.iter().map(|c| c.name))
            .filter(|n| {
                health_entry(&health, n).is_none_or(|x| x["checks"]["runs"]["integrity"].is_null())
            })
            .collect();
        if waiting.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no integrity check within 30 s for {waiting:?}; log:\n{}",
            e.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Probes are staggered over about a second: give the last ones a moment before judging.
    let deadline = Instant::now() + Duration::from_secs(3);
    let failures = loop {
        let (_, body) = e.get("/health");
        health = serde_json::from_str(&body).unwrap();
        let metrics = e.metrics();
        let failures: Vec<String> = cases
            .iter()
            .filter_map(|c| {
                check_db_case(c, &health, &metrics)
                    .err()
                    .map(|err| format!("[database] {}: {err}", c.name))
            })
            .collect();
        if failures.is_empty() || Instant::now() > deadline {
            break failures;
        }
        std::thread::sleep(Duration::from_millis(250));
    };

    // The exporter still serves, and still reports the good database as up and healthy.
    let (code, metrics) = e.get("/metrics");
    assert_eq!(code, 200, "GET /metrics after the bad files: {metrics}");
    assert_eq!(
        value(&metrics, "sqlite_up", &[("database", "good")]),
        Some(1.0),
        "the good database among the bad ones"
    );
    assert_eq!(
        value(
            &metrics,
            "sqlite_health_status",
            &[("database", "good"), ("status", "healthy")]
        ),
        Some(1.0),
        "{}",
        health_entry(&health, "good").unwrap()
    );
    report("database-file", cases.len(), &failures);
}

// ---------------------------------------------------------------------------------------------
// (3) Command-line arguments
// ---------------------------------------------------------------------------------------------

/// Where a CLI case's message must appear.
enum Says {
    Stderr(&'static str),
    Stdout(&'static str),
    /// An action subcommand's result: stdout is a JSON object whose `error` has the fragment,
    /// and stderr says it too.
    Json(&'static str),
}

struct CliCase {
    name: &'static str,
    /// Run in a directory holding `good.db`, `wal.db`, `text.db`, `empty.db`, the directory
    /// `adir`, the file `afile`, `ok.yml` (database `app` = good.db) and `bad.yml`.
    args: &'static [&'static str],
    code: i32,
    says: Says,
}

use Says::{Json, Stderr, Stdout};

const CLI: &[CliCase] = &[
    CliCase {
        name: "unknown long flag",
        args: &["--bogus", "good.db"],
        code: 2,
        says: Stderr("unexpected argument '--bogus' found"),
    },
    CliCase {
        name: "unknown short flag",
        args: &["-x", "good.db"],
        code: 2,
        says: Stderr("unexpected argument '-x' found"),
    },
    CliCase {
        name: "duration without a unit",
        args: &["--web.header-read-timeout=10", "good.db"],
        code: 2,
        says: Stderr("invalid value '10' for '--web.header-read-timeout <DURATION>': time unit needed"),
    },
    CliCase {
        name: "duration is a word",
        args: &["--web.header-read-timeout=soon", "good.db"],
        code: 2,
        says: Stderr("invalid value 'soon' for '--web.header-read-timeout <DURATION>': expected number at 0"),
    },
    CliCase {
        name: "negative duration",
        args: &["--web.idle-timeout=-1s", "good.db"],
        code: 2,
        says: Stderr("invalid value '-1s' for '--web.idle-timeout <DURATION>': expected number at 0"),
    },
    CliCase {
        name: "empty duration",
        args: &["--web.idle-timeout=", "good.db"],
        code: 2,
        says: Stderr("invalid value '' for '--web.idle-timeout <DURATION>': value was empty"),
    },
    CliCase {
        name: "duration overflow",
        args: &["--web.header-read-timeout=99999999999999999999s", "good.db"],
        code: 2,
        says: Stderr("invalid value '99999999999999999999s' for '--web.header-read-timeout <DURATION>': number is too large"),
    },
    CliCase {
        name: "zero max connections",
        args: &["--web.max-connections=0", "good.db"],
        code: 2,
        says: Stderr("invalid value '0' for '--web.max-connections <N>': 0 is not in 1..=4294967295"),
    },
    CliCase {
        name: "max connections not a number",
        args: &["--web.max-connections=many", "good.db"],
        code: 2,
        says: Stderr("invalid value 'many' for '--web.max-connections <N>': invalid digit found in string"),
    },
    CliCase {
        name: "negative scrape concurrency",
        args: &["--scrape.concurrency=-1", "good.db"],
        code: 2,
        says: Stderr("invalid value '-1' for '--scrape.concurrency <N>': invalid digit found in string"),
    },
    CliCase {
        name: "checks concurrency not a number",
        args: &["--checks.concurrency=abc", "good.db"],
        code: 2,
        says: Stderr("invalid value 'abc' for '--checks.concurrency <N>': invalid digit found in string"),
    },
    CliCase {
        name: "unknown log level",
        args: &["--log.level=loud", "good.db"],
        code: 2,
        says: Stderr("invalid value 'loud' for '--log.level <LOG_LEVEL>'\n  [possible values: debug, info, warn, error]"),
    },
    CliCase {
        name: "unknown log format",
        args: &["--log.format=xml", "good.db"],
        code: 2,
        says: Stderr("invalid value 'xml' for '--log.format <LOG_FORMAT>'\n  [possible values: logfmt, json]"),
    },
    CliCase {
        name: "flag without its value",
        args: &["--web.listen-address"],
        code: 2,
        says: Stderr("a value is required for '--web.listen-address <ADDR>' but none was supplied"),
    },
    CliCase {
        name: "telemetry path of the control API",
        args: &["--web.listen-address=127.0.0.1:0", "--web.telemetry-path=/api/v1", "good.db"],
        code: 2,
        says: Stderr("invalid value '/api/v1' for '--web.telemetry-path <PATH>': \"/api/v1\" is already another endpoint"),
    },
    CliCase {
        name: "port out of range",
        args: &["--web.listen-address=127.0.0.1:99999", "good.db"],
        code: 1,
        says: Stderr("cannot listen on 127.0.0.1:99999: invalid port value"),
    },
    CliCase {
        name: "listen address without a port",
        args: &["--web.listen-address=127.0.0.1", "good.db"],
        code: 1,
        says: Stderr("cannot listen on 127.0.0.1: invalid socket address"),
    },
    CliCase {
        name: "empty listen address",
        args: &["--web.listen-address=", "good.db"],
        code: 1,
        says: Stderr("cannot listen on : invalid socket address"),
    },
    CliCase {
        name: "nothing to monitor",
        args: &["--web.listen-address=127.0.0.1:0"],
        code: 1,
        says: Stderr("nothing to monitor: give database files, --config.file=FILE or --demo"),
    },
    CliCase {
        name: "--config.check without --config.file",
        args: &["--config.check"],
        code: 1,
        says: Stderr("--config.check needs --config.file"),
    },
    CliCase {
        name: "demo directory under a plain file",
        args: &["--web.listen-address=127.0.0.1:0", "--demo=afile/sub"],
        code: 1,
        says: Stderr("creating demo directory afile/sub: Not a directory (os error 20)"),
    },
    CliCase {
        name: "unrecognized subcommand",
        args: &["help", "frob"],
        code: 2,
        says: Stderr("unrecognized subcommand 'frob'"),
    },
    CliCase {
        name: "check: unknown output",
        args: &["check", "--output=xml", "good.db"],
        code: 3,
        says: Stderr("invalid value 'xml' for '--output <OUTPUT>'\n  [possible values: table, json]"),
    },
    CliCase {
        name: "check: unknown --fail-on",
        args: &["check", "--fail-on=never", "good.db"],
        code: 3,
        says: Stderr("invalid value 'never' for '--fail-on <FAIL_ON>'\n  [possible values: warning, critical]"),
    },
    CliCase {
        name: "check: bad global flag after the subcommand",
        args: &["check", "--log.level=loud", "good.db"],
        code: 3,
        says: Stderr("invalid value 'loud' for '--log.level <LOG_LEVEL>'"),
    },
    CliCase {
        name: "check: nothing to check",
        args: &["check"],
        code: 3,
        says: Stdout("no databases to check"),
    },
    CliCase {
        name: "check: invalid config file",
        args: &["check", "--config.file=bad.yml"],
        code: 3,
        says: Stderr("sqlite_exporter: bad.yml: databases[0].path: expected a file path, got an empty string"),
    },
    CliCase {
        name: "check: missing database",
        args: &["check", "nosuch.db"],
        code: 2,
        says: Stdout("nosuch: critical: cannot read database: file does not exist"),
    },
    CliCase {
        name: "check: not a database",
        args: &["check", "text.db"],
        code: 2,
        says: Stdout("text: critical: cannot read database: file is not a SQLite database"),
    },
    // The JSON result names the missing argument, as stderr does.
    CliCase {
        name: "checkpoint: no database given",
        args: &["checkpoint"],
        code: 2,
        says: Json("<DATABASE>"),
    },
    // The same, for the second argument of `restore`.
    CliCase {
        name: "restore: no backup given",
        args: &["restore", "good.db"],
        code: 2,
        says: Json("<BACKUP>"),
    },
    CliCase {
        name: "checkpoint: unknown flag",
        args: &["checkpoint", "--bogus", "wal.db"],
        code: 2,
        says: Json("unexpected argument '--bogus' found"),
    },
    CliCase {
        name: "checkpoint: empty mode",
        args: &["checkpoint", "--mode=", "wal.db"],
        code: 2,
        says: Json("invalid checkpoint mode \"\"; expected passive, full, restart or truncate"),
    },
    CliCase {
        name: "vacuum: extra argument",
        args: &["vacuum", "good.db", "extra"],
        code: 2,
        says: Json("unexpected argument 'extra' found"),
    },
    CliCase {
        name: "backup: --backup.dir without its value",
        args: &["backup", "--backup.dir"],
        code: 2,
        says: Json("a value is required for '--backup.dir <DIR>' but none was supplied"),
    },
    CliCase {
        name: "integrity-check: unknown mode",
        args: &["integrity-check", "--mode=sideways", "good.db"],
        code: 2,
        says: Json("invalid integrity check mode \"sideways\"; expected quick or full"),
    },
    CliCase {
        name: "restore: path traversal in the backup name",
        args: &["restore", "good.db", "../good.db"],
        code: 2,
        says: Json("invalid backup name \"../good.db\": a file name from the backup list is expected"),
    },
    CliCase {
        name: "restore: unknown backup",
        args: &["restore", "--config.file=ok.yml", "app", "app-2001-01-01_00-00-00.db"],
        code: 2,
        says: Json("no backup named \"app-2001-01-01_00-00-00.db\" for this database"),
    },
    CliCase {
        name: "checkpoint: database not in the config",
        args: &["checkpoint", "--config.file=ok.yml", "ghost"],
        code: 2,
        says: Json("no database \"ghost\" in ok.yml"),
    },
    CliCase {
        name: "backups: database not in the config",
        args: &["backups", "--config.file=ok.yml", "ghost"],
        code: 2,
        says: Json("no database \"ghost\" in ok.yml"),
    },
    CliCase {
        name: "backup: invalid config file",
        args: &["backup", "--config.file=bad.yml", "app"],
        code: 2,
        says: Json("bad.yml: databases[0].path: expected a file path, got an empty string"),
    },
    CliCase {
        name: "optimize: missing file",
        args: &["optimize", "nosuch.db"],
        code: 2,
        says: Json("file does not exist"),
    },
    CliCase {
        name: "vacuum: a directory",
        args: &["vacuum", "adir"],
        code: 1,
        says: Json("cannot open database: path is a directory, not a database file"),
    },
    CliCase {
        name: "checkpoint: zero-length file",
        args: &["checkpoint", "empty.db"],
        code: 1,
        says: Json("cannot open database: file is empty (0 bytes), not a SQLite database"),
    },
    CliCase {
        name: "backup: not a database",
        args: &["backup", "--backup.dir=backups", "text.db"],
        code: 1,
        says: Json("refused: the database fails reading: file is not a database"),
    },
    CliCase {
        name: "backup: backup dir under a plain file",
        args: &["backup", "--backup.dir=afile/sub", "good.db"],
        code: 1,
        says: Json("create backup directory afile/sub: Not a directory (os error 20)"),
    },
    // The result names the cause, as for a missing or empty file ("integrity check could not
    // run: ...").
    CliCase {
        name: "integrity-check: not a database",
        args: &["integrity-check", "text.db"],
        code: 1,
        says: Json("file is not a SQLite database"),
    },
];

fn cli_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    good_db(&d.join("good.db"));
    build_db(
        &d.join("wal.db"),
        "PRAGMA journal_mode=WAL; CREATE TABLE t(a); INSERT INTO t VALUES (1);",
    );
    std::fs::write(d.join("text.db"), "not a database\n".repeat(300)).unwrap();
    std::fs::write(d.join("empty.db"), "").unwrap();
    std::fs::create_dir(d.join("adir")).unwrap();
    std::fs::write(d.join("afile"), "x").unwrap();
    std::fs::write(
        d.join("ok.yml"),
        "defaults:\n  backup:\n    dir: backups\ndatabases:\n  - name: app\n    path: good.db\n",
    )
    .unwrap();
    std::fs::write(
        d.join("bad.yml"),
        "databases:\n  - name: app\n    path: \"\"\n",
    )
    .unwrap();
    dir
}

fn run_cli_case(dir: &Path, c: &CliCase) -> Result<(), String> {
    let out = run_in(dir, &strings(c.args), Duration::from_secs(20));
    let mut problems = Vec::new();
    if out.code != Some(c.code) {
        problems.push(format!("exit {:?}, want {}", out.code, c.code));
    }
    match c.says {
        Stderr(f) if !out.stderr.contains(f) => problems.push(format!("stderr lacks {f:?}")),
        Stdout(f) if !out.stdout.contains(f) => problems.push(format!("stdout lacks {f:?}")),
        Json(f) => {
            match serde_json::from_str::<serde_json::Value>(&out.stdout) {
                Ok(v) => {
                    let error = v["error"].as_str().unwrap_or_default();
                    if !error.contains(f) {
                        problems.push(format!("the JSON result's error {error:?} lacks {f:?}"));
                    }
                }
                Err(e) => problems.push(format!("stdout is not a JSON result ({e})")),
            }
            if !out.stderr.contains(f) {
                problems.push(format!("stderr lacks {f:?}"));
            }
        }
        _ => {}
    }
    if out.stderr.contains("msg=listening") {
        problems.push("it started listening".into());
    }
    if out.stderr.contains("panicked") {
        problems.push("it panicked".into());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}\n{}", problems.join("; "), out.show()))
    }
}

#[test]
fn bad_command_lines_exit_with_their_code_and_say_why() {
    let dir = cli_dir();
    let mut failures = Vec::new();
    for c in CLI {
        if let Err(e) = run_cli_case(dir.path(), c) {
            failures.push(format!("[cli] {} {:?}: {e}", c.name, c.args));
        }
    }
    report("command-line", CLI.len(), &failures);
}

// ---------------------------------------------------------------------------------------------
// (4) HTTP requests
// ---------------------------------------------------------------------------------------------

/// The bearer token [`Setup`] writes.
const TOKEN: &str = "s3cret-token-for-tests";

/// How a case talks to the exporter.
enum Req {
    /// A complete request; `{auth}` becomes `Authorization: Bearer <token>\r\n` and `{len}`
    /// the length of what follows the head.
    Text(&'static str),
    Bytes(&'static [u8]),
    Made(fn() -> Vec<u8>),
    /// Sent, then nothing more (the connection stays open).
    Stall(&'static str),
    /// Sent one byte every 100 ms.
    Trickle(&'static str),
    /// A complete keep-alive request, its response read, then this, cut short, on the same
    /// connection.
    KeepAliveThenStall(&'static str),
}

enum Body {
    /// No body at all.
    Empty,
    /// Exactly this body.
    Exact(&'static str),
    /// A body with this in it.
    Has(&'static str),
}

enum Want {
    Status(u16, Body),
    /// The server closes the connection between these many milliseconds after the stalled
    /// request's first byte.
    Closed(u64, u64),
}

struct HttpCase {
    name: &'static str,
    req: Req,
    want: Want,
}

const NOT_FOUND: Want = Want::Status(404, Body::Exact("404 page not found\n"));
const METHOD: Want = Want::Status(405, Body::Empty);
const BAD: Want = Want::Status(400, Body::Empty);

const fn http(name: &'static str, req: &'static str, want: Want) -> HttpCase {
    HttpCase {
        name,
        req: Req::Text(req),
        want,
    }
}

const fn status(code: u16, has: &'static str) -> Want {
    Want::Status(code, Body::Has(has))
}

fn long_target() -> Vec<u8> {
    format!(
        "GET /{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "a".repeat(40_000)
    )
    .into_bytes()
}

fn many_headers() -> Vec<u8> {
    let headers: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
    format!("GET /metrics HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n").into_bytes()
}

fn header_over_32k() -> Vec<u8> {
    format!(
        "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Padding: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(33 * 1024)
    )
    .into_bytes()
}

fn body_70000() -> Vec<u8> {
    let body = format!(r#"{{"label":"{}"}}"#, "x".repeat(70_000 - 12));
    format!(
        "POST /api/v1/databases/app/backup HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn chunked_over_64k() -> Vec<u8> {
    format!(
        "POST /api/v1/databases/app/backup HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n10000\r\n{}\r\n10\r\n{}\r\n0\r\n\r\n",
        "a".repeat(0x10000),
        "a".repeat(0x10)
    )
    .into_bytes()
}

fn deeply_nested_json() -> Vec<u8> {
    let body = format!("{}{}", "[".repeat(30_000), "]".repeat(30_000));
    format!(
        "POST /api/v1/databases/app/checkpoint HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

const HTTP: &[HttpCase] = &[
    // Unknown paths: a plain 404.
    http("unknown path", "GET /robots.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", NOT_FOUND),
    http("dotfile", "GET /.env HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", NOT_FOUND),
    http("metrics path in upper case", "GET /METRICS HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", NOT_FOUND),
    http("doubled slash", "GET //metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", NOT_FOUND),
    http("dot-dot segment", "GET /metrics/../metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", NOT_FOUND),
    http("encoded traversal", "GET /..%2f..%2fetc%2fpasswd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", NOT_FOUND),
    http("invalid percent-encoding", "GET /%zz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", NOT_FOUND),
    // Methods.
    http("DELETE /metrics", "DELETE /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", METHOD),
    http("POST /metrics", "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", METHOD),
    http("PUT /-/healthy", "PUT /-/healthy HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", METHOD),
    http("GET /-/reload", "GET /-/reload HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", METHOD),
    http("extension method", "FROB /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", METHOD),
    http("TRACE /", "TRACE / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", METHOD),
    http("GET on an action route", "GET /api/v1/databases/app/backup HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n", METHOD),
    http("DELETE on the database list", "DELETE /api/v1/databases HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n", METHOD),
    // Malformed requests: hyper's plain 400.
    http("request line without a target", "GET\r\n\r\n", BAD),
    http("request line of garbage", "GARBAGE\r\n\r\n", BAD),
    http("request line without a version", "GET /metrics\r\n\r\n", BAD),
    http("unknown HTTP version", "GET /metrics HTTP/9.9\r\nHost: x\r\n\r\n", BAD),
    http("header line without a colon", "GET /metrics HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", BAD),
    HttpCase {
        name: "NUL in a header value",
        req: Req::Bytes(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\nConnection: close\r\n\r\n"),
        want: BAD,
    },
    HttpCase {
        name: "non-ASCII byte in the target",
        req: Req::Bytes(b"GET /m\xffetrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        want: BAD,
    },
    http("Content-Length not a number", "POST /-/reload HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", BAD),
    http("two different Content-Lengths", "POST /-/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", BAD),
    http("negative Content-Length", "POST /api/v1/databases/app/backup HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: -1\r\n\r\n", BAD),
    http("Content-Length beyond 64 bits", "POST /api/v1/databases/app/backup HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 18446744073709551616\r\n\r\n", BAD),
    http("final transfer coding not chunked", "POST /api/v1/databases/app/backup HTTP/1.1\r\nHost: x\r\n{auth}Transfer-Encoding: gzip\r\n\r\n", BAD),
    http(
        "bad chunk size",
        "POST /api/v1/databases/app/backup HTTP/1.1\r\nHost: x\r\n{auth}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n",
        status(400, "{\"error\":\"cannot read request body: "),
    ),
    // Oversized heads: 431.
    HttpCase { name: "40 KB request target", req: Req::Made(long_target), want: Want::Status(431, Body::Empty) },
    HttpCase { name: "150 header lines", req: Req::Made(many_headers), want: Want::Status(431, Body::Empty) },
    HttpCase { name: "33 KiB header", req: Req::Made(header_over_32k), want: Want::Status(431, Body::Empty) },
    // Bodies too large: the API's 413.
    HttpCase {
        name: "70000-byte body sent",
        req: Req::Made(body_70000),
        want: status(413, "{\"error\":\"request body larger than 65536 bytes\"}"),
    },
    http(
        "2 MiB body declared, not sent",
        "POST /api/v1/databases/app/backup HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: 2097152\r\nConnection: close\r\n\r\n",
        status(413, "{\"error\":\"request body larger than 65536 bytes\"}"),
    ),
    HttpCase {
        name: "chunked body past 64 KiB",
        req: Req::Made(chunked_over_64k),
        want: status(413, "{\"error\":\"request body larger than 65536 bytes\"}"),
    },
    // Bad JSON bodies to the control API: 400 saying what is wrong.
    http(
        "truncated JSON",
        "POST /api/v1/databases/app/checkpoint HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n{\"mod",
        status(400, "invalid request body: EOF while parsing a string at line 1 column 5"),
    ),
    http(
        "JSON array",
        "POST /api/v1/databases/app/checkpoint HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n[]",
        status(400, "invalid request body: invalid length 0"),
    ),
    http(
        "JSON null",
        "POST /api/v1/databases/app/checkpoint HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\nnull",
        status(400, "invalid request body: invalid type: null"),
    ),
    http(
        "bare JSON string",
        "POST /api/v1/databases/app/checkpoint HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n\"passive\"",
        status(400, "invalid request body: invalid type: string \\\"passive\\\""),
    ),
    http(
        "mode is a number",
        "POST /api/v1/databases/app/checkpoint HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n{\"mode\":123}",
        status(400, "invalid type: integer `123`, expected a string"),
    ),
    http(
        "unknown field",
        "POST /api/v1/databases/app/checkpoint HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n{\"bogus\":1}",
        status(400, "unknown field `bogus`, expected `mode`"),
    ),
    http(
        "duplicate field",
        "POST /api/v1/databases/app/checkpoint HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n{\"mode\":\"passive\",\"mode\":\"full\"}",
        status(400, "duplicate field `mode`"),
    ),
    http(
        "trailing characters",
        "POST /api/v1/databases/app/checkpoint HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n{\"mode\":\"passive\"} trailing",
        status(400, "invalid request body: trailing characters at line 1 column 20"),
    ),
    HttpCase {
        name: "body not UTF-8",
        req: Req::Bytes(b"POST /api/v1/databases/app/vacuum HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret-token-for-tests\r\nContent-Type: application/json\r\nContent-Length: 3\r\nConnection: close\r\n\r\n\xff\xfe{"),
        want: status(400, "invalid request body: expected value at line 1 column 1"),
    },
    HttpCase {
        name: "JSON nested 30000 deep",
        req: Req::Made(deeply_nested_json),
        want: status(400, "invalid request body: "),
    },
    http(
        "unknown integrity mode",
        "POST /api/v1/databases/app/integrity-check HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n{\"mode\":\"sloppy\"}",
        status(400, "unknown variant `sloppy`, expected `quick` or `full`"),
    ),
    http(
        "dry_run is a string",
        "POST /api/v1/databases/app/recover HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n{\"dry_run\":\"no\"}",
        status(400, "invalid type: string \\\"no\\\", expected a boolean"),
    ),
    http(
        "field for an action without parameters",
        "POST /api/v1/databases/app/vacuum HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n{\"x\":1}",
        status(400, "unknown field `x`, there are no fields"),
    ),
    http(
        "backup label with a slash",
        "POST /api/v1/databases/app/backup HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n{\"label\":\"a/b\"}",
        status(400, "invalid label \\\"a/b\\\": expected 1 to 64 characters from A-Z a-z 0-9 _ -"),
    ),
    http(
        "restore without a backup",
        "POST /api/v1/databases/app/restore HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n{}",
        status(400, "expected {\\\"backup\\\": \\\"<file name from the backup list>\\\"}"),
    ),
    http(
        "async is not a boolean",
        "POST /api/v1/databases/app/checkpoint?async=maybe HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n",
        status(400, "invalid query string: "),
    ),
    http(
        "unknown action",
        "POST /api/v1/databases/app/explode HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n",
        status(404, "unknown action \\\"explode\\\""),
    ),
    // Bearer tokens.
    http(
        "no Authorization",
        "GET /api/v1/databases HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        status(401, "missing bearer token (Authorization: Bearer <token>)"),
    ),
    http(
        "Basic instead of Bearer",
        "GET /api/v1/databases HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YTpi\r\nConnection: close\r\n\r\n",
        status(401, "missing bearer token"),
    ),
    http(
        "Bearer without a token",
        "GET /api/v1/databases HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer\r\nConnection: close\r\n\r\n",
        status(401, "missing bearer token"),
    ),
    http(
        "wrong token",
        "GET /api/v1/databases HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\nConnection: close\r\n\r\n",
        status(401, "{\"error\":\"invalid bearer token\"}"),
    ),
    http(
        "prefix of the token",
        "GET /api/v1/databases HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret-token-for-test\r\nConnection: close\r\n\r\n",
        status(401, "invalid bearer token"),
    ),
    http(
        "token with a suffix",
        "GET /api/v1/databases HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret-token-for-tests2\r\nConnection: close\r\n\r\n",
        status(401, "invalid bearer token"),
    ),
    http(
        "comment line of the token file",
        "GET /api/v1/databases HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer # a comment\r\nConnection: close\r\n\r\n",
        status(401, "invalid bearer token"),
    ),
    HttpCase {
        name: "non-ASCII token",
        req: Req::Bytes(b"GET /api/v1/databases HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cr\xe9t\r\nConnection: close\r\n\r\n"),
        want: status(401, "missing bearer token"),
    },
    http(
        "action without a token is refused before its body is read",
        "POST /api/v1/databases/app/checkpoint HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{",
        status(401, "missing bearer token"),
    ),
    // The authentication scheme is case-insensitive (RFC 9110, 11.1).
    http(
        "scheme in upper case with the right token",
        "GET /api/v1/databases HTTP/1.1\r\nHost: x\r\nAuthorization: BEARER s3cret-token-for-tests\r\nConnection: close\r\n\r\n",
        status(200, "\"databases\":[{"),
    ),
    // Actions on a monitored file that is not a database.
    http(
        "backup of a file that is not a database",
        "POST /api/v1/databases/notdb/backup HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n",
        status(422, "refused: the database fails reading: file is not a database"),
    ),
    http(
        "checkpoint of a file that is not a database",
        "POST /api/v1/databases/notdb/checkpoint HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n",
        status(422, "cannot open database: file is not a SQLite database"),
    ),
    // Refused naming the cause: 422, as for a backup or a checkpoint of it.
    http(
        "integrity check of a file that is not a database",
        "POST /api/v1/databases/notdb/integrity-check HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n",
        status(422, "file is not a SQLite database"),
    ),
    // Path traversal in database names and backup names.
    http(
        "encoded traversal as the database name",
        "GET /api/v1/databases/..%2F..%2Fetc%2Fpasswd/health HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n",
        status(404, "{\"error\":\"unknown database \\\"../../etc/passwd\\\"\"}"),
    ),
    http(
        "dot-dot segments in the API path",
        "GET /api/v1/databases/../../etc/passwd/health HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n",
        status(404, "no control API route GET /api/v1/databases/../../etc/passwd/health"),
    ),
    http(
        "encoded dot-dot as the database name",
        "POST /api/v1/databases/%2e%2e/backup HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n",
        status(404, "unknown database \\\"..\\\""),
    ),
    http(
        "NUL in the database name",
        "POST /api/v1/databases/app%00/backup HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n",
        status(404, "unknown database \\\"app\\\\0\\\""),
    ),
    http(
        "traversal to the database file in the backups list",
        "GET /api/v1/databases/..%2Fapp.db/backups HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n",
        status(404, "unknown database \\\"../app.db\\\""),
    ),
    http(
        "traversal in the backup name",
        "POST /api/v1/databases/app/restore HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n{\"backup\":\"../../etc/passwd\"}",
        status(400, "invalid backup name \\\"../../etc/passwd\\\": a file name from the backup list is expected"),
    ),
    http(
        "NUL in the backup name",
        "POST /api/v1/databases/app/restore HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n{\"backup\":\"app-2001-01-01_00-00-00.db\\u0000\"}",
        status(400, "invalid backup name"),
    ),
    http(
        "traversal as a job id",
        "GET /api/v1/jobs/..%2F..%2Fetc HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n",
        status(404, "unknown job \\\"../../etc\\\""),
    ),
    // Slow and half-sent requests: closed after --web.header-read-timeout=1s.
    HttpCase { name: "silent connection", req: Req::Stall(""), want: Want::Closed(800, 3000) },
    HttpCase {
        name: "fewer bytes than HTTP/2 detection reads",
        req: Req::Stall("GET / HTTP"),
        want: Want::Closed(800, 3000),
    },
    HttpCase {
        name: "head cut short",
        req: Req::Stall("GET /metrics HTTP/1.1\r\nHost: x\r\n"),
        want: Want::Closed(800, 3000),
    },
    HttpCase {
        name: "head trickled a byte every 100 ms",
        req: Req::Trickle("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n"),
        want: Want::Closed(800, 3000),
    },
    HttpCase {
        name: "second keep-alive request cut short",
        req: Req::KeepAliveThenStall("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Cut"),
        want: Want::Closed(800, 3000),
    },
    HttpCase {
        name: "garbage after the HTTP/2 preface",
        req: Req::Stall("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\ngarbage-garbage-garbage-garbage"),
        want: Want::Closed(0, 2000),
    },
    // An authenticated client that declares a body and stops sending it gets 408 within the
    // header-read timeout, and its connection (one of --web.max-connections) is closed.
    HttpCase {
        name: "body cut short",
        req: Req::Stall("POST /api/v1/databases/app/checkpoint HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"mode\""),
        want: Want::Closed(0, 4000),
    },
];

/// What came back on one connection.
struct Reply {
    status: u16,
    head: String,
    body: Vec<u8>,
}

/// Fills a request template (see [`Req::Text`]).
fn fill(template: &str) -> Vec<u8> {
    let text = template.replace("{auth}", &format!("Authorization: Bearer {TOKEN}\r\n"));
    match text.split_once("\r\n\r\n") {
        Some((head, body)) if head.contains("{len}") => format!(
            "{}\r\n\r\n{body}",
            head.replace("{len}", &body.len().to_string())
        )
        .into_bytes(),
        _ => text.into_bytes(),
    }
}

/// Sends `request` and reads until the server closes; what it answered. A server that answers
/// and closes before reading all of a large request may reset the connection: the bytes read
/// by then are the answer.
fn exchange(addr: &str, request: &[u8]) -> Result<Reply, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(format!(
                    "no end of response within 15 s; got {:?}",
                    String::from_utf8_lossy(&out)
                ))
            }
            Err(_) if !out.is_empty() => break,
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    parse_reply(&out)
}

fn parse_reply(out: &[u8]) -> Result<Reply, String> {
    let end = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no response head in {:?}", String::from_utf8_lossy(out)))?;
    let head = String::from_utf8_lossy(&out[..end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    Ok(Reply {
        status,
        head,
        body: out[end + 4..].to_vec(),
    })
}

/// How long after `start` the server closed `s` (EOF or reset), waiting until `limit` after
/// `start`; `None` if still open then. Response bytes, if any, are skipped.
fn closed_after(s: &mut TcpStream, start: Instant, limit: Duration) -> Option<Duration> {
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.checked_sub(start.elapsed())?;
        s.set_read_timeout(Some(left + Duration::from_millis(1)))
            .unwrap();
        match s.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return None
            }
            Err(_) => return Some(start.elapsed()),
        }
    }
}

/// Runs a case whose answer is a closed connection.
fn run_closing_case(addr: &str, c: &HttpCase, min: u64, max: u64) -> Result<(), String> {
    let limit = Duration::from_millis(max + 2000);
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    let closed = match &c.req {
        Req::Stall(t) => {
            let start = Instant::now();
            s.write_all(&fill(t)).map_err(|e| format!("write: {e}"))?;
            closed_after(&mut s, start, limit)
        }
        Req::Trickle(t) => {
            let start = Instant::now();
            let mut refused = None;
            for b in fill(t) {
                if s.write_all(&[b]).is_err() {
                    refused = Some(start.elapsed());
                    break;
                }
                if closed_after(&mut s, start, start.elapsed() + Duration::from_millis(100))
                    .is_some()
                {
                    refused = Some(start.elapsed());
                    break;
                }
            }
            match refused {
                Some(t) => Some(t),
                None => return Err("the whole trickled head was accepted".into()),
            }
        }
        Req::KeepAliveThenStall(t) => {
            s.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
                .map_err(|e| format!("write: {e}"))?;
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            while !got.ends_with(b"Healthy\n") {
                match s.read(&mut buf) {
                    Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
                    other => {
                        return Err(format!(
                            "first keep-alive request not answered: {other:?} after {:?}",
                            String::from_utf8_lossy(&got)
                        ))
                    }
                }
            }
            // Idle between requests for less than the idle timeout, then the cut request.
            std::thread::sleep(Duration::from_millis(500));
            let start = Instant::now();
            s.write_all(&fill(t)).map_err(|e| format!("write: {e}"))?;
            closed_after(&mut s, start, limit)
        }
        _ => unreachable!("not a closing case"),
    };
    match closed {
        Some(t) if t >= Duration::from_millis(min) && t <= Duration::from_millis(max) => Ok(()),
        Some(t) => Err(format!("closed after {t:?}, want {min}..{max} ms")),
        None => Err(format!(
            "still open after {limit:?}, want closed within {max} ms"
        )),
    }
}

fn run_http_case(addr: &str, c: &HttpCase) -> Result<(), String> {
    let (code, body) = match &c.want {
        Want::Closed(min, max) => return run_closing_case(addr, c, *min, *max),
        Want::Status(code, body) => (*code, body),
    };
    let request = match &c.req {
        Req::Text(t) => fill(t),
        Req::Bytes(b) => b.to_vec(),
        Req::Made(f) => f(),
        _ => unreachable!("a closing request with a status"),
    };
    let r = exchange(addr, &request)?;
    let text = String::from_utf8_lossy(&r.body);
    let mut problems = Vec::new();
    if r.status != code {
        problems.push(format!("status {}, want {code}", r.status));
    }
    match body {
        Body::Empty if !r.body.is_empty() => problems.push("a body where none is expected".into()),
        Body::Exact(b) if text != *b => problems.push(format!("body is not {b:?}")),
        Body::Has(b) if !text.contains(b) => problems.push(format!("body lacks {b:?}")),
        _ => {}
    }
    if problems.is_empty() {
        Ok(())
    } else {
        let shown: String = text.chars().take(400).collect();
        Err(format!(
            "{}\n  head: {}\n  body: {shown}",
            problems.join("; "),
            indent(&r.head)
        ))
    }
}

#[test]
fn bad_http_requests_get_their_status_and_the_exporter_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let db = app_db(dir.path());
    let notdb = dir.path().join("notes.db");
    std::fs::write(&notdb, "not a database, just notes\n".repeat(200)).unwrap();
    let s = Setup::new(dir, &[("app", &db), ("notdb", &notdb)], "", true);
    assert_eq!(s.token, TOKEN, "the token Setup writes");
    let e = s.start(&["--web.header-read-timeout=1s", "--web.idle-timeout=2s"]);

    let (closing, at_once): (Vec<&HttpCase>, Vec<&HttpCase>) = HTTP
        .iter()
        .partition(|c| matches!(c.want, Want::Closed(..)));
    let addr = e.addr.as_str();
    let mut failures: Vec<String> = std::thread::scope(|scope| {
        // The slow cases wait for timeouts: all at once, while the others run.
        let slow: Vec<_> = closing
            .iter()
            .map(|c| scope.spawn(move || run_http_case(addr, c).err().map(|err| (c.name, err))))
            .collect();
        let mut failures: Vec<String> = at_once
            .iter()
            .filter_map(|c| {
                run_http_case(addr, c)
                    .err()
                    .map(|err| format!("[http] {}: {err}", c.name))
            })
            .collect();
        for h in slow {
            if let Some((name, err)) = h.join().unwrap() {
                failures.push(format!("[http] {name}: {err}"));
            }
        }
        failures
    });

    // Still serving, and still reporting the good database.
    match exchange(
        &e.addr,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ) {
        Ok(r) if r.status == 200 => {
            let body = String::from_utf8_lossy(&r.body);
            if value(&body, "sqlite_up", &[("database", "app")]) != Some(1.0) {
                failures.push(format!(
                    "[http] afterwards: sqlite_up{{database=\"app\"}} is not 1:\n{body}"
                ));
            }
        }
        Ok(r) => failures.push(format!(
            "[http] afterwards: GET /metrics answered {}",
            r.status
        )),
        Err(err) => failures.push(format!("[http] afterwards: GET /metrics: {err}")),
    }
    assert_eq!(e.get("/-/healthy"), (200, "Healthy\n".to_string()));
    let log = e.log_text();
    assert!(!log.contains("panicked"), "the exporter panicked:\n{log}");
    report("HTTP", HTTP.len(), &failures);
}

// ---------------------------------------------------------------------------------------------
// (5) Web configs
// ---------------------------------------------------------------------------------------------

/// A file a web-config case writes beside `web.yml`.
#[derive(Clone, Copy)]
enum Material {
    /// The server certificate (PEM).
    Cert,
    /// Its private key (PEM).
    Key,
    /// The private key of another certificate.
    OtherKey,
    /// The certificate with its base64 damaged.
    DamagedCert,
    Text(&'static str),
    Directory,
}

struct WebCase {
    name: &'static str,
    /// `None`: no web config file at all. Not written over a file of the same name in `files`.
    yaml: Option<&'static str>,
    files: &'static [(&'static str, Material)],
    /// Follows `web.yml: ` in the fatal log line. `{dir}` is the case's directory.
    fragment: &'static str,
}

const CERT_AND_KEY: &[(&str, Material)] =
    &[("tls.crt", Material::Cert), ("tls.key", Material::Key)];

const WEB: &[WebCase] = &[
    WebCase {
        name: "YAML syntax error",
        yaml: Some("tls_server_config: ]\n"),
        files: &[],
        fragment: "tls_server_config: did not find expected node content",
    },
    WebCase {
        name: "top level is a list",
        yaml: Some("- a\n"),
        files: &[],
        fragment: ".: invalid type: sequence, expected a mapping",
    },
    WebCase {
        name: "unknown top-level key",
        yaml: Some("tls_config:\n  cert_file: tls.crt\n"),
        files: &[],
        fragment: "tls_config: unknown field `tls_config`",
    },
    WebCase {
        name: "unknown TLS key",
        yaml: Some("tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n  certfile: x\n"),
        files: CERT_AND_KEY,
        fragment: "tls_server_config.certfile: unknown field `certfile`",
    },
    WebCase {
        name: "certificate without key",
        yaml: Some("tls_server_config:\n  cert_file: tls.crt\n"),
        files: CERT_AND_KEY,
        fragment: "tls_server_config.key_file: missing key_file",
    },
    WebCase {
        name: "key without certificate",
        yaml: Some("tls_server_config:\n  key_file: tls.key\n"),
        files: CERT_AND_KEY,
        fragment: "tls_server_config.cert_file: missing cert_file",
    },
    WebCase {
        name: "certificate file missing",
        yaml: Some("tls_server_config:\n  cert_file: missing.crt\n  key_file: tls.key\n"),
        files: CERT_AND_KEY,
        fragment: "tls_server_config.cert_file: {dir}/missing.crt: ",
    },
    WebCase {
        name: "certificate file empty",
        yaml: Some("tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n"),
        files: &[("tls.crt", Material::Text("")), ("tls.key", Material::Key)],
        fragment: "tls_server_config.cert_file: {dir}/tls.crt: no PEM certificate found",
    },
    WebCase {
        name: "certificate file of plain text",
        yaml: Some("tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n"),
        files: &[("tls.crt", Material::Text("this is not a certificate\n")), ("tls.key", Material::Key)],
        fragment: "tls_server_config.cert_file: {dir}/tls.crt: no PEM certificate found",
    },
    WebCase {
        name: "certificate file holds a key",
        yaml: Some("tls_server_config:\n  cert_file: tls.key\n  key_file: tls.key\n"),
        files: CERT_AND_KEY,
        fragment: "tls_server_config.cert_file: {dir}/tls.key: no PEM certificate found",
    },
    WebCase {
        name: "certificate with damaged base64",
        yaml: Some("tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n"),
        files: &[("tls.crt", Material::DamagedCert), ("tls.key", Material::Key)],
        fragment: "tls_server_config.cert_file: {dir}/tls.crt: ",
    },
    WebCase {
        name: "certificate path is a directory",
        yaml: Some("tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n"),
        files: &[("tls.crt", Material::Directory), ("tls.key", Material::Key)],
        fragment: "tls_server_config.cert_file: {dir}/tls.crt: ",
    },
    WebCase {
        name: "key file holds a certificate",
        yaml: Some("tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.crt\n"),
        files: CERT_AND_KEY,
        fragment: "tls_server_config.key_file: {dir}/tls.crt: no PEM private key found",
    },
    WebCase {
        name: "key file missing",
        yaml: Some("tls_server_config:\n  cert_file: tls.crt\n  key_file: missing.key\n"),
        files: CERT_AND_KEY,
        fragment: "tls_server_config.key_file: {dir}/missing.key: ",
    },
    WebCase {
        name: "key of another certificate",
        yaml: Some("tls_server_config:\n  cert_file: tls.crt\n  key_file: other.key\n"),
        files: &[("tls.crt", Material::Cert), ("other.key", Material::OtherKey)],
        fragment: "tls_server_config.key_file: does not match cert_file",
    },
    WebCase {
        name: "TLS 1.1",
        yaml: Some("tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n  min_version: TLS11\n"),
        files: CERT_AND_KEY,
        fragment: "tls_server_config.min_version: unsupported TLS version \"TLS11\"; expected TLS12 or TLS13",
    },
    WebCase {
        name: "max version below min version",
        yaml: Some("tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n  min_version: TLS13\n  max_version: TLS12\n"),
        files: CERT_AND_KEY,
        fragment: "tls_server_config.max_version: lower than min_version",
    },
    WebCase {
        name: "unknown client auth type",
        yaml: Some("tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n  client_auth_type: Sometimes\n"),
        files: CERT_AND_KEY,
        fragment: "tls_server_config.client_auth_type: unknown client_auth_type \"Sometimes\"",
    },
    WebCase {
        name: "client certificates without verification",
        yaml: Some("tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n  client_auth_type: RequireAnyClientCert\n"),
        files: CERT_AND_KEY,
        fragment: "tls_server_config.client_auth_type: RequireAnyClientCert (client certificates taken without verification) is not supported",
    },
    WebCase {
        name: "verified client certificates without a CA",
        yaml: Some("tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n  client_auth_type: RequireAndVerifyClientCert\n"),
        files: CERT_AND_KEY,
        fragment: "tls_server_config.client_ca_file: client_auth_type RequireAndVerifyClientCert needs client_ca_file",
    },
    WebCase {
        name: "client CA of plain text",
        yaml: Some("tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.crt\n"),
        files: &[("tls.crt", Material::Cert), ("tls.key", Material::Key), ("ca.crt", Material::Text("no CA here\n"))],
        fragment: "tls_server_config.client_ca_file: {dir}/ca.crt: no PEM certificate found",
    },
    WebCase {
        name: "bcrypt hash with an unknown prefix",
        yaml: Some("basic_auth_users:\n  admin: $2x$10$J7dDIoak1UgEyBPEHi9XFe7kuQb2uHPUsoP.pK5lYkIkd8rR/.Inu\n"),
        files: &[],
        fragment: "basic_auth_users.admin: expected a bcrypt hash ($2a$, $2b$ or $2y$, 60 characters)",
    },
    WebCase {
        name: "user name with a colon",
        yaml: Some("basic_auth_users:\n  \"a:b\": $2b$10$J7dDIoak1UgEyBPEHi9XFe7kuQb2uHPUsoP.pK5lYkIkd8rR/.Inu\n"),
        files: &[],
        fragment: "basic_auth_users.a:b: a user name may not contain `:`",
    },
    WebCase {
        name: "users as a list",
        yaml: Some("basic_auth_users:\n  - admin\n"),
        files: &[],
        fragment: "basic_auth_users: invalid type: sequence, expected a map",
    },
    WebCase {
        name: "header name with a space",
        yaml: Some("http_server_config:\n  headers:\n    Bad Header: x\n"),
        files: &[],
        fragment: "http_server_config.headers.Bad Header: invalid header name",
    },
    WebCase {
        name: "header value with a newline",
        yaml: Some("http_server_config:\n  headers:\n    X-Injected: \"a\\nSet-Cookie: b\"\n"),
        files: &[],
        fragment: "http_server_config.headers.X-Injected: invalid header value",
    },
    WebCase {
        name: "http2 not a boolean",
        yaml: Some("http_server_config:\n  http2: maybe\n"),
        files: &[],
        fragment: "http_server_config.http2: invalid type: string \"maybe\", expected a boolean",
    },
    WebCase {
        name: "unknown http_server_config key",
        yaml: Some("http_server_config:\n  header:\n    X-A: b\n"),
        files: &[],
        fragment: "http_server_config.header: unknown field `header`",
    },
    WebCase {
        name: "web config file missing",
        yaml: None,
        files: &[],
        fragment: ".: cannot read web config file: No such file or directory (os error 2)",
    },
    WebCase {
        name: "web config file is a directory",
        yaml: Some(""),
        files: &[("web.yml", Material::Directory)],
        fragment: ".: cannot read web config file: Is a directory (os error 21)",
    },
];

/// Bad web configs written over the file of a running exporter: the previous configuration
/// keeps serving (its header still on every response) and the failure is logged.
const WEB_RELOADS: &[(&str, Option<&str>)] = &[
    ("reload: YAML syntax error", Some("http_server_config: [\n")),
    (
        "reload: unknown key",
        Some("http_server_config:\n  headerz: {}\n"),
    ),
    (
        "reload: bad header name",
        Some("http_server_config:\n  headers:\n    \"Bad Header\": x\n"),
    ),
    (
        "reload: missing certificate",
        Some("tls_server_config:\n  cert_file: nope.crt\n  key_file: nope.key\n"),
    ),
    ("reload: file removed", None),
];

/// TLS material generated once for every case.
struct Pems {
    cert: String,
    key: String,
    other_key: String,
}

impl Pems {
    fn new() -> Pems {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        Pems {
            cert: cert.pem(),
            key: key.serialize_pem(),
            other_key: rcgen::KeyPair::generate().unwrap().serialize_pem(),
        }
    }

    fn write(&self, path: &Path, m: Material) {
        let text = match m {
            Material::Cert => self.cert.clone(),
            Material::Key => self.key.clone(),
            Material::OtherKey => self.other_key.clone(),
            Material::DamagedCert => {
                let mut lines: Vec<String> = self.cert.lines().map(String::from).collect();
                lines[2] = "!!!! not base64 at all !!!!".into();
                lines.join("\n") + "\n"
            }
            Material::Text(t) => t.to_string(),
            Material::Directory => return std::fs::create_dir(path).unwrap(),
        };
        std::fs::write(path, text).unwrap();
    }
}

fn run_web_case(pems: &Pems, c: &WebCase) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = good_db(&d.join("app.db"));
    for (name, m) in c.files {
        pems.write(&d.join(name), *m);
    }
    let web = d.join("web.yml");
    if let Some(y) = c.yaml {
        if !web.exists() {
            std::fs::write(&web, y).unwrap();
        }
    }
    let out = run_in(
        d,
        &[
            "--web.listen-address=127.0.0.1:0".to_string(),
            format!("--web.config.file={}", web.display()),
            db.display().to_string(),
        ],
        Duration::from_secs(20),
    );
    let want = format!(
        "{}: {}",
        web.display(),
        c.fragment.replace("{dir}", &d.display().to_string())
    );
    let stderr = out.stderr_plain();
    let mut problems = Vec::new();
    if out.code != Some(1) {
        problems.push(format!("exit {:?}, want 1", out.code));
    }
    if !(stderr.contains("msg=fatal") && stderr.contains(&want)) {
        problems.push(format!("no fatal log line with {want:?}"));
    }
    if stderr.contains("msg=listening") {
        problems.push("it listened before failing".into());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}\n{}", problems.join("; "), out.show()))
    }
}

/// GET `/-/healthy`: status and the value of `x-bad-inputs`.
fn healthy_header(e: &Exporter) -> Result<(u16, Option<String>), String> {
    let r = exchange(
        &e.addr,
        b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )?;
    let header = r.head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("x-bad-inputs")
            .then(|| v.trim().to_string())
    });
    Ok((r.status, header))
}

fn run_web_reload(e: &Exporter, web: &Path, yaml: Option<&str>, nth: usize) -> Result<(), String> {
    match yaml {
        Some(y) => std::fs::write(web, y).unwrap(),
        None => std::fs::remove_file(web).unwrap(),
    }
    let (status, header) = healthy_header(e)?;
    let mut problems = Vec::new();
    if status != 200 {
        problems.push(format!("GET /-/healthy: status {status}, want 200"));
    }
    if header.as_deref() != Some("kept") {
        problems.push(format!(
            "x-bad-inputs is {header:?}: the previous web config is not serving"
        ));
    }
    // The log is read off the process's stderr by another thread: give the line a moment.
    let count = || {
        e.log_text()
            .matches("web configuration NOT reloaded")
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(3);
    while count() < nth && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let logged = count();
    if logged != nth {
        problems.push(format!(
            "{logged} \"web configuration NOT reloaded\" log lines, want {nth}"
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

#[test]
fn bad_web_configs_fail_start_naming_file_and_key_and_bad_rewrites_keep_the_old_one() {
    let pems = Pems::new();
    let mut failures = Vec::new();
    for c in WEB {
        if let Err(e) = run_web_case(&pems, c) {
            failures.push(format!("[web] {}: {e}", c.name));
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let db = good_db(&dir.path().join("app.db"));
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        "http_server_config:\n  headers:\n    X-Bad-Inputs: kept\n",
    )
    .unwrap();
    let e = Exporter::start(&[
        &format!("--web.config.file={}", web.display()),
        db.to_str().unwrap(),
    ]);
    assert_eq!(
        healthy_header(&e).unwrap(),
        (200, Some("kept".to_string())),
        "the good web config serves"
    );
    for (i, (name, yaml)) in WEB_RELOADS.iter().enumerate() {
        if let Err(err) = run_web_reload(&e, &web, *yaml, i + 1) {
            failures.push(format!("[web] {name}: {err}"));
        }
    }
    let (code, metrics) = e.get("/metrics");
    assert_eq!(code, 200, "{metrics}");
    assert_eq!(
        value(&metrics, "sqlite_up", &[("database", "app")]),
        Some(1.0)
    );
    report("web-config", WEB.len() + WEB_RELOADS.len(), &failures);
}
