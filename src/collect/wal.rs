//! `wal`: sizes of the `-wal` and `-shm` files and the frames in the WAL (see [`crate::sqlite::wal`]).

use super::series::{Gauge, Series};
use super::{CollectError, Collector, Database, Facts, Scrape};

const DB: &[&str] = &["database"];

/// `sqlite_wal_size_bytes`.
pub const WAL_SIZE: Gauge = Gauge {
    name: "sqlite_wal_size_bytes",
    help: "Size of the -wal file, 0 when absent.",
    labels: DB,
};
/// `sqlite_shm_size_bytes`.
pub const SHM_SIZE: Gauge = Gauge {
    name: "sqlite_shm_size_bytes",
    help: "Size of the -shm file, 0 when absent.",
    labels: DB,
};
/// `sqlite_wal_frames`.
pub const FRAMES: Gauge = Gauge {
    name: "sqlite_wal_frames",
    help: "Frames of the current WAL generation, read from the -wal file.",
    labels: DB,
};
use crate::sqlite::wal;

/// Collects WAL and SHM sizes and the WAL frame count.
pub struct Wal;

impl Collector for Wal {
    fn name(&self) -> &'static str {
        "wal"
    }

    fn update(&self, s: &mut Scrape<'_>) -> Result<(), CollectError> {
        let f = &mut s.facts.wal;
        if let Some(files) = s.files {
            f.wal_bytes = Some(files.wal_bytes);
            f.shm_bytes = Some(files.shm_bytes);
            f.frames = Some(files.header.wal_frames);
            return Ok(());
        }
        let wal_bytes = wal::file_size(&wal::wal_path(s.path))?;
        f.wal_bytes = Some(wal_bytes);
        f.shm_bytes = Some(wal::file_size(&wal::shm_path(s.path))?);
        f.frames = Some(if wal_bytes == 0 {
            0
        } else {
            wal::frames(&wal::wal_path(s.path))?
        });
        Ok(())
    }

    fn series(&self, db: &Database<'_>, facts: &Facts, out: &mut dyn Series) {
        let f = &facts.wal;
        for (gauge, value) in [
            (&WAL_SIZE, f.wal_bytes),
            (&SHM_SIZE, f.shm_bytes),
            (&FRAMES, f.frames),
        ] {
            if let Some(v) = value {
                out.set(gauge, &[db.name], v as f64);
            }
        }
    }
}
