//! `optimize`: `PRAGMA optimize`, which lets SQLite refresh the query planner's statistics
//! (`ANALYZE`) for the tables whose queries would benefit, and nothing else. Cheap when the
//! statistics are fresh; the remedy SQLite itself recommends for slow queries on a database
//! whose data has changed shape since it was last analysed.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::actions::{is_locked, open_kind, ActionError, Context, ErrorKind, Perform, Report};
use crate::collect::series::Counter;
use crate::sqlite::connection;

/// Not counted: its duration is in `sqlite_action_duration_seconds{action="optimize"}`, which
/// is enough for a rarely run action and costs no series until it runs.
pub const COUNTERS: Option<(&Counter, &Counter)> = None;

/// An optimize request; it takes no parameters.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct Request {}

/// What `PRAGMA optimize` did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OptimizeReport {
    /// Wall time.
    pub duration_seconds: f64,
    /// A sentence for people.
    pub message: String,
}

impl Report for OptimizeReport {}

impl Perform for Request {
    type Report = OptimizeReport;

    fn perform(&self, ctx: &Context<'_>) -> Result<OptimizeReport, ActionError> {
        let cfg = &ctx.monitor.config;
        let start = Instant::now();
        let conn = connection::open_read_write(&cfg.path, cfg.settings.actions.busy_timeout.0)
            .map_err(|e| ActionError::new(open_kind(&e), e.to_string()))?;
        conn.execute_batch("PRAGMA optimize;").map_err(|e| {
            let kind = if is_locked(&e) {
                ErrorKind::Locked
            } else {
                ErrorKind::Internal
            };
            ActionError::new(kind, e.to_string())
        })?;
        Ok(OptimizeReport {
            duration_seconds: start.elapsed().as_secs_f64(),
            message: "query planner statistics refreshed where useful (PRAGMA optimize)".into(),
        })
    }
}
