//! Bounding O(size) work on a connection: a timeout and a cancel flag for long statements.
//!
//! Integrity checks and dbstat scans read every page of a database, so they run in the
//! background and must be stoppable: when the exporter shuts down, when the operator cancels a
//! job, or when the check outlives its `timeout` (a check that never ends holds its read
//! snapshot forever, which in WAL mode stops checkpoints from resetting the WAL, and in
//! rollback-journal mode keeps writers from committing).
//!
//! The mechanism is `sqlite3_interrupt`, sent from a watcher thread through the connection's
//! [`rusqlite::InterruptHandle`]. A progress handler would not do: it cannot see a borrowed
//! cancel flag (its closure must be `'static`), and it is only consulted between VDBE opcodes.
//! `sqlite3_interrupt` is also honoured inside the b-tree walk of `PRAGMA integrity_check`.
//!
//! SQLite forgets an interrupt that arrives while no statement is running (the flag is
//! cleared when the next statement starts), so once the watcher has fired it keeps
//! interrupting on every tick until the work returns; callers also ask [`Guard::stopped`]
//! between statements.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::Connection;

/// How often the watcher looks at the cancel flag, and re-sends the interrupt once fired.
const TICK: Duration = Duration::from_millis(10);

/// Why bounded work was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The work ran longer than the given timeout.
    Timeout(Duration),
    /// The caller's cancel flag was set.
    Cancelled,
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stop::Timeout(t) => write!(f, "timeout after {t:?}"),
            Stop::Cancelled => f.write_str("cancelled"),
        }
    }
}

/// What the work closure sees: whether the watcher has fired.
pub struct Guard {
    fired: Mutex<Option<Stop>>,
}

impl Guard {
    /// The reason the work was stopped, if the watcher has fired.
    pub fn stopped(&self) -> Option<Stop> {
        *self.fired.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fire(&self, stop: Stop) {
        let mut fired = self.fired.lock().unwrap_or_else(|p| p.into_inner());
        fired.get_or_insert(stop);
    }
}

/// Runs `work` on `conn`, interrupting its statements once `timeout` has passed (measured from
/// `started`) or `cancel` is set. Returns the work's result and, if the watcher fired before
/// the work returned, why. A result obtained while the watcher fired must not be trusted as a
/// complete answer: the caller reports it as interrupted.
pub fn bounded<T>(
    conn: &Connection,
    started: Instant,
    timeout: Duration,
    cancel: &AtomicBool,
    work: impl FnOnce(&Connection, &Guard) -> T,
) -> (T, Option<Stop>) {
    let guard = Guard {
        fired: Mutex::new(None),
    };
    let handle = conn.get_interrupt_handle();
    let deadline = started + timeout;
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let result = std::thread::scope(|scope| {
        let guard = &guard;
        scope.spawn(move || loop {
            if guard.stopped().is_none() {
                if cancel.load(Ordering::Relaxed) {
                    guard.fire(Stop::Cancelled);
                } else if Instant::now() >= deadline {
                    guard.fire(Stop::Timeout(timeout));
                }
            }
            let wait = if guard.stopped().is_some() {
                handle.interrupt();
                TICK
            } else {
                deadline.saturating_duration_since(Instant::now()).min(TICK)
            };
            match done_rx.recv_timeout(wait) {
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                _ => break,
            }
        });
        let result = work(conn, guard);
        drop(done_tx);
        result
    });
    let stop = guard.stopped();
    (result, stop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endless(conn: &Connection) -> rusqlite::Result<i64> {
        conn.query_row(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c",
            [],
            |r| r.get(0),
        )
    }

    #[test]
    fn timeout_interrupts_a_running_statement() {
        let conn = Connection::open_in_memory().unwrap();
        let never = AtomicBool::new(false);
        let started = Instant::now();
        let (res, stop) = bounded(&conn, started, Duration::from_millis(50), &never, |c, _| {
            endless(c)
        });
        assert!(res.is_err(), "endless query must be interrupted");
        assert_eq!(stop, Some(Stop::Timeout(Duration::from_millis(50))));
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn cancel_interrupts_and_names_the_reason() {
        let conn = Connection::open_in_memory().unwrap();
        let cancel = AtomicBool::new(false);
        let (res, stop) = std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(30));
                cancel.store(true, Ordering::Relaxed);
            });
            bounded(
                &conn,
                Instant::now(),
                Duration::from_secs(60),
                &cancel,
                |c, _| endless(c),
            )
        });
        assert!(res.is_err());
        assert_eq!(stop, Some(Stop::Cancelled));
    }

    #[test]
    fn quick_work_is_not_stopped_and_the_connection_stays_usable() {
        let conn = Connection::open_in_memory().unwrap();
        let never = AtomicBool::new(false);
        let (res, stop) = bounded(
            &conn,
            Instant::now(),
            Duration::from_secs(5),
            &never,
            |c, _| c.query_row("SELECT 42", [], |r| r.get::<_, i64>(0)),
        );
        assert_eq!(res.unwrap(), 42);
        assert_eq!(stop, None);
        let after: i64 = conn.query_row("SELECT 1", [], |r| r.get(0)).unwrap();
        assert_eq!(after, 1);
    }
}
