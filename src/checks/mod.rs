//! Results of the background checks, cached per database and read by every scrape.
//!
//! A metric whose check has not run yet is absent (its field is `None`), never a made-up
//! value. Each result carries when it was taken, and `/metrics` says in HELP that it is cached.

pub mod timetable;

pub mod dbstat;
pub mod integrity;
pub mod migrations;

use std::collections::BTreeMap;
use std::time::UNIX_EPOCH;

use serde::Serialize;

use crate::checks::dbstat::TableStats;
use crate::checks::integrity::{IntegrityOutcome, IntegrityReport, Mode};
use crate::checks::migrations::MigrationStats;
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
    /// Applied migrations.
    pub applied: u64,
    /// Failed migrations, when the table records failures.
    pub failed: Option<u64>,
    /// Newest applied time (Unix seconds).
    pub last_applied: Option<f64>,
}

impl From<&MigrationStats> for MigrationFigures {
    fn from(m: &MigrationStats) -> Self {
        MigrationFigures {
            applied: m.applied,
            failed: m.failed,
            last_applied: m.last_applied,
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
    /// Migrations table figures (absent when there is no such table).
    pub migrations: Option<MigrationFigures>,
    /// Last outcome per background collector.
    pub runs: BTreeMap<&'static str, RunOutcome>,
    /// The backups in the backup directory, when it exists (or scheduled backups are on).
    pub backups: Option<BackupSummary>,
}

/// What the backup directory holds for one database.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BackupSummary {
    /// Backups retained.
    pub count: u64,
    /// The newest verified backup: its sidecar says it passed verification, or it has no
    /// sidecar (made by another tool with the same naming, trusted as found).
    pub newest_file: Option<String>,
    /// When its snapshot was taken (Unix seconds).
    pub newest_created_at: Option<f64>,
    /// Its size in bytes.
    pub newest_size_bytes: Option<u64>,
}

impl BackupSummary {
    /// Summarises a listing (newest first).
    pub fn from_list(list: &[crate::backup_dir::BackupInfo]) -> Self {
        let newest = list
            .iter()
            .find(|b| !b.has_sidecar || b.meta.verification.as_deref() == Some("ok"));
        BackupSummary {
            count: list.len() as u64,
            newest_file: newest.map(|b| b.file_name.clone()),
            newest_created_at: newest.map(|b| b.meta.created_at_unix),
            newest_size_bytes: newest.map(|b| b.meta.size),
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
            IntegrityOutcome::Failed(e) => {
                let why = format!("integrity check could not run: {e}");
                self.integrity_incomplete = Some(why.clone());
                (false, Some(why))
            }
            IntegrityOutcome::Interrupted {
                mode,
                after,
                reason,
            } => {
                let why = format!(
                    "{} check interrupted after {:.1}s ({reason})",
                    mode.as_str(),
                    after.as_secs_f64()
                );
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
