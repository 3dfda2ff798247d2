//! One database's background timetable: when its next regular integrity check, full check,
//! dbstat scan and backup-directory scan are due, and whether one of its jobs is running.
//!
//! First runs are staggered: a database created at `position` (0..1) of a batch has its first
//! regular check at that fraction of `interval`, its first full check at that fraction of
//! `full_interval`, and its first probes at that fraction of the probe interval (or of 50 ms
//! per database in the batch, when that is shorter), so ten thousand databases added together
//! never start their O(size) checks at once and are first probed over one interval.

use std::time::{Duration, Instant};

use crate::config::{IntegrityMode, Settings};

/// How often each database's backups are re-read from the backup directory (and right after
/// each backup, restore and recovery).
const BACKUP_SCAN_INTERVAL: Duration = Duration::from_secs(60);

/// A unit of background work on one database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// An integrity check of this mode (plus the migrations read).
    Integrity(IntegrityMode),
    /// The dbstat scans.
    Dbstat,
}

/// Which kinds of background work are enabled for this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enabled {
    /// Integrity checks or the migrations read.
    pub checks: bool,
    /// The dbstat or tables scans.
    pub stats: bool,
}

/// One database's background timetable.
#[derive(Debug, Clone)]
pub struct Schedule {
    next_check: Instant,
    next_full: Instant,
    next_dbstat: Instant,
    next_backup_scan: Instant,
    next_probe: Instant,
    running: bool,
    /// When each custom query (in `queries:` order) runs next.
    next_queries: Vec<Instant>,
    /// Whether a run of this database's due custom queries is under way.
    queries_running: bool,
}

/// First probes of a batch of databases start at most this far apart, so a handful of
/// databases is probed at once and a fleet of thousands spreads its first probes over their
/// interval.
const PROBE_SPACING: Duration = Duration::from_millis(50);

impl Schedule {
    /// A timetable, made at `now`, whose first runs sit at `position` (0..1) of their stagger
    /// windows.
    pub fn staggered(settings: &Settings, position: f64, batch: usize, now: Instant) -> Schedule {
        let ic = &settings.integrity_check;
        let window = ic.interval.0;
        let probes = settings
            .probes
            .interval
            .0
            .min(PROBE_SPACING * batch.max(1) as u32);
        Schedule {
            next_check: now + window.mul_f64(position),
            next_full: now + ic.full_interval.0.mul_f64(position),
            next_dbstat: now + window.mul_f64(position),
            next_backup_scan: now,
            next_probe: now + probes.mul_f64(position),
            running: false,
            next_queries: settings
                .queries
                .0
                .iter()
                .map(|q| {
                    now + q
                        .interval
                        .0
                        .min(PROBE_SPACING * batch.max(1) as u32)
                        .mul_f64(position)
                })
                .collect(),
            queries_running: false,
        }
    }

    /// The custom queries (indexes into `queries:`) due at `now`, advancing each one's next
    /// run by its interval and marking them running until [`Schedule::queries_finished`];
    /// empty while a run is under way. Custom queries are not jobs: they run beside the
    /// integrity check and the dbstat scans, each bounded by its own timeout.
    pub fn queries_due(&mut self, settings: &Settings, now: Instant) -> Vec<usize> {
        let queries = &settings.queries.0;
        if self.queries_running {
            return Vec::new();
        }
        self.next_queries.resize(queries.len(), now);
        let due: Vec<usize> = (0..queries.len())
            .filter(|&i| now >= self.next_queries[i])
            .collect();
        for &i in &due {
            self.next_queries[i] = now + queries[i].interval.0;
        }
        self.queries_running = !due.is_empty();
        due
    }

    /// The run started by [`Schedule::queries_due`] has ended.
    pub fn queries_finished(&mut self) {
        self.queries_running = false;
    }

    /// Whether the probes are due at `now`; if so, the next run is set one interval later.
    pub fn probe_due(&mut self, settings: &Settings, now: Instant) -> bool {
        if now < self.next_probe {
            return false;
        }
        self.next_probe = now + settings.probes.interval.0;
        true
    }

    /// Whether the backup directory is due for a re-read at `now`; if so, the next one is set.
    pub fn backup_scan_due(&mut self, now: Instant) -> bool {
        if now < self.next_backup_scan {
            return false;
        }
        self.next_backup_scan = now + BACKUP_SCAN_INTERVAL;
        true
    }

    /// The job due at `now`, if any, advancing its next time and marking the database busy
    /// until [`Schedule::finished`]. A full check, when due, replaces the regular one.
    pub fn next_job(&mut self, settings: &Settings, enabled: Enabled, now: Instant) -> Option<Job> {
        if self.running {
            return None;
        }
        let ic = &settings.integrity_check;
        let job = if enabled.checks && now >= self.next_full {
            self.next_full = now + ic.full_interval.0;
            self.next_check = now + ic.interval.0;
            Job::Integrity(IntegrityMode::Full)
        } else if enabled.checks && now >= self.next_check {
            self.next_check = now + ic.interval.0;
            Job::Integrity(ic.mode)
        } else if enabled.stats && now >= self.next_dbstat {
            self.next_dbstat = now + settings.dbstat.interval.0;
            Job::Dbstat
        } else {
            return None;
        };
        self.running = true;
        Some(job)
    }

    /// The job started by [`Schedule::next_job`] has ended.
    pub fn finished(&mut self) {
        self.running = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: Enabled = Enabled {
        checks: true,
        stats: true,
    };

    fn settings() -> Settings {
        Settings::default()
    }

    #[test]
    fn first_checks_are_spread_over_the_window() {
        let s = settings();
        let t0 = Instant::now();
        let window = s.integrity_check.interval.0;
        // Position 0 is due at once (a full check first), position 0.5 not before half the window.
        let mut first = Schedule::staggered(&s, 0.0, 1, t0);
        assert_eq!(
            first.next_job(&s, ALL, t0),
            Some(Job::Integrity(IntegrityMode::Full))
        );
        let mut middle = Schedule::staggered(&s, 0.5, 1, t0);
        assert_eq!(middle.next_job(&s, ALL, t0 + window.mul_f64(0.49)), None);
        assert_eq!(
            middle.next_job(&s, ALL, t0 + window.mul_f64(0.51)),
            Some(Job::Integrity(s.integrity_check.mode))
        );
    }

    #[test]
    fn one_job_at_a_time_then_the_regular_cadence() {
        let s = settings();
        let t0 = Instant::now();
        let mut t = Schedule::staggered(&s, 0.0, 1, t0);
        assert!(t.next_job(&s, ALL, t0).is_some());
        assert_eq!(t.next_job(&s, ALL, t0), None, "still running");
        t.finished();
        // The full check also reset the regular one: next is dbstat, then nothing until interval.
        assert_eq!(t.next_job(&s, ALL, t0), Some(Job::Dbstat));
        t.finished();
        assert_eq!(t.next_job(&s, ALL, t0), None);
        let later = t0 + s.integrity_check.interval.0;
        assert_eq!(
            t.next_job(&s, ALL, later),
            Some(Job::Integrity(s.integrity_check.mode))
        );
    }

    #[test]
    fn disabled_work_is_never_due() {
        let s = settings();
        let t0 = Instant::now();
        let mut t = Schedule::staggered(&s, 0.0, 1, t0);
        let none = Enabled {
            checks: false,
            stats: false,
        };
        assert_eq!(t.next_job(&s, none, t0 + Duration::from_secs(86_400)), None);
    }

    #[test]
    fn first_probes_of_a_small_batch_come_at_once_and_of_a_fleet_over_the_interval() {
        let s = settings();
        let t0 = Instant::now();
        let mut small = Schedule::staggered(&s, 0.5, 4, t0);
        assert!(!small.probe_due(&s, t0));
        assert!(
            small.probe_due(&s, t0 + Duration::from_millis(100)),
            "4 databases: within 200 ms"
        );
        let mut fleet = Schedule::staggered(&s, 0.5, 10_000, t0);
        let half = s.probes.interval.0 / 2;
        assert!(!fleet.probe_due(&s, t0 + half - Duration::from_millis(10)));
        assert!(fleet.probe_due(&s, t0 + half));
        assert!(
            !fleet.probe_due(&s, t0 + half + Duration::from_secs(1)),
            "once per interval"
        );
    }

    #[test]
    fn custom_queries_come_each_on_its_own_interval_one_run_at_a_time() {
        let mut s = settings();
        let query = |name: &str, secs: u64| crate::config::CustomQuery {
            name: name.into(),
            help: String::new(),
            sql: "SELECT 1 AS v".into(),
            values: vec!["v".into()],
            labels: Vec::new(),
            kind: crate::config::QueryType::Gauge,
            interval: crate::config::HumanDuration(Duration::from_secs(secs)),
            timeout: crate::config::HumanDuration(Duration::from_secs(1)),
        };
        s.queries.0 = vec![query("a", 10), query("b", 30)];
        let t0 = Instant::now();
        let mut t = Schedule::staggered(&s, 0.0, 1, t0);
        assert_eq!(t.queries_due(&s, t0), [0, 1]);
        assert!(
            t.queries_due(&s, t0 + Duration::from_secs(20)).is_empty(),
            "still running"
        );
        t.queries_finished();
        assert_eq!(t.queries_due(&s, t0 + Duration::from_secs(20)), [0]);
        t.queries_finished();
        assert!(t.queries_due(&s, t0 + Duration::from_secs(25)).is_empty());
        assert_eq!(t.queries_due(&s, t0 + Duration::from_secs(30)), [0, 1]);
    }

    #[test]
    fn backup_scans_come_once_a_minute() {
        let s = settings();
        let t0 = Instant::now();
        let mut t = Schedule::staggered(&s, 0.3, 1, t0);
        assert!(t.backup_scan_due(t0));
        assert!(!t.backup_scan_due(t0 + Duration::from_secs(59)));
        assert!(t.backup_scan_due(t0 + Duration::from_secs(60)));
    }
}
