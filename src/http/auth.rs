//! Bearer tokens for the control API: read from `control.token_file` (one per line; blank lines
//! and `#` comments ignored), re-read when the file changes, compared in constant time. A file
//! other users could read is refused here too, not only when the configuration is loaded.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tracing::{error, info};

use crate::config::token_file;

/// The token file and the tokens last read from it.
pub struct Tokens {
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    /// (path, mtime, length, inode, mode, owner) of the file the digests came from; a chmod or
    /// chown makes it checked again.
    stamp: Option<(PathBuf, SystemTime, u64, u64, u32, u32)>,
    /// SHA-256 of each token: comparing fixed-length digests leaks neither content nor length.
    digests: Vec<[u8; 32]>,
}

impl Default for Tokens {
    fn default() -> Self {
        Tokens {
            cache: Mutex::new(Cache::default()),
        }
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Tokens {
    /// Whether `presented` is one of the tokens in `file` (read again if it changed).
    pub fn accepts(&self, file: Option<&PathBuf>, presented: &str) -> bool {
        let Some(file) = file else { return false };
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = cache.refresh(file) {
            error!(file = %file.display(), error = %e, "cannot read the control token file; rejecting requests");
            return false;
        }
        let p = digest(presented);
        // Compare with every token, whatever matches first.
        cache
            .digests
            .iter()
            .fold(false, |found, d| found | bool::from(d.ct_eq(&p)))
    }
}

impl Cache {
    fn refresh(&mut self, file: &PathBuf) -> std::io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(file)?;
        let stamp = (
            file.clone(),
            meta.modified()?,
            meta.len(),
            meta.ino(),
            meta.mode(),
            meta.uid(),
        );
        if self.stamp.as_ref() == Some(&stamp) {
            return Ok(());
        }
        let text = token_file::read(file).map_err(std::io::Error::other)?;
        self.digests = token_file::tokens(&text).map(digest).collect();
        info!(file = %file.display(), tokens = self.digests.len(), "control tokens loaded");
        self.stamp = Some(stamp);
        Ok(())
    }
}
