//! `sqlite_exporter check`: the health report on the command line, from the same engine as
//! `/metrics` and `/health`.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::AtomicBool;

use crate::checks::integrity::Mode;
use crate::checks::timetable::Job;
use crate::cli::{CheckArgs, FailOn, Output};
use crate::collect::CollectorSet;
use crate::config::{human_size, Config};
use crate::fleet::background::run_job;
use crate::fleet::health::Status;
use crate::fleet::{Fleet, Snapshot};
use crate::service::reload::databases;

/// Runs `check`: the integrity check of each database, one collection, the report. Returns
/// the exit code; a check that cannot even start (a bad config) is 3, unknown.
pub fn run(
    args: &CheckArgs,
    config_file: Option<&Path>,
    collectors: CollectorSet,
    concurrency: usize,
) -> i32 {
    let config = match config_file {
        Some(f) if args.files.is_empty() => Config::load(f).map_err(anyhow::Error::from),
        _ => Config::from_files(&args.files).map_err(anyhow::Error::from),
    };
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sqlite_exporter: {e:#}");
            return Status::Unknown.exit_code();
        }
    };
    let fleet = Fleet::new(collectors, concurrency);
    fleet.apply(databases(&config));
    let cancel = AtomicBool::new(false);
    for m in fleet.monitors().values() {
        let mode = if args.full {
            Mode::Full
        } else {
            m.config.settings.integrity_check.mode
        };
        run_job(m, Job::Integrity(mode), fleet.collectors(), &cancel);
    }
    let snapshot = fleet.collect_blocking();
    match report(
        &snapshot,
        args.output,
        args.fail_on,
        &mut std::io::stdout().lock(),
    ) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sqlite_exporter: writing the report: {e}");
            Status::Unknown.exit_code()
        }
    }
}

/// Prints `snapshot` as a table or JSON and returns the exit code of the worst status
/// (0 healthy, 1 warning, 2 critical, 3 unknown; 3 as well when there is nothing to check).
/// With `--fail-on=critical` a warning exits 0.
pub fn report(
    snapshot: &Snapshot,
    output: Output,
    fail_on: FailOn,
    out: &mut dyn Write,
) -> std::io::Result<i32> {
    match output {
        Output::Json => {
            serde_json::to_writer_pretty(&mut *out, snapshot)?;
            writeln!(out)?;
        }
        Output::Table => table(snapshot, out)?,
    }
    if snapshot.databases.is_empty() {
        return Ok(Status::Unknown.exit_code());
    }
    Ok(match (snapshot.status, fail_on) {
        (Status::Warning, FailOn::Critical) => Status::Healthy.exit_code(),
        (status, _) => status.exit_code(),
    })
}

fn table(snapshot: &Snapshot, out: &mut dyn Write) -> std::io::Result<()> {
    let header = [
        "DATABASE",
        "STATUS",
        "SIZE",
        "WAL",
        "UTIL",
        "READ",
        "WRITE",
        "RECOMMENDATIONS",
    ];
    let mut rows: Vec<[String; 8]> = Vec::new();
    for r in &snapshot.databases {
        let f = &r.facts;
        let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        rows.push([
            r.name.clone(),
            r.health.status.as_str().to_string(),
            opt(f.size.database_bytes.map(human_size)),
            opt(f.wal.wal_bytes.map(human_size)),
            opt(f
                .size
                .utilization_ratio()
                .map(|u| format!("{:.1}%", u * 100.0))),
            opt(f
                .performance
                .query_seconds
                .map(|s| format!("{:.2}ms", s * 1e3))),
            opt(f
                .performance
                .write_seconds
                .map(|s| format!("{:.2}ms", s * 1e3))),
            r.health
                .recommendations
                .iter()
                .map(|a| a.recommendation.as_str())
                .collect::<Vec<_>>()
                .join(","),
        ]);
    }
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>, out: &mut dyn Write| -> std::io::Result<()> {
        let text: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        writeln!(out, "{}", text.join("  ").trim_end())
    };
    line(header.to_vec(), out)?;
    for row in &rows {
        line(row.iter().map(String::as_str).collect(), out)?;
    }
    for r in &snapshot.databases {
        for p in &r.health.problems {
            writeln!(out, "{}: {}: {}", r.name, r.health.status.as_str(), p)?;
        }
        for a in &r.health.recommendations {
            writeln!(
                out,
                "{}: {}: {}",
                r.name,
                a.recommendation.as_str(),
                a.message
            )?;
        }
    }
    if snapshot.databases.is_empty() {
        writeln!(out, "no databases to check")?;
    }
    Ok(())
}
