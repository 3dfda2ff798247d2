//! Actions on one database — checkpoint, backup, restore, recovery, VACUUM, integrity check —
//! and the one path every caller takes to run them.
//!
//! Each action is one variant of [`Action`] and one file holding its `Request` (what the
//! control API's JSON body and the CLI subcommand's flags both decode into) and how it is
//! performed. The [`actions!`] table below names each action once: its counter name, its API
//! route (which is also its CLI subcommand) and its help line; everything else is derived.
//!
//! The control API (sync and async), the CLI and the policies all go through
//! [`claim`] → [`Claim::execute`]: claim the database (one action at a time, 409 otherwise),
//! run the action, report it to the [`Events`] sink (counted in `/metrics`), log it, and
//! return a typed [`Outcome`] or an [`ActionError`] whose [`ErrorKind`] the caller maps to an
//! HTTP status or an exit code.
//!
//! Uses `fleet`, `checks`, `backup_dir`, `config` and `sqlite`; never `metrics`, `service`,
//! `http` or `cli`.

pub mod backup;
pub mod checkpoint;
pub mod drill;
mod error;
pub mod integrity_check;
pub mod jobs;
pub mod optimize;
pub mod policy;
mod progress;
pub mod recover;
pub mod restore;
pub mod vacuum;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use tracing::{info, warn};

pub use error::{is_locked, open_kind, ActionError, ErrorKind};
pub use progress::{Progress, ProgressCell};

use crate::backup_dir::BackupInfo;
use crate::checks::backups::BackupState;
use crate::checks::IntegrityResult;
use crate::collect::series::{Counter, Histogram};
use crate::config::{BackupMethod, Compression, Settings, Verification};
use crate::fleet::events::Events;
use crate::fleet::monitor::{ActionGuard, Monitor};
use backup::BackupOptions;

/// What a running action works with.
pub struct Context<'a> {
    /// The claimed database.
    pub monitor: &'a Monitor,
    /// Where it reports pages done.
    pub progress: &'a ProgressCell,
    /// Set on shutdown: stop at the next step and clean up.
    pub cancel: &'a AtomicBool,
}

/// One action's request, however it arrived.
pub trait Perform {
    /// What the action reports when it is done.
    type Report: Report;
    /// Refuses a malformed request before the database is claimed.
    fn validate(&self) -> Result<(), ActionError> {
        Ok(())
    }
    /// Runs it on the claimed database.
    fn perform(&self, ctx: &Context<'_>) -> Result<Self::Report, ActionError>;
    /// The `mode` label its counters carry (checkpoints only).
    fn mode(&self) -> Option<&'static str> {
        None
    }
    /// Whether a run is counted in `/metrics` (a dry run changes nothing and is not).
    fn counted(&self) -> bool {
        true
    }
}

/// An action's report: serialised, it is exactly the JSON the control API answers and the CLI
/// prints.
pub trait Report: Serialize {
    /// Done, but not what was asked: a checkpoint SQLite could not complete because a reader
    /// or writer was in the way (counted as a failure, exit 1 in the CLI).
    fn busy(&self) -> bool {
        false
    }
}

impl Report for BackupInfo {}
impl Report for Option<IntegrityResult> {}
impl Report for restore::RestoreReport {}
impl Report for recover::RecoveryReport {}
impl Report for vacuum::VacuumReport {}

/// One action as the API, the CLI and the metrics know it.
pub struct Spec {
    /// The `action` label, counter and log name (`integrity_check`, `recovery`).
    pub name: &'static str,
    /// The control API route and the CLI subcommand (`integrity-check`, `recover`).
    pub route: &'static str,
    /// One line for `--help`.
    pub about: &'static str,
    /// Adds the request's flags to its subcommand.
    pub args: fn(clap::Command) -> clap::Command,
    /// Reads the request back from the subcommand's matches.
    pub parse: fn(&clap::ArgMatches) -> Result<Action, clap::Error>,
    /// Its counters in `/metrics`: runs and failures (none for an integrity check, whose
    /// result has series of its own).
    pub counters: Option<(&'static Counter, &'static Counter)>,
}

/// `sqlite_action_duration_seconds{action}`: how long every action took.
pub const ACTION_DURATION: Histogram = Histogram {
    name: "sqlite_action_duration_seconds",
    help: "Duration of each action (manual or by policy), successful or not.",
    labels: &["database", "action"],
    buckets: &[
        0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
        3600.0,
    ],
};

/// Declares the actions: each line is a variant, the file that implements it, its name, its
/// route and its help line.
macro_rules! actions {
    ($( $variant:ident($module:ident) = $name:literal, $route:literal, $about:literal; )*) => {
        /// An action and its parameters.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Action {
            $( #[doc = $about] $variant($module::Request), )*
        }

        /// Every action, in the order of `--help`.
        pub const ACTIONS: &[Spec] = &[$(
            Spec {
                name: $name,
                route: $route,
                about: $about,
                args: <$module::Request as clap::Args>::augment_args,
                parse: |m| {
                    <$module::Request as clap::FromArgMatches>::from_arg_matches(m)
                        .map(Action::$variant)
                },
                counters: $module::COUNTERS,
            },
        )*];

        impl Action {
            /// The `action` label and log name.
            pub fn name(&self) -> &'static str {
                match self { $( Action::$variant(_) => $name, )* }
            }

            /// Decodes the JSON body of `POST /api/v1/databases/{db}/{route}` (empty means
            /// defaults) and validates it.
            pub fn from_json(route: &str, body: &[u8]) -> Result<Action, ActionError> {
                let action = match route {
                    $( $route => Action::$variant(parse_body(body)?), )*
                    other => {
                        return Err(ActionError::new(
                            ErrorKind::NotFound,
                            format!("unknown action {other:?}"),
                        ))
                    }
                };
                action.validate()?;
                Ok(action)
            }

            fn validate(&self) -> Result<(), ActionError> {
                match self { $( Action::$variant(r) => r.validate(), )* }
            }

            fn perform(&self, ctx: &Context<'_>) -> Result<Outcome, ActionError> {
                match self { $( Action::$variant(r) => r.perform(ctx).map(Outcome::$variant), )* }
            }

            fn mode(&self) -> Option<&'static str> {
                match self { $( Action::$variant(r) => r.mode(), )* }
            }

            fn counted(&self) -> bool {
                match self { $( Action::$variant(r) => r.counted(), )* }
            }
        }

        /// What an action did: its own report type.
        #[derive(Debug, Clone, Serialize)]
        #[serde(untagged)]
        pub enum Outcome {
            $( #[doc = $about] $variant(<$module::Request as Perform>::Report), )*
        }

        impl Outcome {
            /// Done, but not what was asked (see [`Report::busy`]).
            pub fn busy(&self) -> bool {
                match self { $( Outcome::$variant(r) => r.busy(), )* }
            }
        }
    };
}

actions! {
    Checkpoint(checkpoint) = "checkpoint", "checkpoint", "Checkpoint the WAL (passive, full, restart or truncate)";
    Backup(backup) = "backup", "backup", "Take a verified online backup";
    Restore(restore) = "restore", "restore", "Restore a backup (a file name from `backups`) into the live database";
    Recover(recover) = "recovery", "recover", "Run the recovery sequence: check, quarantine and restore if corrupt, checkpoint, VACUUM";
    Vacuum(vacuum) = "vacuum", "vacuum", "VACUUM after checking free disk space";
    IntegrityCheck(integrity_check) = "integrity_check", "integrity-check", "Run an integrity check now (quick or full) and record it";
    Optimize(optimize) = "optimize", "optimize", "Refresh the query planner's statistics where useful (PRAGMA optimize)";
    Drill(drill) = "drill", "drill", "Restore drill: restore the newest backup into a scratch directory, check it against what it recorded, time it, delete it";
}

impl Action {
    /// The action's spec.
    pub fn spec(&self) -> &'static Spec {
        let name = self.name();
        ACTIONS
            .iter()
            .find(|s| s.name == name)
            .expect("every action has a spec")
    }

    /// Parses a CLI subcommand of one of [`ACTIONS`]; `None` for another subcommand.
    pub fn from_subcommand(
        route: &str,
        matches: &clap::ArgMatches,
    ) -> Option<Result<Action, clap::Error>> {
        let spec = ACTIONS.iter().find(|s| s.route == route)?;
        Some((spec.parse)(matches).and_then(|a| {
            a.validate().map(|()| a).map_err(|e| {
                clap::Error::raw(
                    clap::error::ErrorKind::InvalidValue,
                    format!("{}\n", e.error),
                )
            })
        }))
    }
}

fn parse_body<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, ActionError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        ActionError::new(
            ErrorKind::InvalidInput,
            format!("invalid request body: {e}"),
        )
    })
}

impl Outcome {
    /// The JSON the control API answers and the CLI prints (keys in sorted order).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// Who asked for an action (it is logged and counted the same either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// The control API or the CLI.
    Manual,
    /// An `auto.*` policy.
    Policy,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Manual => "manual",
            Trigger::Policy => "policy",
        }
    }
}

/// A database claimed for an action: until it is dropped, no other action runs on that
/// database file.
pub struct Claim {
    guard: ActionGuard,
    action: Action,
}

/// Claims `m` for `action`; a database already running an action answers [`ErrorKind::Busy`].
pub fn claim(m: &Arc<Monitor>, action: Action) -> Result<Claim, ActionError> {
    let guard = m.begin_action(action.name()).map_err(|running| {
        ActionError::new(
            ErrorKind::Busy,
            format!(
                "{running} already running on {}; one action at a time",
                m.config.name
            ),
        )
        .with_detail(json!({ "running": running }))
    })?;
    Ok(Claim { guard, action })
}

impl Claim {
    /// The action claimed for.
    pub fn action(&self) -> &Action {
        &self.action
    }

    /// The claimed database.
    pub fn monitor(&self) -> &Arc<Monitor> {
        self.guard.monitor()
    }

    /// Runs the claimed action; see [`Claim::execute`].
    pub fn run(
        &self,
        events: &dyn Events,
        trigger: Trigger,
        progress: &ProgressCell,
        cancel: &AtomicBool,
    ) -> Result<Outcome, ActionError> {
        self.execute(&self.action, events, trigger, progress, cancel)
    }

    /// Runs `action` on the claimed database (the claimed one, or a fallback such as a PASSIVE
    /// checkpoint after a busy TRUNCATE), reports it to `events`, and logs it. A panic inside
    /// the action becomes an internal error, so every caller gets an answer.
    pub fn execute(
        &self,
        action: &Action,
        events: &dyn Events,
        trigger: Trigger,
        progress: &ProgressCell,
        cancel: &AtomicBool,
    ) -> Result<Outcome, ActionError> {
        let m = self.guard.monitor();
        let ctx = Context {
            monitor: m,
            progress,
            cancel,
        };
        let start = Instant::now();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            action.validate()?;
            action.perform(&ctx)
        }))
        .unwrap_or_else(|_| {
            Err(ActionError::new(
                ErrorKind::Internal,
                "the action panicked; see the exporter's log",
            ))
        });
        let seconds = start.elapsed().as_secs_f64();
        let mode = action.mode();
        let upfront = matches!(&result, Err(e) if e.refused_upfront());
        if action.counted() && !upfront {
            let ok = matches!(&result, Ok(o) if !o.busy());
            events.action(&m.config.name, action.name(), mode, ok, seconds);
        }
        if let (Action::Checkpoint(_), Ok(o)) = (action, &result) {
            events.checkpoint_answered(&m.config.name, o.busy());
        }
        let (db, trigger) = (&m.config.name, trigger.as_str());
        match &result {
            Ok(_) => {
                info!(database = %db, action = action.name(), mode, trigger, duration_seconds = seconds, "action done")
            }
            Err(e) => {
                warn!(database = %db, action = action.name(), mode, trigger, duration_seconds = seconds, error = %e, "action failed")
            }
        }
        result
    }
}

/// The backup engine's options for a database's settings.
pub fn backup_options(s: &Settings) -> BackupOptions {
    let b = &s.backup;
    BackupOptions {
        dir: b.dir.clone(),
        keep: b.keep as usize,
        compress_above: match b.compress {
            Compression::Gzip => Some(b.compress_above.0),
            Compression::None => None,
        },
        verify: match b.verify {
            Verification::Full => backup::Verify::Full,
            Verification::Quick => backup::Verify::Quick,
        },
        method: match b.method {
            BackupMethod::Online => backup::Method::OnlineBackup {
                pages_per_step: b.pages_per_step.min(i32::MAX as u64) as i32,
                step_pause: b.step_pause.0,
            },
            BackupMethod::VacuumInto => backup::Method::VacuumInto,
        },
        busy_timeout: s.actions.busy_timeout.0,
    }
}

/// A backup as the listings show it: its file, metadata and verification state.
#[derive(Debug, Clone, Serialize)]
pub struct ListedBackup {
    #[serde(flatten)]
    pub info: BackupInfo,
    /// `verified`, `unverified` or `damaged`: only a verified backup counts as one.
    pub state: BackupState,
    /// Why it is not verified.
    pub state_detail: Option<String>,
}

/// The backups of `m`, newest first, each with its verification state (cached by the
/// background scan; a file new since then is examined now).
pub fn list_backups(m: &Monitor) -> Result<Vec<ListedBackup>, ActionError> {
    let dir = &m.config.settings.backup.dir;
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let list =
        backup::list(&m.config.name, dir).map_err(|e| ActionError::new(e.kind(), e.to_string()))?;
    let verdicts = m.judge_backups(&list);
    Ok(list
        .into_iter()
        .zip(verdicts)
        .map(|(info, v)| ListedBackup {
            info,
            state: v.state,
            state_detail: v.detail,
        })
        .collect())
}

#[cfg(test)]
mod tests;

/// Helpers shared by the tests of the actions.
#[cfg(test)]
pub(crate) mod testing {
    use std::path::{Path, PathBuf};

    /// `dir/app.db`, most of whose pages are free (utilization about 0.3).
    pub(crate) fn fragmented_db(dir: &Path) -> PathBuf {
        let p = dir.join("app.db");
        rusqlite::Connection::open(&p)
            .unwrap()
            .execute_batch(
                "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
                 WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 2000)
                 INSERT INTO t(v) SELECT randomblob(1000) FROM c;
                 DELETE FROM t WHERE id > 600;",
            )
            .unwrap();
        p
    }
}
