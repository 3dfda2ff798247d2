//! `wal`: sizes of the `-wal` and `-shm` files and the frames in the WAL (see [`crate::sqlite::wal`]).

use super::{CollectError, Collector, Scrape};
use crate::sqlite::wal;

/// Collects WAL and SHM sizes and the WAL frame count.
pub struct Wal;

impl Collector for Wal {
    fn name(&self) -> &'static str {
        "wal"
    }

    fn update(&self, s: &mut Scrape<'_>) -> Result<(), CollectError> {
        let f = &mut s.facts.wal;
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
}
