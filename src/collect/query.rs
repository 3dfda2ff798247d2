//! `query`: the read probe — the configured query, timed over all its rows, and interrupted
//! after [`PROBE_QUERY_TIMEOUT`] so that a query that turned out expensive cannot hold its read
//! snapshot (and a scrape) for long.

use std::time::{Duration, Instant};

use super::series::{Histogram, Series, LATENCY_BUCKETS};
use super::{CollectError, Collector, Database, Facts, Scrape};

/// `sqlite_query_duration_seconds`: every read probe's latency.
pub const QUERY_DURATION: Histogram = Histogram {
    name: "sqlite_query_duration_seconds",
    help: "Latency of the read probe (probes.query), run every probes.interval.",
    labels: &["database"],
    buckets: LATENCY_BUCKETS,
};

/// Times `probes.query`.
pub struct Query;

impl Collector for Query {
    fn name(&self) -> &'static str {
        "query"
    }

    fn update(&self, s: &mut Scrape<'_>) -> Result<(), CollectError> {
        let conn = s.conn.get()?;
        let start = Instant::now();
        let deadline = start + PROBE_QUERY_TIMEOUT;
        conn.progress_handler(1000, Some(move || Instant::now() > deadline));
        let result = run(conn, &s.settings.probes.query);
        conn.progress_handler(1000, None::<fn() -> bool>);
        // Interrupted or not, the time it took is the measurement: a probe cut off at the
        // deadline still shows as slow in the histogram and the health verdict.
        let interrupted = matches!(&result, Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::OperationInterrupted));
        if result.is_ok() || interrupted {
            s.facts.performance.query_seconds = Some(start.elapsed().as_secs_f64());
        }
        result?;
        Ok(())
    }

    /// Its latency accumulates in [`QUERY_DURATION`], recorded by the fleet's event sink.
    fn series(&self, _: &Database<'_>, _: &Facts, _: &mut dyn Series) {}
}

/// The longest a read probe may run.
pub const PROBE_QUERY_TIMEOUT: Duration = Duration::from_secs(5);

fn run(conn: &rusqlite::Connection, query: &str) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare(query)?;
    let mut rows = stmt.query([])?;
    while rows.next()?.is_some() {}
    Ok(())
}
