//! `wal_index`: how far checkpoints lag behind the WAL, from the WAL-index header (see
//! [`crate::sqlite::wal_index`]). It runs with the probes, on the probe's own connection: the
//! scrape path opens no connection, and the header is only reachable through one.

use super::series::{Gauge, Series};
use super::{CollectError, Collector, Database, Facts, Scrape};
use crate::sqlite::wal_index;

const DB: &[&str] = &["database"];

/// `sqlite_wal_frames_backfilled`.
pub const BACKFILLED: Gauge = Gauge {
    name: "sqlite_wal_frames_backfilled",
    help: "WAL frames a checkpoint has copied back into the database (nBackfill of the WAL-index header), as of the last read probe.",
    labels: DB,
};
/// `sqlite_wal_frames_pending`.
pub const PENDING: Gauge = Gauge {
    name: "sqlite_wal_frames_pending",
    help: "WAL frames not yet checkpointed into the database (mxFrame - nBackfill of the WAL-index header), as of the last read probe.",
    labels: DB,
};

/// Reads the WAL-index header through the probe's connection.
pub struct WalIndex;

impl Collector for WalIndex {
    fn name(&self) -> &'static str {
        "wal_index"
    }

    fn update(&self, s: &mut Scrape<'_>) -> Result<(), CollectError> {
        let conn = s.conn.get()?;
        // Not in WAL mode, or a header being rewritten right now: no figure rather than a
        // guessed one (the next probe reads it again).
        s.facts.performance.wal_index = wal_index::read(conn).ok();
        Ok(())
    }

    fn series(&self, db: &Database<'_>, facts: &Facts, out: &mut dyn Series) {
        if let Some(index) = facts.performance.wal_index {
            out.set(&BACKFILLED, &[db.name], f64::from(index.backfilled));
            out.set(&PENDING, &[db.name], f64::from(index.pending()));
        }
    }
}
