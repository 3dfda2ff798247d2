//! Files the exporter writes in the backup directory: private, locked temp files that become
//! backups or sidecars only by an atomic rename, and the fsync, hashing and compression steps
//! between.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use chrono::Utc;
use sha2::{Digest, Sha256};

use super::{with_suffix, BackupMeta, META_SUFFIX, SIDE_FILES, TEMP_SUFFIX};

/// An I/O error that says what was being done.
fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> io::Error {
    let context = context.into();
    move |e| io::Error::new(e.kind(), format!("{context}: {e}"))
}

/// A temp file in the backup directory, named `.{database}.{nanos}-{pid}.{what}.tmp` (so
/// [`list`] never matches it), mode 0600, `flock`ed for its lifetime (so [`remove_leftovers`]
/// in another process leaves it alone), and removed with SQLite's side files on drop unless
/// published.
pub struct TempFile {
    path: PathBuf,
    file: File,
    published: bool,
}

impl TempFile {
    /// A new temp file for `database` in `dir`; `what` ends its name (db, gz, meta, restore).
    pub fn create(dir: &Path, database: &str, what: &str) -> io::Result<TempFile> {
        let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
        let name = format!(
            ".{database}.{nanos}-{}.{what}{TEMP_SUFFIX}",
            std::process::id()
        );
        let path = dir.join(name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err(format!("create {}", path.display())))?;
        // SAFETY: flock on a file descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(io_err(format!("lock {}", path.display()))(
                io::Error::last_os_error(),
            ));
        }
        let temp = TempFile {
            path,
            file,
            published: false,
        };
        // A concurrent remove_leftovers may have deleted the file between create and flock.
        let same = match (temp.file.metadata(), temp.path.metadata()) {
            (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
            _ => false,
        };
        if !same {
            return Err(io_err(format!("create {}", temp.path.display()))(
                io::Error::other("temp file removed while being created"),
            ));
        }
        Ok(temp)
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its open file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Gives the temp file its final name without ever replacing an existing file
    /// (link + unlink: the name appears atomically, complete).
    pub fn publish_no_replace(mut self, dest: &Path) -> io::Result<()> {
        match fs::hard_link(&self.path, dest) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(e),
            Err(_) => {
                // No hard links on this filesystem: check, then rename (a narrow race only with
                // another process writing the same name, which the action lock rules out).
                if dest.symlink_metadata().is_ok() {
                    return Err(io::Error::from(io::ErrorKind::AlreadyExists));
                }
                fs::rename(&self.path, dest)?;
                self.published = true;
                return Ok(());
            }
        }
        self.published = true;
        fs::remove_file(&self.path)
    }

    /// Renames over `dest` (for sidecars, which belong to a file just published).
    pub fn publish_replace(mut self, dest: &Path) -> io::Result<()> {
        fs::rename(&self.path, dest)?;
        self.published = true;
        Ok(())
    }
}

/// A temp directory in a parent directory, named `.{name}.{nanos}-{pid}.tmp`, mode 0700,
/// `flock`ed for its lifetime (so [`remove_leftovers`] in another process leaves it alone). It
/// gets its final name only by [`publish`](Self::publish), once everything in it is written
/// and synced, so a process killed half-way leaves a temp directory, never a partial copy
/// under a real name. Removed with its content on drop unless published.
pub struct TempDir {
    path: PathBuf,
    _lock: File,
    published: bool,
}

impl TempDir {
    /// A new temp directory for `name` in `parent`.
    pub fn create(parent: &Path, name: &str) -> io::Result<TempDir> {
        let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
        let path = parent.join(format!(
            ".{name}.{nanos}-{}{TEMP_SUFFIX}",
            std::process::id()
        ));
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(io_err(format!("create {}", path.display())))?;
        let lock = File::open(&path).map_err(io_err(format!("open {}", path.display())))?;
        // SAFETY: flock on a file descriptor we own.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(io_err(format!("lock {}", path.display()))(
                io::Error::last_os_error(),
            ));
        }
        Ok(TempDir {
            path,
            _lock: lock,
            published: false,
        })
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Syncs the directory, renames it to `dest` (in the same parent) and syncs the parent.
    pub fn publish(mut self, dest: &Path) -> io::Result<()> {
        File::open(&self.path)?.sync_all()?;
        fs::rename(&self.path, dest)?;
        self.published = true;
        if let Some(parent) = dest.parent() {
            File::open(parent)?.sync_all()?;
        }
        Ok(())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.published {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        for side in SIDE_FILES {
            let _ = fs::remove_file(with_suffix(&self.path, side));
        }
        if !self.published {
            let _ = fs::remove_file(&self.path);
        }
    }
}

pub fn ensure_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err(format!("create backup directory {}", dir.display())))
}

pub fn sync_file(path: &Path) -> io::Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io_err(format!("fsync {}", path.display())))
}

pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io_err(format!("fsync directory {}", dir.display())))
}

pub fn sha256_file(path: &Path) -> io::Result<String> {
    let context = || format!("read {}", path.display());
    let mut reader =
        BufReader::with_capacity(1 << 20, File::open(path).map_err(io_err(context()))?);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf).map_err(io_err(context()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Gzips the verified copy into a new temp file (synced); the uncompressed one is dropped.
pub fn gzip(copy: &TempFile, dir: &Path, database: &str) -> io::Result<TempFile> {
    let gz = TempFile::create(dir, database, "gz")?;
    let context = || format!("compress into {}", gz.path().display());
    let mut input = File::open(copy.path()).map_err(io_err(context()))?;
    // Level 1: several times faster than the default 6 on database pages for a few percent
    // of size; a backup competes with the application for CPU.
    let mut encoder = flate2::write::GzEncoder::new(
        io::BufWriter::with_capacity(1 << 20, gz.file()),
        flate2::Compression::fast(),
    );
    io::copy(&mut input, &mut encoder).map_err(io_err(context()))?;
    let mut out = encoder.finish().map_err(io_err(context()))?;
    out.flush().map_err(io_err(context()))?;
    drop(out);
    gz.file().sync_all().map_err(io_err(context()))?;
    Ok(gz)
}

/// Decompresses a gzipped backup into a temp file in `dir`. A stream that cannot be read to
/// its end is an `InvalidData` error.
pub fn gunzip(path: &Path, dir: &Path, database: &str) -> io::Result<TempFile> {
    let out = TempFile::create(dir, database, "restore")?;
    let context = || format!("decompress {}", path.display());
    let input = File::open(path).map_err(io_err(context()))?;
    let mut decoder = flate2::read::GzDecoder::new(BufReader::with_capacity(1 << 20, input));
    let mut writer = io::BufWriter::with_capacity(1 << 20, out.file());
    let mut buf = vec![0u8; 1 << 16];
    loop {
        // Whatever stops the read (a truncated or corrupt stream, a bad checksum) means the
        // backup cannot be trusted: InvalidData, unlike a failure to write the temp file.
        let n = match decoder.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: corrupt gzip data: {e}", context()),
                ))
            }
        };
        writer.write_all(&buf[..n]).map_err(io_err(context()))?;
    }
    writer.flush().map_err(io_err(context()))?;
    drop(writer);
    Ok(out)
}

pub fn write_sidecar(dir: &Path, file_name: &str, meta: &BackupMeta) -> io::Result<()> {
    let tmp = TempFile::create(dir, &meta.database, "meta")?;
    let context = || format!("write sidecar for {file_name}");
    let json =
        serde_json::to_vec_pretty(meta).map_err(|e| io_err(context())(io::Error::other(e)))?;
    let mut f = tmp.file();
    f.write_all(&json).map_err(io_err(context()))?;
    f.sync_all().map_err(io_err(context()))?;
    tmp.publish_replace(&dir.join(format!("{file_name}{META_SUFFIX}")))
        .map_err(io_err(context()))?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_files_are_private_locked_and_removed_on_drop() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let tmp = TempFile::create(dir.path(), "app", "db").unwrap();
        let path = tmp.path().to_owned();
        assert_eq!(path.metadata().unwrap().permissions().mode() & 0o777, 0o600);
        // In use: remove_leftovers keeps it.
        assert!(super::super::remove_leftovers(dir.path())
            .unwrap()
            .is_empty());
        assert!(path.exists());
        drop(tmp);
        assert!(!path.exists());
    }

    #[test]
    fn temp_dirs_appear_whole_and_leftovers_are_swept() {
        use std::os::unix::fs::PermissionsExt;
        let backups = tempfile::tempdir().unwrap();
        let root = backups.path().join(crate::backup_dir::QUARANTINE_DIR);
        fs::create_dir(&root).unwrap();
        let sweep = || super::super::remove_leftovers(backups.path()).unwrap();

        // In use: kept by a sweep (another process may be copying into it).
        let live = TempDir::create(&root, "app-x").unwrap();
        assert_eq!(
            live.path().metadata().unwrap().permissions().mode() & 0o777,
            0o700
        );
        fs::write(live.path().join("app.db"), b"half").unwrap();
        assert!(sweep().is_empty());
        // Published: under its final name, nothing left behind.
        live.publish(&root.join("app-x")).unwrap();
        assert_eq!(fs::read(root.join("app-x/app.db")).unwrap(), b"half");
        assert_eq!(fs::read_dir(&root).unwrap().count(), 1);

        // Its owner gone without publishing (what SIGKILL leaves): swept.
        let orphan = TempDir::create(&root, "app-y").unwrap();
        fs::write(orphan.path().join("app.db"), b"half").unwrap();
        let path = orphan.path().to_owned();
        // SAFETY: flock on a descriptor the TempDir owns; releases the lock as exit would.
        unsafe { libc::flock(orphan._lock.as_raw_fd(), libc::LOCK_UN) };
        std::mem::forget(orphan); // no drop: nothing removes it but the sweep
        assert_eq!(sweep(), vec![path.clone()]);
        assert!(!path.exists() && root.join("app-x/app.db").exists());

        // Dropped unpublished: removed.
        let dropped = TempDir::create(&root, "app-z").unwrap();
        let path = dropped.path().to_owned();
        drop(dropped);
        assert!(!path.exists());
    }

    #[test]
    fn scratch_directories_of_a_killed_drill_are_swept() {
        let backups = tempfile::tempdir().unwrap();
        let root = backups.path().join(crate::backup_dir::DRILL_DIR);
        fs::create_dir(&root).unwrap();
        let live = TempDir::create(&root, "app").unwrap();
        let orphan = TempDir::create(&root, "app").unwrap();
        fs::write(orphan.path().join("app.db"), b"restored").unwrap();
        let path = orphan.path().to_owned();
        // SAFETY: flock on a descriptor the TempDir owns; releases the lock as exit would.
        unsafe { libc::flock(orphan._lock.as_raw_fd(), libc::LOCK_UN) };
        std::mem::forget(orphan);
        assert_eq!(
            super::super::remove_leftovers(backups.path()).unwrap(),
            vec![path.clone()]
        );
        assert!(!path.exists() && live.path().exists());
    }
}
