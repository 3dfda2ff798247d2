//! The backup directory: how backup files are named, the sidecar metadata written beside each,
//! listing and discovery (backups made by the exporter or found there), and the private temp
//! files a backup or restore writes before it publishes anything.
//!
//! Plain file-system work: no SQLite, no knowledge of how a copy is made or checked. Uses
//! nothing above `sqlite`; the backup engine (`actions::backup`) and the fleet's backup
//! metrics read it.

mod names;
mod temp;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use chrono::SecondsFormat;
use serde::{Deserialize, Serialize};

pub use names::{
    backup_file_name, parse_backup_name, unix_seconds, valid_database_name, valid_label,
    wait_for_free_name, ParsedName,
};
pub use temp::{
    ensure_dir, gunzip, gzip, sha256_file, sync_dir, sync_file, write_sidecar, TempDir, TempFile,
};

/// Suffix of the sidecar written next to each backup.
pub const META_SUFFIX: &str = ".meta.json";

/// The directory under a backup directory holding copies of corrupt databases, one
/// subdirectory per copy.
pub const QUARANTINE_DIR: &str = "quarantine";

/// The directory under a backup directory holding the scratch directories of restore drills
/// (private [`TempDir`]s, removed when the drill ends and swept at start after a crash).
pub const DRILL_DIR: &str = "drill";

const TEMP_SUFFIX: &str = ".tmp";
/// SQLite's side files of a temp database, removed with it.
const SIDE_FILES: [&str; 3] = ["-journal", "-wal", "-shm"];

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
    /// Rows of each table of the copy, counted when it was taken, for restore drills to compare
    /// against. Absent from sidecars written before they were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_rows: Option<BTreeMap<String, u64>>,
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
    /// When the snapshot was taken as far as the files can tell (Unix seconds): the sidecar's
    /// `created_at`, or without one the time in the name, but never later than the file's
    /// modification time or now, so a name in the future does not make a backup look fresh.
    pub taken_at_unix: f64,
}

/// Backups of `database` in `dir`, newest first (by [`BackupInfo::taken_at_unix`]): only files named
/// `{database}-{YYYY-MM-DD_HH-MM-SS}[-{label}].db[.gz]`, never temp files or sidecars. A
/// missing directory has no backups.
pub fn list(database: &str, dir: &Path) -> io::Result<Vec<BackupInfo>> {
    let names = match file_names(dir) {
        Ok(names) => names,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("read {}: {e}", dir.display()),
            ))
        }
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
        found.push(read_info(database, dir, file_name.clone(), parsed, &stat));
    }
    found.sort_by(|a, b| {
        b.taken_at_unix
            .total_cmp(&a.taken_at_unix)
            .then_with(|| b.file_name.cmp(&a.file_name))
    });
    found
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
        table_rows: None,
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
    let modified = stat
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(f64::INFINITY, |d| d.as_secs_f64());
    let now = unix_seconds(&chrono::Utc::now());
    BackupInfo {
        file_name,
        path,
        taken_at_unix: meta.created_at_unix.min(modified).min(now),
        meta,
        has_sidecar,
        sidecar_error,
    }
}

/// Removes temp files left in `dir` by a killed backup or restore (of any database sharing the
/// directory), and temp directories left in its quarantine by a killed recovery or under
/// [`DRILL_DIR`] by a killed restore drill. A temp file
/// or directory still in use by a running process is kept: each is `flock`ed by its owner for
/// its lifetime, so one that can be locked has no owner. Returns the removed paths.
pub fn remove_leftovers(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut removed = remove_temp_dirs(&dir.join(QUARANTINE_DIR))?;
    removed.extend(remove_temp_dirs(&dir.join(DRILL_DIR))?);
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

/// Removes the unlocked temp directories ([`TempDir`]) in `dir`.
fn remove_temp_dirs(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut removed = Vec::new();
    for entry in entries {
        let entry = entry?;
        let is_temp = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with('.') && n.ends_with(TEMP_SUFFIX));
        if !is_temp || !entry.file_type()?.is_dir() {
            continue;
        }
        let path = entry.path();
        let Ok(lock) = File::open(&path) else {
            continue;
        };
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            continue; // in use
        }
        fs::remove_dir_all(&path)?;
        removed.push(path);
    }
    Ok(removed)
}

/// `path` with `suffix` appended to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}
