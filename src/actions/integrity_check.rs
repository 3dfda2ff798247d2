//! `integrity-check`: run the database's integrity check now, out of its schedule, and record
//! it where scrapes find it (the same result a scheduled check leaves).

use serde::Deserialize;

use crate::actions::{ActionError, Context, ErrorKind, Perform};
use crate::checks::integrity::IntegrityOutcome;
use crate::checks::IntegrityResult;
use crate::collect::series::Counter;
use crate::config::IntegrityMode;
use crate::fleet::background;

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
        match background::run_integrity(m, mode, ctx.cancel) {
            IntegrityOutcome::Completed(_) => Ok(m.checks().integrity),
            IntegrityOutcome::Interrupted { .. } | IntegrityOutcome::Failed(_) => {
                let why = m
                    .checks()
                    .integrity_incomplete
                    .unwrap_or_else(|| "integrity check did not complete".into());
                Err(ActionError::new(ErrorKind::Internal, why))
            }
        }
    }
}
