//! Verified online backups of a monitored database, their directory and their rotation.
//!
//! A backup never copies a live file (reference 002: every file-copy backup of a live database
//! was corrupt). The copy is made by SQLite itself, either with the online backup API, stepwise
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
//! rather than stall the application.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, ErrorCode, OpenFlags};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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
/// Busy timeout of actions (SPEC §6).
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// Restarts of a stepwise backup of a rollback-journal database (caused by commits of other
/// connections between steps) before the backup gives up instead of stalling writers.
pub const MAX_RESTARTS: u32 = 5;
/// The copy is synced every this many bytes while it is written.
const SYNC_EVERY_BYTES: u64 = 32 * 1024 * 1024;
/// Suffix of the sidecar written next to each backup.
pub const META_SUFFIX: &str = ".meta.json";

const TIMESTAMP_FORMAT: &str = "%Y-%m-%d_%H-%M-%S";
const TIMESTAMP_LEN: usize = 19;
const MAX_LABEL_LEN: usize = 64;
/// Problem rows an integrity check reports at most; the first one is kept.
const CHECK_MAX_ERRORS: u32 = 10;

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

/// Pages copied so far by a backup or restore; reported after every step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Progress {
    pub pages_done: u64,
    pub pages_total: u64,
}

/// What the sidecar `<file>.meta.json` records. For a backup found without a sidecar (made by
/// another tool with the same naming) only the fields the name and the file's stat give are
/// filled; the others are `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupMeta {
    /// The configured database name.
    pub database: String,
    /// When the snapshot was taken (RFC 3339, UTC): the backup holds every transaction
    /// committed before this instant. The file name carries the same time to the second.
    pub created_at: String,
    /// `created_at` as Unix seconds, for metrics.
    pub created_at_unix: f64,
    pub label: Option<String>,
    /// Bytes of the backup file as stored (compressed if `compressed`).
    pub size: u64,
    pub page_size: Option<u32>,
    pub page_count: Option<u64>,
    /// `PRAGMA user_version` of the copy.
    pub schema_version: Option<i64>,
    /// SQLite library that made the copy.
    pub sqlite_version: Option<String>,
    /// Hex SHA-256 of the backup file as stored.
    pub sha256: Option<String>,
    /// `"ok"`, or the first problem the check reported.
    pub verification: Option<String>,
    pub duration_seconds: Option<f64>,
    pub compressed: bool,
}

/// One backup in the backup directory.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackupInfo {
    /// The name a restore request uses.
    pub file_name: String,
    pub path: PathBuf,
    pub meta: BackupMeta,
    /// Whether `meta` came from a sidecar. A backup without one cannot have its checksum
    /// verified, only its integrity.
    pub has_sidecar: bool,
    /// Why the sidecar could not be read, when it exists but is damaged; such a backup fails
    /// verification.
    pub sidecar_error: Option<String>,
}

/// The classes of failure the callers (control API, CLI, scheduler) act on, so that they never
/// match on message text. Suggested HTTP statuses in parentheses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Bad name or label from the request (HTTP 400).
    InvalidInput,
    /// The backup (or the database file) does not exist (HTTP 404).
    NotFound,
    /// A backup with the same name already exists (HTTP 409).
    Conflict,
    /// Corrupt source, or a backup failing verification: refused for safety (HTTP 422).
    RefusedForSafety,
    /// The database stayed locked past the busy timeout, or kept changing (HTTP 503).
    Locked,
    /// The caller's cancel flag was set; nothing was changed.
    Cancelled,
    /// I/O or SQLite failure (HTTP 500).
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("invalid label {0:?}: expected 1 to 64 characters from A-Z a-z 0-9 _ -")]
    InvalidLabel(String),
    #[error("invalid database name {0:?} for a backup file name")]
    InvalidDatabaseName(String),
    #[error("cannot open database: {0}")]
    Open(OpenError),
    #[error("refused: the database fails {check}: {detail}")]
    CorruptSource { check: &'static str, detail: String },
    #[error("backup {file} failed verification: {detail}")]
    VerificationFailed { file: String, detail: String },
    #[error("database locked by another connection past the busy timeout")]
    Locked,
    #[error("database changed during the backup {0} times; retry later, or use WAL mode")]
    SourceKeepsChanging(u32),
    #[error("a backup named {0} already exists")]
    NameTaken(String),
    #[error("cancelled")]
    Cancelled,
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

impl BackupError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            BackupError::InvalidLabel(_) | BackupError::InvalidDatabaseName(_) => {
                ErrorKind::InvalidInput
            }
            BackupError::Open(e) => open_error_kind(e),
            BackupError::CorruptSource { .. } | BackupError::VerificationFailed { .. } => {
                ErrorKind::RefusedForSafety
            }
            BackupError::Locked | BackupError::SourceKeepsChanging(_) => ErrorKind::Locked,
            BackupError::NameTaken(_) => ErrorKind::Conflict,
            BackupError::Cancelled => ErrorKind::Cancelled,
            BackupError::Io { .. } | BackupError::Sqlite(_) => ErrorKind::Internal,
        }
    }
}

pub(crate) fn open_error_kind(e: &OpenError) -> ErrorKind {
    match e {
        OpenError::Missing => ErrorKind::NotFound,
        OpenError::Corrupt(_) | OpenError::NotADatabase | OpenError::Empty => {
            ErrorKind::RefusedForSafety
        }
        OpenError::Locked => ErrorKind::Locked,
        OpenError::Directory | OpenError::PermissionDenied | OpenError::Other(_) => {
            ErrorKind::Internal
        }
    }
}

pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> BackupError {
    let context = context.into();
    move |source| BackupError::Io { context, source }
}

/// Classifies a SQLite error met while copying or checking.
pub(crate) fn sqlite_err(e: rusqlite::Error) -> BackupError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => BackupError::Locked,
        Some(ErrorCode::OperationInterrupted) => BackupError::Cancelled,
        Some(ErrorCode::DatabaseCorrupt) | Some(ErrorCode::NotADatabase) => {
            BackupError::CorruptSource {
                check: "reading",
                detail: e.to_string(),
            }
        }
        _ => BackupError::Sqlite(e),
    }
}

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
    let info = create_unrotated(database, db_path, opts, label, progress, cancel)?;
    rotate(database, &opts.dir, opts.keep);
    Ok(info)
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
) -> Result<BackupInfo, BackupError> {
    validate_database_name(database)?;
    if let Some(l) = label {
        validate_label(l)?;
    }
    let started = Instant::now();
    ensure_dir(&opts.dir)?;
    wait_for_free_name(database, &opts.dir, label);

    let source = connection::open_read_only(db_path, opts.busy_timeout).map_err(|e| match e {
        OpenError::Corrupt(_) | OpenError::NotADatabase => BackupError::CorruptSource {
            check: "open",
            detail: e.to_string(),
        },
        e => BackupError::Open(e),
    })?;
    let tmp = TempFile::create(&opts.dir, database, "db")?;
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

    if let Err(detail) = check_file(tmp.path(), opts.verify, cancel)? {
        return Err(classify_failed_copy(&source, detail, cancel));
    }
    drop(source);

    let file_name = backup_file_name(database, &created_at, label, false);
    let uncompressed = tmp.path().metadata().map_err(io_err("stat copy"))?.len();
    let (stored, file_name, compressed) = match opts.compress_above {
        Some(limit) if uncompressed > limit => {
            let gz = gzip(&tmp, &opts.dir, database)?;
            (gz, format!("{file_name}.gz"), true)
        }
        _ => (tmp, file_name, false),
    };
    let sha256 = sha256_file(stored.path())?;
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
    };
    write_sidecar(&opts.dir, &file_name, &meta)?;
    tracing::info!(database, file = %file_name, size, "backup created");
    Ok(BackupInfo {
        file_name,
        path,
        meta,
        has_sidecar: true,
        sidecar_error: None,
    })
}

/// Backups of `database` in `dir`, newest first: only files named
/// `{database}-{YYYY-MM-DD_HH-MM-SS}[-{label}].db[.gz]`, never temp files or sidecars. A
/// missing directory has no backups.
pub fn list(database: &str, dir: &Path) -> Result<Vec<BackupInfo>, BackupError> {
    let names = match file_names(dir) {
        Ok(names) => names,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(format!("read {}", dir.display()))(e)),
    };
    Ok(list_among(database, dir, &names))
}

/// The names of the files in `dir`, read once so that the backups of many databases sharing a
/// directory can be picked out of one listing ([`list_among`]).
pub fn file_names(dir: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir)? {
        if let Ok(name) = entry?.file_name().into_string() {
            names.push(name);
        }
    }
    Ok(names)
}

/// [`list`] over a listing of `dir` already read with [`file_names`].
pub fn list_among(database: &str, dir: &Path, names: &[String]) -> Vec<BackupInfo> {
    let mut found = Vec::new();
    for file_name in names {
        let Some(parsed) = parse_backup_name(database, file_name) else {
            continue;
        };
        // symlink_metadata: a symlink planted in the backup directory is not a backup.
        let Ok(stat) = dir.join(file_name).symlink_metadata() else {
            continue;
        };
        if !stat.is_file() {
            continue;
        }
        found.push((
            parsed.at,
            read_info(database, dir, file_name.clone(), parsed, &stat),
        ));
    }
    found.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then_with(|| b.1.file_name.cmp(&a.1.file_name))
    });
    found.into_iter().map(|(_, info)| info).collect()
}

fn read_info(
    database: &str,
    dir: &Path,
    file_name: String,
    parsed: ParsedName,
    stat: &fs::Metadata,
) -> BackupInfo {
    let path = dir.join(&file_name);
    let from_name = BackupMeta {
        database: database.to_owned(),
        created_at: parsed.at.to_rfc3339_opts(SecondsFormat::Secs, true),
        created_at_unix: unix_seconds(&parsed.at),
        label: parsed.label,
        size: stat.len(),
        page_size: None,
        page_count: None,
        schema_version: None,
        sqlite_version: None,
        sha256: None,
        verification: None,
        duration_seconds: None,
        compressed: parsed.compressed,
    };
    let sidecar = dir.join(format!("{file_name}{META_SUFFIX}"));
    let (meta, has_sidecar, sidecar_error) = match fs::read(&sidecar) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => (from_name, false, None),
        Err(e) => (from_name, true, Some(e.to_string())),
        Ok(bytes) => match serde_json::from_slice::<BackupMeta>(&bytes) {
            Ok(meta) => (meta, true, None),
            Err(e) => (from_name, true, Some(e.to_string())),
        },
    };
    if let Some(e) = &sidecar_error {
        tracing::warn!(file = %sidecar.display(), error = %e, "unreadable backup sidecar");
    }
    BackupInfo {
        file_name,
        path,
        meta,
        has_sidecar,
        sidecar_error,
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

/// Removes temp files left in `dir` by a killed backup or restore (of any database sharing the
/// directory). A temp file still in use by a running process is kept: every temp file is
/// `flock`ed by its owner for its lifetime, so one that can be locked has no owner. Returns the
/// removed paths.
pub fn remove_leftovers(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut removed = Vec::new();
    for entry in entries {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if !name.starts_with('.') || !name.ends_with(TEMP_SUFFIX) {
            continue;
        }
        let path = entry.path();
        let Ok(file) = File::open(&path) else {
            continue;
        };
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            continue; // in use
        }
        for side in SIDE_FILES {
            let side_path = with_suffix(&path, side);
            if fs::remove_file(&side_path).is_ok() {
                removed.push(side_path);
            }
        }
        fs::remove_file(&path)?;
        removed.push(path);
    }
    // Side files whose temp file is gone (a crash between the two removals).
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let Some(base) = SIDE_FILES
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|b| b.starts_with('.') && b.ends_with(TEMP_SUFFIX))
        else {
            continue;
        };
        if !dir.join(base).exists() {
            fs::remove_file(entry.path())?;
            removed.push(entry.path());
        }
    }
    if !removed.is_empty() {
        tracing::info!(dir = %dir.display(), count = removed.len(), "removed leftover temp files");
    }
    Ok(removed)
}

/// What [`verify`] could establish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Verified {
    /// The file's SHA-256 matched its sidecar. False for a backup without a sidecar, whose
    /// integrity alone was checked.
    pub checksum_verified: bool,
}

/// Checks a backup before it is trusted: SHA-256 against the sidecar, then the integrity of its
/// (decompressed) content. Restore and recovery ("restore the newest backup that verifies")
/// call it.
pub fn verify(info: &BackupInfo, verify: Verify) -> Result<Verified, BackupError> {
    let never = AtomicBool::new(false);
    verified_content(info, verify, &never).map(|c| c.verified)
}

/// A verified backup's database content, decompressed into a temp file if it was gzipped.
pub(crate) struct Content {
    pub(crate) path: PathBuf,
    /// Keeps the decompressed temp file alive; `None` when `path` is the backup itself.
    pub(crate) _temp: Option<TempFile>,
    pub(crate) verified: Verified,
}

pub(crate) fn verified_content(
    info: &BackupInfo,
    verify: Verify,
    cancel: &AtomicBool,
) -> Result<Content, BackupError> {
    let failed = |detail: String| BackupError::VerificationFailed {
        file: info.file_name.clone(),
        detail,
    };
    if let Some(e) = &info.sidecar_error {
        return Err(failed(format!("sidecar unreadable: {e}")));
    }
    let checksum_verified = match (&info.meta.sha256, info.has_sidecar) {
        (Some(expected), true) => {
            let actual = sha256_file(&info.path)?;
            if !actual.eq_ignore_ascii_case(expected) {
                return Err(failed(format!(
                    "sha256 {actual} does not match the sidecar's {expected}"
                )));
            }
            true
        }
        (None, true) => return Err(failed("sidecar has no sha256".to_owned())),
        _ => false,
    };
    let (path, temp) = if info.meta.compressed {
        let dir = info.path.parent().unwrap_or(Path::new("."));
        let temp = gunzip(&info.path, dir, &info.meta.database).map_err(|e| match e {
            BackupError::Io { source, .. } if source.kind() == io::ErrorKind::InvalidData => {
                failed(format!("gzip: {source}"))
            }
            e => e,
        })?;
        (temp.path().to_owned(), Some(temp))
    } else {
        (info.path.clone(), None)
    };
    if let Err(detail) = check_file(&path, verify, cancel)? {
        return Err(failed(format!("{}: {detail}", verify.pragma())));
    }
    Ok(Content {
        path,
        _temp: temp,
        verified: Verified { checksum_verified },
    })
}

// ---------------------------------------------------------------------------------------------
// Names

/// A label goes into a file name: `[A-Za-z0-9_-]{1,64}`.
pub fn validate_label(label: &str) -> Result<(), BackupError> {
    let ok = !label.is_empty()
        && label.len() <= MAX_LABEL_LEN
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(BackupError::InvalidLabel(label.to_owned()))
    }
}

fn validate_database_name(database: &str) -> Result<(), BackupError> {
    let ok =
        !database.is_empty() && !database.starts_with('.') && !database.contains(['/', '\\', '\0']);
    if ok {
        Ok(())
    } else {
        Err(BackupError::InvalidDatabaseName(database.to_owned()))
    }
}

fn backup_file_name(
    database: &str,
    at: &DateTime<Utc>,
    label: Option<&str>,
    compressed: bool,
) -> String {
    let mut name = format!("{database}-{}", at.format(TIMESTAMP_FORMAT));
    if let Some(label) = label {
        name.push('-');
        name.push_str(label);
    }
    name.push_str(".db");
    if compressed {
        name.push_str(".gz");
    }
    name
}

#[derive(Debug, PartialEq)]
struct ParsedName {
    at: DateTime<Utc>,
    label: Option<String>,
    compressed: bool,
}

/// Parses a backup file name of `database` strictly: the `{database}-` prefix, then a valid
/// timestamp, so database `app` never claims the backups of `app-2`.
fn parse_backup_name(database: &str, file_name: &str) -> Option<ParsedName> {
    let rest = file_name.strip_prefix(database)?.strip_prefix('-')?;
    let stamp = rest.get(..TIMESTAMP_LEN)?;
    let shape_ok = stamp.bytes().enumerate().all(|(i, b)| match i {
        4 | 7 | 13 | 16 => b == b'-',
        10 => b == b'_',
        _ => b.is_ascii_digit(),
    });
    if !shape_ok {
        return None;
    }
    let at = NaiveDateTime::parse_from_str(stamp, TIMESTAMP_FORMAT)
        .ok()?
        .and_utc();
    let rest = &rest[TIMESTAMP_LEN..];
    let (rest, compressed) = match rest.strip_suffix(".db.gz") {
        Some(r) => (r, true),
        None => (rest.strip_suffix(".db")?, false),
    };
    let label = match rest {
        "" => None,
        r => {
            let label = r.strip_prefix('-')?;
            validate_label(label).ok()?;
            Some(label.to_owned())
        }
    };
    Some(ParsedName {
        at,
        label,
        compressed,
    })
}

/// Two backups with the same label in the same second would get the same name; wait for the
/// next second rather than fail (one action runs at a time per database, so this is the only
/// way it happens).
fn wait_for_free_name(database: &str, dir: &Path, label: Option<&str>) {
    for _ in 0..3 {
        let now = Utc::now();
        let taken = [false, true].iter().any(|&gz| {
            dir.join(backup_file_name(database, &now, label, gz))
                .exists()
        });
        if !taken {
            return;
        }
        let into_second = u64::from(now.timestamp_subsec_millis());
        thread::sleep(Duration::from_millis(1001 - into_second.min(1000)));
    }
}

fn unix_seconds(at: &DateTime<Utc>) -> f64 {
    at.timestamp() as f64 + f64::from(at.timestamp_subsec_micros()) / 1e6
}

// ---------------------------------------------------------------------------------------------
// Copying and checking

/// Facts about the copy, read from the copy itself.
struct CopyFacts {
    page_size: u32,
    page_count: u64,
    user_version: i64,
}

/// How to drive `sqlite3_backup_step`.
pub(crate) struct StepPlan {
    pub(crate) pages_per_step: i32,
    pub(crate) pause: Duration,
    pub(crate) busy_timeout: Duration,
    /// Give up after this many restarts; `None` for a source nobody else writes.
    pub(crate) max_restarts: Option<u32>,
}

/// Steps `backup` to completion, reporting progress after each step and checking `cancel`
/// between steps. Dropping an unfinished backup rolls the destination back.
pub(crate) fn run_steps(
    backup: &Backup<'_, '_>,
    plan: &StepPlan,
    progress: &mut dyn FnMut(Progress),
    cancel: &AtomicBool,
) -> Result<(), BackupError> {
    let mut busy_since: Option<Instant> = None;
    let mut last_done = 0u64;
    let mut restarts = 0u32;
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(BackupError::Cancelled);
        }
        let step = backup.step(plan.pages_per_step).map_err(sqlite_err)?;
        let p = backup.progress();
        let total = u64::try_from(p.pagecount).unwrap_or(0);
        let done = total.saturating_sub(u64::try_from(p.remaining).unwrap_or(0));
        match step {
            StepResult::Done => {
                progress(Progress {
                    pages_done: total,
                    pages_total: total,
                });
                return Ok(());
            }
            StepResult::More => {
                busy_since = None;
                if done < last_done {
                    restarts += 1;
                    tracing::debug!(restarts, "online backup restarted: source changed");
                    if plan.max_restarts.is_some_and(|max| restarts > max) {
                        return Err(BackupError::SourceKeepsChanging(restarts));
                    }
                }
                last_done = done;
                progress(Progress {
                    pages_done: done,
                    pages_total: total,
                });
                if !plan.pause.is_zero() {
                    thread::sleep(plan.pause);
                }
            }
            // Busy, Locked (and any future transient result): wait, up to the busy timeout.
            _ => {
                let since = *busy_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= plan.busy_timeout {
                    return Err(BackupError::Locked);
                }
                thread::sleep(
                    plan.pause
                        .clamp(Duration::from_millis(1), Duration::from_millis(20)),
                );
            }
        }
    }
}

fn copy_online(
    source: &Connection,
    dest_path: &Path,
    plan: &StepPlan,
    progress: &mut dyn FnMut(Progress),
    cancel: &AtomicBool,
) -> Result<(DateTime<Utc>, CopyFacts), BackupError> {
    let wal: String = source
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .map_err(sqlite_err)?;
    let hold_snapshot = wal.eq_ignore_ascii_case("wal");
    if hold_snapshot {
        // One read transaction for the whole copy: a fixed snapshot, so the backup never
        // restarts, and WAL writers are not blocked by it.
        source.execute_batch("BEGIN").map_err(sqlite_err)?;
        source
            .query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))
            .map_err(sqlite_err)?;
    }
    let created_at = Utc::now();
    let mut dest = open_own_file(dest_path)?;
    // The destination is our own temp file, discarded on failure and synced by us.
    dest.execute_batch("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;")?;
    // Written with synchronous=OFF, the copy would pile up as dirty pages and reach the disk
    // in one burst at the final fsync, stalling the application's own fsyncs for that long;
    // syncing every SYNC_EVERY_BYTES spreads the writeback out (benches/backup_stall.rs).
    let dest_file = File::open(dest_path).map_err(io_err("open copy"))?;
    let page_size: u64 = source
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .map_err(sqlite_err)?;
    let sync_every = (SYNC_EVERY_BYTES / page_size.max(512)).max(1);
    let mut synced_at = 0u64;
    let mut on_step = |p: Progress| {
        if p.pages_done >= synced_at + sync_every || p.pages_done < synced_at {
            if let Err(e) = dest_file.sync_data() {
                tracing::warn!(error = %e, "fsync of the backup copy");
            }
            synced_at = p.pages_done;
        }
        progress(p);
    };
    let copied = {
        let backup = Backup::new(source, &mut dest).map_err(sqlite_err)?;
        run_steps(&backup, plan, &mut on_step, cancel)
    };
    if hold_snapshot {
        // Releases the snapshot whatever happened; the copy no longer needs it.
        let _ = source.execute_batch("COMMIT");
    }
    copied?;
    let facts = finish_copy(&dest)?;
    Ok((created_at, facts))
}

fn copy_vacuum_into(
    source: &Connection,
    dest_path: &Path,
    progress: &mut dyn FnMut(Progress),
    cancel: &AtomicBool,
) -> Result<(DateTime<Utc>, CopyFacts), BackupError> {
    // VACUUM INTO rebuilds the file, so it would hide a damaged index: check the source first.
    if let Err(detail) =
        interruptible(source, cancel, || run_check(source, Verify::Quick)).map_err(sqlite_err)?
    {
        return Err(BackupError::CorruptSource {
            check: "quick_check",
            detail,
        });
    }
    let pages: i64 = source
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .map_err(sqlite_err)?;
    let total = u64::try_from(pages).unwrap_or(0);
    progress(Progress {
        pages_done: 0,
        pages_total: total,
    });
    let target = dest_path
        .to_str()
        .ok_or_else(|| BackupError::Io {
            context: format!("backup path {} is not UTF-8", dest_path.display()),
            source: io::Error::from(io::ErrorKind::InvalidInput),
        })?
        .to_owned();
    let created_at = Utc::now();
    interruptible(source, cancel, || {
        source.execute("VACUUM INTO ?1", [&target])
    })
    .map_err(sqlite_err)?;
    let dest = open_own_file(dest_path)?;
    let facts = finish_copy(&dest)?;
    progress(Progress {
        pages_done: facts.page_count,
        pages_total: facts.page_count,
    });
    Ok((created_at, facts))
}

/// Leaves the copy in rollback-journal mode (a copy of a WAL database says "WAL" in its header,
/// and opening it would then create `-wal`/`-shm` files beside it) and reads its facts.
fn finish_copy(dest: &Connection) -> Result<CopyFacts, BackupError> {
    dest.query_row("PRAGMA journal_mode=DELETE", [], |_| Ok(()))?;
    let page_size: u32 = dest.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    let page_count: u64 = dest.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let user_version: i64 = dest.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    Ok(CopyFacts {
        page_size,
        page_count,
        user_version,
    })
}

/// Opens a file the exporter owns (a temp copy), read-write, never creating it: if a temp file
/// were removed under us, SQLite must not silently create a fresh one.
pub(crate) fn open_own_file(path: &Path) -> Result<Connection, BackupError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    Ok(Connection::open_with_flags(path, flags)?)
}

/// Opens a backup file (or a decompressed copy) read-only for checking or restoring. Backup
/// files are never written once published, so `immutable=1` is right here (it is not for a
/// monitored database): no locks, and no `-wal`/`-shm` created beside a backup made by another
/// tool from a WAL database.
pub(crate) fn open_backup_file(path: &Path) -> Result<Connection, BackupError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let uri = format!("file:{}?immutable=1", uri_escape(path)?);
    Ok(Connection::open_with_flags(uri, flags)?)
}

fn uri_escape(path: &Path) -> Result<String, BackupError> {
    let s = path.to_str().ok_or_else(|| BackupError::Io {
        context: format!("path {} is not UTF-8", path.display()),
        source: io::Error::from(io::ErrorKind::InvalidInput),
    })?;
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Ok(out)
}

/// Runs the check on a file; `Ok(Err(first problem))` when it fails.
pub(crate) fn check_file(
    path: &Path,
    verify: Verify,
    cancel: &AtomicBool,
) -> Result<Result<(), String>, BackupError> {
    let conn = match open_backup_file(path) {
        Ok(c) => c,
        Err(BackupError::Sqlite(e))
            if matches!(sqlite_err_code(&e), Some(ErrorCode::NotADatabase)) =>
        {
            return Ok(Err(e.to_string()));
        }
        Err(e) => return Err(e),
    };
    match interruptible(&conn, cancel, || run_check(&conn, verify)) {
        Ok(result) => Ok(result),
        Err(e) => match sqlite_err(e) {
            // A structure so broken that the check itself errors out is a failed check.
            BackupError::CorruptSource { detail, .. } => Ok(Err(detail)),
            BackupError::Cancelled => Err(BackupError::Cancelled),
            other => Err(other),
        },
    }
}

fn sqlite_err_code(e: &rusqlite::Error) -> Option<ErrorCode> {
    e.sqlite_error_code()
}

/// `PRAGMA integrity_check` / `quick_check`: `Ok(Ok(()))` when it says "ok".
pub(crate) fn run_check(conn: &Connection, verify: Verify) -> rusqlite::Result<Result<(), String>> {
    let sql = format!("PRAGMA {}({CHECK_MAX_ERRORS})", verify.pragma());
    let mut stmt = conn.prepare(&sql)?;
    let rows: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    match rows.first() {
        Some(first) if first == "ok" => Ok(Ok(())),
        Some(first) => Ok(Err(first.clone())),
        None => Ok(Err(format!("{} returned nothing", verify.pragma()))),
    }
}

/// A copy failed its check: blame the source if it fails `quick_check` too, else the copy.
fn classify_failed_copy(source: &Connection, detail: String, cancel: &AtomicBool) -> BackupError {
    match interruptible(source, cancel, || run_check(source, Verify::Quick)) {
        Ok(Ok(())) => BackupError::VerificationFailed {
            file: "(new copy)".to_owned(),
            detail: format!(
                "the copy fails its check but the database passes quick_check: {detail}"
            ),
        },
        Ok(Err(source_detail)) => BackupError::CorruptSource {
            check: "quick_check",
            detail: source_detail,
        },
        Err(e) => match sqlite_err(e) {
            BackupError::CorruptSource { detail: d, .. } => BackupError::CorruptSource {
                check: "quick_check",
                detail: d,
            },
            // The source could not be checked; the copy is still bad.
            _ => BackupError::CorruptSource {
                check: "integrity check of its copy",
                detail,
            },
        },
    }
}

/// Runs `work` on `conn`, interrupting it when `cancel` is set (polled every 20 ms by a scoped
/// watcher thread), so long statements (checks, `VACUUM INTO`) are cancellable too.
pub(crate) fn interruptible<T>(
    conn: &Connection,
    cancel: &AtomicBool,
    work: impl FnOnce() -> T,
) -> T {
    let handle = conn.get_interrupt_handle();
    let done = AtomicBool::new(false);
    thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::Acquire) {
                if cancel.load(Ordering::Relaxed) {
                    handle.interrupt();
                    return;
                }
                thread::sleep(Duration::from_millis(20));
            }
        });
        let out = work();
        done.store(true, Ordering::Release);
        out
    })
}

// ---------------------------------------------------------------------------------------------
// Files

const TEMP_SUFFIX: &str = ".tmp";
const SIDE_FILES: [&str; 3] = ["-journal", "-wal", "-shm"];

/// A temp file in the backup directory, named `.{database}.{nanos}-{pid}.{what}.tmp` (so
/// [`list`] never matches it), mode 0600, `flock`ed for its lifetime (so [`remove_leftovers`]
/// in another process leaves it alone), and removed with SQLite's side files on drop unless
/// published.
pub(crate) struct TempFile {
    path: PathBuf,
    file: File,
    published: bool,
}

impl TempFile {
    pub(crate) fn create(dir: &Path, database: &str, what: &str) -> Result<TempFile, BackupError> {
        let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
        let name = format!(
            ".{database}.{nanos}-{}.{what}{TEMP_SUFFIX}",
            std::process::id()
        );
        let path = dir.join(name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err(format!("create {}", path.display())))?;
        // SAFETY: flock on a file descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(io_err(format!("lock {}", path.display()))(
                io::Error::last_os_error(),
            ));
        }
        let temp = TempFile {
            path,
            file,
            published: false,
        };
        // A concurrent remove_leftovers may have deleted the file between create and flock.
        let same = match (temp.file.metadata(), temp.path.metadata()) {
            (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
            _ => false,
        };
        if !same {
            return Err(io_err(format!("create {}", temp.path.display()))(
                io::Error::other("temp file removed while being created"),
            ));
        }
        Ok(temp)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// Gives the temp file its final name without ever replacing an existing file
    /// (link + unlink: the name appears atomically, complete).
    fn publish_no_replace(mut self, dest: &Path) -> io::Result<()> {
        match fs::hard_link(&self.path, dest) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(e),
            Err(_) => {
                // No hard links on this filesystem: check, then rename (a narrow race only with
                // another process writing the same name, which the action lock rules out).
                if dest.symlink_metadata().is_ok() {
                    return Err(io::Error::from(io::ErrorKind::AlreadyExists));
                }
                fs::rename(&self.path, dest)?;
                self.published = true;
                return Ok(());
            }
        }
        self.published = true;
        fs::remove_file(&self.path)
    }

    /// Renames over `dest` (for sidecars, which belong to a file just published).
    fn publish_replace(mut self, dest: &Path) -> io::Result<()> {
        fs::rename(&self.path, dest)?;
        self.published = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        for side in SIDE_FILES {
            let _ = fs::remove_file(with_suffix(&self.path, side));
        }
        if !self.published {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn ensure_dir(dir: &Path) -> Result<(), BackupError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err(format!("create backup directory {}", dir.display())))
}

fn sync_file(path: &Path) -> Result<(), BackupError> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io_err(format!("fsync {}", path.display())))
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io_err(format!("fsync directory {}", dir.display())))
}

fn sha256_file(path: &Path) -> Result<String, BackupError> {
    let context = || format!("read {}", path.display());
    let mut reader =
        BufReader::with_capacity(1 << 20, File::open(path).map_err(io_err(context()))?);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf).map_err(io_err(context()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Gzips the verified copy into a new temp file (synced); the uncompressed one is dropped.
fn gzip(copy: &TempFile, dir: &Path, database: &str) -> Result<TempFile, BackupError> {
    let gz = TempFile::create(dir, database, "gz")?;
    let context = || format!("compress into {}", gz.path().display());
    let mut input = File::open(copy.path()).map_err(io_err(context()))?;
    // Level 1: several times faster than the default 6 on database pages for a few percent
    // of size; a backup competes with the application for CPU.
    let mut encoder = flate2::write::GzEncoder::new(
        io::BufWriter::with_capacity(1 << 20, gz.file()),
        flate2::Compression::fast(),
    );
    io::copy(&mut input, &mut encoder).map_err(io_err(context()))?;
    let mut out = encoder.finish().map_err(io_err(context()))?;
    out.flush().map_err(io_err(context()))?;
    drop(out);
    gz.file().sync_all().map_err(io_err(context()))?;
    Ok(gz)
}

/// Decompresses a gzipped backup into a temp file in `dir`.
pub(crate) fn gunzip(path: &Path, dir: &Path, database: &str) -> Result<TempFile, BackupError> {
    let out = TempFile::create(dir, database, "restore")?;
    let context = || format!("decompress {}", path.display());
    let input = File::open(path).map_err(io_err(context()))?;
    let mut decoder = flate2::read::GzDecoder::new(BufReader::with_capacity(1 << 20, input));
    let mut writer = io::BufWriter::with_capacity(1 << 20, out.file());
    io::copy(&mut decoder, &mut writer).map_err(io_err(context()))?;
    writer.flush().map_err(io_err(context()))?;
    drop(writer);
    Ok(out)
}

fn write_sidecar(dir: &Path, file_name: &str, meta: &BackupMeta) -> Result<(), BackupError> {
    let tmp = TempFile::create(dir, &meta.database, "meta")?;
    let context = || format!("write sidecar for {file_name}");
    let json = serde_json::to_vec_pretty(meta).map_err(|e| io_err(context())(e.into()))?;
    let mut f = tmp.file();
    f.write_all(&json).map_err(io_err(context()))?;
    f.sync_all().map_err(io_err(context()))?;
    tmp.publish_replace(&dir.join(format!("{file_name}{META_SUFFIX}")))
        .map_err(io_err(context()))?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        NaiveDateTime::parse_from_str(s, TIMESTAMP_FORMAT)
            .unwrap()
            .and_utc()
    }

    #[test]
    fn names_round_trip() {
        let t = at("2024-03-05_07-08-09");
        let name = backup_file_name("app", &t, Some("daily"), true);
        assert_eq!(name, "app-2024-03-05_07-08-09-daily.db.gz");
        assert_eq!(
            parse_backup_name("app", &name),
            Some(ParsedName {
                at: t,
                label: Some("daily".into()),
                compressed: true
            })
        );
        let plain = backup_file_name("my-app", &t, None, false);
        assert_eq!(plain, "my-app-2024-03-05_07-08-09.db");
        assert_eq!(parse_backup_name("my-app", &plain).unwrap().label, None);
    }

    #[test]
    fn names_of_other_databases_and_junk_are_not_claimed() {
        // `app` must not claim the backups of `app-2`.
        assert_eq!(
            parse_backup_name("app", "app-2-2024-03-05_07-08-09.db"),
            None
        );
        assert!(parse_backup_name("app-2", "app-2-2024-03-05_07-08-09.db").is_some());
        for junk in [
            "app-2024-03-05_07-08-09.db.meta.json",
            ".app.123-4.db.tmp",
            "app-2024-13-05_07-08-09.db",
            "app-2024-03-05_07-08-9.db",
            "app-2024-03-05_07-08-09.sqlite",
            "app-2024-03-05_07-08-09-.db",
            "app-2024-03-05_07-08-09-bad label.db",
            "app-2024-03-05_07-08-09daily.db",
            "app2024-03-05_07-08-09.db",
            "app-２024-03-05_07-08-09.db",
        ] {
            assert_eq!(parse_backup_name("app", junk), None, "{junk}");
        }
    }

    #[test]
    fn labels() {
        assert!(validate_label("pre-restore").is_ok());
        assert!(validate_label(&"a".repeat(64)).is_ok());
        for bad in ["", "a/b", "..", "a b", "é", &"a".repeat(65)] {
            assert_eq!(
                validate_label(bad).unwrap_err().kind(),
                ErrorKind::InvalidInput,
                "{bad}"
            );
        }
    }

    #[test]
    fn temp_files_are_private_locked_and_removed_on_drop() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let tmp = TempFile::create(dir.path(), "app", "db").unwrap();
        let path = tmp.path().to_owned();
        assert_eq!(path.metadata().unwrap().permissions().mode() & 0o777, 0o600);
        // In use: remove_leftovers keeps it.
        assert!(remove_leftovers(dir.path()).unwrap().is_empty());
        assert!(path.exists());
        drop(tmp);
        assert!(!path.exists());
    }

    #[test]
    fn uri_escaping() {
        assert_eq!(
            uri_escape(Path::new("/a b/c?d#%.db")).unwrap(),
            "/a%20b/c%3Fd%23%25.db"
        );
    }
}
