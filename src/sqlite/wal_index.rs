//! The WAL-index header, read through the shared memory that SQLite itself has mapped for a
//! connection: how far the WAL goes (`mxFrame`) and how far checkpoints have copied it back
//! into the database (`nBackfill`). Their difference is the work a checkpoint still has to do;
//! when it stays large while the WAL grows, something is starving the checkpoint (a reader
//! holding an old snapshot, a checkpoint that keeps coming back busy, or none running at all).
//!
//! # Why through SQLite's mapping
//!
//! The `-shm` file could be opened and read directly, but closing that second descriptor would
//! drop every POSIX lock this process holds on the file — including the read locks of its own
//! connections. So the header is read through the connection's VFS: `SQLITE_FCNTL_FILE_POINTER`
//! gives the main database's `sqlite3_file`, and its `xShmMap` (I/O methods version 2 and
//! later) returns region 0 of the mapping the connection already holds. Nothing is written, no
//! lock is taken, and the cost is a few dozen bytes whatever the size of the WAL.
//!
//! `xShmMap` opens the `-shm` file when the connection has not yet mapped it, so it is only
//! called on a connection that is in WAL mode and has read: then the mapping exists and the
//! call only looks it up.
//!
//! # A header that changes under us
//!
//! SQLite keeps two copies of the 48-byte index header and a writer updates them one after the
//! other, so a reader that sees both copies equal, initialised and with a valid checksum has a
//! consistent header — the same test SQLite's own readers apply before trusting it. A header
//! that fails the test is being written (or was never initialised, or a writer crashed midway):
//! the read is retried a few times and otherwise reported as unknown, never guessed. The
//! checkpoint information after the headers (`nBackfill`) is a single aligned 32-bit word,
//! read once; it can only be a value a checkpointer stored, possibly a moment stale.
//!
//! # The checkpoint sequence
//!
//! The `-wal` file's own 32-byte header carries SQLite's checkpoint sequence number: the
//! connection that restarts the WAL from its first frame after a complete checkpoint counts
//! one more and writes the count with the next frame. It is read through the connection's WAL
//! handle (`SQLITE_FCNTL_JOURNAL_POINTER`, then that file's `xRead`), again without a
//! descriptor of our own. The header is trusted only with SQLite's magic number and a valid
//! checksum; an empty WAL (just truncated) has none, and the sequence is then unknown. The
//! count is kept per connection, so a restart done by another connection than the one that
//! writes next (an exporter's TRUNCATE checkpoint, say) may not advance it: a change means the
//! WAL was restarted, no change over a long busy period means it was not.
//!
//! Layout (native byte order, from SQLite's `wal.c`): header copies at bytes 0 and 48, each
//! `iVersion` u32 @0, unused u32 @4, `iChange` u32 @8, `isInit` u8 @12, `bigEndCksum` u8 @13,
//! `szPage` u16 @14, `mxFrame` u32 @16, `nPage` u32 @20, `aFrameCksum` 2×u32 @24, `aSalt` 2×u32
//! @32, `aCksum` 2×u32 @40 (over bytes 0..40). Then `nBackfill` u32 @96 and the five read marks
//! u32 @100.

use std::ffi::{c_int, c_void};
use std::sync::atomic::{fence, Ordering};

use rusqlite::{ffi, Connection};

/// The index header version SQLite writes (`WALINDEX_MAX_VERSION`).
const INDEX_VERSION: u32 = 3007000;
/// Bytes of one header copy.
const HEADER: usize = 48;
/// Offset of `nBackfill`.
const BACKFILL: usize = 96;
/// Offset of the first read mark.
const READ_MARKS: usize = 100;
/// Read marks in the checkpoint information.
const READ_MARK_COUNT: usize = 5;
/// A read mark that no reader has claimed.
const READ_MARK_UNUSED: u32 = 0xffff_ffff;
/// Size of region 0 of the mapping, as SQLite requests it (`WALINDEX_PGSZ`).
const REGION: c_int = 32768;
/// Attempts at a consistent header before giving up.
const ATTEMPTS: usize = 5;

/// What the WAL-index header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct WalIndex {
    /// The last valid frame of the WAL (`mxFrame`).
    pub max_frame: u32,
    /// Frames a checkpoint has copied back into the database (`nBackfill`).
    pub backfilled: u32,
    /// The oldest snapshot a read mark records, below `max_frame`, if any: a reader pinned
    /// there (or one that was, since marks are not cleared when readers finish) stops a
    /// checkpoint from backfilling past it.
    pub oldest_read_mark: Option<u32>,
    /// The checkpoint sequence number of the `-wal` file's header, when it has a valid one.
    pub checkpoint_sequence: Option<u32>,
}

impl WalIndex {
    /// Frames written to the WAL and not yet copied back into the database.
    pub fn pending(&self) -> u32 {
        self.max_frame.saturating_sub(self.backfilled)
    }
}

/// Why the header could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalIndexError {
    /// The connection is not in WAL mode: there is no index.
    #[error("the database is not in WAL mode")]
    NotWal,
    /// The VFS has no shared memory the exporter can reach.
    #[error("the VFS offers no shared-memory mapping")]
    NoSharedMemory,
    /// The connection has no mapping yet (it has not read).
    #[error("the WAL index is not mapped by this connection")]
    NotMapped,
    /// No consistent header in a few attempts: a writer is updating it, or it is not
    /// initialised.
    #[error("the WAL-index header is changing or not initialised")]
    Inconsistent,
    /// SQLite refused a call.
    #[error("SQLite error {0} reading the WAL index")]
    Sqlite(c_int),
}

/// Reads the WAL-index header through `conn`'s own shared-memory mapping. `conn` must have
/// read from the database (any statement) so that SQLite has mapped the index.
pub fn read(conn: &Connection) -> Result<WalIndex, WalIndexError> {
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .map_err(|e| WalIndexError::Sqlite(e.sqlite_error_code().map_or(-1, |c| c as c_int)))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(WalIndexError::NotWal);
    }
    let region = map_region(conn)?;
    // SAFETY: `region` is region 0 of the connection's mapping, at least `REGION` bytes, valid
    // for as long as the connection is open, which outlives this call.
    let mut index = unsafe { parse(region) }?;
    index.checkpoint_sequence = checkpoint_sequence(conn);
    Ok(index)
}

/// The WAL file's header magic; its low bit says the checksums are big-endian.
const WAL_MAGIC: u32 = 0x377f_0682;
/// Bytes of the WAL file's header.
const WAL_HEADER: usize = 32;

/// The checkpoint sequence number from the header of `conn`'s open `-wal` file, read through
/// SQLite's own handle. `None` when there is no handle or no valid header (an empty WAL).
fn checkpoint_sequence(conn: &Connection) -> Option<u32> {
    let file = file_pointer(conn, ffi::SQLITE_FCNTL_JOURNAL_POINTER).ok()?;
    // SAFETY: SQLite returned the WAL file of a live connection (or null).
    let methods = unsafe { file.as_ref().and_then(|f| f.pMethods.as_ref()) }?;
    let read = methods.xRead?;
    let mut header = [0u8; WAL_HEADER];
    // SAFETY: the VFS's own read of its own open file into a buffer of the length given; a
    // read never changes the file or its locks.
    let rc = unsafe {
        read(
            file,
            header.as_mut_ptr().cast::<c_void>(),
            WAL_HEADER as c_int,
            0,
        )
    };
    (rc == ffi::SQLITE_OK).then_some(())?;
    wal_header_sequence(&header)
}

/// The checkpoint sequence of a WAL file header (`magic` @0, `version` @4, `page size` @8,
/// `sequence` @12, salts @16 and @20, checksum @24 over bytes 0..24, all big-endian), if the
/// header is one SQLite wrote.
fn wal_header_sequence(h: &[u8; WAL_HEADER]) -> Option<u32> {
    let be = |at: usize| u32::from_be_bytes(h[at..at + 4].try_into().expect("4 bytes"));
    let magic = be(0);
    if magic & !1 != WAL_MAGIC {
        return None;
    }
    let word = |at: usize| {
        let b: [u8; 4] = h[at..at + 4].try_into().expect("4 bytes");
        if magic & 1 == 1 {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    };
    let (mut s1, mut s2) = (0u32, 0u32);
    for at in (0..24).step_by(8) {
        s1 = s1.wrapping_add(word(at)).wrapping_add(s2);
        s2 = s2.wrapping_add(word(at + 4)).wrapping_add(s1);
    }
    ((s1, s2) == (be(24), be(28))).then(|| be(12))
}

/// The `sqlite3_file` that file control `op` (`SQLITE_FCNTL_FILE_POINTER` or
/// `SQLITE_FCNTL_JOURNAL_POINTER`) gives for `conn`'s main database; may be null.
fn file_pointer(conn: &Connection, op: c_int) -> Result<*mut ffi::sqlite3_file, WalIndexError> {
    // SAFETY: the handle is only passed to `sqlite3_file_control`, which neither closes it nor
    // changes the connection's state.
    let db = unsafe { conn.handle() };
    let mut file: *mut ffi::sqlite3_file = std::ptr::null_mut();
    // SAFETY: `db` is a live handle; both file controls write one pointer to `file`.
    let rc = unsafe {
        ffi::sqlite3_file_control(
            db,
            c"main".as_ptr(),
            op,
            (&mut file as *mut *mut ffi::sqlite3_file).cast::<c_void>(),
        )
    };
    if rc == ffi::SQLITE_OK {
        Ok(file)
    } else {
        Err(WalIndexError::Sqlite(rc))
    }
}

/// Region 0 of the connection's WAL-index mapping.
fn map_region(conn: &Connection) -> Result<*const u8, WalIndexError> {
    let file = file_pointer(conn, ffi::SQLITE_FCNTL_FILE_POINTER)?;
    // SAFETY: SQLite returned the main database file of a live connection (or null).
    let methods = unsafe { file.as_ref().and_then(|f| f.pMethods.as_ref()) };
    let Some(methods) = methods else {
        return Err(WalIndexError::NoSharedMemory);
    };
    let Some(shm_map) = methods.xShmMap.filter(|_| methods.iVersion >= 2) else {
        return Err(WalIndexError::NoSharedMemory);
    };
    let mut region: *mut c_void = std::ptr::null_mut();
    // SAFETY: the VFS's own method on its own file; `bExtend = 0` never grows the mapping, and
    // the connection (in WAL mode, having read) has it open already, so nothing is opened.
    let rc = unsafe { shm_map(file, 0, REGION, 0, &mut region as *mut *mut c_void as _) };
    match rc {
        ffi::SQLITE_OK if !region.is_null() => Ok(region.cast::<u8>()),
        ffi::SQLITE_OK => Err(WalIndexError::NotMapped),
        rc => Err(WalIndexError::Sqlite(rc)),
    }
}

/// Parses the index at `region`.
///
/// # Safety
/// `region` must point to at least `BACKFILL + 4 * (1 + READ_MARK_COUNT)` readable bytes.
unsafe fn parse(region: *const u8) -> Result<WalIndex, WalIndexError> {
    for _ in 0..ATTEMPTS {
        // SAFETY: within the region, as the caller promises.
        let first = unsafe { copy::<HEADER>(region) };
        fence(Ordering::SeqCst);
        let second = unsafe { copy::<HEADER>(region.add(HEADER)) };
        if first == second && consistent(&first) {
            fence(Ordering::SeqCst);
            let backfilled = unsafe { word(region, BACKFILL) };
            let max_frame = native(&first, 16);
            let oldest_read_mark = (1..READ_MARK_COUNT)
                .map(|i| unsafe { word(region, READ_MARKS + 4 * i) })
                .filter(|&m| m != READ_MARK_UNUSED && m < max_frame)
                .min();
            return Ok(WalIndex {
                max_frame,
                backfilled,
                oldest_read_mark,
                checkpoint_sequence: None,
            });
        }
        std::thread::yield_now();
    }
    Err(WalIndexError::Inconsistent)
}

/// A volatile copy of `N` bytes: the memory is shared with other processes.
///
/// # Safety
/// `at` must point to `N` readable bytes.
unsafe fn copy<const N: usize>(at: *const u8) -> [u8; N] {
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = unsafe { std::ptr::read_volatile(at.add(i)) };
    }
    out
}

/// One aligned native 32-bit word, read once.
///
/// # Safety
/// `at + offset` must point to 4 readable bytes, 4-aligned (the mapping is page-aligned).
unsafe fn word(at: *const u8, offset: usize) -> u32 {
    unsafe { std::ptr::read_volatile(at.add(offset).cast::<u32>()) }
}

fn native(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// Whether a header copy is one SQLite would trust: initialised, of the known version, and
/// with the checksum of its first 40 bytes (SQLite's WAL checksum in native byte order).
fn consistent(h: &[u8; HEADER]) -> bool {
    if h[12] == 0 || native(h, 0) != INDEX_VERSION {
        return false;
    }
    let (mut s1, mut s2) = (0u32, 0u32);
    for pair in h[..40].chunks_exact(8) {
        s1 = s1.wrapping_add(native(pair, 0)).wrapping_add(s2);
        s2 = s2.wrapping_add(native(pair, 4)).wrapping_add(s1);
    }
    (s1, s2) == (native(h, 40), native(h, 44))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::connection::open_read_only;
    use std::time::Duration;

    fn wal_database(dir: &std::path::Path) -> (std::path::PathBuf, Connection) {
        let path = dir.join("app.db");
        let writer = Connection::open(&path).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;
                 CREATE TABLE t(x); INSERT INTO t VALUES (1);",
            )
            .unwrap();
        (path, writer)
    }

    fn index(path: &std::path::Path) -> WalIndex {
        let conn = open_read_only(path, Duration::from_secs(1)).unwrap();
        conn.query_row("SELECT count(*) FROM t", [], |_| Ok(()))
            .unwrap();
        read(&conn).unwrap()
    }

    #[test]
    fn a_reader_holding_a_snapshot_leaves_frames_pending_until_it_ends() {
        let dir = tempfile::tempdir().unwrap();
        let (path, writer) = wal_database(dir.path());
        writer
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        let reader = Connection::open(&path).unwrap();
        reader
            .execute_batch("BEGIN; SELECT count(*) FROM t;")
            .unwrap();
        for i in 0..20 {
            writer.execute("INSERT INTO t VALUES (?1)", [i]).unwrap();
        }
        writer
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .unwrap();
        let starved = index(&path);
        assert!(starved.max_frame >= 20, "{starved:?}");
        assert!(
            starved.pending() >= 20,
            "the reader pins the snapshot: {starved:?}"
        );

        reader.execute_batch("COMMIT").unwrap();
        writer
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .unwrap();
        let caught_up = index(&path);
        assert_eq!(caught_up.max_frame, starved.max_frame, "{caught_up:?}");
        assert_eq!(caught_up.pending(), 0, "{caught_up:?}");
    }

    #[test]
    fn reading_the_index_leaves_the_files_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let (path, writer) = wal_database(dir.path());
        writer.execute("INSERT INTO t VALUES (2)", []).unwrap();
        let files = |p: &std::path::Path| {
            ["", "-wal", "-shm"].map(|s| std::fs::read(format!("{}{s}", p.display())).unwrap())
        };
        let conn = open_read_only(&path, Duration::from_secs(1)).unwrap();
        conn.query_row("SELECT count(*) FROM t", [], |_| Ok(()))
            .unwrap();
        let before = files(&path);
        for _ in 0..3 {
            read(&conn).unwrap();
        }
        assert_eq!(files(&path), before);
    }

    #[test]
    fn a_rollback_journal_database_has_no_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE t(x);")
            .unwrap();
        let conn = open_read_only(&path, Duration::from_secs(1)).unwrap();
        conn.query_row("SELECT count(*) FROM t", [], |_| Ok(()))
            .unwrap();
        assert_eq!(read(&conn), Err(WalIndexError::NotWal));
        assert!(!dir.path().join("app.db-shm").exists());
    }

    #[test]
    fn the_checkpoint_sequence_advances_when_the_writer_restarts_the_wal() {
        let dir = tempfile::tempdir().unwrap();
        let (path, writer) = wal_database(dir.path());
        let first = index(&path)
            .checkpoint_sequence
            .expect("a WAL with frames has a header");
        // A complete checkpoint, then the next write starts the WAL again from its first frame.
        writer
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .unwrap();
        assert_eq!(
            index(&path).checkpoint_sequence,
            Some(first),
            "not restarted yet"
        );
        writer.execute("INSERT INTO t VALUES (2)", []).unwrap();
        let restarted = index(&path);
        assert_eq!(
            restarted.checkpoint_sequence,
            Some(first + 1),
            "{restarted:?}"
        );
        // Writes that append to the WAL leave it alone.
        writer.execute("INSERT INTO t VALUES (3)", []).unwrap();
        assert_eq!(index(&path).checkpoint_sequence, Some(first + 1));
    }

    #[test]
    fn an_empty_wal_has_no_checkpoint_sequence() {
        let dir = tempfile::tempdir().unwrap();
        let (path, writer) = wal_database(dir.path());
        writer
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        assert_eq!(
            std::fs::metadata(dir.path().join("app.db-wal"))
                .unwrap()
                .len(),
            0
        );
        let read = index(&path);
        assert_eq!((read.pending(), read.checkpoint_sequence), (0, None));
    }

    #[test]
    fn a_wal_header_is_trusted_only_with_its_magic_and_checksum() {
        let mut h = [0u8; WAL_HEADER];
        assert_eq!(wal_header_sequence(&h), None, "no magic");
        for magic in [WAL_MAGIC, WAL_MAGIC | 1] {
            h[0..4].copy_from_slice(&magic.to_be_bytes());
            h[8..12].copy_from_slice(&4096u32.to_be_bytes());
            h[12..16].copy_from_slice(&41u32.to_be_bytes());
            h[16..24].copy_from_slice(&[9, 8, 7, 6, 5, 4, 3, 2]);
            let word = |b: &[u8]| {
                let b: [u8; 4] = b.try_into().unwrap();
                if magic & 1 == 1 {
                    u32::from_be_bytes(b)
                } else {
                    u32::from_le_bytes(b)
                }
            };
            let (mut s1, mut s2) = (0u32, 0u32);
            for pair in h[..24].chunks_exact(8) {
                s1 = s1.wrapping_add(word(&pair[..4])).wrapping_add(s2);
                s2 = s2.wrapping_add(word(&pair[4..])).wrapping_add(s1);
            }
            h[24..28].copy_from_slice(&s1.to_be_bytes());
            h[28..32].copy_from_slice(&s2.to_be_bytes());
            assert_eq!(wal_header_sequence(&h), Some(41), "magic {magic:#x}");
            h[15] = 42; // the sequence changed after the checksum was written
            assert_eq!(wal_header_sequence(&h), None);
        }
    }

    #[test]
    fn a_torn_or_uninitialised_header_is_not_trusted() {
        let mut h = [0u8; HEADER];
        assert!(!consistent(&h), "uninitialised");
        h[0..4].copy_from_slice(&INDEX_VERSION.to_ne_bytes());
        h[12] = 1;
        h[16..20].copy_from_slice(&7u32.to_ne_bytes());
        let (mut s1, mut s2) = (0u32, 0u32);
        for pair in h[..40].chunks_exact(8) {
            s1 = s1.wrapping_add(native(pair, 0)).wrapping_add(s2);
            s2 = s2.wrapping_add(native(pair, 4)).wrapping_add(s1);
        }
        h[40..44].copy_from_slice(&s1.to_ne_bytes());
        h[44..48].copy_from_slice(&s2.to_ne_bytes());
        assert!(consistent(&h));
        h[16] = 8; // mxFrame changed after the checksum was written
        assert!(!consistent(&h));
    }
}
