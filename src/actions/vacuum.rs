//! VACUUM, only when the disk can take it.
//!
//! VACUUM rebuilds the database into a temporary copy and writes it back through the journal
//! or WAL, so it needs room for about one more copy of the database. We refuse unless the free
//! space of the database's file system exceeds the database size plus
//! `actions.vacuum_disk_margin`, and say so with the figures.
//!
//! In WAL mode the rebuilt database lands in the WAL, and the main file keeps its old size
//! until a checkpoint copies the pages back and cuts the file to the new page count. So VACUUM
//! is followed by a TRUNCATE checkpoint, bounded like any other by
//! `actions.checkpoint_timeout`: the file shrinks and the WAL is emptied now, and the report
//! gives the file as it is afterwards along with that checkpoint's own report. A reader whose
//! snapshot still needs the old pages makes that checkpoint busy; the file then shrinks at a
//! later checkpoint, and the report says so rather than announcing a size the file does not
//! have yet.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::sqlite::connection::{self, OpenError};
use serde::Deserialize;

use crate::actions::checkpoint::{self, CheckpointReport};
use crate::actions::{is_locked, open_kind, ActionError, Context, ErrorKind, Perform};
use crate::collect::series::Counter;

/// What a VACUUM did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VacuumReport {
    /// Main file size before.
    pub size_bytes_before: u64,
    /// Main file size after (in WAL mode, after the checkpoint that follows VACUUM: still the
    /// old size when that checkpoint was busy).
    pub size_bytes_after: u64,
    /// Pages before / after.
    pub pages_before: u64,
    /// Pages after.
    pub pages_after: u64,
    /// Freelist pages before.
    pub freelist_pages_before: u64,
    /// Utilization after (1.0 for a fresh VACUUM).
    pub utilization_after: f64,
    /// Free disk space when we checked.
    pub free_disk_bytes: u64,
    /// In WAL mode, the TRUNCATE checkpoint run after VACUUM to move the rebuilt pages into the
    /// main file (`None` in rollback-journal mode, where VACUUM writes the file itself, and
    /// when that checkpoint could not run).
    pub checkpoint: Option<CheckpointReport>,
    /// Why that checkpoint could not run, when it could not (VACUUM itself completed).
    pub checkpoint_error: Option<String>,
    /// Wall time.
    pub duration_seconds: f64,
}

/// Why VACUUM did not run or failed.
#[derive(Debug, thiserror::Error)]
pub enum VacuumError {
    /// The database could not be opened.
    #[error("cannot open database: {0}")]
    Open(OpenError),
    /// Not enough free disk.
    #[error("refused: {free} bytes free on the database's file system, VACUUM needs more than {needed} (database size {size} + margin {margin})")]
    NotEnoughSpace {
        /// Free bytes.
        free: u64,
        /// Required bytes.
        needed: u64,
        /// Database size.
        size: u64,
        /// Configured margin.
        margin: u64,
    },
    /// The free space could not be read.
    #[error("cannot read free disk space: {0}")]
    Statvfs(std::io::Error),
    /// SQLite failed (locked, I/O).
    #[error("VACUUM failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// Free bytes available to this process on the file system holding `path`.
pub fn free_disk_bytes(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid C string and `st` a valid out-pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

/// Checks the disk, then runs VACUUM on the database at `path` (waiting up to `busy_timeout`
/// for the application's locks) and, in WAL mode, a TRUNCATE checkpoint (waiting up to
/// `checkpoint_timeout`; see the module header).
pub fn run(
    path: &Path,
    margin: u64,
    busy_timeout: Duration,
    checkpoint_timeout: Duration,
) -> Result<VacuumReport, VacuumError> {
    let start = Instant::now();
    let size = connection::preflight(path)
        .map_err(VacuumError::Open)?
        .len();
    let free = free_disk_bytes(path).map_err(VacuumError::Statvfs)?;
    let needed = size.saturating_add(margin);
    if free <= needed {
        return Err(VacuumError::NotEnoughSpace {
            free,
            needed,
            size,
            margin,
        });
    }
    let conn = connection::open_read_write(path, busy_timeout).map_err(VacuumError::Open)?;
    let pages = |c: &rusqlite::Connection| -> rusqlite::Result<(u64, u64)> {
        Ok((
            c.query_row("PRAGMA page_count", [], |r| r.get::<_, i64>(0))? as u64,
            c.query_row("PRAGMA freelist_count", [], |r| r.get::<_, i64>(0))? as u64,
        ))
    };
    let (pages_before, free_before) = pages(&conn)?;
    conn.execute_batch("VACUUM")?;
    let (pages_after, free_after) = pages(&conn)?;
    let journal: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
    drop(conn);
    let (checkpoint, checkpoint_error) = if journal.eq_ignore_ascii_case("wal") {
        match checkpoint::run(path, checkpoint::Mode::Truncate, checkpoint_timeout) {
            Ok(c) => (Some(c), None),
            Err(e) => (None, Some(e.to_string())),
        }
    } else {
        (None, None)
    };
    let size_after = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    Ok(VacuumReport {
        size_bytes_before: size,
        size_bytes_after: size_after,
        pages_before,
        pages_after,
        freelist_pages_before: free_before,
        utilization_after: if pages_after == 0 {
            1.0
        } else {
            (pages_after - free_after) as f64 / pages_after as f64
        },
        free_disk_bytes: free,
        checkpoint,
        checkpoint_error,
        duration_seconds: start.elapsed().as_secs_f64(),
    })
}

/// Runs and failures of this action in `/metrics`.
pub const COUNTERS: Option<(&Counter, &Counter)> = Some((
    &Counter {
        name: "sqlite_vacuums_total",
        help: "VACUUMs run (manual or by policy; a dry run is not counted).",
        labels: &["database"],
    },
    &Counter {
        name: "sqlite_vacuum_failures_total",
        help: "VACUUMs that failed.",
        labels: &["database"],
    },
));

/// A VACUUM request; it takes no parameters (an empty body or `{}`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct Request {}

impl Perform for Request {
    type Report = VacuumReport;

    fn perform(&self, ctx: &Context<'_>) -> Result<VacuumReport, ActionError> {
        let cfg = &ctx.monitor.config;
        let a = &cfg.settings.actions;
        let (margin, busy, checkpoint) = (
            a.vacuum_disk_margin.0,
            a.busy_timeout.0,
            a.checkpoint_timeout.0,
        );
        run(&cfg.path, margin, busy, checkpoint).map_err(|e| {
            let kind = match &e {
                VacuumError::Open(o) => open_kind(o),
                VacuumError::NotEnoughSpace { .. } => ErrorKind::Refused,
                VacuumError::Sqlite(s) if is_locked(s) => ErrorKind::Locked,
                VacuumError::Statvfs(_) | VacuumError::Sqlite(_) => ErrorKind::Internal,
            };
            ActionError::new(kind, e.to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fragmented(path: &Path) {
        let c = rusqlite::Connection::open(path).unwrap();
        c.execute_batch(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
             WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 2000)
             INSERT INTO t(v) SELECT randomblob(1000) FROM c;
             DELETE FROM t WHERE id > 600;",
        )
        .unwrap();
    }

    #[test]
    fn vacuum_reclaims_free_pages() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.db");
        fragmented(&p);
        let r = run(&p, 0, Duration::from_secs(1), Duration::from_secs(1)).unwrap();
        assert!(r.freelist_pages_before as f64 / r.pages_before as f64 >= 0.3);
        assert!(r.utilization_after >= 0.99, "{r:?}");
        assert!(r.size_bytes_after < r.size_bytes_before);
    }

    #[test]
    fn too_little_disk_is_refused_and_nothing_changes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.db");
        fragmented(&p);
        let before = std::fs::read(&p).unwrap();
        let err = run(
            &p,
            u64::MAX / 2,
            Duration::from_secs(1),
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(matches!(err, VacuumError::NotEnoughSpace { .. }), "{err}");
        assert_eq!(std::fs::read(&p).unwrap(), before);
    }
}
