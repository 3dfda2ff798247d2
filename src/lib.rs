//! sqlite_exporter: a Prometheus exporter and control plane for SQLite databases.

pub mod connection;
pub mod dbstat;
pub mod integrity;
pub mod interrupt;
pub mod migrations;
pub mod sql;
