//! The health model: a status (healthy, warning, critical, unknown) and the active
//! recommendations, decided from one database's facts and its configured thresholds.
//!
//! One function, [`assess`], decides; `/metrics`, `/health`, the landing page, the control API
//! and `sqlite_exporter check` all show its result, so they cannot disagree.

use serde::Serialize;

use crate::checks::Checks;
use crate::collect::series::{flag, Gauge, Series};
use crate::collect::Facts;
use crate::config::{human_size, Thresholds};
use crate::sqlite::connection::OpenError;

/// Overall status. Ordered by how bad it is, so the worst of several is their maximum: a known
/// problem (warning, critical) outranks "could not tell" (unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Every check passed and nothing is recommended.
    Healthy,
    /// A check could not complete and nothing worse is known.
    Unknown,
    /// A recommendation is active or a probe was slower than `unhealthy_latency`.
    Warning,
    /// Integrity or foreign-key check failed, a required table is missing, or the file is
    /// unreadable or not a database.
    Critical,
}

impl Status {
    /// Every status, in the order `sqlite_health_status` lists them.
    pub const ALL: [Status; 4] = [
        Status::Healthy,
        Status::Warning,
        Status::Critical,
        Status::Unknown,
    ];

    /// The `status` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Healthy => "healthy",
            Status::Unknown => "unknown",
            Status::Warning => "warning",
            Status::Critical => "critical",
        }
    }

    /// Exit code of `sqlite_exporter check` (the monitoring-plugin convention).
    pub fn exit_code(self) -> i32 {
        match self {
            Status::Healthy => 0,
            Status::Warning => 1,
            Status::Critical => 2,
            Status::Unknown => 3,
        }
    }
}

/// A recommended action (`sqlite_recommendation{recommendation}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Recommendation {
    /// WAL above `wal_checkpoint_bytes`.
    Checkpoint,
    /// WAL above `wal_critical_bytes`.
    CheckpointNow,
    /// Utilization below `min_utilization` or free ratio above `max_free_ratio`.
    Vacuum,
    /// Database above `archive_bytes`.
    Archive,
    /// Read probe slower than `slow_query`.
    CheckIndexes,
    /// Write probe slower than `slow_write`.
    OptimizeWrites,
    /// Fewer than `min_indexes` indexes.
    AddIndexes,
    /// Newest verified backup older than `backup_max_age`, or none.
    Backup,
}

impl Recommendation {
    /// Every recommendation, in the order `sqlite_recommendation` lists them.
    pub const ALL: [Recommendation; 8] = [
        Recommendation::Checkpoint,
        Recommendation::CheckpointNow,
        Recommendation::Vacuum,
        Recommendation::Archive,
        Recommendation::CheckIndexes,
        Recommendation::OptimizeWrites,
        Recommendation::AddIndexes,
        Recommendation::Backup,
    ];

    /// The `recommendation` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Recommendation::Checkpoint => "checkpoint",
            Recommendation::CheckpointNow => "checkpoint_now",
            Recommendation::Vacuum => "vacuum",
            Recommendation::Archive => "archive",
            Recommendation::CheckIndexes => "check_indexes",
            Recommendation::OptimizeWrites => "optimize_writes",
            Recommendation::AddIndexes => "add_indexes",
            Recommendation::Backup => "backup",
        }
    }
}

/// An active recommendation and the sentence that explains it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Advice {
    /// Which one.
    pub recommendation: Recommendation,
    /// Why, with the figures.
    pub message: String,
}

/// The verdict on one database.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assessment {
    /// Overall status.
    pub status: Status,
    /// Active recommendations.
    pub recommendations: Vec<Advice>,
    /// What made the status worse than healthy, other than recommendations.
    pub problems: Vec<String>,
}

/// `sqlite_health_status{status}`.
pub const STATUS: Gauge = Gauge {
    name: "sqlite_health_status",
    help: "Health status of the database; the current status is 1, the others 0.",
    labels: &["database", "status"],
};

/// `sqlite_recommendation{recommendation}`.
pub const RECOMMENDATION: Gauge = Gauge {
    name: "sqlite_recommendation",
    help: "1 while the recommendation is active, else 0.",
    labels: &["database", "recommendation"],
};

impl Assessment {
    /// Whether `r` is active.
    pub fn recommends(&self, r: Recommendation) -> bool {
        self.recommendations.iter().any(|a| a.recommendation == r)
    }

    /// Writes the status series, and the recommendations when the database could be read
    /// (`up`): recommendations about a file that cannot be read would be made up. Only the
    /// active recommendations are written unless `all` (full detail) asks for the inactive
    /// ones at 0 too.
    pub fn series(&self, database: &str, up: bool, all: bool, out: &mut dyn Series) {
        for s in Status::ALL {
            out.set(&STATUS, &[database, s.as_str()], flag(self.status == s));
        }
        if !up {
            return;
        }
        for r in Recommendation::ALL {
            let active = self.recommends(r);
            if active || all {
                out.set(&RECOMMENDATION, &[database, r.as_str()], flag(active));
            }
        }
    }
}

/// Decides status and recommendations. `open_error` is why the database could not be read at
/// this scrape, if it could not.
pub fn assess(
    open_error: Option<&OpenError>,
    facts: &Facts,
    checks: &Checks,
    t: &Thresholds,
) -> Assessment {
    let mut a = Assessment {
        status: Status::Healthy,
        recommendations: Vec::new(),
        problems: Vec::new(),
    };
    let worse = |a: &mut Assessment, s: Status, why: String| {
        a.status = a.status.max(s);
        a.problems.push(why);
    };
    if let Some(i) = checks.integrity.as_ref().filter(|i| !i.ok) {
        let first = i.messages.first().map(String::as_str).unwrap_or("");
        worse(
            &mut a,
            Status::Critical,
            format!(
                "{} integrity check failed ({} problems): {first}",
                i.mode.as_str(),
                i.errors
            ),
        );
    }
    if let Some(n) = checks.foreign_key_violations().filter(|n| *n > 0) {
        worse(
            &mut a,
            Status::Critical,
            format!("{n} foreign key violations"),
        );
    }
    if let Some(why) = &checks.integrity_incomplete {
        worse(&mut a, Status::Unknown, why.clone());
    }
    if let Some(e) = open_error {
        let status = match e {
            OpenError::Locked | OpenError::Other(_) => Status::Unknown,
            _ => Status::Critical,
        };
        worse(&mut a, status, format!("cannot read database: {e}"));
        return a;
    }
    recommend(&mut a, facts, checks, t);
    if !a.recommendations.is_empty() {
        a.status = a.status.max(Status::Warning);
    }
    if let Some(why) = checkpoint_starved(facts, t) {
        worse(&mut a, Status::Warning, why);
    }
    let slow = t.unhealthy_latency.0.as_secs_f64();
    let p = &facts.performance;
    for (what, v) in [("read", p.query_seconds), ("write", p.write_seconds)] {
        if let Some(v) = v.filter(|v| *v > slow) {
            worse(
                &mut a,
                Status::Warning,
                format!("{what} probe took {v:.3}s (unhealthy above {slow}s)"),
            );
        }
    }
    if let Some(r) = facts
        .required_tables
        .as_ref()
        .filter(|r| !r.missing.is_empty())
    {
        worse(
            &mut a,
            Status::Critical,
            format!("required tables missing: {}", r.missing.join(", ")),
        );
    }
    if let Some(d) = checks.drill.as_ref().filter(|d| !d.passed) {
        // A backup that cannot be restored is no backup, but the database itself is fine.
        worse(
            &mut a,
            Status::Warning,
            format!(
                "restore drill of backup {} failed: {}",
                d.backup,
                d.problems.join("; ")
            ),
        );
    }
    a
}

/// "Checkpoint starved": frames waiting to be checkpointed above `wal_critical_bytes`, none
/// backfilled for `checkpoint_stall` (15 minutes by default, as in the
/// `SQLiteCheckpointStarved` alert), while the WAL grew.
fn checkpoint_starved(facts: &Facts, t: &Thresholds) -> Option<String> {
    let p = &facts.performance;
    let (index, stall) = (p.wal_index?, p.checkpoint_stall?);
    let pending = u64::from(index.pending()) * facts.size.page_size_bytes?;
    (pending > t.wal_critical_bytes.0 && stall.seconds >= t.checkpoint_stall.0.as_secs_f64() && stall.grew(&index))
        .then(|| {
            format!(
                "checkpoint starved: {} of WAL waiting to be checkpointed (above {}), none copied back for {:.0} min while the WAL grew; a long-lived reader or a busy writer holds it up",
                human_size(pending),
                human_size(t.wal_critical_bytes.0),
                stall.seconds / 60.0
            )
        })
}

fn recommend(a: &mut Assessment, facts: &Facts, checks: &Checks, t: &Thresholds) {
    let mut add = |r: Recommendation, message: String| {
        a.recommendations.push(Advice {
            recommendation: r,
            message,
        })
    };
    if let Some(wal) = facts.wal.wal_bytes {
        if wal > t.wal_checkpoint_bytes.0 {
            add(
                Recommendation::Checkpoint,
                format!(
                    "WAL is {} (above {}), run a checkpoint to merge it into the database",
                    human_size(wal),
                    human_size(t.wal_checkpoint_bytes.0)
                ),
            );
        }
        if wal > t.wal_critical_bytes.0 {
            add(
                Recommendation::CheckpointNow,
                format!(
                    "WAL is {} (above {}), checkpoint now (TRUNCATE)",
                    human_size(wal),
                    human_size(t.wal_critical_bytes.0)
                ),
            );
        }
    }
    let size = &facts.size;
    let low_use = size.utilization_ratio().filter(|u| *u < t.min_utilization);
    let high_free = size.free_ratio().filter(|f| *f > t.max_free_ratio);
    if let Some(u) = low_use {
        add(
            Recommendation::Vacuum,
            format!(
                "page utilization is {:.1}% (below {:.0}%), consider VACUUM",
                u * 100.0,
                t.min_utilization * 100.0
            ),
        );
    } else if let Some(f) = high_free {
        add(
            Recommendation::Vacuum,
            format!(
                "{:.1}% of pages are free (above {:.0}%), VACUUM recommended",
                f * 100.0,
                t.max_free_ratio * 100.0
            ),
        );
    }
    if let Some(bytes) = size.database_bytes.filter(|b| *b > t.archive_bytes.0) {
        add(
            Recommendation::Archive,
            format!(
                "database is {} (above {}), consider archiving old data",
                human_size(bytes),
                human_size(t.archive_bytes.0)
            ),
        );
    }
    let p = &facts.performance;
    let probes = [
        (
            p.query_seconds,
            t.slow_query.0,
            Recommendation::CheckIndexes,
            "read",
            "check indexes",
        ),
        (
            p.write_seconds,
            t.slow_write.0,
            Recommendation::OptimizeWrites,
            "write",
            "consider optimizing writes",
        ),
    ];
    for (seconds, slow, r, probe, advice) in probes {
        if let Some(v) = seconds.filter(|v| *v > slow.as_secs_f64()) {
            let ms = slow.as_millis();
            add(
                r,
                format!(
                    "{probe} probe took {:.1} ms (above {ms} ms), {advice}",
                    v * 1e3
                ),
            );
        }
    }
    if let Some(o) = facts
        .schema
        .objects
        .filter(|o| o.tables > 0 && o.indexes < t.min_indexes)
    {
        add(
            Recommendation::AddIndexes,
            format!(
                "{} indexes (fewer than {}), query performance may be suboptimal",
                o.indexes, t.min_indexes
            ),
        );
    }
    if let Some(b) = &checks.backups {
        let max = t.backup_max_age.0.as_secs_f64();
        match b.age_seconds(crate::unix_now()) {
            None => add(Recommendation::Backup, "no verified backup found".into()),
            Some(age) if age > max => add(
                Recommendation::Backup,
                format!(
                    "newest verified backup is {:.1} h old (above {:.0} h)",
                    age / 3600.0,
                    max / 3600.0
                ),
            ),
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::SchemaObjects;

    fn healthy_facts() -> Facts {
        let mut f = Facts::default();
        f.size.pages = Some(100);
        f.size.freelist_pages = Some(0);
        f.size.database_bytes = Some(409_600);
        f.wal.wal_bytes = Some(0);
        f.schema.objects = Some(SchemaObjects {
            tables: 2,
            indexes: 4,
            views: 0,
            triggers: 0,
        });
        f.performance.query_seconds = Some(0.001);
        f.performance.write_seconds = Some(0.001);
        f
    }

    #[test]
    fn checkpoints_stalled_for_15_minutes_under_a_growing_backlog_are_a_warning() {
        use crate::collect::wal_index::CheckpointStall;
        use crate::sqlite::wal_index::WalIndex;
        let t = Thresholds::default();
        let starved = |pending_frames: u32, seconds: f64, grew: bool| {
            let mut f = healthy_facts();
            f.size.page_size_bytes = Some(4096);
            f.performance.wal_index = Some(WalIndex {
                max_frame: 100 + pending_frames,
                backfilled: 100,
                oldest_read_mark: Some(100),
                checkpoint_sequence: Some(7),
            });
            f.performance.checkpoint_stall = Some(CheckpointStall {
                since_unix: 0.0,
                seconds,
                backfilled: 100,
                max_frame_then: if grew { 100 } else { 100 + pending_frames },
            });
            assess(None, &f, &Checks::default(), &t)
        };
        // 10 MiB is 2,560 frames of 4 KiB.
        let a = starved(3000, 16.0 * 60.0, true);
        assert_eq!(a.status, Status::Warning);
        assert!(
            a.problems.iter().any(|p| p.starts_with(
                "checkpoint starved: 11.7 MiB of WAL waiting to be checkpointed (above 10.0 MiB), none copied back for 16 min"
            )),
            "{:?}",
            a.problems
        );
        for (frames, seconds, grew) in [
            (2000, 16.0 * 60.0, true),  // under the threshold
            (3000, 14.0 * 60.0, true),  // not long enough
            (3000, 16.0 * 60.0, false), // nothing written meanwhile: nothing gets worse
        ] {
            let a = starved(frames, seconds, grew);
            assert_eq!(
                a.status,
                Status::Healthy,
                "{frames} {seconds} {grew}: {:?}",
                a.problems
            );
        }
    }

    #[test]
    fn sizes_in_messages_are_for_people() {
        let t = Thresholds::default();
        let mut f = healthy_facts();
        f.wal.wal_bytes = Some(4_152_992);
        f.size.database_bytes = Some(101 << 20);
        let a = assess(None, &f, &Checks::default(), &t);
        let messages: Vec<&str> = a
            .recommendations
            .iter()
            .map(|r| r.message.as_str())
            .collect();
        assert!(
            messages.contains(
                &"WAL is 4.0 MiB (above 1.0 MiB), run a checkpoint to merge it into the database"
            ),
            "{messages:?}"
        );
        assert!(
            messages
                .contains(&"database is 101.0 MiB (above 100.0 MiB), consider archiving old data"),
            "{messages:?}"
        );
    }

    #[test]
    fn each_threshold_raises_its_recommendation() {
        let t = Thresholds::default();
        let c = Checks::default();
        assert_eq!(
            assess(None, &healthy_facts(), &c, &t).status,
            Status::Healthy
        );
        type Change = Box<dyn Fn(&mut Facts)>;
        let cases: Vec<(Change, Recommendation)> = vec![
            (
                Box::new(|f| f.wal.wal_bytes = Some(2 << 20)),
                Recommendation::Checkpoint,
            ),
            (
                Box::new(|f| f.wal.wal_bytes = Some(11 << 20)),
                Recommendation::CheckpointNow,
            ),
            (
                Box::new(|f| f.size.freelist_pages = Some(40)),
                Recommendation::Vacuum,
            ),
            (
                Box::new(|f| f.size.database_bytes = Some(101 << 20)),
                Recommendation::Archive,
            ),
            (
                Box::new(|f| f.performance.query_seconds = Some(0.051)),
                Recommendation::CheckIndexes,
            ),
            (
                Box::new(|f| f.performance.write_seconds = Some(0.021)),
                Recommendation::OptimizeWrites,
            ),
            (
                Box::new(|f| f.schema.objects.as_mut().unwrap().indexes = 3),
                Recommendation::AddIndexes,
            ),
        ];
        for (change, r) in cases {
            let mut f = healthy_facts();
            change(&mut f);
            let a = assess(None, &f, &c, &t);
            assert!(a.recommends(r), "{r:?} not raised: {a:?}");
            assert_eq!(a.status, Status::Warning);
        }
    }

    #[test]
    fn integrity_failure_is_critical_and_locked_is_unknown() {
        let t = Thresholds::default();
        let failed = crate::checks::IntegrityResult {
            mode: crate::checks::integrity::Mode::Full,
            ok: false,
            errors: 1,
            messages: vec!["row 3 missing from index i".into()],
            foreign_key_violations: Some(0),
            duration_seconds: 0.1,
            finished_at: 0.0,
        };
        let c = Checks {
            integrity: Some(failed),
            ..Default::default()
        };
        assert_eq!(
            assess(None, &healthy_facts(), &c, &t).status,
            Status::Critical
        );
        let d = Checks::default();
        assert_eq!(
            assess(Some(&OpenError::Locked), &Facts::default(), &d, &t).status,
            Status::Unknown
        );
        assert_eq!(
            assess(Some(&OpenError::NotADatabase), &Facts::default(), &d, &t).status,
            Status::Critical
        );
    }

    #[test]
    fn slow_probe_is_a_warning() {
        let mut f = healthy_facts();
        f.performance.query_seconds = Some(1.5);
        let a = assess(None, &f, &Checks::default(), &Thresholds::default());
        assert_eq!(a.status, Status::Warning);
        assert_eq!(a.problems.len(), 1);
    }

    #[test]
    fn a_missing_required_table_is_critical() {
        let mut f = healthy_facts();
        let t = Thresholds::default();
        f.required_tables = Some(crate::collect::required_tables::RequiredTables {
            required: vec!["users".into(), "orders".into()],
            missing: vec![],
            cookie: 1,
        });
        assert_eq!(
            assess(None, &f, &Checks::default(), &t).status,
            Status::Healthy
        );
        f.required_tables.as_mut().unwrap().missing = vec!["orders".into()];
        let a = assess(None, &f, &Checks::default(), &t);
        assert_eq!(a.status, Status::Critical);
        assert_eq!(
            a.problems,
            vec!["required tables missing: orders".to_string()]
        );
    }

    #[test]
    fn a_failed_restore_drill_is_a_warning() {
        use crate::checks::drill::DrillResult;
        let drill = |passed: bool| {
            let checks = Checks {
                drill: Some(DrillResult {
                    passed,
                    backup: "app-2024-01-01_00-00-00.db".into(),
                    backup_taken_at: 0.0,
                    finished_at: 60.0,
                    duration_seconds: 1.0,
                    problems: if passed {
                        vec![]
                    } else {
                        vec!["sha256 mismatch".into()]
                    },
                    compared: vec!["sha256"],
                    not_recorded: vec![],
                }),
                ..Checks::default()
            };
            assess(None, &healthy_facts(), &checks, &Thresholds::default())
        };
        let failed = drill(false);
        assert_eq!(failed.status, Status::Warning);
        assert_eq!(
            failed.problems,
            vec!["restore drill of backup app-2024-01-01_00-00-00.db failed: sha256 mismatch"]
        );
        assert_eq!(drill(true).status, Status::Healthy);
    }
}
