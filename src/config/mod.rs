//! Configuration: the YAML file, decoded strictly into validated types.
//!
//! This layer owns the validated configuration model (every settings section with its one set
//! of built-in defaults, and the mode enums such as [`WriteProbe`] and [`IntegrityMode`]), the
//! strict YAML decoding that produces it, the database entries with their glob expansion, and
//! the human units (durations, sizes) of the file. It may use only the `sqlite` layer below it.
//!
//! Decoding happens in two layers. The *raw* layer mirrors the file: every key optional, unknown
//! keys rejected, each value checked by its type (durations, sizes, enums) with serde tracking
//! the key path for the error. The *resolved* layer is what the rest of the program sees: every
//! database has a complete [`Settings`] built from the built-in defaults, then the file's
//! `defaults:`, then the database's own overrides, key by key. Code that needs a valid config can
//! only receive a [`Config`], and a `Config` only comes out of [`Config::load`] /
//! [`Config::from_yaml`] / [`Config::from_files`], which validate everything.
//!
//! - `model`: [`Settings`] and its sections, their defaults and checks, the mode enums,
//!   [`Control`].
//! - `decode`: the raw document, [`Config`] and its constructors, [`ConfigError`].
//! - `entries`: [`Entry`], [`Source`], [`DatabaseConfig`], glob expansion, [`NameConflict`].
//! - [`units`]: [`HumanDuration`] and [`ByteSize`].
//! - [`token_file`]: the control API's token file, refused when others could read it.

mod decode;
mod entries;
mod model;
pub mod token_file;
pub mod units;

pub(crate) use decode::yaml_message;
pub use decode::{Config, ConfigError};
pub use entries::{is_companion_file, stem, DatabaseConfig, Entry, NameConflict, Source};
pub use model::Drill;
pub use model::{
    Actions, Auto, Backup, BackupMethod, Compression, Control, CustomQuery, Dbstat, Detail,
    IntegrityCheck, IntegrityMode, Labels, Metrics, Migrations, Probes, Queries, QueryType, Schema,
    Settings, Thresholds, Verification, WriteProbe, EXPORTED_THRESHOLDS, EXPORTED_THRESHOLD_COUNT,
    RESERVED_LABELS,
};
pub use units::{human_size, ByteSize, HumanDuration};
