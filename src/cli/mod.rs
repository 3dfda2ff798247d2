//! Command-line flags, named after node_exporter and the exporter-toolkit, so they read like the
//! exporters operators already run.
//!
//! `--collector.<name>` / `--no-collector.<name>` are generated from the collector registry, so
//! a new collector gets its flags by being registered.

pub mod actions;
pub mod check;
pub mod demo;
pub mod logging;
pub mod serve;

use std::path::PathBuf;

use clap::{Arg, ArgAction, ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::actions::{Action, ACTIONS};

use crate::collect::{CollectorSet, REGISTRY};

/// The default listen address; the port is free in the Prometheus default port allocations.
pub const DEFAULT_LISTEN: &str = ":10437";

/// Prometheus exporter and control plane for SQLite databases.
#[derive(Debug, Parser)]
#[command(name = "sqlite_exporter", version, about, long_about = None)]
pub struct Cli {
    /// Address to listen on (repeatable; `:PORT` means every interface).
    #[arg(long = "web.listen-address", value_name = "ADDR", default_value = DEFAULT_LISTEN, action = ArgAction::Append)]
    pub listen_addresses: Vec<String>,

    /// Serve on the sockets systemd passes (socket activation, `LISTEN_FDS`) instead of
    /// binding --web.listen-address.
    #[arg(long = "web.systemd-socket")]
    pub systemd_socket: bool,

    /// Web configuration file (exporter-toolkit format): TLS, basic auth, response headers.
    #[arg(long = "web.config.file", value_name = "FILE")]
    pub web_config_file: Option<PathBuf>,

    /// Path under which to expose metrics (`/` serves them instead of the landing page).
    #[arg(
        long = "web.telemetry-path",
        value_name = "PATH",
        default_value = "/metrics",
        value_parser = crate::http::check_telemetry_path
    )]
    pub telemetry_path: String,

    /// How long a client may take to send a request's headers (a connection's first request
    /// is timed from accept), and a control API request's body after them; 0s for no limit.
    #[arg(long = "web.header-read-timeout", value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_read_timeout: std::time::Duration,

    /// How long a connection with no request in flight is kept open; 0s for no limit.
    #[arg(long = "web.idle-timeout", value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub idle_timeout: std::time::Duration,

    /// Connections open at once; further ones wait until one closes.
    #[arg(long = "web.max-connections", value_name = "N", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// Configuration file (YAML; see examples/sqlite_exporter.yml).
    #[arg(long = "config.file", value_name = "FILE", global = true)]
    pub config_file: Option<PathBuf>,

    /// Validate the configuration and exit (0 valid, 1 invalid).
    #[arg(long = "config.check")]
    pub config_check: bool,

    /// Only log messages at or above this level [default: info; error for the subcommands,
    /// whose result is their output and exit code].
    #[arg(long = "log.level", value_enum, global = true)]
    pub log_level: Option<logging::Level>,

    /// Log format.
    #[arg(
        long = "log.format",
        value_enum,
        default_value = "logfmt",
        global = true
    )]
    pub log_format: logging::Format,

    /// Disable every collector not enabled explicitly with `--collector.<name>`.
    #[arg(long = "collector.disable-defaults", global = true)]
    pub disable_defaults: bool,

    /// Threads reading databases in parallel during one scrape.
    #[arg(long = "scrape.concurrency", value_name = "N", default_value_t = 4)]
    pub scrape_concurrency: usize,

    /// Background checks (integrity, dbstat) running at once across all databases.
    #[arg(long = "checks.concurrency", value_name = "N", default_value_t = 1)]
    pub checks_concurrency: usize,

    /// Run the demo: a demo database with a background writer in DIR (a temp dir if omitted).
    #[arg(long, value_name = "DIR", num_args = 0..=1)]
    pub demo: Option<Option<PathBuf>>,

    /// Database files to monitor with default settings (zero-config use).
    #[arg(value_name = "DATABASE")]
    pub files: Vec<PathBuf>,

    /// One-off operator work on local files, using the same engine as the control API.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands: `check`, `backups`, and one per action (its control API route), each made
/// from the action's own request type so the CLI and the API take the same parameters.
#[derive(Debug)]
pub enum Command {
    /// Health report for each database; exit 0 healthy, 1 warning, 2 critical, 3 unknown.
    Check(CheckArgs),
    /// List backups, newest first.
    Backups {
        /// The database.
        target: Target,
    },
    /// An action on one database.
    Action {
        /// The database.
        target: Target,
        /// The action and its parameters.
        action: Action,
    },
}

const CHECK_ABOUT: &str =
    "Health report for each database; exit 0 healthy, 1 warning, 2 critical, 3 unknown";
const BACKUPS_ABOUT: &str = "List backups, newest first";

impl FromArgMatches for Command {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let Some((name, sub)) = m.subcommand() else {
            return Err(clap::Error::new(clap::error::ErrorKind::MissingSubcommand));
        };
        match name {
            "check" => Ok(Command::Check(CheckArgs::from_arg_matches(sub)?)),
            "backups" => Ok(Command::Backups {
                target: Target::from_arg_matches(sub)?,
            }),
            route => match Action::from_subcommand(route, sub) {
                Some(action) => Ok(Command::Action {
                    target: Target::from_arg_matches(sub)?,
                    action: action?,
                }),
                None => Err(clap::Error::raw(
                    clap::error::ErrorKind::InvalidSubcommand,
                    format!("unknown subcommand {route:?}"),
                )),
            },
        }
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl Subcommand for Command {
    fn augment_subcommands(cmd: clap::Command) -> clap::Command {
        // `about` last: augmenting with a type's arguments sets its doc comment as the about.
        let check = CheckArgs::augment_args(clap::Command::new("check")).about(CHECK_ABOUT);
        let backups = Target::augment_args(clap::Command::new("backups")).about(BACKUPS_ABOUT);
        let mut cmd = cmd.subcommand(check);
        for spec in ACTIONS {
            let sub = Target::augment_args(clap::Command::new(spec.route));
            cmd = cmd.subcommand((spec.args)(sub).about(spec.about));
            if spec.route == "backup" {
                cmd = cmd.subcommand(backups.clone());
            }
        }
        cmd
    }

    fn augment_subcommands_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_subcommands(cmd)
    }

    fn has_subcommand(name: &str) -> bool {
        matches!(name, "check" | "backups") || ACTIONS.iter().any(|s| s.route == name)
    }
}

/// The database an action subcommand works on.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// A database name from --config.file, or a database file.
    #[arg(value_name = "DATABASE")]
    pub database: String,
    /// Backup directory (overrides backup.dir).
    #[arg(long = "backup.dir", value_name = "DIR")]
    pub backup_dir: Option<PathBuf>,
}

/// `check` arguments.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Database files (or use --config.file).
    #[arg(value_name = "DATABASE")]
    pub files: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub output: Output,
    /// Run a full integrity_check now (default: the configured check, quick_check).
    #[arg(long)]
    pub full: bool,
    /// The least status that fails the check: `warning` exits 1 on a recommendation,
    /// `critical` exits 0 on it (a Kubernetes probe). Critical is 2 and unknown 3 either way.
    #[arg(long = "fail-on", value_enum, default_value = "warning")]
    pub fail_on: FailOn,
}

/// `check --fail-on`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    /// Warning (1), critical (2) and unknown (3) exit non-zero.
    Warning,
    /// Only critical (2) and unknown (3) exit non-zero.
    Critical,
}

/// Output of reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Aligned text for people.
    Table,
    /// JSON for scripts.
    Json,
}

/// Parsed command line plus the collector selection.
pub struct Invocation {
    /// The flags.
    pub cli: Cli,
    /// The collectors the flags select.
    pub collectors: CollectorSet,
}

/// `--version`: the version, the git revision and the bundled SQLite.
pub fn version() -> String {
    format!(
        "{} (revision {}, SQLite {})",
        crate::VERSION,
        crate::REVISION,
        rusqlite::version()
    )
}

/// The clap command, with the generated collector flags (accepted before or after a
/// subcommand, as every other flag that applies to one).
pub fn command() -> clap::Command {
    let mut cmd = Cli::command().version(version());
    for r in REGISTRY {
        let on = if r.default { "enabled" } else { "disabled" };
        cmd = cmd
            .arg(
                Arg::new(format!("collector.{}", r.name))
                    .long(format!("collector.{}", r.name))
                    .global(true)
                    .action(ArgAction::SetTrue)
                    .help(format!(
                        "Enable the {} collector ({}; default {on})",
                        r.name, r.help
                    )),
            )
            .arg(
                Arg::new(format!("no-collector.{}", r.name))
                    .long(format!("no-collector.{}", r.name))
                    .global(true)
                    .action(ArgAction::SetTrue)
                    .hide(true),
            );
    }
    cmd
}

/// Parses the process arguments; on a usage error prints it and exits with [`usage_exit_code`]
/// (an action subcommand also prints it as its JSON result on stdout).
pub fn parse() -> Invocation {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    match try_parse_from(&args) {
        Ok(inv) => inv,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version
        Err(e) => {
            let sub = subcommand_of(&args);
            if sub.is_some_and(|s| s != "check") {
                let json = serde_json::json!({ "error": usage_message(&e) });
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json).unwrap_or_default()
                );
            }
            let _ = e.print();
            std::process::exit(usage_exit_code(sub));
        }
    }
}

/// The exit code of a usage error: 3 (unknown) for `check`, whose 2 means critical, as the
/// monitoring-plugin convention has it; 2 otherwise (the action subcommands' bad request).
pub fn usage_exit_code(subcommand: Option<&str>) -> i32 {
    match subcommand {
        Some("check") => 3,
        _ => 2,
    }
}

/// The subcommand named in `args`: the first argument that is one (a flag's value could be
/// mistaken for it only if it were spelled like a subcommand).
fn subcommand_of(args: &[std::ffi::OsString]) -> Option<&str> {
    args.iter()
        .skip(1)
        .filter_map(|a| a.to_str())
        .find(|a| Command::has_subcommand(a))
}

/// clap's error without its `error: ` prefix, usage and tips, on one line: its first
/// paragraph, with the lines under the first (the missing arguments, the possible values)
/// joined to it. Plain text: clap's `Display` leaves the colours out.
fn usage_message(e: &clap::Error) -> String {
    let text = e.to_string();
    let mut lines = text.lines().take_while(|l| !l.trim().is_empty());
    let first = lines.next().unwrap_or_default();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let rest: Vec<&str> = lines.map(str::trim).collect();
    if rest.is_empty() {
        first.to_string()
    } else if first.ends_with(':') {
        format!("{first} {}", rest.join(", "))
    } else {
        format!("{first} {}", rest.join(" "))
    }
}

/// Parses explicit arguments.
pub fn try_parse_from<I, T>(args: I) -> Result<Invocation, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    from_matches(command().try_get_matches_from(args)?)
}

fn from_matches(m: ArgMatches) -> Result<Invocation, clap::Error> {
    let cli = Cli::from_arg_matches(&m)?;
    let collectors = CollectorSet::select(|r| {
        if m.get_flag(&format!("no-collector.{}", r.name)) {
            false
        } else if m.get_flag(&format!("collector.{}", r.name)) {
            true
        } else {
            r.default && !cli.disable_defaults
        }
    });
    Ok(Invocation { cli, collectors })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collector_flags_come_from_the_registry() {
        let i = try_parse_from(["x", "--no-collector.write", "a.db"]).unwrap();
        assert!(!i.collectors.names().contains(&"write"));
        assert!(i.collectors.names().contains(&"query"));
        let i = try_parse_from(["x", "--collector.disable-defaults", "--collector.wal"]).unwrap();
        assert_eq!(i.collectors.names(), vec!["wal"]);
        let i = try_parse_from(["x", "--collector.tables"]).unwrap();
        assert!(
            i.collectors.background("tables")
                && i.collectors.background("integrity")
                && !i.collectors.background("dbstat")
        );
    }

    #[test]
    fn subcommands_and_positional_files() {
        let i = try_parse_from(["x", "a.db", "b.db"]).unwrap();
        assert_eq!(i.cli.files.len(), 2);
        assert!(i.cli.command.is_none());
        let i =
            try_parse_from(["x", "--log.level=warn", "check", "--output=json", "a.db"]).unwrap();
        match i.cli.command {
            Some(Command::Check(c)) => {
                assert_eq!(c.files, vec![PathBuf::from("a.db")]);
                assert_eq!(c.output, Output::Json);
            }
            other => panic!("{other:?}"),
        }
        let i = try_parse_from(["x", "--demo"]).unwrap();
        assert_eq!(i.cli.demo, Some(None));
        let i = try_parse_from([
            "x",
            "--web.listen-address=:1",
            "--web.listen-address=127.0.0.1:2",
        ])
        .unwrap();
        assert_eq!(i.cli.listen_addresses, vec![":1", "127.0.0.1:2"]);
        assert_eq!(crate::http::normalize_listen_address(":1"), "[::]:1");
    }

    #[test]
    fn a_usage_message_is_one_line_naming_what_is_wrong() {
        let message = |args: &[&str], color: clap::ColorChoice| {
            let e = command()
                .color(color)
                .try_get_matches_from(args)
                .unwrap_err();
            usage_message(&e)
        };
        for color in [clap::ColorChoice::Never, clap::ColorChoice::Always] {
            assert_eq!(
                message(&["x", "checkpoint"], color),
                "the following required arguments were not provided: <DATABASE>"
            );
            assert_eq!(
                message(&["x", "restore"], color),
                "the following required arguments were not provided: <DATABASE>, <BACKUP>"
            );
            assert_eq!(
                message(&["x", "checkpoint", "--bogus", "a.db"], color),
                "unexpected argument '--bogus' found"
            );
            assert_eq!(
                message(&["x", "--log.level=loud", "checkpoint", "a.db"], color),
                "invalid value 'loud' for '--log.level <LOG_LEVEL>' [possible values: debug, info, warn, error]"
            );
        }
    }
}
