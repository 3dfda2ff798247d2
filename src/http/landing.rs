//! The landing page: name, version, links, the enabled collectors, and a live health table of
//! every database (its last integrity check and newest backup, with a link to its JSON health).

use axum::extract::State;
use axum::response::Html;
use std::fmt::Write as _;

use super::{escape, AppState};

fn bytes(v: Option<u64>) -> String {
    v.map(crate::config::human_size)
        .unwrap_or_else(|| "–".into())
}

/// How long ago Unix time `at` was, to the minute ("just now", "5m ago", "2h 10m ago").
fn ago(at: Option<f64>) -> String {
    let Some(at) = at else {
        return "–".into();
    };
    let secs = (crate::unix_now() - at).max(0.0) as u64;
    if secs < 60 {
        return "just now".into();
    }
    let rounded = std::time::Duration::from_secs(secs / 60 * 60);
    format!("{} ago", humantime::format_duration(rounded))
}

fn millis(v: Option<f64>) -> String {
    v.map(|s| format!("{:.2} ms", s * 1e3))
        .unwrap_or_else(|| "–".into())
}

/// `name` for a query string: database names are letters, digits, `_`, `-` and `.`, which
/// need no escaping, but a name from a glob's file stem may hold anything.
fn url_escape(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `GET /`.
pub async fn page(State(s): State<AppState>) -> Html<String> {
    let mut rows = String::new();
    match s.fleet.latest(crate::fleet::SHOWN_MAX_AGE).await {
        Ok(snap) => {
            for r in &snap.databases {
                let f = &r.facts;
                let recs: Vec<&str> = r
                    .health
                    .recommendations
                    .iter()
                    .map(|a| a.recommendation.as_str())
                    .collect();
                let check = match &r.checks.integrity {
                    Some(i) => format!(
                        "{} ({}, {})",
                        if i.ok { "ok" } else { "failed" },
                        i.mode.as_str(),
                        ago(Some(i.finished_at))
                    ),
                    None => "–".into(),
                };
                let backup = ago(r.checks.backups.as_ref().and_then(|b| b.newest_created_at));
                let mut notes: Vec<String> = r.health.problems.clone();
                notes.extend(r.health.recommendations.iter().map(|a| a.message.clone()));
                let _ = writeln!(
                    rows,
                    "<tr class=\"{st}\"><td>{name}</td><td>{st}</td><td>{path}</td><td>{size}</td><td>{wal}</td><td>{util}</td><td>{q}</td><td>{w}</td><td>{check}</td><td>{backup}</td><td>{recs}</td><td>{notes}</td><td><a href=\"/health?database={link}\">JSON</a></td></tr>",
                    st = r.health.status.as_str(),
                    name = escape(&r.name),
                    check = escape(&check),
                    link = escape(&url_escape(&r.name)),
                    path = escape(&r.path.to_string_lossy()),
                    size = bytes(f.size.database_bytes),
                    wal = bytes(f.wal.wal_bytes),
                    util = f.size.utilization_ratio().map(|u| format!("{:.1}%", u * 100.0)).unwrap_or_else(|| "–".into()),
                    q = millis(f.performance.query_seconds),
                    w = millis(f.performance.write_seconds),
                    recs = escape(&recs.join(", ")),
                    notes = escape(&notes.join("; ")),
                );
            }
        }
        Err(e) => {
            let _ = write!(
                rows,
                "<tr><td colspan=\"13\">collection failed: {}</td></tr>",
                escape(&e)
            );
        }
    }
    let metrics = escape(&s.telemetry_path);
    Html(format!(
        r#"<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>SQLite Exporter</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 4px 8px; text-align: left; }}
tr.healthy td:nth-child(2) {{ color: #1a7f37; }} tr.warning td:nth-child(2) {{ color: #9a6700; }}
tr.critical td:nth-child(2) {{ color: #cf222e; font-weight: bold; }} tr.unknown td:nth-child(2) {{ color: #57606a; }}
</style></head>
<body>
<h1>SQLite Exporter</h1>
<p>Version {version} (revision {revision}), SQLite {sqlite}</p>
<ul>
<li><a href="{metrics}">Metrics</a></li>
<li><a href="/health">Health (JSON)</a></li>
<li><a href="/-/healthy">Liveness</a> · <a href="/-/ready">Readiness</a></li>
</ul>
<h2>Databases</h2>
<p>Collectors: {collectors}</p>
<table>
<tr><th>Database</th><th>Status</th><th>Path</th><th>Size</th><th>WAL</th><th>Utilization</th><th>Read probe</th><th>Write probe</th><th>Last integrity check</th><th>Newest verified backup</th><th>Recommendations</th><th>Notes</th><th>Health</th></tr>
{rows}</table>
</body></html>
"#,
        version = crate::VERSION,
        revision = crate::REVISION,
        sqlite = rusqlite::version(),
        collectors = escape(&s.fleet.collectors().names().join(", ")),
    ))
}
