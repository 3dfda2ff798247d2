//! The `sqlite_exporter` binary: parse flags, set up logging, run, exit.

use sqlite_exporter::cli::logging::Level;

fn main() {
    let inv = sqlite_exporter::cli::parse();
    let subcommand = inv.cli.command.is_some();
    // A subcommand's result is its output and exit code: it logs only failures of its own
    // unless asked for more.
    let level = inv.cli.log_level.unwrap_or(if subcommand {
        Level::Error
    } else {
        Level::Info
    });
    sqlite_exporter::cli::logging::init(level, inv.cli.log_format);
    let code = match sqlite_exporter::cli::serve::run(inv) {
        Ok(code) => code,
        Err(e) => {
            // Once: a log line for the server (where its log goes), a sentence for a person
            // at a terminal otherwise.
            if subcommand {
                eprintln!("sqlite_exporter: {e:#}");
            } else {
                tracing::error!(error = %format!("{e:#}"), "fatal");
            }
            1
        }
    };
    std::process::exit(code);
}
