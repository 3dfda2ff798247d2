//! The `sqlite_exporter` binary: parse flags, set up logging, run, exit.

fn main() {
    let inv = sqlite_exporter::cli::parse();
    sqlite_exporter::cli::logging::init(inv.cli.log_level, inv.cli.log_format);
    let code = match sqlite_exporter::cli::serve::run(inv) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "fatal");
            eprintln!("sqlite_exporter: {e:#}");
            1
        }
    };
    std::process::exit(code);
}
