//! `integrity-check`: run the database's integrity check now, out of its schedule, and record
//! it where scrapes find it (the same result a scheduled check leaves).

use serde::Deserialize;

use crate::actions::{open_kind, ActionError, Context, ErrorKind, Perform};
use crate::checks::integrity::IntegrityOutcome;
use crate::checks::IntegrityResult;
use crate::collect::series::Counter;
use crate::config::IntegrityMode;
use crate::fleet::background;
use crate::sqlite::interrupt::Stop;

/// An integrity check on request is not counted: its result has series of its own.
pub const COUNTERS: Option<(&Counter, &Counter)> = None;

/// An integrity check request: `{"mode": "full"}` or `integrity-check --mode=full`; the
/// database's configured mode when none is given.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// quick (quick_check) or full (integrity_check).
    #[arg(long)]
    pub mode: Option<IntegrityMode>,
}

impl Perform for Request {
    type Report = Option<IntegrityResult>;

    fn perform(&self, ctx: &Context<'_>) -> Result<Option<IntegrityResult>, ActionError> {
        let m = ctx.monitor;
        let mode = self.mode.unwrap_or(m.config.settings.integrity_check.mode);
        let outcome = background::run_integrity(m, mode, ctx.cancel);
        let kind = match &outcome {
            IntegrityOutcome::Completed(_) => return Ok(m.checks().integrity),
            // A file that could not be checked is answered like any action's open failure: a
            // file that is not a database (or too damaged to read) is refused, naming why.
            IntegrityOutcome::Failed(e) => open_kind(e),
            IntegrityOutcome::Interrupted {
                reason: Stop::Cancelled,
                ..
            } => ErrorKind::Cancelled,
            // The check ran out of time: nothing is known about the file.
            IntegrityOutcome::Interrupted { .. } => ErrorKind::Internal,
        };
        Err(ActionError::new(kind, outcome.to_string()))
    }
}
