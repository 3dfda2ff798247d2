//! SQLite itself, as the exporter may touch it: how monitored databases are opened (read-only,
//! no checkpoint on close, errors classified), what the `-wal` file says without SQLite, how
//! long statements are bounded and interrupted, and small SQL helpers.
//!
//! The bottom layer: it uses no other module of the crate.

pub mod connection;
pub mod header;
pub mod interrupt;
pub mod schema_page;
pub mod sql;
pub mod wal;
pub mod wal_index;

use std::time::Duration;

/// Busy timeout of every scrape-time connection: a probe waits at most this long for a lock.
pub const PROBE_BUSY_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a background job waits for a lock held by the application.
pub const BACKGROUND_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
