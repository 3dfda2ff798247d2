//! The long-running process around the fleet: the background tick loop that starts checks,
//! backup scans and policies ([`scheduler`]), live reload of the configuration ([`reload`]),
//! and graceful shutdown ([`shutdown`]).
//!
//! Uses `fleet`, `actions`, `checks`, `config` and the layers below; never `http` or `cli`.

pub mod drills;
pub mod reload;
pub mod scheduler;
pub mod shutdown;
