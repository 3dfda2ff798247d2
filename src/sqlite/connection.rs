//! Opening connections to monitored databases without disturbing them.
//!
//! Every connection the exporter opens goes through here, so the rules that keep the exporter
//! from disturbing the databases it watches live in one place: scrape-time and check connections are `SQLITE_OPEN_READ_ONLY` (never `immutable`,
//! which would let SQLite ignore a concurrent writer's changes); no connection ever creates a
//! file; and read-write connections (write probe, actions) set
//! `SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE`, because SQLite otherwise checkpoints and deletes the WAL
//! when the last connection to a WAL database closes — the monitor would change what it
//! measures and surprise the application.

use std::fmt;
use std::io;
use std::path::Path;
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};

/// Why a database could not be opened and read, classified so that the log line, the health
/// report and the HTTP status can name the cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// No file at the path.
    Missing,
    /// The path is a directory.
    Directory,
    /// The file has zero bytes; SQLite would treat it as a new empty database, we do not.
    Empty,
    /// The process may not read (or, for a read-write open, write) the file.
    PermissionDenied,
    /// The file exists but is not a SQLite database (bad header).
    NotADatabase,
    /// The file looks like a database but is damaged.
    Corrupt(String),
    /// Another connection holds a lock past our busy timeout.
    Locked,
    /// Any other failure, with SQLite's or the OS's message.
    Other(String),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Missing => f.write_str("file does not exist"),
            OpenError::Directory => f.write_str("path is a directory, not a database file"),
            OpenError::Empty => f.write_str("file is empty (0 bytes), not a SQLite database"),
            OpenError::PermissionDenied => f.write_str("permission denied"),
            OpenError::NotADatabase => f.write_str("file is not a SQLite database"),
            OpenError::Corrupt(m) => write!(f, "database is corrupt: {m}"),
            OpenError::Locked => f.write_str("database is locked by another connection"),
            OpenError::Other(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for OpenError {}

impl OpenError {
    /// A short stable token for logs and JSON (`missing`, `not_a_database`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            OpenError::Missing => "missing",
            OpenError::Directory => "directory",
            OpenError::Empty => "empty",
            OpenError::PermissionDenied => "permission_denied",
            OpenError::NotADatabase => "not_a_database",
            OpenError::Corrupt(_) => "corrupt",
            OpenError::Locked => "locked",
            OpenError::Other(_) => "error",
        }
    }
}

impl From<rusqlite::Error> for OpenError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        match e.sqlite_error_code() {
            Some(ErrorCode::NotADatabase) => OpenError::NotADatabase,
            Some(ErrorCode::DatabaseCorrupt) => OpenError::Corrupt(e.to_string()),
            Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => OpenError::Locked,
            Some(ErrorCode::PermissionDenied) => OpenError::PermissionDenied,
            _ => OpenError::Other(e.to_string()),
        }
    }
}

/// Checks the path before SQLite sees it, so the common mistakes get a precise error instead
/// of SQLite's generic "unable to open database file" (and so an empty file is never opened,
/// which SQLite would accept as a fresh database).
pub fn preflight(path: &Path) -> Result<std::fs::Metadata, OpenError> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => OpenError::Missing,
        io::ErrorKind::PermissionDenied => OpenError::PermissionDenied,
        _ => OpenError::Other(e.to_string()),
    })?;
    if meta.is_dir() {
        return Err(OpenError::Directory);
    }
    if meta.len() == 0 {
        return Err(OpenError::Empty);
    }
    // metadata() succeeds on an unreadable file; ask for read access explicitly. Never by
    // opening it: closing any descriptor of a file releases every POSIX lock this process holds
    // on it, including the locks of our own SQLite connections (an action's write lock, a
    // backup's snapshot) — see "How To Corrupt An SQLite Database File" on sqlite.org, 2.2.
    if !accessible(path, libc::R_OK) {
        let e = io::Error::last_os_error();
        return Err(match e.kind() {
            io::ErrorKind::PermissionDenied => OpenError::PermissionDenied,
            _ => OpenError::Other(e.to_string()),
        });
    }
    Ok(meta)
}

/// `access(2)`: whether this process may access `path` in `mode` (`libc::R_OK`, `libc::W_OK`),
/// answered without opening the file.
pub fn accessible(path: &Path, mode: libc::c_int) -> bool {
    use std::os::unix::ffi::OsStrExt;
    match std::ffi::CString::new(path.as_os_str().as_bytes()) {
        // SAFETY: a valid NUL-terminated path; access(2) reads it and nothing else.
        Ok(c) => unsafe { libc::access(c.as_ptr(), mode) == 0 },
        Err(_) => false,
    }
}

/// Opens `path` read-only with the given busy timeout. The connection holds no transaction
/// until the caller starts one; drop it (or finish every statement) to release its snapshot.
pub fn open_read_only(path: &Path, busy_timeout: Duration) -> Result<Connection, OpenError> {
    preflight(path)?;
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    configure(&conn, busy_timeout)?;
    Ok(conn)
}

/// Opens an existing `path` read-write (never creating it) with the given busy timeout and
/// checkpoint-on-close disabled.
pub fn open_read_write(path: &Path, busy_timeout: Duration) -> Result<Connection, OpenError> {
    preflight(path)?;
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    configure(&conn, busy_timeout)?;
    Ok(conn)
}

/// Opens a file that nobody writes (a published backup, a decompressed copy of one) read-only
/// with `immutable=1`: no locks, and no `-wal`/`-shm` created beside a backup of a WAL database
/// made by another tool. Never for a monitored database, which others write.
pub fn open_immutable(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let s = path
        .to_str()
        .ok_or_else(|| rusqlite::Error::InvalidPath(path.to_path_buf()))?;
    Connection::open_with_flags(format!("file:{}?immutable=1", uri_escape(s)), flags)
}

/// `s` with every byte outside `[A-Za-z0-9/._~-]` percent-encoded, for a `file:` URI.
fn uri_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// SQLite connections opened by this process so far (every open goes through here).
static OPENED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many connections to monitored databases this process has opened: a scrape of
/// unchanged databases adds none.
pub fn opened() -> u64 {
    OPENED.load(std::sync::atomic::Ordering::Relaxed)
}

fn configure(conn: &Connection, busy_timeout: Duration) -> Result<(), OpenError> {
    OPENED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    conn.busy_timeout(busy_timeout)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_bad_paths() {
        let dir = tempfile::tempdir().unwrap();
        let t = Duration::from_millis(100);
        assert_eq!(
            open_read_only(&dir.path().join("nope.db"), t).unwrap_err(),
            OpenError::Missing
        );
        assert_eq!(
            open_read_only(dir.path(), t).unwrap_err(),
            OpenError::Directory
        );
        let empty = dir.path().join("empty.db");
        std::fs::write(&empty, b"").unwrap();
        assert_eq!(open_read_only(&empty, t).unwrap_err(), OpenError::Empty);
        let junk = dir.path().join("junk.db");
        std::fs::write(&junk, vec![b'x'; 4096]).unwrap();
        let err = open_read_only(&junk, t)
            .and_then(|c| {
                c.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
                    r.get::<_, i64>(0)
                })
                .map_err(OpenError::from)
            })
            .unwrap_err();
        assert_eq!(err, OpenError::NotADatabase);
    }

    #[test]
    fn uri_escaping() {
        assert_eq!(uri_escape("/a b/c?d#%.db"), "/a%20b/c%3Fd%23%25.db");
    }

    #[test]
    fn read_write_never_creates() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("new.db");
        assert!(open_read_write(&p, Duration::from_millis(10)).is_err());
        assert!(!p.exists());
    }
}
