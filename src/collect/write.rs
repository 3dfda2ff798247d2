//! `write`: the write probe, per `probes.write`.
//!
//! `lock` takes the write lock (`BEGIN IMMEDIATE`) and releases it (`ROLLBACK`): it measures
//! how long a writer waits for the lock and writes nothing. `table` commits one row to
//! `_sqlite_exporter_probe`, which measures a real commit including its fsync — the only mode
//! that changes the database, and only when asked for. Both use their own short-lived
//! read-write connection with the scrape busy timeout (1 s), and checkpoint-on-close disabled
//! ([`crate::sqlite::connection`]). A file the process cannot write is skipped with a note, not an error.

use std::time::Instant;

use rusqlite::ErrorCode;

use super::series::{Histogram, Series, LATENCY_BUCKETS};
use super::{CollectError, Collector, Database, Facts, Scrape};

/// `sqlite_write_duration_seconds`: every write probe's latency.
pub const WRITE_DURATION: Histogram = Histogram {
    name: "sqlite_write_duration_seconds",
    help: "Latency of the write probe (probes.write: lock = BEGIN IMMEDIATE…ROLLBACK, table = a committed write to _sqlite_exporter_probe), run every probes.interval.",
    labels: &["database"],
    buckets: LATENCY_BUCKETS,
};
use crate::config::WriteProbe;
use crate::sqlite::connection::{self, OpenError};
use crate::sqlite::PROBE_BUSY_TIMEOUT;

/// Times the configured write probe.
pub struct Write;

impl Collector for Write {
    fn name(&self) -> &'static str {
        "write"
    }

    fn update(&self, s: &mut Scrape<'_>) -> Result<(), CollectError> {
        let mode = s.settings.probes.write;
        if mode == WriteProbe::Off {
            return Ok(());
        }
        if let Some(reason) = not_writable(s.path) {
            s.facts.performance.write_note = Some(reason);
            return Ok(());
        }
        let conn = match connection::open_read_write(s.path, PROBE_BUSY_TIMEOUT) {
            Ok(c) => c,
            Err(OpenError::PermissionDenied) => {
                s.facts.performance.write_note = Some("database file is not writable".into());
                return Ok(());
            }
            Err(e) => return Err(CollectError::Io(std::io::Error::other(e.to_string()))),
        };
        let start = Instant::now();
        let result = match mode {
            WriteProbe::Lock => conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;"),
            _ => conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS _sqlite_exporter_probe(id INTEGER PRIMARY KEY CHECK (id = 1), probed_at REAL NOT NULL);
                 INSERT OR REPLACE INTO _sqlite_exporter_probe(id, probed_at) VALUES (1, unixepoch('subsec'));",
            ),
        };
        let elapsed = start.elapsed().as_secs_f64();
        match result {
            Ok(()) => {
                s.facts.performance.write_seconds = Some(elapsed);
                Ok(())
            }
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
                ) =>
            {
                // A writer would have waited at least this long: that is the measurement.
                s.facts.performance.write_seconds = Some(elapsed);
                s.facts.performance.write_note = Some(format!(
                    "write lock not acquired within {:?}",
                    PROBE_BUSY_TIMEOUT
                ));
                Ok(())
            }
            Err(e) if e.sqlite_error_code() == Some(ErrorCode::ReadOnly) => {
                s.facts.performance.write_note = Some(format!("database is read-only: {e}"));
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Its latency accumulates in [`WRITE_DURATION`], recorded by the fleet's event sink.
    fn series(&self, _: &Database<'_>, _: &Facts, _: &mut dyn Series) {}
}

/// Why a write probe cannot run here, if it cannot: the file or its directory (where SQLite
/// creates the journal) is not writable by this process.
fn not_writable(path: &std::path::Path) -> Option<String> {
    use crate::sqlite::connection::accessible;
    if !accessible(path, libc::W_OK) {
        return Some("database file is not writable by the exporter; write probe skipped".into());
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    if !accessible(dir, libc::W_OK) {
        return Some("database directory is not writable by the exporter (journal files); write probe skipped".into());
    }
    None
}
