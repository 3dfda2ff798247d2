//! Opt-in policies (`auto.*`, all off by default): the actions the exporter takes by itself.
//!
//! - `auto.checkpoint`: a TRUNCATE checkpoint when the WAL passes `wal_critical_bytes`, falling
//!   back to PASSIVE when a reader keeps TRUNCATE busy. The WAL size is a `stat`, checked at
//!   every scheduler tick.
//! - `auto.recover`: the recovery sequence when an integrity check fails — once per failed
//!   check, not again until a newer check fails.
//! - `auto.vacuum`: VACUUM when utilization is below `min_utilization`, looked at every
//!   `integrity_check.interval`.
//! - `auto.backup`: a backup labelled `scheduled` when the newest verified backup is older than
//!   `backup.interval` (or there is none).
//!
//! The scheduler evaluates them on a blocking thread, one pass at a time. Each runs through
//! [`crate::actions::execute`], so it is logged and counted exactly like a
//! manual action, and it claims the database like one: a policy never runs two actions at once
//! on a database and never runs while a manual action does. After a failure a policy backs off
//! (1 min, doubling to 1 h) before it tries that database again.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::actions::{backup, checkpoint, recover, vacuum};
use crate::actions::{Action, ActionError, Claim, Outcome, ProgressCell, Trigger};
use crate::fleet::events::Events;
use crate::fleet::monitor::Monitor;

const BACKOFF_START: Duration = Duration::from_secs(60);
const BACKOFF_MAX: Duration = Duration::from_secs(3600);

/// After this many failed recoveries in a row, `auto.recover` stops trying until an integrity
/// check passes again: each attempt preserves another copy of the corrupt file in quarantine,
/// and a recovery that failed three times needs a person (`sqlite_exporter recover`).
const RECOVER_ATTEMPTS: u32 = 3;

/// The policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// `auto.checkpoint`.
    Checkpoint,
    /// `auto.recover`.
    Recover,
    /// `auto.vacuum`.
    Vacuum,
    /// `auto.backup`.
    Backup,
}

/// Per-database policy state: back-off after failures and what was already acted on.
#[derive(Debug, Default)]
pub struct PolicyState {
    /// (policy, consecutive failures, not before).
    backoff: Vec<(Policy, u32, Instant)>,
    /// `finished_at` of the failed integrity check recovery last acted on.
    recovered_check: Option<f64>,
    /// When utilization is looked at next.
    next_vacuum_look: Option<Instant>,
}

impl PolicyState {
    fn allowed(&self, p: Policy, now: Instant) -> bool {
        self.backoff.iter().all(|(q, _, t)| *q != p || now >= *t)
    }

    fn failures(&self, p: Policy) -> u32 {
        self.backoff
            .iter()
            .find(|(q, _, _)| *q == p)
            .map(|(_, n, _)| *n)
            .unwrap_or(0)
    }

    fn record(&mut self, p: Policy, ok: bool, now: Instant) {
        let failures = self.failures(p);
        self.backoff.retain(|(q, _, _)| *q != p);
        if !ok {
            let wait = BACKOFF_START
                .saturating_mul(1 << failures.min(6))
                .min(BACKOFF_MAX);
            self.backoff.push((p, failures + 1, now + wait));
        }
    }
}

/// The policies' memory for every database, by name: it outlives a reload that replaced a
/// database's monitor, so a back-off is not forgotten by editing the config.
#[derive(Debug, Default)]
pub struct Policies {
    states: Mutex<HashMap<String, PolicyState>>,
}

impl Policies {
    fn state(&self, database: &str) -> MutexGuard<'_, HashMap<String, PolicyState>> {
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        states.entry(database.to_string()).or_default();
        states
    }

    /// The policy action due on `m` now, with the reason, if any. Cheap: a `stat`, cached
    /// check results, and at most once per interval an O(1) read of the page counts.
    pub fn due(&self, m: &Monitor, now: Instant) -> Option<(Policy, Action, String)> {
        if !m.config.settings.auto.any() || m.running_action().is_some() {
            return None;
        }
        let mut states = self.state(&m.config.name);
        let state = states.get_mut(&m.config.name)?;
        due(m, state, now)
    }

    /// Runs a policy's claimed action — falling back to a PASSIVE checkpoint when TRUNCATE is
    /// busy — and records the outcome for back-off.
    pub fn run(
        &self,
        events: &dyn Events,
        claim: &Claim,
        policy: Policy,
        reason: &str,
        cancel: &AtomicBool,
    ) -> Result<Outcome, ActionError> {
        let m = claim.monitor();
        tracing::info!(database = %m.config.name, action = claim.action().name(), reason, "policy action");
        let progress = ProgressCell::default();
        let exec = |a: &Action| claim.execute(a, events, Trigger::Policy, &progress, cancel);
        let mut result = exec(claim.action());
        if policy == Policy::Checkpoint && matches!(&result, Ok(o) if o.busy()) {
            tracing::info!(database = %m.config.name, "TRUNCATE checkpoint busy; falling back to PASSIVE");
            result = exec(&Action::Checkpoint(checkpoint::Request::new(
                checkpoint::Mode::Passive,
            )));
        }
        let ok = matches!(&result, Ok(o) if !o.busy());
        let mut states = self.state(&m.config.name);
        if let Some(state) = states.get_mut(&m.config.name) {
            state.record(policy, ok, Instant::now());
            if policy == Policy::Recover && !ok && state.failures(policy) >= RECOVER_ATTEMPTS {
                tracing::warn!(database = %m.config.name, attempts = RECOVER_ATTEMPTS, "auto.recover gives up until an integrity check passes; run `sqlite_exporter recover` after looking at the database");
            }
        }
        result
    }
}

/// The policy action due on `m` now given its `state`.
fn due(m: &Monitor, state: &mut PolicyState, now: Instant) -> Option<(Policy, Action, String)> {
    let s = &m.config.settings;
    let auto = &s.auto;
    let checks = m.checks();
    if checks.integrity.as_ref().is_some_and(|i| i.ok) {
        // A passing check ends a run of failed recoveries.
        state.backoff.retain(|(q, _, _)| *q != Policy::Recover);
    }
    if auto.recover
        && state.allowed(Policy::Recover, now)
        && state.failures(Policy::Recover) < RECOVER_ATTEMPTS
    {
        if let Some(i) = checks.integrity.as_ref().filter(|i| !i.ok) {
            if state.recovered_check != Some(i.finished_at) {
                state.recovered_check = Some(i.finished_at);
                let why = format!(
                    "integrity check failed: {}",
                    i.messages.first().cloned().unwrap_or_default()
                );
                return Some((
                    Policy::Recover,
                    Action::Recover(recover::Request { dry_run: false }),
                    why,
                ));
            }
        }
    }
    if auto.checkpoint && state.allowed(Policy::Checkpoint, now) {
        let wal = crate::sqlite::wal::file_size(&crate::sqlite::wal::wal_path(&m.config.path))
            .unwrap_or(0);
        if wal > s.thresholds.wal_critical_bytes.0 {
            let why = format!(
                "WAL is {wal} bytes, above wal_critical_bytes {}",
                s.thresholds.wal_critical_bytes.0
            );
            return Some((
                Policy::Checkpoint,
                Action::Checkpoint(checkpoint::Request::new(checkpoint::Mode::Truncate)),
                why,
            ));
        }
    }
    if auto.backup && state.allowed(Policy::Backup, now) {
        if let Some(b) = &checks.backups {
            let stale = match b.age_seconds(crate::unix_now()) {
                None => true,
                Some(age) => age > s.backup.interval.0.as_secs_f64(),
            };
            if stale {
                return Some((
                    Policy::Backup,
                    Action::Backup(backup::Request {
                        label: Some("scheduled".into()),
                    }),
                    "newest verified backup is older than backup.interval".into(),
                ));
            }
        }
    }
    if auto.vacuum
        && state.allowed(Policy::Vacuum, now)
        && state.next_vacuum_look.is_none_or(|t| now >= t)
    {
        state.next_vacuum_look = Some(now + s.integrity_check.interval.0);
        if let Some(u) = utilization(m) {
            if u < s.thresholds.min_utilization {
                let why = format!(
                    "utilization {:.1}% below min_utilization {:.0}%",
                    u * 100.0,
                    s.thresholds.min_utilization * 100.0
                );
                return Some((Policy::Vacuum, Action::Vacuum(vacuum::Request {}), why));
            }
        }
    }
    None
}

fn utilization(m: &Monitor) -> Option<f64> {
    let conn = crate::sqlite::connection::open_read_only(
        &m.config.path,
        crate::sqlite::PROBE_BUSY_TIMEOUT,
    )
    .ok()?;
    crate::sqlite::sql::utilization_of(&conn).ok()?
}

#[cfg(test)]
mod tests;
