//! The background scheduler: integrity checks, the migrations read, the dbstat scans and the
//! custom queries, apart from the scrape path.
//!
//! Every database has its own schedule ([`Schedule`]): the configured check every
//! `integrity_check.interval`, a full `integrity_check` every `full_interval`, and the dbstat
//! scans every `dbstat.interval`. First runs are staggered: databases added together have their
//! first regular check spread over the first minute and their first full check spread over the
//! first `full_interval`, so 1,000 databases never start their O(size) checks together. A
//! global semaphore bounds how many checks run at once (`--checks.concurrency`, default 1),
//! and a database runs one background job at a time. Checks are bounded by their `timeout`
//! and cancelled on shutdown; an interrupted check is recorded as unknown, never as success.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tracing::{error, info, warn};

use crate::actions::policy::Policies;
use crate::checks::timetable::{Enabled, Job};
use crate::collect::{CollectorSet, DBSTAT, INTEGRITY, MIGRATIONS, TABLES};
use crate::fleet::background::{run_job, run_queries, scan_backups};
use crate::fleet::monitor::Monitor;
use crate::fleet::Fleet;

/// How often the scheduler looks for due work.
const TICK: Duration = Duration::from_millis(500);

/// Runs the scheduler until `stop` fires. `cancel` interrupts running checks on shutdown.
pub async fn run(
    fleet: Arc<Fleet>,
    concurrency: usize,
    cancel: Arc<AtomicBool>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    // Custom queries have their own permits: a long integrity check must not hold back a
    // query that runs every minute, and each query is bounded by its own timeout.
    let query_permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let policies = Arc::new(Policies::default());
    // Set while a pass over the policies runs (on a blocking thread; it stats files and may
    // read page counts), so passes never pile up.
    let policy_pass = Arc::new(AtomicBool::new(false));
    // Set while a pass over the due probes runs, likewise.
    let probe_pass = Arc::new(AtomicBool::new(false));
    // Restore drills, one at a time across the fleet (see `service::drills`).
    let drills = crate::service::drills::Drills::default();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        let now = Instant::now();
        let monitors = fleet.monitors();
        // Backup scans due now run one after another on one blocking thread: a fleet of
        // thousands must not start thousands of threads at once.
        let scans: Vec<Arc<Monitor>> = monitors
            .values()
            .filter(|m| m.schedule().backup_scan_due(now))
            .cloned()
            .collect();
        if !scans.is_empty() {
            tokio::task::spawn_blocking(move || scan_backups(&scans));
        }
        if !probe_pass.swap(true, Ordering::AcqRel) {
            let (fleet, pass) = (fleet.clone(), probe_pass.clone());
            tokio::task::spawn_blocking(move || {
                let _done = Done(pass);
                fleet.probe_due(now);
            });
        }
        let with_policies: Vec<Arc<Monitor>> = monitors
            .values()
            .filter(|m| m.config.settings.auto.any())
            .cloned()
            .collect();
        if !with_policies.is_empty() && !policy_pass.swap(true, Ordering::AcqRel) {
            let (fleet, cancel, pass) = (fleet.clone(), cancel.clone(), policy_pass.clone());
            let policies = policies.clone();
            tokio::task::spawn_blocking(move || {
                let _done = Done(pass);
                with_policies
                    .iter()
                    .for_each(|m| start_policy(&fleet, &policies, m, &cancel, now));
            });
        }
        for m in monitors.values() {
            let due = m.schedule().queries_due(&m.config.settings, now);
            if due.is_empty() {
                continue;
            }
            let (m, permits, cancel) = (m.clone(), query_permits.clone(), cancel.clone());
            tokio::spawn(async move {
                if let Ok(_permit) = permits.acquire_owned().await {
                    let m2 = m.clone();
                    let result =
                        tokio::task::spawn_blocking(move || run_queries(&m2, &due, &cancel)).await;
                    if let Some(e) = result.as_ref().err().filter(|e| e.is_panic()) {
                        error!(database = %m.config.name, error = %e, "custom queries panicked");
                    }
                }
                m.schedule().queries_finished();
            });
        }
        drills.start_due(&fleet, &cancel, now);
        let enabled = enabled(fleet.collectors());
        for m in monitors.values() {
            let Some(job) = due(m, enabled, now) else {
                continue;
            };
            let (m, fleet, permits, cancel) =
                (m.clone(), fleet.clone(), permits.clone(), cancel.clone());
            tokio::spawn(async move {
                let Ok(_permit) = permits.acquire_owned().await else {
                    return;
                };
                // O(size) work (integrity checks, table statistics) runs on a thread of low
                // CPU and I/O priority of its own; the permit bounds how many run at once.
                let (m2, (done, finished)) = (m.clone(), tokio::sync::oneshot::channel());
                let spawned = low_priority_thread(&format!("check-{}", m.config.name), move || {
                    run_job(&m2, job, fleet.collectors(), &cancel);
                    let _ = done.send(());
                });
                match spawned {
                    // The thread ended without saying it was done: `run_job` panicked.
                    Ok(_) => {
                        if finished.await.is_err() {
                            error!(database = %m.config.name, "background job panicked");
                        }
                    }
                    Err(e) => {
                        error!(database = %m.config.name, error = %e, "cannot start a background thread")
                    }
                }
                m.schedule().finished();
            });
        }
    }
}

/// Clears a pass flag on the way out, even if the pass panics, so passes never stop.
struct Done(Arc<AtomicBool>);

impl Drop for Done {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Starts the policy action due on `m`, if any, on a low-priority thread.
fn start_policy(
    fleet: &Arc<Fleet>,
    policies: &Arc<Policies>,
    m: &Arc<Monitor>,
    cancel: &Arc<AtomicBool>,
    now: Instant,
) {
    let Some((policy, action, reason)) = policies.due(m, now) else {
        return;
    };
    let Ok(claim) = crate::actions::claim(m, action) else {
        return;
    };
    let (events, policies, cancel) = (fleet.events.clone(), policies.clone(), cancel.clone());
    let name = format!("auto-{}", m.config.name);
    let spawned = low_priority_thread(&name, move || {
        let _ = policies.run(events.as_ref(), &claim, policy, &reason, &cancel);
    });
    if let Err(e) = spawned {
        error!(database = %m.config.name, error = %e, "cannot start a policy thread");
    }
}

/// Every backup directory of the fleet.
pub fn backup_dirs(fleet: &Fleet) -> BTreeSet<PathBuf> {
    fleet
        .monitors()
        .values()
        .map(|m| m.config.settings.backup.dir.clone())
        .collect()
}

/// Removes temp files left by a killed backup in `dirs` (at start: every backup directory of
/// the fleet; after a reload: the ones new to it). Files of a backup in progress are locked and
/// kept.
pub fn remove_backup_leftovers<'a>(dirs: impl IntoIterator<Item = &'a PathBuf>) {
    for dir in dirs.into_iter().filter(|d| d.is_dir()) {
        match crate::backup_dir::remove_leftovers(dir) {
            Ok(removed) if !removed.is_empty() => {
                info!(dir = %dir.display(), removed = removed.len(), "removed temp files of an interrupted backup")
            }
            Ok(_) => {}
            Err(e) => warn!(dir = %dir.display(), error = %e, "cannot clean the backup directory"),
        }
    }
}

/// `ioprio_set`'s "which": one thread (the kernel's `IOPRIO_WHO_PROCESS`).
const IOPRIO_WHO_PROCESS: libc::c_int = 1;
/// Best-effort class (2) at its lowest level (7): `(class << 13) | level`.
const LOW_IO_PRIORITY: libc::c_int = (2 << 13) | 7;

/// Runs `f` on a new thread with lowered CPU priority (nice +10) and the lowest best-effort I/O
/// priority (class 2, level 7, as `ionice -c2 -n7`), so O(size) work yields the CPU and the
/// disk to the application and to scrapes on a busy machine. (The I/O priority only counts
/// under an I/O scheduler that honours it, such as BFQ; elsewhere the call is harmless.) Not
/// the idle I/O class: on a disk that is never idle, a drill or check would never finish. A
/// thread of its own, not one from the blocking pool: a thread's priority cannot be raised
/// again without privileges, and pool threads later serve scrapes.
pub fn low_priority_thread<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<T>> {
    std::thread::Builder::new()
        .name(name.chars().take(15).collect())
        .spawn(move || {
            // SAFETY: plain syscalls on the calling thread; failure only leaves the priority as is.
            unsafe {
                let tid = libc::gettid();
                libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10);
                libc::syscall(
                    libc::SYS_ioprio_set,
                    IOPRIO_WHO_PROCESS,
                    tid,
                    LOW_IO_PRIORITY,
                );
            }
            f()
        })
}

/// The kinds of background work `collectors` enable.
fn enabled(collectors: &CollectorSet) -> Enabled {
    Enabled {
        checks: collectors.background(INTEGRITY) || collectors.background(MIGRATIONS),
        stats: collectors.background(DBSTAT) || collectors.background(TABLES),
    }
}

/// The job due on `m` now, if any; never while an action runs on it.
fn due(m: &Monitor, enabled: Enabled, now: Instant) -> Option<Job> {
    if m.running_action().is_some() {
        return None;
    }
    m.schedule().next_job(&m.config.settings, enabled, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn background_threads_run_at_low_cpu_and_io_priority() {
        let (nice, io) = low_priority_thread("low", || {
            // SAFETY: plain syscalls reading the calling thread's priorities.
            unsafe {
                let tid = libc::gettid();
                let nice = libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t);
                let io = libc::syscall(libc::SYS_ioprio_get, IOPRIO_WHO_PROCESS, tid);
                (nice, io)
            }
        })
        .unwrap()
        .join()
        .unwrap();
        assert!(nice >= 10, "nice {nice}");
        assert_eq!(io, libc::c_long::from(LOW_IO_PRIORITY), "ioprio {io:#x}");
    }
}
