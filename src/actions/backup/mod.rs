//! Verified online backups of a monitored database, their directory and their rotation.
//!
//! A backup never copies a live file: a file copy ignores SQLite's locks and misses what is
//! still in the `-wal`, so a copy taken while the application writes is routinely corrupt. The copy is made by SQLite itself, either with the online backup API, stepwise
//! so the application's writers keep committing, or with `VACUUM INTO`. It goes to a temp file
//! in the backup directory and only becomes a backup after it is synced and passed an integrity
//! check; then it is (optionally) gzipped, synced again, renamed atomically to
//! `{name}-{YYYY-MM-DD_HH-MM-SS}[-{label}].db[.gz]` (UTC, never replacing an existing file), the
//! directory is synced, the sidecar `<file>.meta.json` is written the same way, and old backups
//! are rotated away. A crash at any point leaves either no backup or a complete one, plus temp
//! files that [`remove_leftovers`] deletes on the next start.
//!
//! **Pre-backup integrity check.** For the online backup API the check runs on the copy
//! *before* it is published, not on the source: the copy is page-for-page the snapshot being
//! backed up, so checking it is at least as strong as a `quick_check` of the source, and it
//! costs the monitored database nothing (a check on a rollback-journal source would hold a
//! SHARED lock and stall the application's writers for its whole duration). When the copy fails,
//! the source gets a `quick_check` to tell a corrupt database ([`BackupError::CorruptSource`],
//! 422) from a copy damaged on its way to disk ([`BackupError::VerificationFailed`]). `VACUUM
//! INTO` rebuilds the file instead of copying pages, so with it the source gets a `quick_check`
//! first.
//!
//! **Consistency under writers.** SQLite restarts an online backup from page 1 whenever another
//! connection commits between two steps, so a naive stepwise backup of a busy database never
//! finishes. For a WAL database the source connection therefore holds one read transaction for
//! the whole copy: the snapshot stays fixed, writers are never blocked (WAL readers do not block
//! writers), and the cost is that the WAL cannot be reset until the copy is done. A
//! rollback-journal database cannot do that without blocking writers, so its backup is stepwise
//! and gives up with [`BackupError::SourceKeepsChanging`] (503) after [`MAX_RESTARTS`] restarts

mod copy;
mod error;
mod verify;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use chrono::SecondsFormat;
use serde::{Deserialize, Serialize};

use copy::{copy_online, copy_vacuum_into};
pub(crate) use copy::{interruptible, open_backup_file, open_own_file, run_steps, StepPlan};
pub use error::BackupError;
pub(crate) use error::{io_err, sqlite_err};
use verify::classify_failed_copy;
pub(crate) use verify::{check_file, run_check, verified_content};
pub use verify::{verify, Verified};

use crate::actions::{backup_options, ActionError, Context, Perform};
use crate::backup_dir::{
    self, backup_file_name, ensure_dir, gzip, sha256_file, sync_dir, sync_file, unix_seconds,
    wait_for_free_name, write_sidecar, TempFile,
};
pub use crate::backup_dir::{
    file_names, list_among, remove_leftovers, BackupInfo, BackupMeta, META_SUFFIX,
};
use crate::collect::series::Counter;
use crate::sqlite::connection::{self, OpenError};

/// Pages copied per online-backup step by default. Each step of a rollback-journal database
/// holds a SHARED lock for its duration; 1024 pages (4 MiB at the default page size) take a few
/// milliseconds. With [`DEFAULT_STEP_PAUSE`] this gave the lowest writer stalls of the settings
/// tried by `cargo bench --bench backup_stall` (513 MB WAL database, writer committing one
/// UPDATE at a time with synchronous=FULL): longest commit 21.5 ms during the backup (3.5 ms
/// without one), p99 0.55 ms, backup 2.8 s; 4096 pages/5 ms gave 32 ms, 16384/no pause 52 ms,
/// a single step 93 ms.
pub const DEFAULT_PAGES_PER_STEP: i32 = 1024;
/// Pause between online-backup steps by default, so the application's writers get the disk
/// (and, for a rollback-journal database, the lock) between steps. Caps the copy at roughly
/// 4 MiB per (step time + 5 ms).
pub const DEFAULT_STEP_PAUSE: Duration = Duration::from_millis(5);
/// How long an action waits for a lock held by the application: long enough to outlast a
/// normal write transaction, short enough that a stuck one is reported rather than waited on.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// Restarts of a stepwise backup of a rollback-journal database (caused by commits of other
/// connections between steps) before the backup gives up instead of stalling writers.
pub const MAX_RESTARTS: u32 = 5;

/// Which check a copy must pass before it counts as a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verify {
    /// `PRAGMA integrity_check`: also cross-checks indexes against tables. O(size · log size).
    Full,
    /// `PRAGMA quick_check`: b-tree structure and record format only. O(size).
    Quick,
}

impl Verify {
    fn pragma(self) -> &'static str {
        match self {
            Verify::Full => "integrity_check",
            Verify::Quick => "quick_check",
        }
    }
}

/// How the copy is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// The SQLite online backup API, `pages_per_step` pages at a time with `step_pause`
    /// between steps. The copy is page-for-page identical to the source.
    OnlineBackup {
        pages_per_step: i32,
        step_pause: Duration,
    },
    /// `VACUUM INTO`: a defragmented copy in one statement (one read transaction). Smaller when
    /// the source has many free pages, but no progress between start and end.
    VacuumInto,
}

impl Default for Method {
    fn default() -> Self {
        Method::OnlineBackup {
            pages_per_step: DEFAULT_PAGES_PER_STEP,
            step_pause: DEFAULT_STEP_PAUSE,
        }
    }
}

/// Where backups go and how they are made; one per database, from the config's `backup:`.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupOptions {
    /// Backup directory, created with mode 0700 if missing. May be shared by several databases:
    /// file names start with the database name. Default `/var/backups/sqlite`.
    pub dir: PathBuf,
    /// Backups of this database kept by rotation, newest first. 0 keeps every backup (rotation
    /// never deletes the backup it has just made). Default 10.
    pub keep: usize,
    /// Gzip the verified copy when it is larger than this many bytes; `None` never compresses.
    /// Default 1 MiB: smaller files gain little and are quicker to restore uncompressed.
    pub compress_above: Option<u64>,
    /// Check every copy must pass. Default [`Verify::Full`].
    pub verify: Verify,
    /// Default: online backup, [`DEFAULT_PAGES_PER_STEP`] and [`DEFAULT_STEP_PAUSE`].
    pub method: Method,
    /// How long to wait for a lock held by the application. Default 30 s.
    pub busy_timeout: Duration,
}

impl Default for BackupOptions {
    fn default() -> Self {
        BackupOptions {
            dir: PathBuf::from("/var/backups/sqlite"),
            keep: 10,
            compress_above: Some(1024 * 1024),
            verify: Verify::Full,
            method: Method::default(),
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
        }
    }
}

pub use crate::actions::Progress;

/// Makes a verified backup of `database` (file `db_path`) in `opts.dir`, then rotates. The
/// returned info is what [`list`] will show for it.
pub fn create(
    database: &str,
    db_path: &Path,
    opts: &BackupOptions,
    label: Option<&str>,
    progress: &mut dyn FnMut(Progress),
    cancel: &AtomicBool,
) -> Result<BackupInfo, BackupError> {
    create_phased(database, db_path, opts, label, progress, cancel).map(|(info, _)| info)
}

/// How long each phase of a backup took; logged with every backup (and what the phase
/// benchmark compares with the command-line tool doing the same work).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Phases {
    /// The copy (online backup steps and their pauses, or `VACUUM INTO`) and its `fsync`.
    pub copy: Duration,
    /// The check of the copy (`integrity_check` or `quick_check`).
    pub verify: Duration,
    /// gzip (zero when the copy is not compressed).
    pub compress: Duration,
    /// sha256 of the stored file.
    pub hash: Duration,
}

/// [`create`], also returning how long each phase took.
pub fn create_phased(
    database: &str,
    db_path: &Path,
    opts: &BackupOptions,
    label: Option<&str>,
    progress: &mut dyn FnMut(Progress),
    cancel: &AtomicBool,
) -> Result<(BackupInfo, Phases), BackupError> {
    let done = create_unrotated(database, db_path, opts, label, progress, cancel)?;
    rotate(database, &opts.dir, opts.keep);
    Ok(done)
}

/// [`create`] without the rotation; restore uses it so the pre-restore backup cannot rotate
/// away the backup being restored.
pub(crate) fn create_unrotated(
    database: &str,
    db_path: &Path,
    opts: &BackupOptions,
    label: Option<&str>,
    progress: &mut dyn FnMut(Progress),
    cancel: &AtomicBool,
) -> Result<(BackupInfo, Phases), BackupError> {
    if !backup_dir::valid_database_name(database) {
        return Err(BackupError::InvalidDatabaseName(database.to_owned()));
    }
    if let Some(l) = label {
        validate_label(l)?;
    }
    let started = Instant::now();
    // The source first: a backup of a database that cannot be opened creates nothing, not even
    // the backup directory.
    let source = connection::open_read_only(db_path, opts.busy_timeout).map_err(|e| match e {
        OpenError::Corrupt(_) | OpenError::NotADatabase => BackupError::CorruptSource {
            check: "open",
            detail: e.to_string(),
        },
        e => BackupError::Open(e),
    })?;
    ensure_dir(&opts.dir)?;
    wait_for_free_name(database, &opts.dir, label);
    let tmp = TempFile::create(&opts.dir, database, "db")?;
    let mut phases = Phases::default();
    let mut phase = Instant::now();
    let mut lap = |into: &mut Duration| {
        *into = phase.elapsed();
        phase = Instant::now();
    };
    let (created_at, copy) = match opts.method {
        Method::OnlineBackup {
            pages_per_step,
            step_pause,
        } => {
            let plan = StepPlan {
                pages_per_step: pages_per_step.max(1),
                pause: step_pause,
                busy_timeout: opts.busy_timeout,
                max_restarts: Some(MAX_RESTARTS),
            };
            copy_online(&source, tmp.path(), &plan, progress, cancel)?
        }
        Method::VacuumInto => copy_vacuum_into(&source, tmp.path(), progress, cancel)?,
    };
    sync_file(tmp.path())?;
    lap(&mut phases.copy);

    if let Err(detail) = check_file(tmp.path(), opts.verify, cancel)? {
        return Err(classify_failed_copy(&source, detail, cancel));
    }
    lap(&mut phases.verify);
    drop(source);
    let table_rows = count_rows(tmp.path(), cancel)?;

    let file_name = backup_file_name(database, &created_at, label, false);
    let uncompressed = tmp.path().metadata().map_err(io_err("stat copy"))?.len();
    let (stored, file_name, compressed) = match opts.compress_above {
        Some(limit) if uncompressed > limit => {
            let gz = gzip(&tmp, &opts.dir, database)?;
            lap(&mut phases.compress);
            (gz, format!("{file_name}.gz"), true)
        }
        _ => (tmp, file_name, false),
    };
    let sha256 = sha256_file(stored.path())?;
    lap(&mut phases.hash);
    let size = stored
        .path()
        .metadata()
        .map_err(io_err("stat backup"))?
        .len();
    let path = opts.dir.join(&file_name);
    stored.publish_no_replace(&path).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            BackupError::NameTaken(file_name.clone())
        } else {
            BackupError::Io {
                context: format!("rename backup to {}", path.display()),
                source: e,
            }
        }
    })?;
    sync_dir(&opts.dir)?;

    let meta = BackupMeta {
        database: database.to_owned(),
        created_at: created_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        created_at_unix: unix_seconds(&created_at),
        label: label.map(str::to_owned),
        size,
        page_size: Some(copy.page_size),
        page_count: Some(copy.page_count),
        schema_version: Some(copy.user_version),
        sqlite_version: Some(rusqlite::version().to_owned()),
        sha256: Some(sha256),
        verification: Some("ok".to_owned()),
        duration_seconds: Some(started.elapsed().as_secs_f64()),
        compressed,
        table_rows,
    };
    write_sidecar(&opts.dir, &file_name, &meta)?;
    tracing::info!(
        database,
        file = %file_name,
        size,
        copy_seconds = phases.copy.as_secs_f64(),
        verify_seconds = phases.verify.as_secs_f64(),
        compress_seconds = phases.compress.as_secs_f64(),
        hash_seconds = phases.hash.as_secs_f64(),
        "backup created"
    );
    let info = BackupInfo {
        file_name,
        path,
        taken_at_unix: meta.created_at_unix,
        meta,
        has_sidecar: true,
        sidecar_error: None,
    };
    Ok((info, phases))
}

/// Backups of `database` in `dir`, newest first (see [`backup_dir::list`]).
/// The rows of each table of the checked copy at `path`, recorded in the sidecar for restore
/// drills to compare against. A count that fails (it should not, on a copy that just passed
/// its check) leaves them unrecorded rather than failing the backup; a cancellation stops it.
fn count_rows(
    path: &Path,
    cancel: &AtomicBool,
) -> Result<Option<std::collections::BTreeMap<String, u64>>, BackupError> {
    let conn = open_backup_file(path)?;
    match interruptible(&conn, cancel, || crate::checks::drill::table_rows(&conn)) {
        Ok(rows) => Ok(Some(rows)),
        Err(e) => match sqlite_err(e) {
            BackupError::Cancelled => Err(BackupError::Cancelled),
            e => {
                tracing::warn!(file = %path.display(), error = %e, "cannot count the rows of a backup copy");
                Ok(None)
            }
        },
    }
}

pub fn list(database: &str, dir: &Path) -> Result<Vec<BackupInfo>, BackupError> {
    backup_dir::list(database, dir).map_err(BackupError::Files)
}

/// Runs and failures of this action in `/metrics`.
pub const COUNTERS: Option<(&Counter, &Counter)> = Some((
    &Counter {
        name: "sqlite_backups_total",
        help: "Backups run (manual or by policy; a dry run is not counted).",
        labels: &["database"],
    },
    &Counter {
        name: "sqlite_backup_failures_total",
        help: "Backups that failed.",
        labels: &["database"],
    },
));

/// A label goes into a file name: `[A-Za-z0-9_-]{1,64}`.
pub fn validate_label(label: &str) -> Result<(), BackupError> {
    match backup_dir::valid_label(label) {
        true => Ok(()),
        false => Err(BackupError::InvalidLabel(label.to_owned())),
    }
}

/// Deletes the backups of `database` beyond the newest `keep` (0 keeps all), with their
/// sidecars. A failure to delete is logged, not returned: the backup that triggered the
/// rotation has succeeded. Returns the deleted backup files.
pub fn rotate(database: &str, dir: &Path, keep: usize) -> Vec<PathBuf> {
    if keep == 0 {
        return Vec::new();
    }
    let backups = match list(database, dir) {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(database, error = %e, "backup rotation could not list backups");
            return Vec::new();
        }
    };
    let mut deleted = Vec::new();
    for old in backups.into_iter().skip(keep) {
        match fs::remove_file(&old.path) {
            Ok(()) => {
                let sidecar = dir.join(format!("{}{META_SUFFIX}", old.file_name));
                if let Err(e) = fs::remove_file(&sidecar) {
                    if e.kind() != io::ErrorKind::NotFound {
                        tracing::warn!(file = %sidecar.display(), error = %e, "rotation");
                    }
                }
                tracing::info!(database, file = %old.file_name, "old backup rotated away");
                deleted.push(old.path);
            }
            Err(e) => tracing::warn!(file = %old.path.display(), error = %e, "rotation"),
        }
    }
    if !deleted.is_empty() {
        if let Err(e) = sync_dir(dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "rotation");
        }
    }
    deleted
}

/// A backup request: `{"label": "daily"}` or `backup --label=daily`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Label appended to the backup's file name.
    #[arg(long)]
    pub label: Option<String>,
}

impl Perform for Request {
    type Report = BackupInfo;

    fn perform(&self, ctx: &Context<'_>) -> Result<BackupInfo, ActionError> {
        let m = ctx.monitor;
        let cfg = &m.config;
        let opts = backup_options(&cfg.settings);
        let mut report = |p| ctx.progress.set(p);
        let info = create(
            &cfg.name,
            &cfg.path,
            &opts,
            self.label.as_deref(),
            &mut report,
            ctx.cancel,
        )
        .map_err(|e| ActionError::new(e.kind(), e.to_string()))?;
        m.refresh_backups();
        Ok(info)
    }
}
