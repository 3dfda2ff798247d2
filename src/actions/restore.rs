//! Restoring a verified backup into the live database.
//!
//! The request names a backup by file name only, and only a name [`backup::list`] returns is
//! accepted, so no path from outside ever reaches the filesystem. The backup is verified
//! (SHA-256 against its sidecar, then its integrity) before anything changes; the current
//! database can be saved first as a `pre-restore` backup; then the content is copied into the
//! live database through the online backup API. That copy is one write transaction of the live
//! database: other connections keep reading the old content until it commits and then see the
//! new content (the schema change makes them re-read), and a crash or cancel before the commit
//! leaves the old content. Writers are blocked for the duration of the copy, which is inherent
//! to replacing a database. Finally the live database gets a full `integrity_check`.
//!
//! A WAL database cannot change its page size, and the online backup API refuses to copy pages
//! of another size into one. When the backup's page size differs from a WAL database's, the
//! restore first rewrites a temp copy of the backup with the live page size (`VACUUM`), which
//! keeps the content and the live database's journal mode.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use rusqlite::backup::Backup;
use rusqlite::Connection;
use serde::Serialize;

use crate::actions::backup::{
    self, check_file, create_unrotated, interruptible, io_err, open_backup_file, open_own_file,
    run_check, run_steps, sqlite_err, BackupError, BackupInfo, BackupOptions, Method, Progress,
    StepPlan, Verify, DEFAULT_PAGES_PER_STEP,
};
use crate::actions::ErrorKind;
use crate::backup_dir::TempFile;
use crate::sqlite::connection::{self, OpenError};
use serde::Deserialize;

use crate::actions::{backup_options, ActionError, Context, Perform};
use crate::collect::series::Counter;

/// Label of the backup of the current database taken before a restore.
pub const PRE_RESTORE_LABEL: &str = "pre-restore";

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RestoreReport {
    pub database: String,
    /// File name of the backup restored.
    pub restored_from: String,
    /// When that backup's snapshot was taken: the data-loss window starts here.
    pub backup_created_at: String,
    /// File name of the backup of the replaced content, when `save_current` was asked for.
    pub pre_restore_backup: Option<String>,
    /// The backup's SHA-256 matched its sidecar (false for a backup without a sidecar, whose
    /// integrity alone was verified).
    pub checksum_verified: bool,
    /// The backup's pages were rewritten to the live database's page size first.
    pub page_size_converted: bool,
    pub page_size: u32,
    pub pages_before: u64,
    pub pages_after: u64,
    pub duration_seconds: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("invalid backup name {0:?}: a file name from the backup list is expected")]
    InvalidName(String),
    #[error("no backup named {0:?} for this database")]
    UnknownBackup(String),
    #[error("cannot open the database: {0}")]
    Open(OpenError),
    #[error("could not save the current database before restoring: {0}")]
    PreRestoreBackup(#[source] BackupError),
    #[error("the restored database fails integrity_check: {detail}; the replaced content is in {pre_restore:?}")]
    ResultCorrupt {
        detail: String,
        pre_restore: Option<String>,
    },
    #[error(transparent)]
    Backup(#[from] BackupError),
}

impl RestoreError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            RestoreError::InvalidName(_) => ErrorKind::InvalidInput,
            RestoreError::UnknownBackup(_) => ErrorKind::NotFound,
            RestoreError::Open(e) => crate::actions::open_kind(e),
            RestoreError::PreRestoreBackup(e) | RestoreError::Backup(e) => e.kind(),
            RestoreError::ResultCorrupt { .. } => ErrorKind::Internal,
        }
    }
}

/// Restores `backup_file_name` (a name from [`backup::list`]) into `database` at `db_path`.
/// When `save_current` is set the current content is first backed up with the label
/// `pre-restore` (a corrupt current database is then refused: recovery quarantines it
/// instead and passes `save_current = false`). The live file must exist.
pub fn restore(
    database: &str,
    db_path: &Path,
    opts: &BackupOptions,
    backup_file_name: &str,
    save_current: bool,
    progress: &mut dyn FnMut(Progress),
    cancel: &AtomicBool,
) -> Result<RestoreReport, RestoreError> {
    let started = Instant::now();
    let info = find_backup(database, &opts.dir, backup_file_name)?;
    let content = backup::verified_content(&info, opts.verify, cancel)?;

    let mut live =
        connection::open_read_write(db_path, opts.busy_timeout).map_err(RestoreError::Open)?;
    let live_page_size: u32 = live
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .map_err(sqlite_err)?;
    let live_mode: String = live
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .map_err(sqlite_err)?;
    let live_is_wal = live_mode.eq_ignore_ascii_case("wal");
    let pages_before: u64 = live
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .map_err(sqlite_err)?;

    let pre_restore_backup = if save_current {
        let saved = create_unrotated(
            database,
            db_path,
            opts,
            Some(PRE_RESTORE_LABEL),
            progress,
            cancel,
        )
        .map_err(RestoreError::PreRestoreBackup)?;
        Some(saved.0.file_name)
    } else {
        None
    };

    let header = read_header(&content.path)?;
    // Copying a header that says "WAL" into a rollback-journal database would switch it to WAL.
    let needs_rewrite =
        (live_is_wal && header.page_size != live_page_size) || (!live_is_wal && header.wal);
    let (source, _rewritten) = if needs_rewrite {
        let temp = rewrite_copy(
            &content.path,
            &opts.dir,
            database,
            live_page_size,
            opts.verify,
            cancel,
        )?;
        (open_backup_file(temp.path())?, Some(temp))
    } else {
        (open_backup_file(&content.path)?, None)
    };

    let plan = StepPlan {
        pages_per_step: match opts.method {
            Method::OnlineBackup { pages_per_step, .. } => pages_per_step.max(1),
            Method::VacuumInto => DEFAULT_PAGES_PER_STEP,
        },
        // The live write lock is held from the first step to the last: pausing would only
        // block the application's writers longer.
        pause: Duration::ZERO,
        busy_timeout: opts.busy_timeout,
        max_restarts: None,
    };
    {
        let copy = Backup::new(&source, &mut live).map_err(sqlite_err)?;
        run_steps(&copy, &plan, progress, cancel)?;
    }
    drop(source);

    let checked =
        interruptible(&live, cancel, || run_check(&live, Verify::Full)).map_err(sqlite_err)?;
    if let Err(detail) = checked {
        tracing::warn!(database, %detail, "restored database fails integrity_check");
        return Err(RestoreError::ResultCorrupt {
            detail,
            pre_restore: pre_restore_backup,
        });
    }
    let page_size: u32 = live
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .map_err(sqlite_err)?;
    let pages_after: u64 = live
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .map_err(sqlite_err)?;
    drop(live);
    let checksum_verified = content.verified.checksum_verified;
    drop(content);
    backup::rotate(database, &opts.dir, opts.keep);
    tracing::info!(database, backup = %info.file_name, "database restored");
    Ok(RestoreReport {
        database: database.to_owned(),
        restored_from: info.file_name,
        backup_created_at: info.meta.created_at,
        pre_restore_backup,
        checksum_verified,
        page_size_converted: needs_rewrite && header.page_size != live_page_size,
        page_size,
        pages_before,
        pages_after,
        duration_seconds: started.elapsed().as_secs_f64(),
    })
}

/// Resolves a requested name against the listing; nothing else reaches the filesystem.
fn find_backup(database: &str, dir: &Path, name: &str) -> Result<BackupInfo, RestoreError> {
    let plausible = !name.is_empty()
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
        && !name.contains("..");
    if !plausible {
        return Err(RestoreError::InvalidName(name.to_owned()));
    }
    backup::list(database, dir)?
        .into_iter()
        .find(|b| b.file_name == name)
        .ok_or_else(|| RestoreError::UnknownBackup(name.to_owned()))
}

/// The two facts of a database header the restore needs.
struct Header {
    page_size: u32,
    /// Read/write format versions say WAL (2).
    wal: bool,
}

fn read_header(path: &Path) -> Result<Header, BackupError> {
    let mut buf = [0u8; 100];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(io_err(format!("read header of {}", path.display())))?;
    let raw = u32::from(u16::from_be_bytes([buf[16], buf[17]]));
    Ok(Header {
        page_size: if raw == 1 { 65536 } else { raw },
        wal: buf[18] == 2 || buf[19] == 2,
    })
}

/// Runs and failures of this action in `/metrics`.
pub const COUNTERS: Option<(&Counter, &Counter)> = Some((
    &Counter {
        name: "sqlite_restores_total",
        help: "Restores run (manual or by policy; a dry run is not counted).",
        labels: &["database"],
    },
    &Counter {
        name: "sqlite_restore_failures_total",
        help: "Restores that failed.",
        labels: &["database"],
    },
));

/// A temp copy of the backup content in rollback-journal mode with `page_size`, checked again.
fn rewrite_copy(
    content: &Path,
    dir: &Path,
    database: &str,
    page_size: u32,
    verify: Verify,
    cancel: &AtomicBool,
) -> Result<TempFile, BackupError> {
    let temp = TempFile::create(dir, database, "restore")?;
    let mut input = File::open(content).map_err(io_err(format!("read {}", content.display())))?;
    io::copy(&mut input, &mut temp.file())
        .map_err(io_err(format!("copy {}", content.display())))?;
    let conn: Connection = open_own_file(temp.path())?;
    conn.query_row("PRAGMA journal_mode=DELETE", [], |_| Ok(()))?;
    conn.execute_batch(&format!("PRAGMA page_size={page_size};"))?;
    interruptible(&conn, cancel, || conn.execute_batch("VACUUM")).map_err(sqlite_err)?;
    let now: u32 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    drop(conn);
    if now != page_size {
        return Err(BackupError::VerificationFailed {
            file: temp.path().display().to_string(),
            detail: format!("could not rewrite the backup to page size {page_size} (got {now})"),
        });
    }
    if let Err(detail) = check_file(temp.path(), verify, cancel)? {
        return Err(BackupError::VerificationFailed {
            file: temp.path().display().to_string(),
            detail,
        });
    }
    Ok(temp)
}

/// A restore request: `{"backup": "<file name>"}` or `restore DATABASE BACKUP`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// File name of the backup, as `backups` lists it.
    #[arg(value_name = "BACKUP", required = true)]
    pub backup: Option<String>,
}

impl Request {
    /// A restore of the backup file `name`.
    pub fn new(name: &str) -> Self {
        Request {
            backup: Some(name.to_string()),
        }
    }

    fn name(&self) -> Result<&str, ActionError> {
        self.backup.as_deref().ok_or_else(|| {
            ActionError::new(
                ErrorKind::InvalidInput,
                "expected {\"backup\": \"<file name from the backup list>\"}",
            )
        })
    }
}

impl Perform for Request {
    type Report = RestoreReport;

    fn validate(&self) -> Result<(), ActionError> {
        self.name().map(|_| ())
    }

    fn perform(&self, ctx: &Context<'_>) -> Result<RestoreReport, ActionError> {
        let m = ctx.monitor;
        let cfg = &m.config;
        let opts = backup_options(&cfg.settings);
        let mut report = |p| ctx.progress.set(p);
        let r = restore(
            &cfg.name,
            &cfg.path,
            &opts,
            self.name()?,
            true,
            &mut report,
            ctx.cancel,
        )
        .map_err(|e| ActionError::new(e.kind(), e.to_string()));
        m.refresh_backups();
        r
    }
}
