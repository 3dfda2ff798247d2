//! The WAL and its index, read from the files themselves.
//!
//! `sqlite_wal_frames` must not come from `PRAGMA wal_checkpoint` (that *is* a checkpoint). The
//! number of valid frames in the WAL is `mxFrame` in the wal-index header at the start of the
//! `-shm` file, which every connection keeps current. Reading 96 bytes from it is O(1) and
//! takes no lock; SQLite writes the header twice (two 48-byte copies) precisely so that a
//! lock-free reader can detect a torn read, and we use the same rule: retry until both copies
//! agree.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// The `-wal` file of a database.
pub fn wal_path(db: &Path) -> PathBuf {
    suffixed(db, "-wal")
}

/// The `-shm` file (wal-index) of a database.
pub fn shm_path(db: &Path) -> PathBuf {
    suffixed(db, "-shm")
}

fn suffixed(db: &Path, suffix: &str) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Size of a file, 0 when it does not exist.
pub fn file_size(path: &Path) -> io::Result<u64> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(m.len()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

/// Frames currently in the WAL according to the wal-index (`mxFrame`), or `None` when there is
/// no initialised wal-index to read.
pub fn frames(shm: &Path) -> io::Result<Option<u64>> {
    let mut file = match File::open(shm) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    for _ in 0..16 {
        let mut buf = [0u8; 96];
        let mut read = 0;
        while read < buf.len() {
            use std::io::Seek;
            file.seek(io::SeekFrom::Start(read as u64))?;
            match file.read(&mut buf[read..])? {
                0 => return Ok(None),
                n => read += n,
            }
        }
        if let Some(frames) = parse_index_header(&buf) {
            return Ok(Some(frames));
        }
    }
    Ok(None)
}

/// Parses the two copies of the wal-index header; `None` if they differ (a write was in
/// progress) or the index is not initialised.
fn parse_index_header(buf: &[u8; 96]) -> Option<u64> {
    let (a, b) = buf.split_at(48);
    if a != b {
        return None;
    }
    // Layout (wal.c, WalIndexHdr): iVersion u32, unused u32, iChange u32, isInit u8,
    // bigEndCksum u8, szPage u16, mxFrame u32, ... in the host's byte order.
    let is_init = a[12];
    if is_init == 0 {
        return None;
    }
    let mx_frame = u32::from_ne_bytes([a[16], a[17], a[18], a[19]]);
    Some(u64::from(mx_frame))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    #[test]
    fn frames_match_the_checkpoint_report() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("w.db");
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;
             CREATE TABLE t(x); INSERT INTO t VALUES (1); INSERT INTO t VALUES (2);",
        )
        .unwrap();
        let n = frames(&shm_path(&db)).unwrap().unwrap();
        let (_, log, _): (i64, i64, i64) = conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert!(n > 0);
        assert_eq!(n as i64, log);
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
        assert_eq!(frames(&shm_path(&db)).unwrap(), Some(0));
    }

    #[test]
    fn no_shm_means_unknown() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(frames(&dir.path().join("x-shm")).unwrap(), None);
    }
}
