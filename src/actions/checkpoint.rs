//! WAL checkpoints, honest about what they did.
//!
//! `PRAGMA wal_checkpoint(MODE)` answers three numbers: whether it was blocked (`busy`), the
//! frames in the WAL (`log`) and the frames copied into the database (`checkpointed`). We report
//! them as SQLite gives them (except after a completed TRUNCATE, see [`run`]), plus the WAL size
//! before and after, and never call a checkpoint that was blocked a success of its mode: `busy`
//! is true and the frames not copied are listed.
//!
//! FULL, RESTART and TRUNCATE wait for readers and writers through the busy handler, and while
//! they wait SQLite holds off new writers. That wait is bounded by `actions.checkpoint_timeout`
//! (1 s by default), not the 30 s action timeout, so a checkpoint can delay the application's
//! writes by at most that long (an unbounded RESTART has been seen to hang an application).

use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::actions::{is_locked, open_kind, ActionError, Context, ErrorKind, Perform};
use crate::collect::series::{Counter, Gauge};
use crate::sqlite::connection::{self, OpenError};
use crate::sqlite::wal;

/// Checkpoint modes of `PRAGMA wal_checkpoint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Copy what can be copied without waiting; never blocks anyone.
    Passive,
    /// Wait for writers, then copy every frame.
    Full,
    /// FULL, then wait for readers so the next writer restarts the WAL from the beginning.
    Restart,
    /// RESTART, then truncate the WAL file to zero bytes.
    Truncate,
}

impl Mode {
    /// Every mode, for metric initialisation.
    pub const ALL: [Mode; 4] = [Mode::Passive, Mode::Full, Mode::Restart, Mode::Truncate];

    /// The lowercase name (`mode` label).
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Passive => "passive",
            Mode::Full => "full",
            Mode::Restart => "restart",
            Mode::Truncate => "truncate",
        }
    }
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Mode::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!(
                    "invalid checkpoint mode {s:?}; expected passive, full, restart or truncate"
                )
            })
    }
}

/// What a checkpoint did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckpointReport {
    /// The mode asked for.
    pub mode: Mode,
    /// SQLite could not finish the mode because a reader or writer was in the way.
    pub busy: bool,
    /// Frames in the WAL (for a completed TRUNCATE: the frames it held before it was emptied).
    pub log_frames: i64,
    /// Frames copied into the database (cumulative for this WAL; for a completed TRUNCATE,
    /// every frame of `log_frames`).
    pub checkpointed_frames: i64,
    /// Frames that could not be copied (a reader holds a snapshot that needs them).
    pub frames_not_checkpointed: i64,
    /// WAL size before.
    pub wal_bytes_before: u64,
    /// WAL size after.
    pub wal_bytes_after: u64,
    /// Wall time.
    pub duration_seconds: f64,
    /// A sentence for people: what happened and why.
    pub message: String,
}

/// Why a checkpoint could not run.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The database could not be opened.
    #[error("cannot open database: {0}")]
    Open(OpenError),
    /// The database is not in WAL mode.
    #[error("database is not in WAL mode (journal_mode={0}); there is nothing to checkpoint")]
    NotWal(String),
    /// The `-wal` file could not be read to count its frames.
    #[error("cannot read the WAL: {0}")]
    Wal(std::io::Error),
    /// SQLite failed.
    #[error("checkpoint failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// Runs a `mode` checkpoint on the database at `path`. `busy_timeout` bounds waiting for the
/// connection's locks and for readers and writers (see the module header).
///
/// A TRUNCATE that completes resets the WAL header before SQLite fills in its answer, so the
/// answer reads 0 frames in the log and 0 copied however many were copied. Such a checkpoint
/// completes only once it has copied every committed frame, so the frames it copied are those
/// the WAL held when it started: we count them from the `-wal` file just before, as
/// `sqlite_wal_frames` does (a few reads of frame headers, no lock, no second checkpoint). A
/// commit that lands between that count and the checkpoint taking the write lock is copied too
/// but not counted, so under a busy writer the figure can be a little low. A TRUNCATE that
/// stayed busy reset nothing, and its answer stands.
pub fn run(
    path: &Path,
    mode: Mode,
    busy_timeout: Duration,
) -> Result<CheckpointReport, CheckpointError> {
    let start = Instant::now();
    let wal_path = wal::wal_path(path);
    let wal_bytes_before = wal::file_size(&wal_path).unwrap_or(0);
    let conn = connection::open_read_write(path, busy_timeout).map_err(CheckpointError::Open)?;
    let journal: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .map_err(|e| CheckpointError::Open(e.into()))?;
    if !journal.eq_ignore_ascii_case("wal") {
        return Err(CheckpointError::NotWal(journal));
    }
    let frames_before = match mode {
        Mode::Truncate => Some(wal::frames(&wal_path).map_err(CheckpointError::Wal)?),
        _ => None,
    };
    let (busy, log, done): (i64, i64, i64) = conn.query_row(
        &format!("PRAGMA wal_checkpoint({})", mode.as_str().to_uppercase()),
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    drop(conn);
    let (log, done) = match frames_before {
        Some(n) if busy == 0 => (n as i64, n as i64),
        _ => (log, done),
    };
    let wal_bytes_after = wal::file_size(&wal_path).unwrap_or(0);
    let not_done = (log - done).max(0);
    let message = if busy != 0 {
        format!(
            "{} checkpoint could not complete: another connection is reading or writing; {done} of {log} frames copied, {not_done} left in the WAL",
            mode.as_str()
        )
    } else if not_done > 0 {
        format!("{not_done} of {log} frames could not be copied: a reader holds an older snapshot that needs them")
    } else {
        format!("{} checkpoint complete ({done} frames copied); WAL {wal_bytes_before} → {wal_bytes_after} bytes", mode.as_str())
    };
    Ok(CheckpointReport {
        mode,
        busy: busy != 0,
        log_frames: log,
        checkpointed_frames: done,
        frames_not_checkpointed: not_done,
        wal_bytes_before,
        wal_bytes_after,
        duration_seconds: start.elapsed().as_secs_f64(),
        message,
    })
}

/// Runs and failures of this action in `/metrics`.
pub const COUNTERS: Option<(&Counter, &Counter)> = Some((
    &Counter {
        name: "sqlite_checkpoints_total",
        help: "Checkpoints run (manual or by policy), by mode.",
        labels: &["database", "mode"],
    },
    &Counter {
        name: "sqlite_checkpoint_failures_total",
        help: "Checkpoints that failed or were blocked (busy), by mode.",
        labels: &["database", "mode"],
    },
));

/// Whether the last checkpoint the exporter ran was kept from finishing, in `/metrics`.
pub const LAST_BUSY: Gauge = Gauge {
    name: "sqlite_checkpoint_last_busy",
    help: "1 when the last checkpoint the exporter ran (manual or by policy) came back busy: a reader or writer kept it from finishing. Absent until one ran.",
    labels: &["database"],
};

/// A checkpoint request: `{"mode": "truncate"}` or `checkpoint --mode=truncate`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Checkpoint mode: passive, full, restart or truncate.
    #[arg(long, default_value = "passive")]
    pub mode: Option<String>,
}

impl Request {
    /// A checkpoint of `mode`.
    pub fn new(mode: Mode) -> Self {
        Request {
            mode: Some(mode.as_str().to_string()),
        }
    }

    fn parsed(&self) -> Result<Mode, ActionError> {
        self.mode
            .as_deref()
            .unwrap_or("passive")
            .parse()
            .map_err(|e: String| ActionError::new(ErrorKind::InvalidInput, e))
    }
}

impl crate::actions::Report for CheckpointReport {
    fn busy(&self) -> bool {
        self.busy
    }
}

impl Perform for Request {
    type Report = CheckpointReport;

    fn validate(&self) -> Result<(), ActionError> {
        self.parsed().map(|_| ())
    }

    fn mode(&self) -> Option<&'static str> {
        self.parsed().ok().map(Mode::as_str)
    }

    fn perform(&self, ctx: &Context<'_>) -> Result<CheckpointReport, ActionError> {
        let mode = self.parsed()?;
        let cfg = &ctx.monitor.config;
        let a = &cfg.settings.actions;
        // PASSIVE never waits for readers; the other modes wait up to their own timeout.
        let wait = if mode == Mode::Passive {
            a.busy_timeout.0
        } else {
            a.checkpoint_timeout.0
        };
        run(&cfg.path, mode, wait).map_err(|e| {
            let kind = match &e {
                CheckpointError::Open(o) => open_kind(o),
                CheckpointError::NotWal(_) => ErrorKind::InvalidInput,
                CheckpointError::Sqlite(s) if is_locked(s) => ErrorKind::Locked,
                CheckpointError::Wal(_) | CheckpointError::Sqlite(_) => ErrorKind::Internal,
            };
            ActionError::new(kind, e.to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    fn wal_db(path: &Path) -> Connection {
        let c = Connection::open(path).unwrap();
        c.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; CREATE TABLE t(v);
             WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 500)
             INSERT INTO t SELECT randomblob(500) FROM c;",
        )
        .unwrap();
        c
    }

    #[test]
    fn truncate_empties_the_wal_and_reports_the_frames_it_copied() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.db");
        let app = wal_db(&p);
        let page_size: i64 = app.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
        let wal_len = std::fs::metadata(wal::wal_path(&p)).unwrap().len();
        // One WAL generation, every transaction committed: the file is a header and frames.
        let frames = (wal_len as i64 - 32) / (24 + page_size);
        assert!(frames > 50, "{frames} frames");
        let r = run(&p, Mode::Truncate, Duration::from_secs(1)).unwrap();
        assert!(!r.busy, "{r:?}");
        assert_eq!(r.wal_bytes_before, wal_len);
        assert_eq!(r.wal_bytes_after, 0);
        assert_eq!(r.log_frames, frames, "the frames the WAL held: {r:?}");
        assert_eq!(r.checkpointed_frames, frames, "every one copied: {r:?}");
        assert_eq!(r.frames_not_checkpointed, 0);
        assert!(
            r.message.contains(&format!("({frames} frames copied)")),
            "{}",
            r.message
        );
    }

    #[test]
    fn a_reader_makes_restart_busy_and_leaves_frames() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.db");
        let app = wal_db(&p);
        let reader = Connection::open(&p).unwrap();
        reader
            .execute_batch("BEGIN; SELECT count(*) FROM t;")
            .unwrap();
        app.execute_batch("INSERT INTO t VALUES (randomblob(100));")
            .unwrap();
        let start = Instant::now();
        let r = run(&p, Mode::Restart, Duration::from_millis(300)).unwrap();
        assert!(r.busy, "{r:?}");
        assert!(r.frames_not_checkpointed > 0, "{r:?}");
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "waiting is bounded"
        );
        assert!(r.message.contains("could not"), "{}", r.message);
    }

    #[test]
    fn modes_parse() {
        assert_eq!("TRUNCATE".parse::<Mode>().unwrap(), Mode::Truncate);
        assert!("sideways".parse::<Mode>().is_err());
    }
}
