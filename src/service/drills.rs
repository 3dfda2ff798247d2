//! When restore drills run (`actions::drill` says what one does): every
//! `backup.drill.interval` per database, on by default, once the database has a backup to
//! drill. One drill at a time across the whole fleet, on a thread of lowered priority, in the
//! database's action slot (so never during a restore, a recovery or another action of that
//! file; a drill that finds the slot taken waits for a later tick). Drills are cancelled on
//! shutdown with every other action.
//!
//! First drills come soon after start — a database first seen at start gets its first one
//! [`FIRST_DELAY`] later, spread over the first `min(interval, 1 h)` by its place among the
//! databases first seen together — so a fresh start proves its backups within minutes, and a
//! fleet's drills do not queue up behind each other at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::error;

use crate::actions::{self, Action, ProgressCell, Trigger};
use crate::fleet::monitor::Monitor;
use crate::fleet::Fleet;
use crate::service::scheduler::low_priority_thread;

/// Delay from a database's first sight to its first drill: the first backup scan (and, with
/// `auto.backup`, the first backup) comes before it.
pub const FIRST_DELAY: Duration = Duration::from_secs(30);

/// The longest window first drills are spread over.
const SPREAD: Duration = Duration::from_secs(3600);

/// The drill timetable of the fleet.
#[derive(Default)]
pub struct Drills {
    /// When each database (by name) is next due.
    next: Mutex<HashMap<String, Instant>>,
    /// Set while a drill runs anywhere in the fleet.
    running: Arc<AtomicBool>,
}

impl Drills {
    /// Starts the drill due now, if one is and none runs.
    pub fn start_due(&self, fleet: &Arc<Fleet>, cancel: &Arc<AtomicBool>, now: Instant) {
        if self.running.load(Ordering::Acquire) {
            return;
        }
        let monitors = fleet.monitors();
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        next.retain(|name, _| monitors.contains_key(name));
        let new: Vec<&Arc<Monitor>> = monitors
            .values()
            .filter(|m| !next.contains_key(&m.config.name))
            .collect();
        for (i, m) in new.iter().enumerate() {
            let spread = m.config.settings.backup.drill.interval.0.min(SPREAD);
            let offset = spread.mul_f64(i as f64 / new.len() as f64);
            next.insert(m.config.name.clone(), now + FIRST_DELAY + offset);
        }
        let due = monitors.values().find(|m| {
            m.config.settings.backup.drill.enabled
                && next.get(&m.config.name).is_some_and(|t| *t <= now)
                && m.running_action().is_none()
                && has_backup(m)
        });
        let Some(m) = due else {
            return;
        };
        let Ok(claim) = actions::claim(m, Action::Drill(Default::default())) else {
            return;
        };
        next.insert(
            m.config.name.clone(),
            now + m.config.settings.backup.drill.interval.0,
        );
        self.running.store(true, Ordering::Release);
        let (events, cancel, running) =
            (fleet.events.clone(), cancel.clone(), self.running.clone());
        let spawned = low_priority_thread(&format!("drill-{}", m.config.name), move || {
            let _done = Finished(running);
            let progress = ProgressCell::default();
            let _ = claim.run(events.as_ref(), Trigger::Policy, &progress, &cancel);
        });
        if let Err(e) = spawned {
            self.running.store(false, Ordering::Release);
            error!(database = %m.config.name, error = %e, "cannot start a restore drill thread");
        }
    }
}

/// Whether the last backup scan found any backup of `m` (a drill of a database without one
/// would only be refused).
fn has_backup(m: &Monitor) -> bool {
    m.update_checks(|c| {
        c.backups
            .as_ref()
            .is_some_and(|b| b.verified + b.unverified + b.damaged > 0)
    })
}

/// Clears the running flag when a drill thread ends, even by a panic.
struct Finished(Arc<AtomicBool>);

impl Drop for Finished {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}
