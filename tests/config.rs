//! The bad-config table: each `tests/testdata/bad-*.yml` gives exactly the error text listed
//! here (file, key path, what was expected), and every bad file in the directory is listed.

use std::path::Path;

use sqlite_exporter::config::Config;

const CASES: &[(&str, &str)] = &[
    (
        "bad-auto-not-bool.yml",
        "tests/testdata/bad-auto-not-bool.yml: defaults.auto.checkpoint: invalid type: string \"sometimes\", expected a boolean (line 3, column 17)",
    ),
    (
        "bad-blank-glob.yml",
        "tests/testdata/bad-blank-glob.yml: databases[0].glob: expected a glob pattern, got only whitespace \"  \"",
    ),
    (
        "bad-control-without-token.yml",
        "tests/testdata/bad-control-without-token.yml: control.token_file: expected a token file when the control API is enabled",
    ),
    (
        "bad-databases-not-a-list.yml",
        "tests/testdata/bad-databases-not-a-list.yml: databases: invalid type: map, expected a sequence (line 2, column 3)",
    ),
    (
        "bad-duplicate-name.yml",
        "tests/testdata/bad-duplicate-name.yml: databases[1]: duplicate database name \"app\" (tests/testdata/b.db); already used by databases[0]",
    ),
    (
        "bad-duration.yml",
        "tests/testdata/bad-duration.yml: defaults.thresholds.slow_query: invalid duration \"fast\" (expected number at 0); expected a duration such as 250ms, 5m or 24h (line 3, column 17)",
    ),
    (
        "bad-empty-glob.yml",
        "tests/testdata/bad-empty-glob.yml: databases[0].glob: expected a glob pattern, got an empty string",
    ),
    (
        "bad-empty-query.yml",
        "tests/testdata/bad-empty-query.yml: defaults.probes.query: expected a SQL query, got an empty string",
    ),
    (
        "bad-glob-pattern.yml",
        "tests/testdata/bad-glob-pattern.yml: databases[0].glob: invalid glob pattern \"tenants/[.db\": Pattern syntax error near position 23: invalid range pattern",
    ),
    (
        "bad-glob-with-name.yml",
        "tests/testdata/bad-glob-with-name.yml: databases[0].name: a glob entry names each database after its file stem; remove `name`",
    ),
    (
        "bad-integrity-mode.yml",
        "tests/testdata/bad-integrity-mode.yml: defaults.integrity_check.mode: unknown variant `thorough`, expected `quick` or `full` (line 3, column 11)",
    ),
    (
        "bad-keep-zero.yml",
        "tests/testdata/bad-keep-zero.yml: defaults.backup.keep: expected at least 1 backup to keep",
    ),
    (
        "bad-label-empty.yml",
        "tests/testdata/bad-label-empty.yml: databases[0].labels.tier: expected a value (an empty label value is no label at all)",
    ),
    (
        "bad-label-name.yml",
        "tests/testdata/bad-label-name.yml: defaults.labels.tenant-id: expected a label name of letters, digits and `_`, not starting with a digit",
    ),
    (
        "bad-label-reserved.yml",
        "tests/testdata/bad-label-reserved.yml: databases[0].labels.database: `database` is a label the exporter or Prometheus sets itself; choose another name",
    ),
    (
        "bad-name.yml",
        "tests/testdata/bad-name.yml: databases[0].name: invalid database name \"my app\"; expected 1-128 characters from A-Z a-z 0-9 _ - .",
    ),
    (
        "bad-negative-size.yml",
        "tests/testdata/bad-negative-size.yml: defaults.thresholds.wal_checkpoint_bytes: invalid size -5; sizes cannot be negative (line 3, column 27)",
    ),
    (
        "bad-no-path.yml",
        "tests/testdata/bad-no-path.yml: databases[0]: expected `path` (one database) or `glob` (a pattern of database files)",
    ),
    (
        "bad-path-and-glob.yml",
        "tests/testdata/bad-path-and-glob.yml: databases[0]: expected either `path` or `glob`, not both",
    ),
    (
        "bad-ratio.yml",
        "tests/testdata/bad-ratio.yml: databases[0].thresholds.min_utilization: expected a ratio between 0 and 1, got 1.5",
    ),
    (
        "bad-size-unit.yml",
        "tests/testdata/bad-size-unit.yml: defaults.thresholds.wal_critical_bytes: invalid size unit \"parsecs\" in \"10 parsecs\"; expected B, kB, MB, GB, TB, KiB, MiB, GiB or TiB (line 3, column 25)",
    ),
    (
        "bad-unknown-database-key.yml",
        "tests/testdata/bad-unknown-database-key.yml: databases[0].pth: unknown field `pth`, expected one of `name`, `path`, `glob`, `thresholds`, `integrity_check`, `probes`, `backup`, `auto`, `migrations`, `dbstat`, `actions`, `metrics`, `labels`, `queries`, `schema` (line 3, column 5)",
    ),
    (
        "bad-unknown-top-key.yml",
        "tests/testdata/bad-unknown-top-key.yml: databasez: unknown field `databasez`, expected one of `defaults`, `databases`, `control` (line 1, column 1)",
    ),
    (
        "bad-write-probe.yml",
        "tests/testdata/bad-write-probe.yml: defaults.probes.write: unknown variant `sometimes`, expected one of `off`, `lock`, `table` (line 3, column 12)",
    ),
    (
        "bad-yaml-syntax.yml",
        "tests/testdata/bad-yaml-syntax.yml: databases: did not find expected node content (line 2, column 3)",
    ),
    (
        "bad-zero-interval.yml",
        "tests/testdata/bad-zero-interval.yml: defaults.integrity_check.interval: expected a duration greater than zero",
    ),
];

#[test]
fn every_bad_config_gives_its_exact_error() {
    let dir = Path::new("tests/testdata");
    let mut failures = Vec::new();
    for (file, want) in CASES {
        let path = dir.join(file);
        let got = match Config::load(&path) {
            Ok(_) => "accepted".to_string(),
            Err(e) => e.to_string(),
        };
        if got != *want {
            failures.push(format!("{file}:\n  want: {want}\n  got:  {got}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    let mut listed: Vec<&str> = CASES.iter().map(|(f, _)| *f).collect();
    listed.sort();
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("bad-") && n.ends_with(".yml"))
        .collect();
    on_disk.sort();
    assert_eq!(listed, on_disk, "every bad-*.yml must be in CASES");
    assert!(CASES.len() >= 12);
}

#[test]
fn config_check_flag_validates_and_exits() {
    let bin = env!("CARGO_BIN_EXE_sqlite_exporter");
    let out = std::process::Command::new(bin)
        .args([
            "--config.check",
            "--config.file",
            "tests/testdata/bad-ratio.yml",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("databases[0].thresholds.min_utilization")
    );
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("ok.yml");
    std::fs::write(&good, "databases:\n  - name: app\n    path: app.db\n").unwrap();
    let out = std::process::Command::new(bin)
        .args(["--config.check", "--config.file", good.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_annotated_example_is_valid_and_shows_the_defaults() {
    let c = Config::load(Path::new("examples/sqlite_exporter.yml")).unwrap();
    assert_eq!(
        *c.defaults,
        sqlite_exporter::config::Settings {
            backup: sqlite_exporter::config::Backup {
                dir: "/var/backups/sqlite".into(),
                ..Default::default()
            },
            ..Default::default()
        }
    );
    assert_eq!(c.entries.len(), 2);
}

/// `--config.check --config.file=FILE`: exit code, stdout and stderr.
fn config_check(file: &Path) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sqlite_exporter"))
        .args(["--config.check", "--config.file", file.to_str().unwrap()])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A config enabling the control API with `token_file: token`, in `dir`.
fn control_config(dir: &Path) -> std::path::PathBuf {
    let cfg = dir.join("sqlite_exporter.yml");
    std::fs::write(
        &cfg,
        "databases:\n  - path: app.db\ncontrol:\n  enabled: true\n  token_file: token\n",
    )
    .unwrap();
    cfg
}

#[test]
fn a_token_file_other_users_can_read_is_refused_naming_file_and_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let cfg = control_config(dir.path());
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    for (mode, shown) in [(0o644, "mode 0644"), (0o666, "mode 0666")] {
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(mode)).unwrap();
        let want = format!(
            "{}: control.token_file: token file {} has {shown}",
            cfg.display(),
            token.display()
        );
        let e = Config::load(&cfg).unwrap_err().to_string();
        assert!(e.starts_with(&want), "want {want}\ngot  {e}");
        let (code, _, stderr) = config_check(&cfg);
        assert_eq!(code, Some(1), "{stderr}");
        assert!(stderr.contains(&want), "{stderr}");
    }
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (code, stdout, stderr) = config_check(&cfg);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("OK (1 database entries)"), "{stdout}");
}

#[test]
fn config_check_reports_a_missing_empty_or_directory_token_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = control_config(dir.path());
    let token = dir.path().join("token");
    let (code, _, stderr) = config_check(&cfg);
    assert_eq!(code, Some(1), "missing: {stderr}");
    assert!(
        stderr.contains("control.token_file: cannot read token file") && stderr.contains("token"),
        "{stderr}"
    );
    std::fs::create_dir(&token).unwrap();
    let (code, _, stderr) = config_check(&cfg);
    assert_eq!(code, Some(1), "directory: {stderr}");
    assert!(stderr.contains("is a directory"), "{stderr}");
    std::fs::remove_dir(&token).unwrap();
    std::fs::write(&token, "# tokens go here\n\n").unwrap();
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let (code, _, stderr) = config_check(&cfg);
    assert_eq!(code, Some(1), "empty: {stderr}");
    assert!(stderr.contains("holds no token"), "{stderr}");
}

#[test]
fn the_exporter_does_not_start_with_a_token_file_others_can_read() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = control_config(dir.path());
    std::fs::write(dir.path().join("token"), "s3cret\n").unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sqlite_exporter"))
        .args([
            "--web.listen-address=127.0.0.1:0",
            "--config.file",
            cfg.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("the exporter started and kept serving with a token file of mode 0644");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_ne!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("has mode 0644"), "{stderr}");
}

#[test]
fn an_empty_config_file_warns_that_nothing_will_be_monitored() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("empty.yml");
    std::fs::write(&cfg, "").unwrap();
    let (code, stdout, stderr) = config_check(&cfg);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("OK (0 database entries)"), "{stdout}");
    assert!(
        stderr.contains("warning: no database entries")
            && stderr.contains("nothing will be monitored"),
        "{stderr}"
    );
}
