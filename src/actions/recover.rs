//! Recovery: check, quarantine and restore when corrupt, checkpoint, VACUUM — the sequence an
//! operator would run by hand after corruption, made safe to run unattended.
//!
//! 1. Full integrity check.
//! 2. If the database is corrupt: preserve it (with its `-wal` and `-shm`) under
//!    `quarantine/` in the backup directory (the newest `backup.quarantine_keep` copies per
//!    database are kept; none is made when the disk would fall below
//!    `actions.vacuum_disk_margin`, and the recovery goes on saying so), restore the newest backup that verifies (skipping,
//!    and reporting, the ones that do not), and report the data-loss window — the time between
//!    that backup's snapshot and now.
//! 3. Checkpoint TRUNCATE if the WAL exceeds `wal_critical_bytes`.
//! 4. VACUUM if utilization is below `min_utilization` and the disk allows it.
//! 5. Final integrity check.
//!
//! The corrupt files are *copied* into quarantine, not moved: the application may hold the
//! database open, and a moved file keeps its open connections writing into a file that is no
//! longer at the path, losing those writes silently. The restore then goes through the online
//! backup API into the live file, so open connections see the restored content. When the live
//! file's header is gone (SQLite cannot open it as a destination), the verified backup's bytes
//! are written into the same file instead — same inode, owner and mode — and its stale
//! `-wal`/`-shm`/`-journal` (already in quarantine) are removed. The raw copies happen with
//! every background connection of ours to the database closed ([`Monitor::files_exclusive`]):
//! closing a descriptor of the file would release the POSIX locks those connections hold.
//!
//! A dry run performs step 1 (read-only) and lists the backups it would try, touching no byte of
//! the database or the backup directory.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use serde::Serialize;

use crate::actions::backup::{self, BackupInfo};
use crate::actions::checkpoint;
use crate::actions::restore;
use crate::actions::vacuum;
use crate::actions::{backup_options, ProgressCell};
use crate::backup_dir::{TempDir, QUARANTINE_DIR};
use crate::checks::integrity::{IntegrityOutcome, Mode};
use crate::collect::series::Counter;
use crate::fleet::background;
use crate::fleet::monitor::Monitor;
use crate::sqlite::connection::{self, OpenError};
use crate::sqlite::BACKGROUND_BUSY_TIMEOUT;
use serde::Deserialize;
use serde_json::json;

use crate::actions::{open_kind, ActionError, Context, ErrorKind, Perform};

/// What a recovery did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RecoveryReport {
    /// No step failed and the final integrity check passed (dry run: the plan could be made).
    pub success: bool,
    /// Nothing was changed.
    pub dry_run: bool,
    /// Steps taken (or planned), in order, as sentences.
    pub actions: Vec<String>,
    /// Problems met.
    pub errors: Vec<String>,
    /// Whether the database was found corrupt.
    pub corrupt: bool,
    /// Where the corrupt files were preserved.
    pub quarantine: Option<PathBuf>,
    /// The backup restored.
    pub restored_from: Option<String>,
    /// Seconds of changes lost: from the restored backup's snapshot to now.
    pub data_loss_window_seconds: Option<f64>,
    /// Backups skipped because they did not verify.
    pub skipped_backups: Vec<String>,
    /// Wall time.
    pub duration_seconds: f64,
}

/// Runs the recovery sequence on `m` (which the caller has claimed).
pub fn run(
    m: &Monitor,
    dry_run: bool,
    progress: &ProgressCell,
    cancel: &AtomicBool,
) -> RecoveryReport {
    let start = Instant::now();
    let mut r = RecoveryReport {
        dry_run,
        ..Default::default()
    };
    let cfg = &m.config;
    let s = &cfg.settings;

    // 1. Integrity.
    let corrupt = match background::run_integrity(m, Mode::Full, cancel) {
        IntegrityOutcome::Completed(rep) if rep.ok => {
            r.actions.push("integrity check passed".into());
            false
        }
        IntegrityOutcome::Completed(rep) => {
            r.actions.push(format!(
                "integrity check FAILED: {}",
                rep.messages.join("; ")
            ));
            true
        }
        IntegrityOutcome::Failed(
            e @ (OpenError::NotADatabase | OpenError::Corrupt(_) | OpenError::Empty),
        ) => {
            r.actions.push(format!("integrity check FAILED: {e}"));
            true
        }
        other => {
            r.errors.push(format!("{other}; nothing done"));
            return finish(r, start);
        }
    };
    r.corrupt = corrupt;

    // 2. Quarantine and restore.
    if corrupt {
        let opts = backup_options(s);
        let list = if opts.dir.is_dir() {
            backup::list(&cfg.name, &opts.dir).unwrap_or_default()
        } else {
            Vec::new()
        };
        if dry_run {
            r.actions.push(format!(
                "would copy {} and its WAL/SHM to {}",
                cfg.path.display(),
                opts.dir.join(QUARANTINE_DIR).display()
            ));
            match list.first() {
                Some(b) => r.actions.push(format!(
                    "would restore the newest backup that verifies, trying {} first ({} candidates)",
                    b.file_name,
                    list.len()
                )),
                None => r.errors.push("no backup to restore from".into()),
            }
            r.success = r.errors.is_empty();
            return finish(r, start);
        }
        let copied = {
            let _files = m.files_exclusive();
            quarantine(
                &cfg.name,
                &cfg.path,
                &opts.dir,
                s.backup.quarantine_keep as usize,
                s.actions.vacuum_disk_margin.0,
            )
        };
        match copied {
            Ok(Quarantined::Copied(dir)) => {
                r.actions.push(format!(
                    "copied the corrupt database and its WAL/SHM to {}",
                    dir.display()
                ));
                r.quarantine = Some(dir);
            }
            Ok(Quarantined::NoRoom {
                free,
                needed,
                margin,
            }) => r.actions.push(format!(
                "quarantine skipped: the corrupt files need {needed} bytes and the backup disk has \
                 {free} free, which would leave less than the margin of {margin} bytes \
                 (actions.vacuum_disk_margin); the corrupt database is NOT preserved"
            )),
            Err(e) => {
                r.errors.push(format!(
                    "cannot preserve the corrupt database, nothing restored: {e}"
                ));
                return finish(r, start);
            }
        }
        let Some(info) = newest_verified(&list, &opts, &mut r, cancel) else {
            r.errors
                .push("no backup verifies; the corrupt database was left in place".into());
            return finish(r, start);
        };
        let mut report = |p| progress.set(p);
        // The backup API needs a destination SQLite can open; a file whose header is gone is
        // rewritten in place instead.
        let restored = match usable_destination(&cfg.path) {
            Err(e @ (OpenError::NotADatabase | OpenError::Empty)) => {
                r.actions.push(format!(
                    "the live file cannot be opened as a database ({e}); rewriting it in place"
                ));
                let _files = m.files_exclusive();
                rewrite_in_place(&cfg.path, info, &opts, cancel)
            }
            Err(e) => Err(format!(
                "cannot open the live database to restore into it: {e}"
            )),
            Ok(()) => restore::restore(
                &cfg.name,
                &cfg.path,
                &opts,
                &info.file_name,
                false,
                &mut report,
                cancel,
            )
            .map(|_| ())
            .map_err(|e| e.to_string()),
        };
        if let Err(e) = restored {
            r.errors
                .push(format!("restore of {} failed: {e}", info.file_name));
            return finish(r, start);
        }
        let window = (crate::unix_now() - info.taken_at_unix).max(0.0);
        r.actions.push(format!(
            "restored {} (taken {}); changes since then are lost: {:.0} s",
            info.file_name, info.meta.created_at, window
        ));
        r.restored_from = Some(info.file_name.clone());
        r.data_loss_window_seconds = Some(window);
    }

    // 3. Checkpoint a large WAL.
    let wal = crate::sqlite::wal::file_size(&crate::sqlite::wal::wal_path(&cfg.path)).unwrap_or(0);
    let limit = s.thresholds.wal_critical_bytes.0;
    if wal > limit {
        if dry_run {
            r.actions.push(format!(
                "would checkpoint (TRUNCATE): WAL is {wal} bytes, above {limit}"
            ));
        } else {
            match checkpoint::run(
                &cfg.path,
                checkpoint::Mode::Truncate,
                s.actions.checkpoint_timeout.0,
            ) {
                Ok(c) if !c.busy => r.actions.push(c.message),
                Ok(c) => r.errors.push(c.message),
                Err(e) => r.errors.push(format!("checkpoint failed: {e}")),
            }
        }
    }

    // 4. VACUUM when utilization is low.
    match utilization(&cfg.path) {
        Ok(Some(u)) if u < s.thresholds.min_utilization => {
            if dry_run {
                r.actions.push(format!(
                    "would VACUUM: utilization {:.1}% below {:.0}%",
                    u * 100.0,
                    s.thresholds.min_utilization * 100.0
                ));
            } else {
                match vacuum::run(
                    &cfg.path,
                    s.actions.vacuum_disk_margin.0,
                    s.actions.busy_timeout.0,
                    s.actions.checkpoint_timeout.0,
                ) {
                    Ok(v) => r.actions.push(format!(
                        "VACUUM: utilization {:.1}% → {:.1}%",
                        u * 100.0,
                        v.utilization_after * 100.0
                    )),
                    Err(e @ vacuum::VacuumError::NotEnoughSpace { .. }) => {
                        r.actions.push(format!("VACUUM skipped: {e}"))
                    }
                    Err(e) => r.errors.push(e.to_string()),
                }
            }
        }
        Ok(_) => {}
        Err(e) => r.errors.push(format!("cannot read utilization: {e}")),
    }

    // 5. Final check.
    if !dry_run {
        match background::run_integrity(m, Mode::Full, cancel) {
            IntegrityOutcome::Completed(rep) if rep.ok => {
                r.actions.push("final integrity check passed".into())
            }
            other => r
                .errors
                .push(format!("final integrity check did not pass: {other}")),
        }
    }
    r.success = r.errors.is_empty();
    finish(r, start)
}

fn finish(mut r: RecoveryReport, start: Instant) -> RecoveryReport {
    r.duration_seconds = start.elapsed().as_secs_f64();
    r
}

/// The newest backup in `list` (newest first) that passes verification; the others are
/// reported as skipped.
fn newest_verified<'a>(
    list: &'a [BackupInfo],
    opts: &backup::BackupOptions,
    r: &mut RecoveryReport,
    cancel: &AtomicBool,
) -> Option<&'a BackupInfo> {
    for info in list {
        if cancel.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        match backup::verify(info, opts.verify) {
            Ok(_) => return Some(info),
            Err(e) => {
                r.actions.push(format!("skipped {}: {e}", info.file_name));
                r.skipped_backups.push(info.file_name.clone());
            }
        }
    }
    None
}

/// What became of the corrupt files.
enum Quarantined {
    /// Copied into this directory.
    Copied(PathBuf),
    /// Not copied: the backup disk would have been left with less than the margin free.
    NoRoom { free: u64, needed: u64, margin: u64 },
}

/// The time in a quarantine directory's name, `{name}-{stamp}`.
const QUARANTINE_STAMP: &str = "%Y-%m-%d_%H-%M-%S%.3f";

/// Copies the database and its `-wal`/`-shm`/`-journal` into
/// `{backup_dir}/quarantine/{name}-{time}/`. The quarantine is bounded: the oldest copies of
/// this database beyond the newest `keep - 1` are removed first (so, with the new one, `keep`
/// remain), and nothing is copied when the disk would be left with less than `margin` bytes
/// free (the margin VACUUM keeps), since filling the backup disk would break the next backups.
fn quarantine(
    name: &str,
    db: &Path,
    backup_dir: &Path,
    keep: usize,
    margin: u64,
) -> std::io::Result<Quarantined> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let root = backup_dir.join(QUARANTINE_DIR);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&root)?;
    prune_quarantine(&root, name, keep.saturating_sub(1))?;
    let file_name = db
        .file_name()
        .ok_or_else(|| std::io::Error::other("database path has no file name"))?;
    let sources: Vec<PathBuf> = [
        db.to_path_buf(),
        crate::sqlite::wal::wal_path(db),
        crate::sqlite::wal::shm_path(db),
        crate::sqlite::wal::journal_path(db),
    ]
    .into_iter()
    .filter(|p| p.exists())
    .collect();
    let needed: u64 = sources
        .iter()
        .filter_map(|p| p.metadata().ok())
        .map(|m| m.len())
        .sum();
    let stamp = chrono::Utc::now().format(QUARANTINE_STAMP);
    let dir = root.join(format!("{name}-{stamp}"));
    let free = vacuum::free_disk_bytes(&dir)?;
    if free < needed.saturating_add(margin) {
        tracing::warn!(
            database = name,
            free,
            needed,
            margin,
            "quarantine skipped: not enough disk space"
        );
        return Ok(Quarantined::NoRoom {
            free,
            needed,
            margin,
        });
    }
    // Copied into a temp directory that takes the final name only once whole: a recovery
    // killed mid-copy leaves no partial copy that looks like a quarantined database (the
    // temp directory is removed when the exporter next starts).
    let temp = TempDir::create(&root, &format!("{name}-{stamp}"))?;
    for src in sources {
        let mut target = file_name.to_owned();
        target.push(
            src.to_string_lossy()
                .strip_prefix(&*db.to_string_lossy())
                .unwrap_or(""),
        );
        let dst = temp.path().join(target);
        std::fs::copy(&src, &dst)?;
        std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o600))?;
        std::fs::File::open(&dst)?.sync_all()?;
    }
    temp.publish(&dir)?;
    Ok(Quarantined::Copied(dir))
}

/// Removes the quarantined copies of `name` in `root` beyond the newest `keep`. Only
/// directories named `{name}-{time}` count, so database `app` never removes those of `app-2`.
fn prune_quarantine(root: &Path, name: &str, keep: usize) -> std::io::Result<()> {
    let mut ours: Vec<String> = std::fs::read_dir(root)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| {
            n.strip_prefix(name)
                .and_then(|r| r.strip_prefix('-'))
                .is_some_and(|stamp| {
                    chrono::NaiveDateTime::parse_from_str(stamp, QUARANTINE_STAMP).is_ok()
                })
        })
        .collect();
    ours.sort_unstable_by(|a, b| b.cmp(a));
    for old in ours.iter().skip(keep) {
        let path = root.join(old);
        if path.symlink_metadata()?.is_dir() {
            std::fs::remove_dir_all(&path)?;
            tracing::info!(database = name, dir = %path.display(), "old quarantined copy removed");
        }
    }
    Ok(())
}

/// Writes a verified backup's content over the live file `db`, for a file SQLite cannot open
/// (its header is gone). Written into the same inode, not renamed over it: the file keeps its
/// owner, mode and the descriptors the application holds. The companion files of the destroyed
/// database (`-wal`, `-shm`, and a `-journal` that would otherwise be replayed into the
/// restored content), already preserved in quarantine, are removed. The caller holds the
/// database's files exclusively: no connection of ours is open while descriptors close.
fn rewrite_in_place(
    db: &Path,
    info: &BackupInfo,
    opts: &backup::BackupOptions,
    cancel: &AtomicBool,
) -> Result<(), String> {
    let content = backup::verified_content(info, opts.verify, cancel).map_err(|e| e.to_string())?;
    let io = |e: std::io::Error| e.to_string();
    for stale in [
        crate::sqlite::wal::wal_path(db),
        crate::sqlite::wal::shm_path(db),
        crate::sqlite::wal::journal_path(db),
    ] {
        match std::fs::remove_file(&stale) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot remove {}: {e}", stale.display())),
        }
    }
    let mut src = std::fs::File::open(&content.path).map_err(io)?;
    let mut dst = std::fs::OpenOptions::new()
        .write(true)
        .open(db)
        .map_err(io)?;
    let len = std::io::copy(&mut src, &mut dst).map_err(io)?;
    dst.set_len(len).map_err(io)?;
    dst.sync_all().map_err(io)?;
    Ok(())
}

/// Whether SQLite can open `db` read-write and read its header (what the backup API needs of a
/// destination).
fn usable_destination(db: &Path) -> Result<(), OpenError> {
    let conn = connection::open_read_write(db, BACKGROUND_BUSY_TIMEOUT)?;
    conn.query_row("PRAGMA page_size", [], |_| Ok(()))?;
    conn.query_row("PRAGMA journal_mode", [], |_| Ok(()))?;
    Ok(())
}

fn utilization(db: &Path) -> Result<Option<f64>, OpenError> {
    let conn = connection::open_read_only(db, BACKGROUND_BUSY_TIMEOUT)?;
    Ok(crate::sqlite::sql::utilization_of(&conn)?)
}

/// Runs and failures of this action in `/metrics`.
pub const COUNTERS: Option<(&Counter, &Counter)> = Some((
    &Counter {
        name: "sqlite_recoveries_total",
        help: "Recoveries run (manual or by policy; a dry run is not counted).",
        labels: &["database"],
    },
    &Counter {
        name: "sqlite_recovery_failures_total",
        help: "Recoveries that failed.",
        labels: &["database"],
    },
));

/// A recovery request: `{"dry_run": true}` or `recover --dry-run`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Report the plan; change nothing.
    #[arg(long)]
    #[serde(default)]
    pub dry_run: bool,
}

impl Perform for Request {
    type Report = RecoveryReport;

    fn counted(&self) -> bool {
        !self.dry_run
    }

    fn perform(&self, ctx: &Context<'_>) -> Result<RecoveryReport, ActionError> {
        // No file is an unknown database, as for every other action, not a failed recovery.
        if let Err(e @ OpenError::Missing) = connection::preflight(&ctx.monitor.config.path) {
            return Err(ActionError::new(
                open_kind(&e),
                format!("cannot open database: {e}"),
            ));
        }
        let report = run(ctx.monitor, self.dry_run, ctx.progress, ctx.cancel);
        ctx.monitor.refresh_backups();
        if report.success {
            return Ok(report);
        }
        Err(
            ActionError::new(ErrorKind::Internal, report.errors.join("; "))
                .with_detail(json!(report)),
        )
    }
}

#[cfg(test)]
mod tests;
