//! Results of the background checks, cached per database and read by every scrape.
//!
//! A metric whose check has not run yet is absent (its field is `None`), never a made-up
//! value. Each result carries when it was taken, and `/metrics` says in HELP that it is cached.

pub mod timetable;

pub mod backups;
pub mod custom_queries;
pub mod dbstat;
pub mod drill;
pub mod integrity;
pub mod migration_files;
pub mod migrations;

use std::collections::BTreeMap;
use std::time::UNIX_EPOCH;

use serde::Serialize;

use crate::checks::dbstat::TableStats;
use crate::checks::integrity::{IntegrityOutcome, IntegrityReport, Mode};
use crate::checks::migrations::{Framework, MigrationStats};
use crate::collect::series::{flag, Gauge, Series};
use crate::sqlite::connection::OpenError;

/// The last completed integrity check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntegrityResult {
    /// quick or full.
    pub mode: Mode,
    /// No problem found.
    pub ok: bool,
    /// Problem rows reported (capped).
    pub errors: u64,
    /// The first problems, verbatim.
    pub messages: Vec<String>,
    /// Foreign-key violations; `None` when they could not be checked.
    pub foreign_key_violations: Option<u64>,
    /// How long the run took.
    pub duration_seconds: f64,
    /// When it finished (Unix seconds).
    pub finished_at: f64,
}

impl From<&IntegrityReport> for IntegrityResult {
    fn from(r: &IntegrityReport) -> Self {
        IntegrityResult {
            mode: r.mode,
            ok: r.ok,
            errors: r.errors,
            messages: r.messages.clone(),
            foreign_key_violations: r.foreign_key_violations,
            duration_seconds: r.duration.as_secs_f64(),
            finished_at: r
                .finished_at
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
        }
    }
}

/// One table's figures (`tables` collector).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableFigures {
    /// Table name.
    pub table: String,
    /// `count(*)`.
    pub rows: u64,
    /// Bytes of its b-tree.
    pub size_bytes: u64,
}

impl From<&TableStats> for TableFigures {
    fn from(t: &TableStats) -> Self {
        TableFigures {
            table: t.name.clone(),
            rows: t.rows,
            size_bytes: t.size_bytes,
        }
    }
}

/// Migrations table figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MigrationFigures {
    /// The tool that owns the table (the `framework` label).
    pub framework: Framework,
    /// Applied migrations.
    pub applied: u64,
    /// Failed migrations, when the table records failures.
    pub failed: Option<u64>,
    /// Newest applied time (Unix seconds).
    pub last_applied: Option<f64>,
    /// Migration files not applied, when `migrations.dir` is set and the tool's file names
    /// tell.
    pub pending: Option<u64>,
    /// Applied migrations whose file no longer matches the recorded checksum, when
    /// `migrations.dir` is set and the tool records a checksum.
    pub drifted: Option<u64>,
}

impl From<&MigrationStats> for MigrationFigures {
    fn from(m: &MigrationStats) -> Self {
        MigrationFigures {
            framework: m.framework,
            applied: m.applied,
            failed: m.failed,
            last_applied: m.last_applied,
            pending: None,
            drifted: None,
        }
    }
}

/// How a background collector did at its last run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunOutcome {
    /// Whether it completed.
    pub success: bool,
    /// How long it took.
    pub duration_seconds: f64,
    /// Why not, when it did not.
    pub error: Option<String>,
}

/// Everything the background checks know about one database.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Checks {
    /// The last completed integrity check.
    pub integrity: Option<IntegrityResult>,
    /// Why the last integrity run did not complete, if it did not (interrupted, locked, ...).
    pub integrity_incomplete: Option<String>,
    /// `SELECT sum(unused) FROM dbstat`.
    pub unused_bytes: Option<u64>,
    /// Per-table figures.
    pub tables: Option<Vec<TableFigures>>,
    /// Migrations table figures, one per migrations table found (none when there is none).
    pub migrations: Vec<MigrationFigures>,
    /// The migrations tables found in the schema, and the schema cookie they were found at:
    /// while the cookie is unchanged they are not looked for again.
    #[serde(skip)]
    pub migration_tables: Option<migrations::FoundTables>,
    /// Last outcome per background collector.
    pub runs: BTreeMap<&'static str, RunOutcome>,
    /// The backups in the backup directory, when it exists (or scheduled backups are on).
    pub backups: Option<BackupSummary>,
    /// The last run of each custom query, by query name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub custom_queries: BTreeMap<String, custom_queries::QueryResult>,
    /// The last completed restore drill of the newest backup.
    pub drill: Option<drill::DrillResult>,
}

/// What the backup directory holds for one database.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BackupSummary {
    /// Backups that passed verification ([`backups`]); only these count.
    pub verified: u64,
    /// Backups not verified yet, or whose verification could not finish.
    pub unverified: u64,
    /// Backups that failed verification.
    pub damaged: u64,
    /// The newest verified backup.
    pub newest_file: Option<String>,
    /// When its snapshot was taken (Unix seconds; never later than the file's mtime).
    pub newest_created_at: Option<f64>,
    /// Its size in bytes.
    pub newest_size_bytes: Option<u64>,
}

impl BackupSummary {
    /// Summarises a listing (newest first) and the verdict on each of its backups.
    pub fn from_list(
        list: &[crate::backup_dir::BackupInfo],
        verdicts: &[backups::Verdict],
    ) -> Self {
        let mut summary = BackupSummary::default();
        for (info, verdict) in list.iter().zip(verdicts) {
            match verdict.state {
                backups::BackupState::Verified => summary.verified += 1,
                backups::BackupState::Unverified => summary.unverified += 1,
                backups::BackupState::Damaged => summary.damaged += 1,
            }
            if verdict.state == backups::BackupState::Verified && summary.newest_file.is_none() {
                summary.newest_file = Some(info.file_name.clone());
                summary.newest_created_at = Some(info.taken_at_unix);
                summary.newest_size_bytes = Some(info.meta.size);
            }
        }
        summary
    }

    /// How many backups are in `state`.
    pub fn files(&self, state: backups::BackupState) -> u64 {
        match state {
            backups::BackupState::Verified => self.verified,
            backups::BackupState::Unverified => self.unverified,
            backups::BackupState::Damaged => self.damaged,
        }
    }

    /// Seconds since the newest verified backup; `None` when there is none.
    pub fn age_seconds(&self, now: f64) -> Option<f64> {
        self.newest_created_at.map(|t| (now - t).max(0.0))
    }
}

impl Checks {
    /// Records an integrity outcome: a completed run replaces the last result; a run that could
    /// not complete keeps the last result and says why (status unknown, not success). A file
    /// that is not a database (or too damaged to open) counts as a failed check.
    pub fn record_integrity(
        &mut self,
        outcome: &IntegrityOutcome,
        duration_seconds: f64,
    ) -> RunOutcome {
        let (success, error) = match outcome {
            IntegrityOutcome::Completed(r) => {
                self.integrity = Some(r.into());
                self.integrity_incomplete = None;
                (true, None)
            }
            IntegrityOutcome::Failed(e @ (OpenError::NotADatabase | OpenError::Corrupt(_))) => {
                self.integrity = Some(IntegrityResult {
                    mode: Mode::Quick,
                    ok: false,
                    errors: 1,
                    messages: vec![e.to_string()],
                    foreign_key_violations: None,
                    duration_seconds,
                    finished_at: crate::unix_now(),
                });
                self.integrity_incomplete = None;
                (true, None)
            }
            IntegrityOutcome::Failed(_) | IntegrityOutcome::Interrupted { .. } => {
                let why = outcome.to_string();
                self.integrity_incomplete = Some(why.clone());
                (false, Some(why))
            }
        };
        RunOutcome {
            success,
            duration_seconds,
            error,
        }
    }

    /// Renews the last passing check's time, for files that have not changed since it ran: its
    /// verdict speaks for them as they are now. Returns false (changing nothing) when there is
    /// no passing check to renew.
    pub fn confirm_integrity(&mut self, now_unix: f64) -> bool {
        match &mut self.integrity {
            Some(r) if r.ok && self.integrity_incomplete.is_none() => {
                r.finished_at = now_unix;
                true
            }
            _ => false,
        }
    }

    /// `Some(ok)` of the last completed integrity check.
    pub fn integrity_ok(&self) -> Option<bool> {
        self.integrity.as_ref().map(|i| i.ok)
    }

    /// Foreign-key violations of the last completed check.
    pub fn foreign_key_violations(&self) -> Option<u64> {
        self.integrity
            .as_ref()
            .and_then(|i| i.foreign_key_violations)
    }
}

const DB: &[&str] = &["database"];
const TABLE: &[&str] = &["database", "table"];

/// `sqlite_integrity_check_success`.
pub const INTEGRITY_SUCCESS: Gauge = Gauge {
    name: "sqlite_integrity_check_success",
    help:
        "1 if the last integrity check found no problems (cached from the last background check).",
    labels: DB,
};
/// `sqlite_integrity_check_errors`.
pub const INTEGRITY_ERRORS: Gauge = Gauge {
    name: "sqlite_integrity_check_errors",
    help: "Problem rows reported by the last integrity check, capped at 100 (cached from the last background check).",
    labels: DB,
};
/// `sqlite_integrity_check_last_run_timestamp_seconds`.
pub const INTEGRITY_LAST_RUN: Gauge = Gauge {
    name: "sqlite_integrity_check_last_run_timestamp_seconds",
    help: "Unix time the last completed integrity check finished, or renewed its passing verdict for files unchanged since.",
    labels: DB,
};
/// `sqlite_integrity_check_duration_seconds`.
pub const INTEGRITY_DURATION: Gauge = Gauge {
    name: "sqlite_integrity_check_duration_seconds",
    help: "Duration of the last completed integrity check (cached from the last background check).",
    labels: DB,
};
/// `sqlite_foreign_key_violations`.
pub const FOREIGN_KEYS: Gauge = Gauge {
    name: "sqlite_foreign_key_violations",
    help: "Rows reported by PRAGMA foreign_key_check (cached from the last background check).",
    labels: DB,
};
/// `sqlite_unused_bytes` (collector `dbstat`).
pub const UNUSED: Gauge = Gauge {
    name: "sqlite_unused_bytes",
    help: "Free bytes inside pages, SELECT sum(unused) FROM dbstat (cached from the last background dbstat scan).",
    labels: DB,
};
/// `sqlite_table_rows` (collector `tables`).
pub const TABLE_ROWS: Gauge = Gauge {
    name: "sqlite_table_rows",
    help: "Rows in the table, count(*) (cached from the last background tables scan).",
    labels: TABLE,
};
/// `sqlite_table_size_bytes` (collector `tables`).
pub const TABLE_SIZE: Gauge = Gauge {
    name: "sqlite_table_size_bytes",
    help: "Bytes of the table's b-tree pages, from dbstat (cached from the last background tables scan).",
    labels: TABLE,
};
/// The labels of the migrations series.
const FRAMEWORK: &[&str] = &["database", "framework"];
/// `sqlite_migrations_applied`.
pub const MIGRATIONS_APPLIED: Gauge = Gauge {
    name: "sqlite_migrations_applied",
    help: "Applied migrations in the migrations table (cached from the last background read).",
    labels: FRAMEWORK,
};
/// `sqlite_migrations_failed`.
pub const MIGRATIONS_FAILED: Gauge = Gauge {
    name: "sqlite_migrations_failed",
    help: "Migrations recorded as failed in the migrations table (cached from the last background read).",
    labels: FRAMEWORK,
};
/// `sqlite_migration_last_applied_timestamp_seconds`.
pub const MIGRATION_LAST: Gauge = Gauge {
    name: "sqlite_migration_last_applied_timestamp_seconds",
    help: "Unix time of the newest applied migration (cached from the last background read).",
    labels: FRAMEWORK,
};
/// `sqlite_migrations_pending`.
pub const MIGRATIONS_PENDING: Gauge = Gauge {
    name: "sqlite_migrations_pending",
    help: "Migration files in migrations.dir not applied to the database (cached from the last background read).",
    labels: FRAMEWORK,
};
/// `sqlite_migrations_drifted`.
pub const MIGRATIONS_DRIFTED: Gauge = Gauge {
    name: "sqlite_migrations_drifted",
    help: "Applied migrations whose file in migrations.dir no longer matches the checksum recorded when it was applied (cached from the last background read).",
    labels: FRAMEWORK,
};
/// `sqlite_backup_last_success_timestamp_seconds`.
pub const BACKUP_LAST: Gauge = Gauge {
    name: "sqlite_backup_last_success_timestamp_seconds",
    help: "Unix time of the newest verified backup in the backup directory, made by the exporter or found there; never taken from a file name in the future (cached from the last background scan).",
    labels: DB,
};
/// `sqlite_backup_last_size_bytes`.
pub const BACKUP_SIZE: Gauge = Gauge {
    name: "sqlite_backup_last_size_bytes",
    help: "Size of the newest verified backup (cached from the last scan).",
    labels: DB,
};
/// `sqlite_backup_files` (was `sqlite_backups`, which collided with the counter
/// `sqlite_backups_total` in OpenMetrics).
pub const BACKUP_FILES: Gauge = Gauge {
    name: "sqlite_backup_files",
    help: "Backup files in the backup directory by state: verified (sha256 matches the sidecar, or a found file passed quick_check), unverified (not yet or not verifiable), damaged (failed verification; never counted as a backup) (cached from the last background scan).",
    labels: &["database", "state"],
};

impl Checks {
    /// Writes the series of every cached result (nothing for a check that has not run).
    pub fn series(&self, database: &str, out: &mut dyn Series) {
        let mut one = |g: &'static Gauge, x: f64| out.set(g, &[database], x);
        if let Some(i) = &self.integrity {
            one(&INTEGRITY_SUCCESS, flag(i.ok));
            one(&INTEGRITY_ERRORS, i.errors as f64);
            one(&INTEGRITY_LAST_RUN, i.finished_at);
            one(&INTEGRITY_DURATION, i.duration_seconds);
            if let Some(n) = i.foreign_key_violations {
                one(&FOREIGN_KEYS, n as f64);
            }
        }
        if let Some(n) = self.unused_bytes {
            one(&UNUSED, n as f64);
        }
        if let Some(b) = &self.backups {
            if let Some(t) = b.newest_created_at {
                one(&BACKUP_LAST, t);
            }
            if let Some(n) = b.newest_size_bytes {
                one(&BACKUP_SIZE, n as f64);
            }
        }
        for m in &self.migrations {
            let labels = [database, m.framework.as_str()];
            let values = [
                (&MIGRATIONS_APPLIED, Some(m.applied as f64)),
                (&MIGRATIONS_FAILED, m.failed.map(|n| n as f64)),
                (&MIGRATION_LAST, m.last_applied),
                (&MIGRATIONS_PENDING, m.pending.map(|n| n as f64)),
                (&MIGRATIONS_DRIFTED, m.drifted.map(|n| n as f64)),
            ];
            for (gauge, value) in values {
                if let Some(v) = value {
                    out.set(gauge, &labels, v);
                }
            }
        }
        if let Some(b) = &self.backups {
            for state in backups::BackupState::ALL {
                out.set(
                    &BACKUP_FILES,
                    &[database, state.as_str()],
                    b.files(state) as f64,
                );
            }
        }
        for t in self.tables.iter().flatten() {
            out.set(&TABLE_ROWS, &[database, &t.table], t.rows as f64);
            out.set(&TABLE_SIZE, &[database, &t.table], t.size_bytes as f64);
        }
        custom_queries::series(database, self.custom_queries.values(), out);
        if let Some(d) = &self.drill {
            d.series(database, out);
        }
    }
}
