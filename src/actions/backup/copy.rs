//! Making the copy: SQLite's online backup API stepwise (so writers keep committing) or
//! `VACUUM INTO`, into a temp file the exporter owns.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::verify::run_check;
use super::{io_err, sqlite_err, BackupError, Progress, Verify};
use crate::sqlite::connection;

/// The copy is synced every this many bytes while it is written.
const SYNC_EVERY_BYTES: u64 = 32 * 1024 * 1024;

// Copying and checking

/// Facts about the copy, read from the copy itself.
pub(super) struct CopyFacts {
    pub(super) page_size: u32,
    pub(super) page_count: u64,
    pub(super) user_version: i64,
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

pub(super) fn copy_online(
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

pub(super) fn copy_vacuum_into(
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

/// Opens a backup file (or a decompressed copy) read-only for checking or restoring
/// ([`connection::open_immutable`]).
pub(crate) fn open_backup_file(path: &Path) -> Result<Connection, BackupError> {
    Ok(connection::open_immutable(path)?)
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
        let watcher = s.spawn(|| {
            while !done.load(Ordering::Acquire) {
                if cancel.load(Ordering::Relaxed) {
                    handle.interrupt();
                    return;
                }
                // Parked rather than asleep: the end of `work` wakes it at once, so the
                // scope does not wait out the rest of a poll period after every statement.
                thread::park_timeout(Duration::from_millis(20));
            }
        });
        let out = work();
        done.store(true, Ordering::Release);
        watcher.thread().unpark();
        out
    })
}
