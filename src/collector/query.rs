//! `query`: the read probe — the configured query, timed over all its rows.

use std::time::Instant;

use super::{CollectError, Collector, Scrape};

/// Times `probes.query`.
pub struct Query;

impl Collector for Query {
    fn name(&self) -> &'static str {
        "query"
    }

    fn update(&self, s: &mut Scrape<'_>) -> Result<(), CollectError> {
        let start = Instant::now();
        let mut stmt = s.conn.prepare(&s.settings.probes.query)?;
        let mut rows = stmt.query([])?;
        while rows.next()?.is_some() {}
        s.facts.performance.query_seconds = Some(start.elapsed().as_secs_f64());
        Ok(())
    }
}
