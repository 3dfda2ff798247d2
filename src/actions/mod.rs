//! Actions on one database — checkpoint, backup, restore, recovery, VACUUM, integrity check.
//!
//! This is the one engine behind the control API, the CLI subcommands and the policies: each
//! of them builds an [`Action`], claims the database ([`Monitor::begin_action`], one action at a
//! time), and calls [`execute`], which runs the domain module, counts the action in
//! `/metrics`, logs it, and returns a JSON-ready result or an [`ActionError`] whose
//! [`ErrorKind`] the caller maps to an HTTP status or an exit code.

pub mod backup;
pub mod checkpoint;
pub mod jobs;
pub mod policy;
pub mod recover;
pub mod restore;
pub mod vacuum;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use serde::Serialize;
use serde_json::{json, Value};
use tracing::{info, warn};

use crate::checks::integrity::{self, IntegrityOutcome};
use crate::config::{BackupMethod, Compression, Settings, Verification};
use crate::fleet::events::Events;
use crate::fleet::monitor::Monitor;
use backup::BackupOptions;
use checkpoint::CheckpointError;
use vacuum::VacuumError;

/// An action and its parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `PRAGMA wal_checkpoint(mode)`.
    Checkpoint(checkpoint::Mode),
    /// A verified backup, optionally labelled.
    Backup(Option<String>),
    /// Restore the named backup (a file name from the backup listing).
    Restore(String),
    /// The recovery sequence; `true` for a dry run.
    Recover(bool),
    /// VACUUM after the disk check.
    Vacuum,
    /// An integrity check now.
    IntegrityCheck(integrity::Mode),
}

impl Action {
    /// The `action` label and log name.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Checkpoint(_) => "checkpoint",
            Action::Backup(_) => "backup",
            Action::Restore(_) => "restore",
            Action::Recover(_) => "recovery",
            Action::Vacuum => "vacuum",
            Action::IntegrityCheck(_) => "integrity_check",
        }
    }
}

/// Who asked for an action (it is logged and counted the same either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// The control API or the CLI.
    Manual,
    /// An `auto.*` policy.
    Policy,
}

/// Classes of failure, which the API maps to statuses and the CLI to exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Bad input: a bad name, label or mode (400).
    InvalidInput,
    /// No such database or backup (404).
    NotFound,
    /// Another action is running on the database, or the name is taken (409).
    Busy,
    /// Refused for safety: a corrupt source, a backup failing verification, not enough disk (422).
    Refused,
    /// The database stayed locked past the busy timeout (503).
    Locked,
    /// Cancelled (shutdown); nothing was changed.
    Cancelled,
    /// Anything else (500).
    Internal,
}

/// Why an action did not do what was asked.
#[derive(Debug, Clone, Serialize, thiserror::Error)]
#[error("{error}")]
pub struct ActionError {
    /// The class.
    #[serde(skip)]
    pub kind: ErrorKind,
    /// One sentence.
    pub error: String,
    /// Structured detail, when there is some (e.g. the checkpoint report of a busy checkpoint).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<Value>,
}

impl ActionError {
    /// An error of `kind` with a message.
    pub fn new(kind: ErrorKind, error: impl Into<String>) -> Self {
        ActionError {
            kind,
            error: error.into(),
            detail: None,
        }
    }

    /// Adds structured detail.
    pub fn with_detail(mut self, detail: Value) -> Self {
        self.detail = Some(detail);
        self
    }
}

/// Progress of a long action (pages done of total), shared with the job that reports it.
#[derive(Debug, Default)]
pub struct Progress {
    done: AtomicU64,
    total: AtomicU64,
}

/// A copy of a [`Progress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ProgressView {
    /// Pages done.
    pub pages_done: u64,
    /// Pages in all.
    pub pages_total: u64,
}

impl Progress {
    /// Sets the figures.
    pub fn set(&self, done: u64, total: u64) {
        self.done.store(done, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
    }

    /// Reads the figures.
    pub fn view(&self) -> ProgressView {
        ProgressView {
            pages_done: self.done.load(Ordering::Relaxed),
            pages_total: self.total.load(Ordering::Relaxed),
        }
    }
}

/// Runs `action` on `m` (which the caller has claimed), counts it in the fleet's metrics and
/// logs it.
pub fn execute(
    events: &dyn Events,
    m: &Monitor,
    action: &Action,
    trigger: Trigger,
    progress: &Progress,
    cancel: &AtomicBool,
) -> Result<Value, ActionError> {
    let start = Instant::now();
    let result = run(m, action, progress, cancel);
    let seconds = start.elapsed().as_secs_f64();
    let mode = match action {
        Action::Checkpoint(mode) => Some(mode.as_str()),
        _ => None,
    };
    // A dry run changes nothing and is not counted as a recovery; a request refused before
    // the action started (bad input, unknown backup) is not an action either.
    let refused_upfront = matches!(&result, Err(e) if matches!(e.kind, ErrorKind::InvalidInput | ErrorKind::NotFound));
    if *action != Action::Recover(true) && !refused_upfront {
        let ok = result.is_ok()
            && !matches!(&result, Ok(v) if v.get("busy") == Some(&Value::Bool(true)));
        events.action(&m.config.name, action.name(), mode, ok, seconds);
    }
    let db = &m.config.name;
    match &result {
        Ok(_) => {
            info!(database = %db, action = action.name(), mode, ?trigger, duration_seconds = seconds, "action done")
        }
        Err(e) => {
            warn!(database = %db, action = action.name(), mode, ?trigger, duration_seconds = seconds, error = %e, "action failed")
        }
    }
    result
}

fn run(
    m: &Monitor,
    action: &Action,
    progress: &Progress,
    cancel: &AtomicBool,
) -> Result<Value, ActionError> {
    let cfg = &m.config;
    let a = &cfg.settings.actions;
    match action {
        Action::Checkpoint(mode) => {
            let wait = if *mode == checkpoint::Mode::Passive {
                a.busy_timeout.0
            } else {
                a.checkpoint_timeout.0
            };
            let report = checkpoint::run(&cfg.path, *mode, wait).map_err(checkpoint_error)?;
            Ok(json!(report))
        }
        Action::Vacuum => {
            let report = vacuum::run(&cfg.path, a.vacuum_disk_margin.0, a.busy_timeout.0)
                .map_err(vacuum_error)?;
            Ok(json!(report))
        }
        Action::IntegrityCheck(mode) => {
            let outcome = crate::fleet::background::run_integrity(m, *mode, cancel);
            match outcome {
                IntegrityOutcome::Interrupted { .. } | IntegrityOutcome::Failed(_) => {
                    let why = m
                        .checks()
                        .integrity_incomplete
                        .unwrap_or_else(|| "integrity check did not complete".into());
                    Err(ActionError::new(ErrorKind::Internal, why))
                }
                IntegrityOutcome::Completed(_) => Ok(json!(m.checks().integrity)),
            }
        }
        Action::Backup(label) => {
            let opts = backup_options(&cfg.settings);
            let mut report = |p: backup::Progress| progress.set(p.pages_done, p.pages_total);
            let info = backup::create(
                &cfg.name,
                &cfg.path,
                &opts,
                label.as_deref(),
                &mut report,
                cancel,
            )
            .map_err(backup_error)?;
            m.refresh_backups();
            Ok(json!(info))
        }
        Action::Restore(name) => {
            let opts = backup_options(&cfg.settings);
            let mut report = |p: backup::Progress| progress.set(p.pages_done, p.pages_total);
            let r = restore::restore(&cfg.name, &cfg.path, &opts, name, true, &mut report, cancel)
                .map_err(restore_error)?;
            m.refresh_backups();
            Ok(json!(r))
        }
        Action::Recover(dry_run) => {
            let report = recover::run(m, *dry_run, progress, cancel);
            m.refresh_backups();
            match report.success {
                true => Ok(json!(report)),
                false => Err(
                    ActionError::new(ErrorKind::Internal, report.errors.join("; "))
                        .with_detail(json!(report)),
                ),
            }
        }
    }
}

/// The backup engine's options for a database's settings.
pub fn backup_options(s: &Settings) -> BackupOptions {
    let b = &s.backup;
    BackupOptions {
        dir: b.dir.clone(),
        keep: b.keep as usize,
        compress_above: match b.compress {
            Compression::Gzip => Some(b.compress_above.0),
            Compression::None => None,
        },
        verify: match b.verify {
            Verification::Full => backup::Verify::Full,
            Verification::Quick => backup::Verify::Quick,
        },
        method: match b.method {
            BackupMethod::Online => backup::Method::OnlineBackup {
                pages_per_step: b.pages_per_step.min(i32::MAX as u64) as i32,
                step_pause: b.step_pause.0,
            },
            BackupMethod::VacuumInto => backup::Method::VacuumInto,
        },
        busy_timeout: s.actions.busy_timeout.0,
    }
}

/// The backups of `m`, newest first.
pub fn list_backups(m: &Monitor) -> Result<Vec<backup::BackupInfo>, ActionError> {
    let dir = &m.config.settings.backup.dir;
    if !dir.exists() {
        return Ok(Vec::new());
    }
    backup::list(&m.config.name, dir).map_err(backup_error)
}

fn backup_error(e: backup::BackupError) -> ActionError {
    ActionError::new(e.kind(), e.to_string())
}

fn restore_error(e: restore::RestoreError) -> ActionError {
    ActionError::new(e.kind(), e.to_string())
}

fn checkpoint_error(e: CheckpointError) -> ActionError {
    let kind = match &e {
        CheckpointError::Open(o) => open_kind(o),
        CheckpointError::NotWal(_) => ErrorKind::InvalidInput,
        CheckpointError::Sqlite(s) if is_locked(s) => ErrorKind::Locked,
        CheckpointError::Sqlite(_) => ErrorKind::Internal,
    };
    ActionError::new(kind, e.to_string())
}

fn vacuum_error(e: VacuumError) -> ActionError {
    let kind = match &e {
        VacuumError::Open(o) => open_kind(o),
        VacuumError::NotEnoughSpace { .. } => ErrorKind::Refused,
        VacuumError::Sqlite(s) if is_locked(s) => ErrorKind::Locked,
        VacuumError::Statvfs(_) | VacuumError::Sqlite(_) => ErrorKind::Internal,
    };
    ActionError::new(kind, e.to_string())
}

/// The kind of an open failure: a missing file is 404, a lock 503, a damaged file 422.
pub fn open_kind(e: &crate::sqlite::connection::OpenError) -> ErrorKind {
    use crate::sqlite::connection::OpenError as O;
    match e {
        O::Missing => ErrorKind::NotFound,
        O::Locked => ErrorKind::Locked,
        O::NotADatabase | O::Corrupt(_) | O::Empty | O::Directory => ErrorKind::Refused,
        O::PermissionDenied | O::Other(_) => ErrorKind::Internal,
    }
}

fn is_locked(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}
