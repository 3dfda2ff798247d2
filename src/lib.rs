//! sqlite_exporter: a Prometheus exporter and control plane for SQLite databases.

pub mod backup;
pub mod connection;
pub mod restore;
