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
        "tests/testdata/bad-unknown-database-key.yml: databases[0].pth: unknown field `pth`, expected one of `name`, `path`, `glob`, `thresholds`, `integrity_check`, `probes`, `backup`, `auto`, `migrations`, `dbstat`, `actions`, `metrics` (line 3, column 5)",
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
