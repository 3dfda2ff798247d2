//! sqlite_exporter: a Prometheus exporter and control plane for SQLite databases.
//!
//! One folder per layer, listed here from the bottom up. A layer uses only itself and the
//! layers listed before it, never one after (`tests/architecture.rs` enforces it, and
//! `docs/architecture.md` draws the map and follows a scrape, a background check and an
//! action through it):
//!
//! - [`sqlite`]: opening monitored databases without disturbing them, reading the `-wal` file
//!   without SQLite, bounding long statements, small SQL helpers.
//! - [`config`]: the validated configuration model, with its one set of defaults, decoded
//!   strictly from YAML.
//! - [`backup_dir`]: backup file names, sidecar metadata, listing, and private temp files.
//! - [`collect`]: the scrape-time collectors, one file each, registered by name; each declares
//!   the series it renders.
//! - [`checks`]: the background checks (integrity, dbstat, migrations), their cached results
//!   and series, and each database's check timetable.
//! - [`fleet`]: one monitor per database, the scrape of them all, the health model, the
//!   background jobs on one database, and the [`fleet::events::Events`] sink through which
//!   everything below the metrics reports what happened.
//! - [`actions`]: the typed actions (checkpoint, backup, restore, recovery, VACUUM, integrity
//!   check, optimize), the one claim → execute path, policies and async jobs.
//! - [`metrics`]: the exposition format and the histograms and counters that accumulate.
//! - [`service`]: the background tick loop, live reload, graceful shutdown.
//! - [`http`]: listeners, routing, TLS, authentication, the landing page, the control API.
//! - [`cli`]: flags, subcommands, `check`, the demo, logging, and `serve`, which wires it all.

pub mod actions;
pub mod backup_dir;
pub mod checks;
pub mod cli;
pub mod collect;
pub mod config;
pub mod fleet;
pub mod http;
pub mod metrics;
pub mod service;
pub mod sqlite;

/// The exporter's version (Cargo package version).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git revision it was built from, or `unknown`.
pub const REVISION: &str = match option_env!("SQLITE_EXPORTER_REVISION") {
    Some(r) => r,
    None => "unknown",
};

/// Seconds since the Unix epoch, as Prometheus timestamps are written.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
