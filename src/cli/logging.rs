//! Logging setup: `--log.level` and `--log.format=logfmt|json`, to stderr, as the Prometheus
//! exporters do.

use clap::ValueEnum;
use tracing_subscriber::filter::LevelFilter;

/// `--log.level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Level {
    /// Everything, including per-scrape detail.
    Debug,
    /// Start-up, changes of state, actions.
    Info,
    /// Problems with a database or a request.
    Warn,
    /// Failures of the exporter itself.
    Error,
}

/// `--log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// `ts=… level=info msg=… key=value`.
    Logfmt,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber. Safe to call once per process.
pub fn init(level: Level, format: Format) {
    let filter = match level {
        Level::Debug => LevelFilter::DEBUG,
        Level::Info => LevelFilter::INFO,
        Level::Warn => LevelFilter::WARN,
        Level::Error => LevelFilter::ERROR,
    };
    let result = match format {
        Format::Logfmt => tracing_logfmt::builder()
            .with_target(false)
            .subscriber_builder()
            .with_writer(std::io::stderr)
            .with_max_level(filter)
            .try_init(),
        Format::Json => tracing_subscriber::fmt()
            .json()
            .with_current_span(false)
            .with_target(false)
            .with_writer(std::io::stderr)
            .with_max_level(filter)
            .try_init(),
    };
    if let Err(e) = result {
        eprintln!("logging already initialised: {e}");
    }
}
