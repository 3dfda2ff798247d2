//! Verifying the files in the backup directory, in the background: a backup counts toward the
//! backup metrics and the `backup` recommendation only once it is verified, so a truncated or
//! foreign file can never pass for the newest backup.
//!
//! A backup with a sidecar is verified when its SHA-256 matches the sidecar's (and the sidecar
//! says the copy passed its check when it was made). A backup without one (made by another
//! tool with the same naming) is verified when its page 1 is a valid SQLite header consistent
//! with the file's length and a `quick_check` of it passes. Each costs O(size), so verdicts are
//! cached by the file's (and its sidecar's) size, modification time and inode: a scan re-reads
//! only new or changed files, and a scrape only reads the cache. A found `.db.gz` is
//! decompressed into a private temp file beside it for its check.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::backup_dir::{gunzip, sha256_file, BackupInfo, META_SUFFIX};
use crate::sqlite::connection;
use crate::sqlite::header::{parse_header_prefix, HEADER_LEN};
use crate::sqlite::interrupt;

/// Problem rows asked of the `quick_check` of a found backup; the first one is reported.
const QUICK_CHECK_ROWS: u32 = 10;

/// What is known of one backup file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackupState {
    /// It passed verification: it counts as a backup.
    Verified,
    /// It could not be verified yet (not examined, or the examination could not finish: an
    /// I/O error, a timeout); it does not count.
    Unverified,
    /// It failed verification: truncated, corrupt, a checksum or sidecar that does not match.
    Damaged,
}

impl BackupState {
    /// Every state, in the order the `state` label lists them.
    pub const ALL: [BackupState; 3] = [
        BackupState::Verified,
        BackupState::Unverified,
        BackupState::Damaged,
    ];

    /// The label value: `verified`, `unverified` or `damaged`.
    pub fn as_str(self) -> &'static str {
        match self {
            BackupState::Verified => "verified",
            BackupState::Unverified => "unverified",
            BackupState::Damaged => "damaged",
        }
    }
}

/// The verdict on one backup file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub state: BackupState,
    /// Why it is not verified; `None` when it is.
    pub detail: Option<String>,
}

impl Verdict {
    fn verified() -> Self {
        Verdict {
            state: BackupState::Verified,
            detail: None,
        }
    }

    fn damaged(detail: String) -> Self {
        Verdict {
            state: BackupState::Damaged,
            detail: Some(detail),
        }
    }

    fn unverified(detail: String) -> Self {
        Verdict {
            state: BackupState::Unverified,
            detail: Some(detail),
        }
    }
}

/// Examines one backup (O(size): a hash, or a decompression and a `quick_check`). `timeout`
/// bounds the `quick_check`.
pub fn examine(info: &BackupInfo, timeout: Duration, cancel: &AtomicBool) -> Verdict {
    if let Some(e) = &info.sidecar_error {
        return Verdict::damaged(format!("sidecar unreadable: {e}"));
    }
    if info.has_sidecar {
        return examine_with_sidecar(info);
    }
    if !info.meta.compressed {
        return examine_content(&info.path, timeout, cancel);
    }
    let dir = info.path.parent().unwrap_or(Path::new("."));
    match gunzip(&info.path, dir, &info.meta.database) {
        Ok(temp) => examine_content(temp.path(), timeout, cancel),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => Verdict::damaged(e.to_string()),
        Err(e) => Verdict::unverified(e.to_string()),
    }
}

fn examine_with_sidecar(info: &BackupInfo) -> Verdict {
    let meta = &info.meta;
    if let Some(v) = meta.verification.as_deref().filter(|v| *v != "ok") {
        return Verdict::damaged(format!("the sidecar says its check failed: {v}"));
    }
    let Some(expected) = &meta.sha256 else {
        return Verdict::damaged("the sidecar has no sha256".to_owned());
    };
    match info.path.metadata() {
        Ok(m) if m.len() != meta.size => {
            return Verdict::damaged(format!("{} bytes, the sidecar says {}", m.len(), meta.size))
        }
        Ok(_) => {}
        Err(e) => return Verdict::unverified(e.to_string()),
    }
    match sha256_file(&info.path) {
        Ok(actual) if actual.eq_ignore_ascii_case(expected) => Verdict::verified(),
        Ok(actual) => Verdict::damaged(format!(
            "sha256 {actual} does not match the sidecar's {expected}"
        )),
        Err(e) => Verdict::unverified(e.to_string()),
    }
}

/// The header check, then `quick_check`, of a database file (a found backup, uncompressed).
fn examine_content(path: &Path, timeout: Duration, cancel: &AtomicBool) -> Verdict {
    match header_problem(path) {
        Ok(Some(problem)) => return Verdict::damaged(problem),
        Ok(None) => {}
        Err(e) => return Verdict::unverified(e.to_string()),
    }
    let conn = match connection::open_immutable(path) {
        Ok(c) => c,
        Err(e) => return sqlite_verdict(e),
    };
    let sql = format!("PRAGMA quick_check({QUICK_CHECK_ROWS})");
    let (rows, stopped) = interrupt::bounded(&conn, Instant::now(), timeout, cancel, |c, _| {
        let mut stmt = c.prepare(&sql)?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        rows.collect::<rusqlite::Result<Vec<String>>>()
    });
    if let Some(stop) = stopped {
        return Verdict::unverified(format!("quick_check stopped: {stop}"));
    }
    match rows {
        Ok(rows) if rows.first().is_some_and(|r| r == "ok") => Verdict::verified(),
        Ok(rows) => Verdict::damaged(format!(
            "quick_check: {}",
            rows.first().map_or("no result", String::as_str)
        )),
        Err(e) => sqlite_verdict(e),
    }
}

/// A SQLite error met while checking a backup: corruption is damage; anything else leaves it
/// unverified.
fn sqlite_verdict(e: rusqlite::Error) -> Verdict {
    use rusqlite::ErrorCode::{DatabaseCorrupt, NotADatabase};
    match e.sqlite_error_code() {
        Some(DatabaseCorrupt | NotADatabase) => Verdict::damaged(format!("quick_check: {e}")),
        _ => Verdict::unverified(format!("quick_check could not run: {e}")),
    }
}

/// What is wrong with the header of the database file at `path`, if anything: it must be a
/// valid SQLite header (an empty file is not a backup), the file a whole number of pages, and
/// no shorter than the header's own page count says. `Err` when the file cannot be read.
pub fn header_problem(path: &Path) -> io::Result<Option<String>> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut head = Vec::with_capacity(HEADER_LEN);
    file.by_ref()
        .take(HEADER_LEN as u64)
        .read_to_end(&mut head)?;
    let header = match parse_header_prefix(&head) {
        Ok(h) => h,
        Err(e) => return Ok(Some(format!("not a SQLite database: {e}"))),
    };
    let page_size = u64::from(header.page_size);
    if len % page_size != 0 {
        return Ok(Some(format!(
            "{len} bytes is not a whole number of {page_size}-byte pages: truncated"
        )));
    }
    let pages = u64::from(header.database_size);
    if header.size_is_valid() && pages * page_size > len {
        return Ok(Some(format!(
            "truncated: the header says {pages} pages, the file holds {}",
            len / page_size
        )));
    }
    Ok(None)
}

/// What a verdict was given for: the backup file's and its sidecar's identity, size and
/// modification time. A change of either makes the file examined again.
type Stamp = (FileStamp, Option<FileStamp>);
type FileStamp = (u64, u64, u64, SystemTime);

fn file_stamp(path: &Path) -> Option<FileStamp> {
    let m = path.symlink_metadata().ok()?;
    Some((m.dev(), m.ino(), m.len(), m.modified().ok()?))
}

/// The verdicts given so far, by file name, with what they were given for.
#[derive(Debug, Default)]
pub struct Verdicts {
    by_file: HashMap<String, (Stamp, Verdict)>,
}

impl Verdicts {
    /// The verdict on each backup of `list` (in its order): cached when the file and its
    /// sidecar are unchanged, else examined now. Files no longer listed are forgotten.
    pub fn judge(
        &mut self,
        list: &[BackupInfo],
        timeout: Duration,
        cancel: &AtomicBool,
    ) -> Vec<Verdict> {
        self.by_file
            .retain(|name, _| list.iter().any(|b| &b.file_name == name));
        list.iter()
            .map(|info| {
                let Some(main) = file_stamp(&info.path) else {
                    return Verdict::unverified("the file disappeared".to_owned());
                };
                let sidecar = info.path.with_file_name(format!("{}{META_SUFFIX}", info.file_name));
                let stamp = (main, file_stamp(&sidecar));
                if let Some((s, v)) = self.by_file.get(&info.file_name) {
                    if *s == stamp {
                        return v.clone();
                    }
                }
                let v = examine(info, timeout, cancel);
                if v.state == BackupState::Damaged {
                    tracing::warn!(file = %info.path.display(), problem = v.detail.as_deref().unwrap_or(""), "damaged backup");
                }
                self.by_file
                    .insert(info.file_name.clone(), (stamp, v.clone()));
                v
            })
            .collect()
    }

    /// The cached verdict on `info`, if it was given for the file as it is now; never examines.
    pub fn cached(&self, info: &BackupInfo) -> Option<Verdict> {
        let (stamp, v) = self.by_file.get(&info.file_name)?;
        let sidecar = info
            .path
            .with_file_name(format!("{}{META_SUFFIX}", info.file_name));
        (stamp.0 == file_stamp(&info.path)? && stamp.1 == file_stamp(&sidecar)).then(|| v.clone())
    }
}

#[cfg(test)]
mod tests;
