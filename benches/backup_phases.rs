//! A backup, phase by phase, against the command-line tool doing the same work on the same
//! file in the same run: the copy against `sqlite3 SRC ".backup DST"`, the verification
//! against `sqlite3 COPY "PRAGMA integrity_check"` (or `quick_check`), the compression against
//! `gzip -1` (the level backups use) and the hash against `sha256sum`. Median of `BENCH_RUNS`
//! runs (default 3) on a ~`BENCH_MB` MB database (default 200). Prints each ratio and whether
//! it is within 1.1× of its twin.
//!
//! The copy is shown twice: with the default steps (1,024 pages, then a 5 ms pause, so the
//! application's writers get their turn) and without pauses, which is what the shell does.
//! Our copy phase includes the `fsync` of the copy; the shell's `.backup` does not sync.
//!
//! `cargo bench --bench backup_phases`

#[path = "common/mod.rs"]
mod common;

#[path = "../tests/util/sqlite3.rs"]
mod sqlite3;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use sqlite_exporter::actions::backup::{self, BackupOptions, Method, Phases, Verify};

use common::{env_or, median, timed};

const TARGET: f64 = 1.1;

fn run(cmd: &mut Command) {
    let status = cmd.status().expect("spawn");
    assert!(status.success(), "{cmd:?} failed");
}

/// One backup with our code; returns its phases and the stored and uncompressed files' paths.
fn ours(db: &Path, out: &Path, verify: Verify, method: Method) -> Phases {
    let _ = std::fs::remove_dir_all(out);
    let opts = BackupOptions {
        dir: out.to_owned(),
        compress_above: Some(0),
        verify,
        method,
        keep: 0,
        ..BackupOptions::default()
    };
    let (_, phases) = backup::create_phased(
        "bench",
        db,
        &opts,
        None,
        &mut |_| {},
        &AtomicBool::new(false),
    )
    .expect("backup");
    phases
}

fn row(name: &str, ours: Duration, twin_name: &str, twin: Duration) {
    let r = ours.as_secs_f64() / twin.as_secs_f64();
    println!(
        "{name:<44} {:>9.3} s  {twin_name:<34} {:>9.3} s  {r:>6.2}x  {}",
        ours.as_secs_f64(),
        twin.as_secs_f64(),
        if r <= TARGET { "MET" } else { "MISSED" }
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    for tool in ["/usr/bin/sqlite3", "/usr/bin/gzip", "/usr/bin/sha256sum"] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is needed (Debian packages sqlite3, gzip, coreutils)"
        );
    }
    let runs = env_or("BENCH_RUNS", 3) as usize;
    let mb = env_or("BENCH_MB", 200);
    let dir = tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| ".".into()))
        .expect("temp dir");
    let db = dir.path().join("bench.db");
    sqlite3::large_database(&db, mb);
    let size = std::fs::metadata(&db).unwrap().len() as f64 / 1e6;
    println!("database: {size:.0} MB; median of {runs} runs of each, same files, same run");

    let out = dir.path().join("ours");
    let no_pause = Method::OnlineBackup {
        pages_per_step: 16384,
        step_pause: Duration::ZERO,
    };
    // Warm the page cache for both sides.
    ours(&db, &out, Verify::Quick, no_pause);
    let mut full: Vec<Phases> = Vec::new();
    let mut quick: Vec<Phases> = Vec::new();
    let mut fast: Vec<Phases> = Vec::new();
    let (mut cli_copy, mut cli_full, mut cli_quick, mut cli_gzip, mut cli_sha) =
        (vec![], vec![], vec![], vec![], vec![]);
    let copy = dir.path().join("copy.db");
    let gz = dir.path().join("copy.db.gz");
    for _ in 0..runs {
        full.push(ours(&db, &out, Verify::Full, Method::default()));
        quick.push(ours(&db, &out, Verify::Quick, Method::default()));
        fast.push(ours(&db, &out, Verify::Quick, no_pause));
        let _ = std::fs::remove_file(&copy);
        cli_copy.push(timed(|| {
            run(Command::new("/usr/bin/sqlite3")
                .arg(&db)
                .arg(format!(".backup '{}'", copy.display())))
        }));
        cli_full.push(timed(|| {
            assert_eq!(sqlite3::cli(&copy, "PRAGMA integrity_check"), "ok")
        }));
        cli_quick.push(timed(|| {
            assert_eq!(sqlite3::cli(&copy, "PRAGMA quick_check"), "ok")
        }));
        cli_gzip.push(timed(|| {
            let f = std::fs::File::create(&gz).unwrap();
            run(Command::new("/usr/bin/gzip")
                .args(["-1", "-c"])
                .arg(&copy)
                .stdout(f));
        }));
        cli_sha.push(timed(|| {
            run(Command::new("/usr/bin/sha256sum")
                .arg(&gz)
                .stdout(Stdio::null()))
        }));
    }
    let m = |v: &[Phases], f: fn(&Phases) -> Duration| median(v.iter().map(f).collect());
    println!(
        "{:<44} {:>11}  {:<34} {:>11}  {:>7}  target <= {TARGET}x",
        "phase (ours)", "median", "twin", "median", "ratio"
    );
    row(
        "copy, default steps (1024 pages, 5 ms pause)",
        m(&full, |p| p.copy),
        "sqlite3 .backup",
        median(cli_copy.clone()),
    );
    row(
        "copy, no pause (16384 pages/step)",
        m(&fast, |p| p.copy),
        "sqlite3 .backup",
        median(cli_copy),
    );
    row(
        "verify: integrity_check of the copy",
        m(&full, |p| p.verify),
        "sqlite3 COPY 'PRAGMA integrity_check'",
        median(cli_full),
    );
    row(
        "verify: quick_check of the copy",
        m(&quick, |p| p.verify),
        "sqlite3 COPY 'PRAGMA quick_check'",
        median(cli_quick),
    );
    row(
        "compress (gzip level 1)",
        m(&full, |p| p.compress),
        "gzip -1 -c COPY > COPY.gz",
        median(cli_gzip),
    );
    row(
        "hash the stored file (sha256)",
        m(&full, |p| p.hash),
        "sha256sum COPY.gz",
        median(cli_sha),
    );
    let total = |v: &[Phases]| {
        median(
            v.iter()
                .map(|p| p.copy + p.verify + p.compress + p.hash)
                .collect(),
        )
    };
    println!(
        "whole backup, defaults (full verify): {:.3} s; quick verify: {:.3} s; quick, no pause: {:.3} s",
        total(&full).as_secs_f64(),
        total(&quick).as_secs_f64(),
        total(&fast).as_secs_f64()
    );
}
