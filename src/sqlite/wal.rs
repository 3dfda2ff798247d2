//! The WAL, read from the file itself.
//!
//! `sqlite_wal_frames` must not come from `PRAGMA wal_checkpoint` (that *is* a checkpoint), and
//! it must not come from opening the `-shm` file either: SQLite's WAL locks live in `-shm`, and
//! closing any descriptor of a file releases every POSIX lock this process holds on it — those
//! of our own connections included (a backup's snapshot, an action's write lock). The `-wal`
//! file carries no locks, so we read it: the frames of the current WAL generation are the
//! prefix of frames whose salts equal the salts in the WAL header (a checkpoint that restarts
//! the WAL writes new salts, and new frames overwrite the old from the start). That prefix is
//! found by binary search: O(log frames) reads of 8 bytes, no lock, no snapshot.
//!
//! From the end of that prefix the count steps back to the last commit frame, so frames of a
//! transaction that was rolled back or cut off by a crash are not counted, as in SQLite's own
//! `mxFrame`.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// The `-wal` file of a database.
pub fn wal_path(db: &Path) -> PathBuf {
    suffixed(db, "-wal")
}

/// The `-shm` file (wal-index) of a database.
pub fn shm_path(db: &Path) -> PathBuf {
    suffixed(db, "-shm")
}

/// The rollback `-journal` file of a database.
pub fn journal_path(db: &Path) -> PathBuf {
    suffixed(db, "-journal")
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

/// Magic numbers of a WAL header (big- and little-endian checksums).
const WAL_MAGIC: [u32; 2] = [0x377f_0682, 0x377f_0683];
const WAL_HEADER: u64 = 32;
const FRAME_HEADER: u64 = 24;

/// Frames of the current generation in the WAL file at `wal` (0 when there is no WAL or it
/// holds no valid header).
pub fn frames(wal: &Path) -> io::Result<u64> {
    match read_frames(wal) {
        // A checkpoint truncated the WAL while we read it: it holds no frames now.
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
        other => other,
    }
}

fn read_frames(wal: &Path) -> io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let file = match File::open(wal) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    if len < WAL_HEADER {
        return Ok(0);
    }
    let mut header = [0u8; WAL_HEADER as usize];
    file.read_exact_at(&mut header, 0)?;
    let word = |b: &[u8], i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    if !WAL_MAGIC.contains(&word(&header, 0)) {
        return Ok(0);
    }
    let page_size = u64::from(word(&header, 8));
    if !(512..=65536).contains(&page_size) {
        return Ok(0);
    }
    let frame = FRAME_HEADER + page_size;
    let salts = &header[16..24];
    let matches = |k: u64| -> io::Result<bool> {
        let mut s = [0u8; 8];
        file.read_exact_at(&mut s, WAL_HEADER + (k - 1) * frame + 8)?;
        Ok(s == salts)
    };
    // Largest k in 0..=n with frames 1..=k of this generation.
    let (mut lo, mut hi) = (0u64, (len - WAL_HEADER) / frame);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if matches(mid)? {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    // Back to the last commit frame (a non-zero "database size after commit"), so the frames
    // of a rolled-back or crashed transaction at the tail are not counted. The walk is bounded;
    // past the bound the tail is counted (an upper bound, never a made-up low value).
    let commit = |k: u64| -> io::Result<bool> {
        let mut size = [0u8; 4];
        file.read_exact_at(&mut size, WAL_HEADER + (k - 1) * frame + 4)?;
        Ok(size != [0; 4])
    };
    let mut k = lo;
    while k > 0 && lo - k < COMMIT_SEARCH_FRAMES {
        if commit(k)? {
            return Ok(k);
        }
        k -= 1;
    }
    Ok(if k == 0 { 0 } else { lo })
}

/// How far back from the end of the current generation the commit frame is looked for.
const COMMIT_SEARCH_FRAMES: u64 = 4096;

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
        let n = frames(&wal_path(&db)).unwrap();
        let (_, log, _): (i64, i64, i64) = conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert!(n > 0);
        assert_eq!(n as i64, log);
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
        assert_eq!(frames(&wal_path(&db)).unwrap(), 0);
    }

    #[test]
    fn a_restarted_wal_counts_only_its_new_frames() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("w.db");
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; CREATE TABLE t(x);
             WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 200)
             INSERT INTO t SELECT randomblob(3000) FROM c;
             PRAGMA wal_checkpoint(RESTART);
             INSERT INTO t VALUES (1);",
        )
        .unwrap();
        let size = std::fs::metadata(wal_path(&db)).unwrap().len();
        let n = frames(&wal_path(&db)).unwrap();
        let (_, log, _): (i64, i64, i64) = conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert!(size > 100 * 4096, "the file keeps its old size");
        assert_eq!(n as i64, log, "only the frames written after the restart");
        assert!(n < 10);
    }

    #[test]
    fn frames_of_a_rolled_back_transaction_are_not_counted() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("w.db");
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; PRAGMA cache_size=10;
             CREATE TABLE t(x); INSERT INTO t VALUES (1);",
        )
        .unwrap();
        let committed = frames(&wal_path(&db)).unwrap();
        // A transaction too big for the cache spills frames into the WAL, then rolls back.
        conn.execute_batch(
            "BEGIN; WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 500)
             INSERT INTO t SELECT randomblob(4000) FROM c; ROLLBACK;",
        )
        .unwrap();
        assert!(
            std::fs::metadata(wal_path(&db)).unwrap().len() > 100 * 4096,
            "the transaction spilled"
        );
        let (_, log, _): (i64, i64, i64) = conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert_eq!(frames(&wal_path(&db)).unwrap(), committed);
        assert_eq!(committed as i64, log);
    }

    #[test]
    fn no_wal_means_no_frames() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(frames(&dir.path().join("x-wal")).unwrap(), 0);
        std::fs::write(dir.path().join("y-wal"), b"junk").unwrap();
        assert_eq!(frames(&dir.path().join("y-wal")).unwrap(), 0);
    }
}
