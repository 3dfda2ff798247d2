//! Progress of a long action: pages done of pages in all.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Pages copied so far by a backup, restore or recovery; reported after every step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Progress {
    /// Pages done.
    pub pages_done: u64,
    /// Pages in all.
    pub pages_total: u64,
}

/// Where a running action leaves its latest [`Progress`] for whoever watches it (an async
/// job's status, the CLI's progress bar).
#[derive(Debug, Default)]
pub struct ProgressCell {
    done: AtomicU64,
    total: AtomicU64,
}

impl ProgressCell {
    /// Records the latest figures.
    pub fn set(&self, p: Progress) {
        self.done.store(p.pages_done, Ordering::Relaxed);
        self.total.store(p.pages_total, Ordering::Relaxed);
    }

    /// The latest figures.
    pub fn get(&self) -> Progress {
        Progress {
            pages_done: self.done.load(Ordering::Relaxed),
            pages_total: self.total.load(Ordering::Relaxed),
        }
    }
}
