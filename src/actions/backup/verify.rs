//! Checking a copy or a backup before it is trusted: the SHA-256 against its sidecar, then
//! `integrity_check` (or `quick_check`) of its content; a backup without a sidecar must have a
//! valid header first. Every failure is [`BackupError::VerificationFailed`] (422).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use rusqlite::{Connection, ErrorCode};
use serde::Serialize;

use super::copy::{interruptible, open_backup_file};
use super::{sqlite_err, BackupError, Verify};
use crate::backup_dir::{gunzip, sha256_file, BackupInfo, TempFile};
use crate::checks::backups::header_problem;

/// Problem rows an integrity check reports at most; the first one is kept.
const CHECK_MAX_ERRORS: u32 = 10;

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
    if let Some(v) = info.meta.verification.as_deref().filter(|v| *v != "ok") {
        return Err(failed(format!("the sidecar says its check failed: {v}")));
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
            e if e.kind() == io::ErrorKind::InvalidData => failed(format!("gzip: {e}")),
            e => BackupError::Files(e),
        })?;
        (temp.path().to_owned(), Some(temp))
    } else {
        (info.path.clone(), None)
    };
    // A found backup has no checksum to vouch for it: its header must (an empty file would
    // pass the check as an empty database).
    if !checksum_verified {
        if let Some(problem) = header_problem(&path)? {
            return Err(failed(problem));
        }
    }
    if let Err(detail) = check_file(&path, verify, cancel)? {
        return Err(failed(format!("{}: {detail}", verify.pragma())));
    }
    Ok(Content {
        path,
        _temp: temp,
        verified: Verified { checksum_verified },
    })
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
pub(super) fn classify_failed_copy(
    source: &Connection,
    detail: String,
    cancel: &AtomicBool,
) -> BackupError {
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
