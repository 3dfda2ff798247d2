//! `sqlite_exporter check`: the health report on the command line, from the same engine as
//! `/metrics` and `/health`.

use std::io::Write;

use crate::cli::Output;
use crate::fleet::health::Status;
use crate::fleet::Snapshot;

/// Prints `snapshot` as a table or JSON and returns the exit code of the worst status
/// (0 healthy, 1 warning, 2 critical, 3 unknown; 3 as well when there is nothing to check).
pub fn report(snapshot: &Snapshot, output: Output, out: &mut dyn Write) -> std::io::Result<i32> {
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
    Ok(snapshot.status.exit_code())
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
            opt(f.size.database_bytes.map(|b| b.to_string())),
            opt(f.wal.wal_bytes.map(|b| b.to_string())),
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
