//! What a database's files say, read without SQLite, and whether they changed since the last
//! look.
//!
//! A scrape starts with three `stat`s (the database, `-wal`, `-shm`) and one of `-journal`.
//! When the database and its WAL have the same identity, size and modification time as at
//! the last look, nothing changed and the last facts are served: no file is opened. The
//! `-shm` is written through `mmap`, so its modification time proves nothing; only its size
//! and identity are compared.
//!
//! **Racily clean.** A file modified within the file system's timestamp granularity of the
//! last look may have been modified again in the same tick without its modification time
//! moving (the case git's index calls racily clean). Such a stamp is not trusted: the files
//! are read again at the next look, until a look comes [`GRANULARITY`] after the last change.
//!
//! When something changed, the database's first 100 bytes are read through a descriptor the
//! monitor keeps open for as long as it watches the file, and the WAL's frame headers through
//! a descriptor of the `-wal` opened for the read ([`crate::sqlite::header`]), plus page 1
//! when the schema changed. Closing a descriptor of a file drops every POSIX lock this process
//! holds on it; SQLite takes none on `-wal`, and the main file's descriptor is never closed
//! while the file is watched. When the files cannot answer alone — a rollback
//! journal is present (a write in progress or a hot journal), a WAL database has no `-shm`
//! (exclusive locking mode), the WAL kept changing, or page 1 does not make sense — the
//! caller asks SQLite instead.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::collect::FileFacts;
use crate::sqlite::connection::{preflight, OpenError};
use crate::sqlite::header::{self, HeaderError, MainFile, WalCursor};
use crate::sqlite::wal::{journal_path, shm_path, wal_path};

/// Modification times closer than this to the look that saw them are not trusted to change
/// with every write (coarse-timestamp file systems tick at up to 1–2 s).
pub const GRANULARITY: Duration = Duration::from_secs(2);

/// Identity, size and modification time of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
}

impl FileId {
    fn of(m: &std::fs::Metadata) -> FileId {
        FileId {
            dev: m.dev(),
            ino: m.ino(),
            size: m.len(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        }
    }

    fn modified(&self) -> SystemTime {
        let ns = self.mtime_ns.max(0) as u128;
        SystemTime::UNIX_EPOCH + Duration::from_nanos(ns.min(u64::MAX as u128) as u64)
    }
}

/// What the `stat`s of a database's files said at one look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    db: FileId,
    wal: Option<FileId>,
    /// `-shm` identity and size only: it is written through `mmap`.
    shm: Option<(u64, u64, u64)>,
    journal_bytes: u64,
    /// When the look happened.
    looked: SystemTime,
}

impl Stamp {
    /// Stats the database's files. Errors classify a database that cannot be read at all.
    pub fn read(path: &Path) -> Result<Stamp, OpenError> {
        let looked = SystemTime::now();
        let db = FileId::of(&preflight(path)?);
        let stat = |p: &Path| std::fs::metadata(p).ok();
        let wal = stat(&wal_path(path)).map(|m| FileId::of(&m));
        let shm = stat(&shm_path(path)).map(|m| (m.dev(), m.ino(), m.len()));
        let journal_bytes = stat(&journal_path(path)).map_or(0, |m| m.len());
        Ok(Stamp {
            db,
            wal,
            shm,
            journal_bytes,
            looked,
        })
    }

    /// Whether the files are as they were at `earlier` (same identity, size and time), and
    /// `earlier` was taken long enough after their last change to be trusted.
    pub fn unchanged_since(&self, earlier: &Stamp) -> bool {
        let same = self.db == earlier.db
            && self.wal == earlier.wal
            && self.shm == earlier.shm
            && self.journal_bytes == earlier.journal_bytes;
        same && earlier.settled()
    }

    /// Whether this look came at least [`GRANULARITY`] after the last change it saw.
    fn settled(&self) -> bool {
        let newest = self
            .wal
            .map_or(self.db.modified(), |w| w.modified().max(self.db.modified()));
        newest + GRANULARITY <= self.looked
    }

    /// The database file's device and inode.
    pub fn identity(&self) -> (u64, u64) {
        (self.db.dev, self.db.ino)
    }

    /// The `-wal` size, 0 when absent.
    pub fn wal_bytes(&self) -> u64 {
        self.wal.map_or(0, |w| w.size)
    }

    /// Why SQLite must be asked instead of the files, if it must.
    pub fn needs_sqlite(&self) -> Option<&'static str> {
        if self.journal_bytes > 0 {
            return Some("a rollback journal is present (a write in progress or a hot journal)");
        }
        None
    }
}

/// Why the files did not answer.
#[derive(Debug)]
pub enum Unread {
    /// The database cannot be read at all (a reason SQLite would give too).
    Failed(OpenError),
    /// The files alone cannot answer; ask SQLite.
    AskSqlite(String),
}

/// Reads the facts of a changed database from its files, resuming the WAL scan at `cursor`.
/// `want_page1` also reads the whole of page 1 (the schema changed).
pub fn read(
    path: &Path,
    file: &File,
    stamp: &Stamp,
    cursor: Option<&WalCursor>,
    want_page1: impl Fn(u32) -> bool,
) -> Result<(FileFacts, WalCursor), Unread> {
    if let Some(why) = stamp.needs_sqlite() {
        return Err(Unread::AskSqlite(why.into()));
    }
    let wal = wal_path(path);
    if cursor.is_none() && stamp.wal_bytes() > 0 {
        read_ahead(&wal);
    }
    let (facts, cursor) =
        header::read_facts(|| MainFile::read(file), Some(&wal), cursor).map_err(|e| {
            match header::header_error(&e) {
                Some(HeaderError::BadMagic) => Unread::Failed(OpenError::NotADatabase),
                // A database cut inside its header: SQLite would open it (the missing bytes
                // read as zeros) and fail at its first real read.
                Some(HeaderError::TooShort { len }) => Unread::Failed(OpenError::Corrupt(
                    format!(
                        "database disk image is malformed (the file is {len} bytes, shorter than the {}-byte database header)",
                        header::HEADER_LEN
                    ),
                )),
                _ => Unread::AskSqlite(e.to_string()),
            }
        })?;
    if facts.header.is_wal() && stamp.wal.is_some() && stamp.shm.is_none() {
        return Err(Unread::AskSqlite(
            "WAL database without -shm (exclusive locking mode)".into(),
        ));
    }
    let page1 = if want_page1(facts.schema_version) {
        read_page1(file, &wal, &facts).ok()
    } else {
        None
    };
    let shm_bytes = stamp.shm.map_or(0, |s| s.2);
    Ok((
        FileFacts {
            database_bytes: stamp.db.size,
            wal_bytes: stamp.wal_bytes(),
            shm_bytes,
            header: facts,
            page1,
        },
        cursor,
    ))
}

/// Asks the kernel to read the WAL ahead, in large sequential reads, before its frame headers
/// are looked at for the first time: on a cold page cache the scan's small reads at a
/// page's stride would otherwise each wait for the disk. Later looks scan only new frames.
/// SQLite takes no lock on the `-wal` file, so opening and closing it is harmless.
fn read_ahead(wal: &Path) {
    use std::os::unix::io::AsRawFd;
    if let Ok(f) = File::open(wal) {
        // SAFETY: an advisory call on a descriptor we own; failure changes nothing.
        unsafe {
            libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_WILLNEED);
        }
    }
}

/// The whole of page 1: from its newest committed WAL frame when there is one, else from the
/// database file.
fn read_page1(db: &File, wal: &Path, facts: &header::Facts) -> io::Result<Vec<u8>> {
    let size = facts.page_size as usize;
    let mut page = vec![0u8; size];
    match facts.page1_source {
        header::Page1Source::WalFrame(k) => {
            // 32-byte WAL header, then frames of a 24-byte header and one page each.
            let offset = 32 + (k - 1) * (24 + size as u64) + 24;
            File::open(wal)?.read_exact_at(&mut page, offset)?;
            // A checkpoint may have restarted the WAL since its frames were read.
            if facts.wal.page1.as_ref().map(|h| &h[..]) != Some(&page[..header::HEADER_LEN]) {
                return Err(io::Error::other("the WAL changed while page 1 was read"));
            }
        }
        header::Page1Source::MainFile => db.read_exact_at(&mut page, 0)?,
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(dir: &Path) -> std::path::PathBuf {
        let p = dir.join("app.db");
        rusqlite::Connection::open(&p)
            .unwrap()
            .execute_batch("CREATE TABLE t(x);")
            .unwrap();
        p
    }

    fn age(path: &Path, by: Duration) {
        let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        f.set_modified(SystemTime::now() - by).unwrap();
    }

    #[test]
    fn a_stamp_is_trusted_only_after_the_granularity_window() {
        let dir = tempfile::tempdir().unwrap();
        let path = db(dir.path());
        // Just written: the same stat twice is not proof that nothing changed.
        let fresh = Stamp::read(&path).unwrap();
        assert!(!Stamp::read(&path).unwrap().unchanged_since(&fresh));
        // Written long before the look: trusted.
        age(&path, GRANULARITY * 3);
        let settled = Stamp::read(&path).unwrap();
        assert!(Stamp::read(&path).unwrap().unchanged_since(&settled));
        // Any change of size, time or identity is a change.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all_at(b"x", 1 << 20)
            .unwrap();
        assert!(!Stamp::read(&path).unwrap().unchanged_since(&settled));
        let other = dir.path().join("other.db");
        std::fs::copy(&path, &other).unwrap();
        age(&other, GRANULARITY * 3);
        let before = Stamp::read(&path).unwrap();
        std::fs::rename(&other, &path).unwrap();
        assert!(
            !Stamp::read(&path).unwrap().unchanged_since(&before),
            "a new inode"
        );
    }

    #[test]
    fn a_file_shorter_than_the_header_is_not_asked_of_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let path = db(dir.path());
        let bytes = std::fs::read(&path).unwrap();
        let read_short = |content: &[u8]| {
            std::fs::write(&path, content).unwrap();
            let file = File::open(&path).unwrap();
            let stamp = Stamp::read(&path).unwrap();
            read(&path, &file, &stamp, None, |_| false).map(|_| ())
        };
        // Cut inside its header: a damaged database, whatever SQLite makes of it.
        match read_short(&bytes[..50]) {
            Err(Unread::Failed(OpenError::Corrupt(m))) => assert!(
                m.contains("50 bytes, shorter than the 100-byte database header"),
                "{m}"
            ),
            other => panic!("{other:?}"),
        }
        // A few bytes of something else: not a database.
        assert!(matches!(
            read_short(b"hello\n"),
            Err(Unread::Failed(OpenError::NotADatabase))
        ));
    }

    #[test]
    fn a_rollback_journal_sends_the_read_to_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let path = db(dir.path());
        assert_eq!(Stamp::read(&path).unwrap().needs_sqlite(), None);
        std::fs::write(journal_path(&path), [0u8; 512]).unwrap();
        assert!(Stamp::read(&path).unwrap().needs_sqlite().is_some());
    }
}
