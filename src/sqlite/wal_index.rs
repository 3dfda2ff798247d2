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
    unsafe { parse(region) }
}

/// Region 0 of the connection's WAL-index mapping.
fn map_region(conn: &Connection) -> Result<*const u8, WalIndexError> {
    // SAFETY: the handle is only passed to `sqlite3_file_control`, which neither closes it nor
    // changes the connection's state.
    let db = unsafe { conn.handle() };
    let mut file: *mut ffi::sqlite3_file = std::ptr::null_mut();
    // SAFETY: `db` is a live handle; the file control writes one pointer to `file`.
    let rc = unsafe {
        ffi::sqlite3_file_control(
            db,
            c"main".as_ptr(),
            ffi::SQLITE_FCNTL_FILE_POINTER,
            (&mut file as *mut *mut ffi::sqlite3_file).cast::<c_void>(),
        )
    };
    if rc != ffi::SQLITE_OK {
        return Err(WalIndexError::Sqlite(rc));
    }
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
