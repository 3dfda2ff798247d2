//! A database's facts read straight from its files, without opening SQLite.
//!
//! # Why
//!
//! A scrape must never disturb the monitored database. Opening a SQLite connection does: it
//! takes POSIX locks on the main file and on `-shm`, it may run WAL recovery (rebuilding the
//! wal-index, which is a write), it may delete a WAL left beside an empty file, and it may
//! checkpoint when it closes. This module works out what `PRAGMA page_size`, `page_count`,
//! `freelist_count`, `user_version`, `schema_version`, `encoding` and `auto_vacuum` would
//! print, and how many frames the WAL holds, from bytes alone: the 100-byte header of page 1
//! and, in WAL mode, a few frame headers of the `-wal` file. It takes no lock, writes nothing,
//! never opens `-shm`, and costs O(1) for the main file and O(new frames) for the WAL.
//!
//! It never opens the main database file itself. The caller reads that file's first 100
//! bytes and its length ([`MainFile::read`] does this on a descriptor the caller owns). The
//! caller has to decide when a descriptor of the main file is opened and closed, because
//! closing *any* descriptor of a file drops *every* POSIX lock this process holds on it,
//! including the locks of its own SQLite connections. SQLite takes no POSIX locks on the
//! `-wal` file (its WAL locks are in `-shm`), so this module is free to open and close that file.
//!
//! Unix only: reads are positioned (`pread`, [`FileExt::read_exact_at`]) and files are
//! identified by device and inode.
//!
//! # SQLite's rules, as followed here (SQLite 3.50 `lockBtree`, `pagerPagecount`, `walIndexRecover`)
//!
//! * **Page 1** is the newest committed frame of page 1 in the WAL if there is one, otherwise
//!   the main file's first page. Every header field comes from that page.
//! * **page_size**: two bytes at offset 16, where 1 means 65536. It must be a power of two from
//!   512 to 65536, and the usable size (page size minus the reserved bytes at offset 20) must
//!   be at least 480.
//! * **page_count**: the "file size" is the database size recorded by the last commit frame
//!   when the WAL has committed frames. Otherwise it is the main file's length divided by the
//!   page size, rounded up. The in-header size (offset 28) is used instead when it is non-zero
//!   and valid, that is when version-valid-for (92) equals the change counter (24). An
//!   in-header size larger than the file size is corruption to SQLite, and an error here.
//! * **freelist_count** (36), **schema_version** (40) and **user_version** (60) are the raw
//!   header words. SQLite's `PRAGMA`s print them as *signed* 32-bit numbers, so a schema
//!   cookie above 2^31 prints as a negative number.
//! * **encoding** (56): SQLite uses `value & 3`, and 0 means "never set". A database in which no
//!   table was ever created has 0 there, and the connection's default, UTF-8, applies.
//! * **auto_vacuum**: "full" when the largest root b-tree page (52) is non-zero, and
//!   "incremental" when, in addition, offset 64 is non-zero.
//! * A **main file of length 0** is an empty database. SQLite deletes a `-wal` it finds beside
//!   one, so the WAL is ignored and [`HeaderError::EmptyDatabase`] is returned: no page size is
//!   on disk yet.
//!
//! # The WAL
//!
//! The committed frames of the current generation are defined as in the exporter's
//! `sqlite::wal::frames`. Take the longest prefix of frames whose salts equal the salts in the
//! WAL header (and whose page number is non-zero). Those frames are the current generation.
//! Of them, only the frames up to the last commit frame count. A commit frame is one whose
//! "database size after commit" field is non-zero. This is SQLite's `mxFrame`. Frame checksums
//! are *not* verified, because that would mean reading whole frames (see "Limits" below).
//!
//! * **Reset/restarted WAL.** A checkpoint that restarts the log (`RESTART`, or any writer
//!   that finds the log fully backfilled) writes a WAL header with new salts (salt-1 is
//!   incremented and salt-2 is random) and overwrites frames from frame 1. The file keeps its
//!   old length. Old frames after the new ones carry the old salts and end the prefix, so
//!   they are ignored. A `TRUNCATE` checkpoint cuts the file to 0 bytes. A WAL deleted and
//!   created again gets random salts and a new inode. Any of these invalidates a [`WalCursor`].
//! * **A WAL being appended to while it is read.** Only frames that lie wholly inside the file
//!   are looked at. A torn or uncommitted tail is ignored: counting stops at the last commit
//!   frame. This is also true of the frames of a rolled-back transaction that spilled into the
//!   WAL, which keep the current salts until they are overwritten. Each read is *bracketed*:
//!   the WAL header is read again at the end of the read, and the read starts over if the
//!   header changed meanwhile (the log was restarted). A read that runs past the end of the
//!   file (it was truncated under us) also starts over. After a few attempts the read gives
//!   up with [`io::ErrorKind::Interrupted`].
//! * **Empty or header-only WAL** (0 to 32 bytes), a WAL with a bad magic, page size or header
//!   checksum: no frames. SQLite's recovery treats these as an empty log. A WAL with an unknown
//!   format version is an error (SQLite refuses it with `SQLITE_CANTOPEN`).
//! * **Page sizes 512 to 65536.** The frame size is 24 plus the page size recorded in the WAL
//!   header (the WAL header stores 65536 as 65536, not 1). When the WAL has committed frames,
//!   that size must equal the page size of page 1. If it does not, the files are
//!   inconsistent and [`io::ErrorKind::InvalidData`] is returned.
//!
//! **Cost.** With no previous state: one binary search over the frames of the file
//! (O(log frames) reads of one 24-byte frame header each), then one backward scan from the end of
//! the current generation. The scan goes back to the last commit frame and, from there, to the
//! newest page-1 frame. It is bounded by the frames of the generation. With a [`WalCursor`] from
//! the previous read (same file, same WAL header, file not shrunk, last seen commit frame
//! unchanged), the search and the scan only cover frames after the previous last commit:
//! O(new frames). Frames left after the last commit by a rolled-back transaction are rescanned
//! until they are overwritten or the log restarts. Besides those, one 100-byte read of page 1
//! is made, and it is repeated at every call: it is never cached, so a bad read heals on the
//! next call. Two 32-byte reads of the WAL header are made, and one `fstat`.
//!
//! # Rollback-journal mode
//!
//! Without a WAL, page 1 and the length of the main file are the whole truth, provided that no
//! transaction is writing the main file at that moment. A writer in rollback mode changes the
//! main file in place while its `-journal` holds the original pages. Page 1 is written first,
//! so the header can describe pages that have not been written yet. After a crash, a *hot*
//! journal holds the only copy of the committed state, and SQLite would roll the main file back
//! from it on open. The committed state can then only be rebuilt by replaying the journal's
//! page images, under SQLite's locks. So the caller falls back to SQLite when a non-empty
//! `-journal` exists. An in-header size beyond the file length is reported as an error for the
//! same reason.
//!
//! # Consistency with the main file
//!
//! The main file and the WAL are read at different instants. [`read_facts`] brackets the main
//! file read between two reads of the WAL header, and checks that the `-wal` path still names
//! the file it read. If a checkpoint restarted or replaced the log in between, it reads again,
//! so main file plus WAL always describe one commit. [`current_facts`] takes bytes the caller
//! has already read, so it cannot do this. Use it only when the caller brackets the read itself
//! or can tolerate a rare mixed reading.
//!
//! # Limits
//!
//! * While a commit is being written, SQLite writes each frame's 24-byte header before its
//!   page. A commit frame may therefore be counted a few microseconds before SQLite publishes
//!   it. If that frame is also page 1 (a `PRAGMA user_version` transaction, for example), the
//!   100 bytes read may still be the slot's old contents. If they do not parse, the call fails
//!   with `InvalidData`. If they do parse, one reading can be stale. The next call reads them
//!   again.
//! * If the writer process crashed in that same window, SQLite's recovery later rejects the
//!   half-written commit by its checksum. This reader keeps counting it until a new write
//!   overwrites it. Verifying that frame's checksum would fix this: it costs one page read per
//!   new commit, and it is not done.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

/// Length of the database header at the start of page 1.
pub const HEADER_LEN: usize = 100;

/// The first 16 bytes of every SQLite database file.
pub const MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Why 100 bytes are not a usable SQLite database header (the checks of SQLite's `lockBtree`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// The main file is empty: a new database with no page on disk yet (SQLite reports
    /// `page_count` 0 and its compile-time default page size).
    EmptyDatabase,
    /// Fewer than 100 bytes were available.
    TooShort {
        /// Bytes available.
        len: usize,
    },
    /// The first 16 bytes are not "SQLite format 3\0".
    BadMagic,
    /// The read version (offset 19) is above 2: SQLite refuses to read the file.
    UnsupportedReadVersion(u8),
    /// The payload fractions at 21..24 are not 64, 32, 32.
    BadPayloadFractions([u8; 3]),
    /// The page size is not a power of two in 512..=65536 (the raw 16-bit value at offset 16).
    BadPageSize(u16),
    /// Page size minus reserved bytes (offset 20) is below 480.
    UsableSizeTooSmall {
        /// The page size.
        page_size: u32,
        /// Reserved bytes per page.
        reserved: u8,
    },
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::EmptyDatabase => write!(f, "empty database file (no page 1 yet)"),
            HeaderError::TooShort { len } => {
                write!(f, "database header is {len} bytes, not {HEADER_LEN}")
            }
            HeaderError::BadMagic => write!(f, "not a SQLite database (bad magic)"),
            HeaderError::UnsupportedReadVersion(v) => {
                write!(f, "unsupported file format read version {v}")
            }
            HeaderError::BadPayloadFractions(b) => write!(f, "bad payload fractions {b:?}"),
            HeaderError::BadPageSize(v) => write!(f, "bad page size field {v}"),
            HeaderError::UsableSizeTooSmall {
                page_size,
                reserved,
            } => write!(
                f,
                "usable page size below 480 ({page_size} bytes, {reserved} reserved)"
            ),
        }
    }
}

impl std::error::Error for HeaderError {}

impl From<HeaderError> for io::Error {
    /// An `InvalidData` error whose inner error is the [`HeaderError`] (see [`header_error`]).
    fn from(e: HeaderError) -> Self {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

/// The [`HeaderError`] inside an error returned by this module, if that is what it is.
pub fn header_error(e: &io::Error) -> Option<HeaderError> {
    e.get_ref()?.downcast_ref::<HeaderError>().copied()
}

/// Text encoding of the database, named as `PRAGMA encoding` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TextEncoding {
    /// "UTF-8"
    Utf8,
    /// "UTF-16le"
    Utf16le,
    /// "UTF-16be"
    Utf16be,
}

impl TextEncoding {
    /// The name `PRAGMA encoding` prints.
    pub const fn pragma_name(self) -> &'static str {
        match self {
            TextEncoding::Utf8 => "UTF-8",
            TextEncoding::Utf16le => "UTF-16le",
            TextEncoding::Utf16be => "UTF-16be",
        }
    }
}

impl fmt::Display for TextEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.pragma_name())
    }
}

/// Auto-vacuum mode, as `PRAGMA auto_vacuum` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AutoVacuum {
    /// 0, "none"
    None,
    /// 1, "full"
    Full,
    /// 2, "incremental"
    Incremental,
}

impl AutoVacuum {
    /// "none", "full" or "incremental".
    pub const fn name(self) -> &'static str {
        match self {
            AutoVacuum::None => "none",
            AutoVacuum::Full => "full",
            AutoVacuum::Incremental => "incremental",
        }
    }

    /// The number `PRAGMA auto_vacuum` prints (0, 1, 2).
    pub const fn pragma_value(self) -> i64 {
        match self {
            AutoVacuum::None => 0,
            AutoVacuum::Full => 1,
            AutoVacuum::Incremental => 2,
        }
    }
}

impl fmt::Display for AutoVacuum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The fields of a validated 100-byte database header (all multi-byte fields big-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatabaseHeader {
    /// Page size in bytes, 512..=65536 (the stored value 1 is decoded as 65536). Offset 16.
    pub page_size: u32,
    /// File format write version: 1 rollback journal, 2 WAL. Offset 18.
    pub write_version: u8,
    /// File format read version: 1 rollback journal, 2 WAL. Offset 19.
    pub read_version: u8,
    /// Bytes reserved at the end of each page. Offset 20.
    pub reserved_bytes: u8,
    /// File change counter. Offset 24.
    pub change_counter: u32,
    /// In-header database size in pages; only meaningful when
    /// [`size_is_valid`](Self::size_is_valid). Offset 28.
    pub database_size: u32,
    /// First freelist trunk page. Offset 32.
    pub first_freelist_trunk: u32,
    /// Total freelist pages (`PRAGMA freelist_count`). Offset 36.
    pub freelist_pages: u32,
    /// Schema cookie (`PRAGMA schema_version`). Offset 40.
    pub schema_cookie: u32,
    /// Schema format number (1..=4). Offset 44.
    pub schema_format: u32,
    /// Largest root b-tree page; non-zero means auto-vacuum. Offset 52.
    pub largest_root_page: u32,
    /// Raw text encoding word (1 UTF-8, 2 UTF-16le, 3 UTF-16be, 0 not yet set). Offset 56.
    pub text_encoding_code: u32,
    /// `PRAGMA user_version`. Offset 60.
    pub user_version: i32,
    /// Non-zero for incremental vacuum. Offset 64.
    pub incremental_vacuum: u32,
    /// `PRAGMA application_id`. Offset 68.
    pub application_id: i32,
    /// Change counter value for which `database_size` is valid. Offset 92.
    pub version_valid_for: u32,
    /// `SQLITE_VERSION_NUMBER` of the library that last wrote the file. Offset 96.
    pub sqlite_version_number: u32,
}

impl DatabaseHeader {
    /// Whether the in-header database size can be trusted: non-zero and written by a library
    /// that kept it up to date (version-valid-for equals the change counter), as in SQLite.
    pub fn size_is_valid(&self) -> bool {
        self.database_size != 0 && self.version_valid_for == self.change_counter
    }

    /// The encoding SQLite uses for this file: `code & 3`, with 0 (never set, no table ever
    /// created) meaning UTF-8, the default of a connection that does not ask for another.
    pub fn text_encoding(&self) -> TextEncoding {
        match self.text_encoding_code & 3 {
            2 => TextEncoding::Utf16le,
            3 => TextEncoding::Utf16be,
            _ => TextEncoding::Utf8,
        }
    }

    /// Auto-vacuum mode: none unless offset 52 is non-zero; then incremental if offset 64 is.
    pub fn auto_vacuum(&self) -> AutoVacuum {
        match (self.largest_root_page != 0, self.incremental_vacuum != 0) {
            (false, _) => AutoVacuum::None,
            (true, false) => AutoVacuum::Full,
            (true, true) => AutoVacuum::Incremental,
        }
    }

    /// Whether the header marks the database as being in WAL mode (read version 2).
    pub fn is_wal(&self) -> bool {
        self.read_version == 2
    }

    /// Page size minus the reserved bytes.
    pub fn usable_size(&self) -> u32 {
        self.page_size - u32::from(self.reserved_bytes)
    }
}

fn be32(b: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// Validates and decodes a database header, with the checks SQLite makes before it trusts
/// page 1: magic, read version at most 2, payload fractions 64/32/32, page size a power of two
/// in 512..=65536, usable size at least 480. A write version above 2 only makes SQLite treat
/// the file as read-only, so it is accepted.
pub fn parse_header(bytes: &[u8; HEADER_LEN]) -> Result<DatabaseHeader, HeaderError> {
    if &bytes[..16] != MAGIC {
        return Err(HeaderError::BadMagic);
    }
    if bytes[19] > 2 {
        return Err(HeaderError::UnsupportedReadVersion(bytes[19]));
    }
    if bytes[21..24] != [64, 32, 32] {
        return Err(HeaderError::BadPayloadFractions([
            bytes[21], bytes[22], bytes[23],
        ]));
    }
    let raw = u16::from_be_bytes([bytes[16], bytes[17]]);
    let page_size = if raw == 1 { 65536 } else { u32::from(raw) };
    if !page_size.is_power_of_two() || page_size < 512 {
        return Err(HeaderError::BadPageSize(raw));
    }
    let reserved = bytes[20];
    if page_size - u32::from(reserved) < 480 {
        return Err(HeaderError::UsableSizeTooSmall {
            page_size,
            reserved,
        });
    }
    Ok(DatabaseHeader {
        page_size,
        write_version: bytes[18],
        read_version: bytes[19],
        reserved_bytes: reserved,
        change_counter: be32(bytes, 24),
        database_size: be32(bytes, 28),
        first_freelist_trunk: be32(bytes, 32),
        freelist_pages: be32(bytes, 36),
        schema_cookie: be32(bytes, 40),
        schema_format: be32(bytes, 44),
        largest_root_page: be32(bytes, 52),
        text_encoding_code: be32(bytes, 56),
        user_version: be32(bytes, 60) as i32,
        incremental_vacuum: be32(bytes, 64),
        application_id: be32(bytes, 68) as i32,
        version_valid_for: be32(bytes, 92),
        sqlite_version_number: be32(bytes, 96),
    })
}

/// [`parse_header`] on whatever prefix of the file was read; bytes past 100 are ignored.
/// Shorter than 100 bytes is [`HeaderError::TooShort`] when the bytes there agree with the
/// magic (a database cut inside its header), else [`HeaderError::BadMagic`].
pub fn parse_header_prefix(bytes: &[u8]) -> Result<DatabaseHeader, HeaderError> {
    match bytes.get(..HEADER_LEN) {
        Some(b) => {
            let mut h = [0u8; HEADER_LEN];
            h.copy_from_slice(b);
            parse_header(&h)
        }
        None if !MAGIC.starts_with(&bytes[..bytes.len().min(MAGIC.len())]) => {
            Err(HeaderError::BadMagic)
        }
        None => Err(HeaderError::TooShort { len: bytes.len() }),
    }
}

// ---------------------------------------------------------------------------------------------
// The WAL
// ---------------------------------------------------------------------------------------------

const WAL_HEADER_LEN: u64 = 32;
const FRAME_HEADER_LEN: u64 = 24;
/// WAL magic; the low bit says whether checksums run over big-endian (1) or little-endian words.
const WAL_MAGIC: u32 = 0x377f_0682;
const WAL_VERSION: u32 = 3_007_000;
/// How many times a read starts over because the WAL changed under it.
const ATTEMPTS: usize = 4;

/// What the committed part of the current WAL generation says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalSummary {
    /// Page size recorded in the WAL header; `None` when there is no WAL or no valid header.
    pub page_size: Option<u32>,
    /// Committed frames of the current generation (SQLite's `mxFrame`).
    pub frames: u64,
    /// Database size in pages after the last commit; `Some` exactly when `frames > 0`.
    pub db_pages: Option<u32>,
    /// Index (1-based) of the newest committed frame of page 1, if any.
    pub page1_frame: Option<u64>,
    /// Bytes 0..100 of that frame's page, read at this call.
    pub page1: Option<[u8; HEADER_LEN]>,
    /// Cost: frame headers read by this call.
    pub frame_reads: u64,
    /// Whether the previous [`WalCursor`] was still valid and the scan resumed from it.
    pub resumed: bool,
}

/// Opaque state carried from one WAL read to the next, so that the next read scans only
/// frames appended since. `WalCursor::default()` (or passing `None`) means "no previous state".
/// A cursor is only ever an optimisation: when it does not match the file any more (other file,
/// other WAL header, file shrunk, last commit frame changed) it is ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalCursor {
    state: Option<Generation>,
}

impl WalCursor {
    /// Committed frames as of the read that produced this cursor (0 when it holds no state).
    pub fn frames(&self) -> u64 {
        self.state.as_ref().map_or(0, |g| g.commit)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Generation {
    dev: u64,
    ino: u64,
    header: [u8; WAL_HEADER_LEN as usize],
    len: u64,
    /// Last commit frame (0: none yet in this generation).
    commit: u64,
    /// That frame's header as read, to check it is still there.
    commit_header: [u8; FRAME_HEADER_LEN as usize],
    db_pages: u32,
    /// Newest committed page-1 frame (0: none).
    page1_frame: u64,
}

/// An open `-wal` file and its identity.
struct WalFile {
    file: File,
    dev: u64,
    ino: u64,
}

fn open_wal(path: &Path) -> io::Result<Option<WalFile>> {
    match File::open(path) {
        Ok(file) => {
            let m = file.metadata()?;
            Ok(Some(WalFile {
                dev: m.dev(),
                ino: m.ino(),
                file,
            }))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Why one pass over the WAL did not produce an answer.
enum Attempt {
    /// The file changed under the read (restarted log, truncation): read again.
    Retry,
    /// A real error.
    Fail(io::Error),
}

impl From<io::Error> for Attempt {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            Attempt::Retry
        } else {
            Attempt::Fail(e)
        }
    }
}

fn changing() -> io::Error {
    io::Error::new(
        io::ErrorKind::Interrupted,
        "the WAL changed during every read attempt",
    )
}

/// SQLite's WAL checksum (`walChecksumBytes`) of `data` (a multiple of 8 bytes), continuing from
/// `s`, over big-endian words when `big_endian`, else little-endian.
fn wal_checksum(big_endian: bool, data: &[u8], s: (u32, u32)) -> (u32, u32) {
    let (mut s1, mut s2) = s;
    for w in data.chunks_exact(8) {
        let (a, b) = if big_endian {
            (be32(w, 0), be32(w, 4))
        } else {
            (
                u32::from_le_bytes([w[0], w[1], w[2], w[3]]),
                u32::from_le_bytes([w[4], w[5], w[6], w[7]]),
            )
        };
        s1 = s1.wrapping_add(a).wrapping_add(s2);
        s2 = s2.wrapping_add(b).wrapping_add(s1);
    }
    (s1, s2)
}

/// The page size of a valid WAL header, `None` for one SQLite's recovery would ignore (bad
/// magic, page size or checksum), an error for an unknown format version.
fn check_wal_header(h: &[u8; WAL_HEADER_LEN as usize]) -> io::Result<Option<u32>> {
    let magic = be32(h, 0);
    let page_size = be32(h, 8);
    if magic & !1 != WAL_MAGIC
        || !page_size.is_power_of_two()
        || !(512..=65536).contains(&page_size)
    {
        return Ok(None);
    }
    if wal_checksum(magic & 1 == 1, &h[..24], (0, 0)) != (be32(h, 24), be32(h, 28)) {
        return Ok(None);
    }
    if be32(h, 4) != WAL_VERSION {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unknown WAL format version {}", be32(h, 4)),
        ));
    }
    Ok(Some(page_size))
}

/// The WAL header as it is now, `None` when the file is shorter than a header.
fn wal_header_now(file: &File) -> io::Result<Option<[u8; WAL_HEADER_LEN as usize]>> {
    if file.metadata()?.len() < WAL_HEADER_LEN {
        return Ok(None);
    }
    let mut h = [0u8; WAL_HEADER_LEN as usize];
    file.read_exact_at(&mut h, 0)?;
    Ok(Some(h))
}

/// Frame-header reads over one generation, counted.
struct Frames<'a> {
    file: &'a File,
    salts: [u8; 8],
    frame_len: u64,
    reads: u64,
}

impl Frames<'_> {
    fn offset(&self, k: u64) -> u64 {
        WAL_HEADER_LEN + (k - 1) * self.frame_len
    }

    fn header(&mut self, k: u64) -> io::Result<[u8; FRAME_HEADER_LEN as usize]> {
        self.reads += 1;
        let mut h = [0u8; FRAME_HEADER_LEN as usize];
        self.file.read_exact_at(&mut h, self.offset(k))?;
        Ok(h)
    }

    /// Whether a frame header belongs to the current generation (as in `walDecodeFrame`,
    /// without the checksum): matching salts and a non-zero page number.
    fn belongs(&self, h: &[u8; FRAME_HEADER_LEN as usize]) -> bool {
        h[8..16] == self.salts && be32(h, 0) != 0
    }
}

/// The result of one pass: the summary, the next cursor's state, and the WAL header the pass
/// saw (unchanged from its start to its end).
struct Scan {
    summary: WalSummary,
    generation: Option<Generation>,
    header: Option<[u8; WAL_HEADER_LEN as usize]>,
}

/// One bracketed pass over an open WAL.
fn scan(wal: &WalFile, previous: Option<&Generation>) -> Result<Scan, Attempt> {
    let len = wal.file.metadata()?.len();
    let header = if len < WAL_HEADER_LEN {
        None
    } else {
        let mut h = [0u8; WAL_HEADER_LEN as usize];
        wal.file.read_exact_at(&mut h, 0)?;
        Some(h)
    };
    let page_size = match &header {
        Some(h) => check_wal_header(h).map_err(Attempt::Fail)?,
        None => None,
    };
    let (Some(h), Some(page_size)) = (header, page_size) else {
        // No usable header: an empty log. Bracket it all the same (a first header may be
        // being written).
        if wal_header_now(&wal.file)? != header {
            return Err(Attempt::Retry);
        }
        return Ok(Scan {
            summary: WalSummary::default(),
            generation: None,
            header,
        });
    };
    let mut frames = Frames {
        file: &wal.file,
        salts: [h[16], h[17], h[18], h[19], h[20], h[21], h[22], h[23]],
        frame_len: FRAME_HEADER_LEN + u64::from(page_size),
        reads: 0,
    };
    // Frames wholly inside the file; a frame still being appended is not one of them.
    let last = (len - WAL_HEADER_LEN) / frames.frame_len;

    // Frames 1..=base.commit are known committed when the previous cursor still matches:
    // same file, same header (so same generation: a restart changes the salts), not shrunk,
    // and its last commit frame still there. Committed frames are never rewritten within a
    // generation.
    let mut base = Generation {
        dev: wal.dev,
        ino: wal.ino,
        header: h,
        len,
        commit: 0,
        commit_header: [0; FRAME_HEADER_LEN as usize],
        db_pages: 0,
        page1_frame: 0,
    };
    let mut resumed = false;
    let resumable = match previous {
        Some(g) => {
            g.dev == wal.dev
                && g.ino == wal.ino
                && g.header == h
                && len >= g.len
                && g.commit <= last
                && (g.commit == 0 || frames.header(g.commit)? == g.commit_header)
        }
        None => false,
    };
    if let Some(g) = previous.filter(|_| resumable) {
        base.commit = g.commit;
        base.commit_header = g.commit_header;
        base.db_pages = g.db_pages;
        base.page1_frame = g.page1_frame;
        resumed = true;
    }

    // End of the generation: the largest k in base.commit..=last such that the frames after
    // base.commit up to k belong to it. They form a prefix (a restarted log overwrites from
    // frame 1; its old frames carry other salts), so a binary search finds it.
    let (mut lo, mut hi) = (base.commit, last);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        let fh = frames.header(mid)?;
        if frames.belongs(&fh) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }

    // Back from the end to the last commit frame (a rolled-back or torn tail is not counted),
    // and on to the newest page-1 frame at or before it.
    let mut commit: Option<(u64, [u8; FRAME_HEADER_LEN as usize])> = None;
    let mut page1 = None;
    let mut k = lo;
    while k > base.commit {
        let fh = frames.header(k)?;
        if !frames.belongs(&fh) {
            // Only in a file SQLite did not write: the prefix ends below k.
            commit = None;
            page1 = None;
        } else {
            if commit.is_none() && be32(&fh, 4) != 0 {
                commit = Some((k, fh));
            }
            if commit.is_some() && be32(&fh, 0) == 1 {
                page1 = Some(k);
                break;
            }
        }
        k -= 1;
    }
    let mut next = base;
    if let Some((c, ch)) = commit {
        next.commit = c;
        next.commit_header = ch;
        next.db_pages = be32(&ch, 4);
        if let Some(p) = page1 {
            next.page1_frame = p;
        }
    }

    let page1_bytes = if next.page1_frame > 0 {
        let mut b = [0u8; HEADER_LEN];
        wal.file
            .read_exact_at(&mut b, frames.offset(next.page1_frame) + FRAME_HEADER_LEN)?;
        Some(b)
    } else {
        None
    };

    // The bracket: a log restarted during the pass has another header now.
    if wal_header_now(&wal.file)? != Some(h) {
        return Err(Attempt::Retry);
    }
    let summary = WalSummary {
        page_size: Some(page_size),
        frames: next.commit,
        db_pages: (next.commit > 0).then_some(next.db_pages),
        page1_frame: (next.page1_frame > 0).then_some(next.page1_frame),
        page1: page1_bytes,
        frame_reads: frames.reads,
        resumed,
    };
    Ok(Scan {
        summary,
        generation: Some(next),
        header: Some(h),
    })
}

/// Reads the committed frames of the current generation of the WAL at `path` (the `-wal`
/// file): frame count, database size after the last commit, and bytes 0..100 of the newest
/// committed page-1 frame. A missing file is an empty WAL. Pass the cursor returned by the
/// previous call to scan only what was appended since.
///
/// Errors: `InvalidData` for a WAL of an unknown format version, `Interrupted` when the WAL
/// changed during every attempt, and I/O errors from the file.
pub fn read_wal(path: &Path, previous: Option<&WalCursor>) -> io::Result<(WalSummary, WalCursor)> {
    let previous = previous.and_then(|c| c.state.as_ref());
    for _ in 0..ATTEMPTS {
        let Some(wal) = open_wal(path)? else {
            return Ok((WalSummary::default(), WalCursor::default()));
        };
        match scan(&wal, previous) {
            Ok(s) => {
                return Ok((
                    s.summary,
                    WalCursor {
                        state: s.generation,
                    },
                ));
            }
            Err(Attempt::Retry) => continue,
            Err(Attempt::Fail(e)) => return Err(e),
        }
    }
    Err(changing())
}

// ---------------------------------------------------------------------------------------------
// Facts
// ---------------------------------------------------------------------------------------------

/// Where the page-1 header in [`Facts`] was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page1Source {
    /// The main database file.
    MainFile,
    /// A committed WAL frame (1-based index).
    WalFrame(u64),
}

/// What `PRAGMA page_size, page_count, freelist_count, user_version, schema_version, encoding,
/// auto_vacuum` would report, and the WAL's committed frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// `PRAGMA page_size`.
    pub page_size: u32,
    /// `PRAGMA page_count`.
    pub pages: u64,
    /// `PRAGMA freelist_count`.
    pub freelist_pages: u32,
    /// `PRAGMA user_version`.
    pub user_version: i32,
    /// `PRAGMA schema_version` (the schema cookie; the PRAGMA prints it as signed 32-bit).
    pub schema_version: u32,
    /// `PRAGMA encoding` ([`TextEncoding::pragma_name`]).
    pub encoding: TextEncoding,
    /// `PRAGMA auto_vacuum` ([`AutoVacuum::name`]).
    pub auto_vacuum: AutoVacuum,
    /// Committed frames of the current WAL generation (0 without a WAL).
    pub wal_frames: u64,
    /// Where page 1 came from.
    pub page1_source: Page1Source,
    /// The whole decoded page-1 header (versions, change counter, application id...).
    pub header: DatabaseHeader,
    /// The WAL read behind these facts (including its cost).
    pub wal: WalSummary,
}

/// What the caller read from the main database file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MainFile {
    /// Bytes 0..100 of the file; only the first `header_len` are meaningful.
    pub header: [u8; HEADER_LEN],
    /// How many bytes of `header` the file had (less than 100 only for so short a file).
    pub header_len: usize,
    /// The file's length in bytes.
    pub len: u64,
}

impl MainFile {
    /// The bytes that were read (`header_len` is clamped to 100).
    pub fn bytes(&self) -> &[u8] {
        &self.header[..self.header_len.min(HEADER_LEN)]
    }

    /// Reads the header and length through a descriptor the caller owns (and keeps: this
    /// neither opens nor closes one, so no POSIX lock of the process is dropped).
    pub fn read(file: &File) -> io::Result<MainFile> {
        let len = file.metadata()?.len();
        let mut header = [0u8; HEADER_LEN];
        let mut n = 0;
        while n < HEADER_LEN {
            match file.read_at(&mut header[n..], n as u64) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(MainFile {
            header,
            header_len: n,
            len,
        })
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Combines page 1 (from the WAL when it has a committed copy, else from the main file), the
/// file length and the WAL summary by SQLite's rules (see the module documentation).
fn facts_from(main_header: &[u8], main_len: u64, wal: WalSummary) -> io::Result<Facts> {
    if main_len == 0 {
        return Err(HeaderError::EmptyDatabase.into());
    }
    let (header, page1_source) = match (&wal.page1, wal.page1_frame) {
        (Some(b), Some(k)) => (parse_header(b)?, Page1Source::WalFrame(k)),
        _ => (parse_header_prefix(main_header)?, Page1Source::MainFile),
    };
    let page_size = header.page_size;
    if wal.frames > 0 && wal.page_size != Some(page_size) {
        return Err(invalid(format!(
            "WAL page size {:?} differs from the database page size {page_size}",
            wal.page_size
        )));
    }
    let file_pages = match wal.db_pages {
        Some(n) if wal.frames > 0 => u64::from(n),
        _ => main_len.div_ceil(u64::from(page_size)),
    };
    let pages = if header.size_is_valid() {
        u64::from(header.database_size)
    } else {
        file_pages
    };
    if pages > file_pages {
        return Err(invalid(format!(
            "in-header size {pages} pages exceeds the file's {file_pages} (a write in progress, or corruption)"
        )));
    }
    Ok(Facts {
        page_size,
        pages,
        freelist_pages: header.freelist_pages,
        user_version: header.user_version,
        schema_version: header.schema_cookie,
        encoding: header.text_encoding(),
        auto_vacuum: header.auto_vacuum(),
        wal_frames: wal.frames,
        page1_source,
        header,
        wal,
    })
}

/// The database's current facts, from the main file's first bytes (`main_header`: the first
/// 100 bytes, or all of a shorter file; a `&[u8; 100]` coerces) and length, which the caller
/// read, and the `-wal` file at `wal` (`None` or a missing file: no WAL). Returns the cursor
/// to pass next time.
///
/// The caller's read of the main file and this function's read of the WAL happen at different
/// instants. Prefer [`read_facts`], which brackets the two.
///
/// Errors: `InvalidData` when the files do not make a consistent database. Its inner error is
/// a [`HeaderError`] ([`header_error`]) for a bad page 1 or an empty file. `Interrupted` when
/// the WAL kept changing. In either case the caller should fall back to SQLite or skip this
/// reading.
pub fn current_facts(
    main_header: &[u8],
    main_file_len: u64,
    wal: Option<&Path>,
    previous: Option<&WalCursor>,
) -> io::Result<(Facts, WalCursor)> {
    if main_file_len == 0 {
        // SQLite ignores (deletes) the WAL of an empty file: do not even read it.
        return Err(HeaderError::EmptyDatabase.into());
    }
    let (summary, cursor) = match wal {
        Some(p) => read_wal(p, previous)?,
        None => (WalSummary::default(), WalCursor::default()),
    };
    Ok((facts_from(main_header, main_file_len, summary)?, cursor))
}

/// Like [`current_facts`], but reads the main file through `read_main` *between* two reads of
/// the WAL header, and checks that the `-wal` path still names the file that was read. So the
/// main file and the WAL are known to belong to one WAL generation, and the facts describe one
/// commit. If a checkpoint restarted, truncated or replaced the log meanwhile, everything is
/// read again, a few times at most, and then the call fails with `Interrupted`.
///
/// `read_main` decides how the main file is read. It is typically
/// `|| MainFile::read(&long_lived_fd)`, which keeps the caller in control of that file's
/// descriptors. It may be called more than once.
pub fn read_facts<F>(
    mut read_main: F,
    wal: Option<&Path>,
    previous: Option<&WalCursor>,
) -> io::Result<(Facts, WalCursor)>
where
    F: FnMut() -> io::Result<MainFile>,
{
    let Some(path) = wal else {
        let main = read_main()?;
        let facts = facts_from(main.bytes(), main.len, WalSummary::default())?;
        return Ok((facts, WalCursor::default()));
    };
    let previous = previous.and_then(|c| c.state.as_ref());
    for _ in 0..ATTEMPTS {
        let opened = open_wal(path)?;
        let before = match &opened {
            Some(w) => match wal_header_now(&w.file) {
                Ok(h) => h,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => continue,
                Err(e) => return Err(e),
            },
            None => None,
        };
        let main = read_main()?;
        if main.len == 0 {
            return Err(HeaderError::EmptyDatabase.into());
        }
        let scanned = match &opened {
            Some(w) => match scan(w, previous) {
                Ok(s) => s,
                Err(Attempt::Retry) => continue,
                Err(Attempt::Fail(e)) => return Err(e),
            },
            None => Scan {
                summary: WalSummary::default(),
                generation: None,
                header: None,
            },
        };
        if scanned.header != before {
            continue;
        }
        let same_file = match (std::fs::metadata(path), &opened) {
            (Ok(m), Some(w)) => m.dev() == w.dev && m.ino() == w.ino,
            (Err(e), None) if e.kind() == io::ErrorKind::NotFound => true,
            (Err(e), Some(_)) if e.kind() == io::ErrorKind::NotFound => false,
            (Err(e), _) => return Err(e),
            (Ok(_), None) => false,
        };
        if !same_file {
            continue;
        }
        let facts = facts_from(main.bytes(), main.len, scanned.summary)?;
        return Ok((
            facts,
            WalCursor {
                state: scanned.generation,
            },
        ));
    }
    Err(changing())
}

#[cfg(test)]
mod tests;
