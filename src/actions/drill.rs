//! `drill`: a restore drill of the database's newest backup, proving it can be restored.
//!
//! The drill takes the newest backup the background verification found verified (the newest
//! file when none is), restores it into a private scratch directory under the backup directory
//! (`<backup dir>/drill/.<database>.<nanos>-<pid>.tmp/`, a [`TempDir`]: mode 0700, locked while
//! in use, removed when the drill ends and swept at the next start after a crash), and checks
//! the copy: a full `integrity_check` and `foreign_key_check`, then a comparison with what
//! the backup's sidecar recorded when it was taken — the SHA-256 of the file, its page count
//! and the rows of each table. A sidecar written before row counts were recorded (or a backup
//! found without a sidecar) is compared on what it has, and the result names what it could
//! not compare. The whole drill is timed: that is a measured recovery time.
//!
//! The live database is never opened. The drill runs in the database's action slot, so it
//! never overlaps a restore or a recovery of the same file. It is refused, not failed, when
//! the file system of the backup directory lacks the room for the restored copy plus
//! `backup.drill.free_space_margin`; an interrupted drill (shutdown) leaves no result.
//! Scheduled drills (`backup.drill.interval`) and `drill DB` / `POST .../drill` all run
//! [`Request::perform`].

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::actions::vacuum::free_disk_bytes;
use crate::actions::{list_backups, ActionError, Context, ErrorKind, ListedBackup, Perform};
use crate::backup_dir::{ensure_dir, gunzip, sha256_file, BackupInfo, TempDir, DRILL_DIR};
use crate::checks::backups::BackupState;
use crate::checks::drill::{row_count_problems, table_rows, DrillResult};
use crate::checks::integrity::{self, IntegrityOutcome, Mode};
use crate::collect::series::Counter;
use crate::config::Drill;
use crate::sqlite::interrupt::Stop;
use crate::sqlite::BACKGROUND_BUSY_TIMEOUT;

/// A drill is not counted as an action: its result has series of its own.
pub const COUNTERS: Option<(&Counter, &Counter)> = None;

/// Pages restored per step; the cancel flag is looked at between steps.
const PAGES_PER_STEP: std::os::raw::c_int = 1024;

/// A drill request: `POST /api/v1/databases/{db}/drill` with an empty body, or `drill DB`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct Request {}

/// What a drill found: the result the metrics render, for one database.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DrillReport {
    pub database: String,
    #[serde(flatten)]
    pub result: DrillResult,
    /// One line saying why a failed drill failed; absent when it passed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl crate::actions::Report for DrillReport {
    /// A failed drill is done but not what was asked: exit 1 in the CLI.
    fn busy(&self) -> bool {
        !self.result.passed
    }
}

impl Perform for Request {
    type Report = DrillReport;

    fn perform(&self, ctx: &Context<'_>) -> Result<DrillReport, ActionError> {
        let m = ctx.monitor;
        let name = &m.config.name;
        let backup = &m.config.settings.backup;
        let listed = list_backups(m)?;
        let Some(chosen) = newest_to_drill(&listed) else {
            return Err(ActionError::new(
                ErrorKind::NotFound,
                format!("no backup of {name} in {} to drill", backup.dir.display()),
            ));
        };
        let result = run(&chosen.info, &backup.dir, &backup.drill, ctx.cancel)?;
        m.update_checks(|c| c.drill = Some(result.clone()));
        if result.passed {
            info!(database = %name, backup = %result.backup, duration_seconds = result.duration_seconds, compared = ?result.compared, not_recorded = ?result.not_recorded, "restore drill passed");
        } else {
            warn!(database = %name, backup = %result.backup, duration_seconds = result.duration_seconds, problems = ?result.problems, "restore drill FAILED");
        }
        let message = (!result.passed).then(|| {
            format!(
                "restore drill of {} FAILED: {}",
                result.backup,
                result.problems.join("; ")
            )
        });
        Ok(DrillReport {
            database: name.clone(),
            result,
            message,
        })
    }

    fn counted(&self) -> bool {
        false
    }
}

/// The backup a drill proves: the newest verified one, else (none verified) the newest file.
pub fn newest_to_drill(listed: &[ListedBackup]) -> Option<&ListedBackup> {
    listed
        .iter()
        .find(|b| b.state == BackupState::Verified)
        .or_else(|| listed.first())
}

/// Drills the backup `info` in a scratch directory under `backup_dir`. `Err` only when the
/// drill was refused (not enough free space, the scratch directory cannot be made) or
/// cancelled; every problem of the backup itself is a failed [`DrillResult`].
pub fn run(
    info: &BackupInfo,
    backup_dir: &Path,
    settings: &Drill,
    cancel: &AtomicBool,
) -> Result<DrillResult, ActionError> {
    let started = Instant::now();
    let needed = restored_size(info);
    let margin = settings.free_space_margin.0;
    // The free space of the backup directory's file system, which the scratch directory is on.
    let free = free_disk_bytes(&info.path).map_err(|e| {
        refused(format!(
            "cannot read the free space of {}: {e}",
            backup_dir.display()
        ))
    })?;
    if free < needed.saturating_add(margin) {
        return Err(refused(format!(
            "not enough free space in {} for a restore drill: the restored copy needs {needed} bytes and {margin} must stay free (backup.drill.free_space_margin), {free} are free",
            backup_dir.display()
        )));
    }
    let root = backup_dir.join(DRILL_DIR);
    ensure_dir(&root).map_err(|e| refused(format!("cannot create {}: {e}", root.display())))?;
    let scratch = TempDir::create(&root, &info.meta.database)
        .map_err(|e| refused(format!("cannot create a scratch directory: {e}")))?;
    let mut drill = Findings::default();
    drill.check(info, scratch.path(), settings.timeout.0, cancel)?;
    drop(scratch);
    // Leaves the backup directory as it was; another drill's scratch directory keeps it.
    let _ = std::fs::remove_dir(&root);
    let finished_at = crate::unix_now();
    Ok(DrillResult {
        passed: drill.problems.is_empty(),
        backup: info.file_name.clone(),
        backup_taken_at: info.taken_at_unix,
        finished_at,
        duration_seconds: started.elapsed().as_secs_f64(),
        problems: drill.problems,
        compared: drill.compared,
        not_recorded: drill.not_recorded,
    })
}

fn refused(reason: String) -> ActionError {
    ActionError::new(ErrorKind::Refused, reason)
}

fn cancelled() -> ActionError {
    ActionError::new(ErrorKind::Cancelled, "the restore drill was cancelled")
}

/// What the checks of one drill found so far.
#[derive(Default)]
struct Findings {
    problems: Vec<String>,
    compared: Vec<&'static str>,
    not_recorded: Vec<&'static str>,
}

impl Findings {
    /// Restores `info` into `scratch` and checks the copy; stops at the first problem that
    /// leaves nothing to check.
    fn check(
        &mut self,
        info: &BackupInfo,
        scratch: &Path,
        timeout: Duration,
        cancel: &AtomicBool,
    ) -> Result<(), ActionError> {
        let meta = &info.meta;
        if let Some(e) = &info.sidecar_error {
            self.problems.push(format!("sidecar unreadable: {e}"));
            return Ok(());
        }
        if let Some(v) = meta.verification.as_deref().filter(|v| *v != "ok") {
            self.problems
                .push(format!("the sidecar says its check failed: {v}"));
        }
        match (&meta.sha256, info.has_sidecar) {
            (Some(expected), _) => match sha256_file(&info.path) {
                Ok(actual) if actual.eq_ignore_ascii_case(expected) => self.compared.push("sha256"),
                Ok(actual) => self.problems.push(format!(
                    "sha256 {actual} does not match the {expected} recorded when the backup was taken"
                )),
                Err(e) => self.problems.push(format!("cannot read the backup: {e}")),
            },
            (None, true) => self.problems.push("the sidecar has no sha256".to_owned()),
            (None, false) => self.not_recorded.push("sha256"),
        }
        let restored = scratch.join(format!("{}.db", meta.database));
        // A gzipped backup is decompressed into the scratch directory first.
        let unzipped = if meta.compressed {
            match gunzip(&info.path, scratch, &meta.database) {
                Ok(t) => Some(t),
                Err(e) => {
                    self.problems.push(format!("decompress: {e}"));
                    return Ok(());
                }
            }
        } else {
            None
        };
        let source: PathBuf = unzipped
            .as_ref()
            .map_or_else(|| info.path.clone(), |t| t.path().to_owned());
        let conn = match restore(&source, &restored, cancel) {
            Ok(c) => c,
            Err(Restore::Cancelled) => return Err(cancelled()),
            Err(Restore::Failed(e)) => {
                self.problems.push(format!("restore: {e}"));
                return Ok(());
            }
        };
        drop(unzipped);
        self.compare_recorded(info, &conn);
        drop(conn);
        self.integrity(&restored, timeout, cancel)
    }

    /// Page count and rows per table of the restored copy against the sidecar's.
    fn compare_recorded(&mut self, info: &BackupInfo, conn: &Connection) {
        let meta = &info.meta;
        match meta.page_count {
            Some(want) => match crate::sqlite::sql::pragma::<i64>(conn, "page_count") {
                Ok(got) if got as u64 == want => self.compared.push("page_count"),
                Ok(got) => self
                    .problems
                    .push(format!("{got} pages restored, the backup recorded {want}")),
                Err(e) => self.problems.push(format!("page_count: {e}")),
            },
            None => self.not_recorded.push("page_count"),
        }
        match &meta.table_rows {
            Some(recorded) => match table_rows(conn) {
                Ok(rows) => {
                    let diff = row_count_problems(recorded, &rows);
                    if diff.is_empty() {
                        self.compared.push("table_rows");
                    }
                    self.problems.extend(diff);
                }
                Err(e) => self.problems.push(format!("counting rows: {e}")),
            },
            None => self.not_recorded.push("table_rows"),
        }
    }

    /// The full `integrity_check` and `foreign_key_check` of the restored copy.
    fn integrity(
        &mut self,
        restored: &Path,
        timeout: Duration,
        cancel: &AtomicBool,
    ) -> Result<(), ActionError> {
        match integrity::run(
            restored,
            Mode::Full,
            timeout,
            BACKGROUND_BUSY_TIMEOUT,
            cancel,
        ) {
            IntegrityOutcome::Completed(r) => {
                if !r.ok {
                    let first = r.messages.first().map_or("", String::as_str);
                    self.problems.push(format!(
                        "integrity_check of the restored copy: {} problems, first: {first}",
                        r.errors
                    ));
                }
                match r.foreign_key_violations {
                    Some(0) => {}
                    Some(n) => self.problems.push(format!(
                        "foreign_key_check of the restored copy: {n} violations"
                    )),
                    None => self
                        .problems
                        .push("foreign_key_check of the restored copy could not run".to_owned()),
                }
            }
            IntegrityOutcome::Interrupted {
                reason: Stop::Cancelled,
                ..
            } => return Err(cancelled()),
            outcome @ IntegrityOutcome::Interrupted { .. } => self.problems.push(format!(
                "{outcome} (backup.drill.timeout): the backup is not proven restorable in time"
            )),
            IntegrityOutcome::Failed(e) => self
                .problems
                .push(format!("cannot open the restored copy: {e}")),
        }
        Ok(())
    }
}

enum Restore {
    Cancelled,
    Failed(rusqlite::Error),
}

impl From<rusqlite::Error> for Restore {
    fn from(e: rusqlite::Error) -> Self {
        Restore::Failed(e)
    }
}

/// Copies the database at `source` into a new database at `dest` through SQLite's online
/// backup API, as a restore does (every page read and written by SQLite), and leaves `dest`
/// in rollback-journal mode so it can be checked without a `-shm`. Returns a connection to it.
fn restore(source: &Path, dest: &Path, cancel: &AtomicBool) -> Result<Connection, Restore> {
    let src = crate::sqlite::connection::open_immutable(source)?;
    let mut dst = Connection::open(dest)?;
    {
        let backup = Backup::new(&src, &mut dst)?;
        loop {
            if cancel.load(Ordering::Relaxed) {
                return Err(Restore::Cancelled);
            }
            match backup.step(PAGES_PER_STEP)? {
                StepResult::Done => break,
                StepResult::More => {}
                // Nobody else opens the scratch copy or writes the backup; wait and retry.
                _ => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
    dst.query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))?;
    Ok(dst)
}

/// Bytes the restored copy will take: its recorded pages, else the file's own size (for a
/// gzipped backup without a sidecar, the size its gzip trailer records, modulo 4 GiB, or the
/// compressed size if larger). Twice that for a gzipped backup, decompressed first.
fn restored_size(info: &BackupInfo) -> u64 {
    let m = &info.meta;
    let size = match (m.page_size, m.page_count) {
        (Some(p), Some(n)) => u64::from(p) * n,
        _ if m.compressed => gzip_trailer_size(&info.path).unwrap_or(0).max(m.size),
        _ => m.size,
    };
    if m.compressed {
        size.saturating_mul(2)
    } else {
        size
    }
}

/// The uncompressed size a gzip file's trailer records (modulo 4 GiB).
fn gzip_trailer_size(path: &Path) -> Option<u64> {
    use std::io::{Seek, SeekFrom};
    let mut f = std::fs::File::open(path).ok()?;
    f.seek(SeekFrom::End(-4)).ok()?;
    let mut b = [0u8; 4];
    f.read_exact(&mut b).ok()?;
    Some(u64::from(u32::from_le_bytes(b)))
}
