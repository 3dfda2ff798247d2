//! sqlite_exporter: a Prometheus exporter and control plane for SQLite databases.
//!
//! The map of the crate, from the bottom up:
//!
//! - [`connection`] opens monitored databases without disturbing them (read-only, no
//!   checkpoint on close, classified errors).
//! - [`config`] decodes the YAML file strictly into validated types.
//! - [`wal`] reads WAL facts from the files themselves.
//! - [`collector`] holds the scrape-time collectors, one file each, registered by name.
//! - [`integrity`], [`dbstat`] and [`migrations`] are the deep checks, run in the
//!   background ([`interrupt`] bounds them in time; [`sql`] quotes identifiers).
//! - [`scheduler`] runs them on a staggered, bounded schedule; [`checks`] caches the results.
//! - [`health`] decides status and recommendations from the facts (SPEC §6).
//! - [`checkpoint`], [`backup`], [`restore`], [`recover`] and [`vacuum`] are the maintenance
//!   engines; [`actions`] is the one entry point to them (claiming, counting, logging) shared
//!   by the control API, the CLI and the [`policy`] module; [`jobs`] tracks async actions.
//! - [`monitor`] owns one database: it scrapes it, caches background results, and holds its
//!   action lock and policy state.
//! - [`fleet`] is every monitor plus the shared, bounded-parallel scrape.
//! - [`metrics`] renders a snapshot as Prometheus text; every metric name lives there.
//! - [`http`] serves it all (endpoints, control API, TLS and basic auth); it has no SQLite code.
//! - [`reload`] re-reads the configuration (SIGHUP, `POST /-/reload`, file changes) and
//!   re-expands globs as tenant files come and go; [`shutdown`] stops the process gracefully.
//! - [`app`], [`cli`], [`command`], [`check`], [`demo`] and [`logging`] are the binary's edges.

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
