//! `wal_index`: how far checkpoints lag behind the WAL, from the WAL-index header (see
//! [`crate::sqlite::wal_index`]). It runs with the probes, on the probe's own connection: the
//! scrape path opens no connection, and the header is only reachable through one.

use serde::Serialize;

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

/// `sqlite_wal_checkpoint_sequence`.
pub const SEQUENCE: Gauge = Gauge {
    name: "sqlite_wal_checkpoint_sequence",
    help: "Checkpoint sequence number of the -wal file header: it advances each time the WAL is restarted from its first frame after a complete checkpoint, so changes() shows whether one happened. Absent while the WAL is empty.",
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
            if let Some(sequence) = index.checkpoint_sequence {
                out.set(&SEQUENCE, &[db.name], f64::from(sequence));
            }
        }
    }
}

/// How long checkpoints have made no progress, as of the latest probe: the health model's
/// "checkpoint starved" verdict needs a duration, which one reading of the header cannot give.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CheckpointStall {
    /// Unix time at which `nBackfill` was last seen to move (or the WAL to restart), or the
    /// first reading.
    pub since_unix: f64,
    /// Seconds from then to the latest probe.
    pub seconds: f64,
    /// `nBackfill` then.
    pub backfilled: u32,
    /// `mxFrame` then: the WAL grew during the stall when it is above this now.
    pub max_frame_then: u32,
}

impl CheckpointStall {
    /// The stall after the probe at `now_unix` read `index`, given the one before. A moved
    /// `nBackfill` or a restarted WAL (`mxFrame` below its earlier value) is progress and starts
    /// it again; no reading forgets it.
    pub fn track(
        previous: Option<CheckpointStall>,
        index: Option<wal_index::WalIndex>,
        now_unix: f64,
    ) -> Option<CheckpointStall> {
        let index = index?;
        let fresh = CheckpointStall {
            since_unix: now_unix,
            seconds: 0.0,
            backfilled: index.backfilled,
            max_frame_then: index.max_frame,
        };
        match previous {
            Some(p) if p.backfilled == index.backfilled && index.max_frame >= p.max_frame_then => {
                Some(CheckpointStall {
                    seconds: (now_unix - p.since_unix).max(0.0),
                    ..p
                })
            }
            _ => Some(fresh),
        }
    }

    /// Whether the WAL grew while checkpoints stood still.
    pub fn grew(&self, index: &wal_index::WalIndex) -> bool {
        index.max_frame > self.max_frame_then
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::wal_index::WalIndex;

    fn index(max_frame: u32, backfilled: u32) -> Option<WalIndex> {
        Some(WalIndex {
            max_frame,
            backfilled,
            oldest_read_mark: None,
            checkpoint_sequence: None,
        })
    }

    #[test]
    fn a_stall_lasts_until_checkpoints_move_or_the_wal_restarts() {
        let first = CheckpointStall::track(None, index(10, 0), 100.0).unwrap();
        assert_eq!((first.seconds, first.max_frame_then), (0.0, 10));
        let growing = CheckpointStall::track(Some(first), index(50, 0), 160.0).unwrap();
        assert_eq!(growing.seconds, 60.0);
        assert!(growing.grew(&index(50, 0).unwrap()));
        let still = CheckpointStall::track(Some(growing), index(90, 0), 1000.0).unwrap();
        assert_eq!(still.seconds, 900.0);

        let moved = CheckpointStall::track(Some(still), index(90, 40), 1010.0).unwrap();
        assert_eq!((moved.seconds, moved.since_unix), (0.0, 1010.0));
        let restarted = CheckpointStall::track(Some(still), index(3, 0), 1010.0).unwrap();
        assert_eq!((restarted.seconds, restarted.max_frame_then), (0.0, 3));
        assert_eq!(CheckpointStall::track(Some(still), None, 1010.0), None);
    }
}
