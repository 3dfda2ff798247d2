//! The action subcommands (`checkpoint`, `backup`, `backups`, `restore`, `recover`, `vacuum`,
//! `integrity-check`, `drill`):
//! the same engine as the control API, on a local database, with a progress bar when stdout is
//! a terminal. Results are JSON on stdout; exit 0 on success, 1 when the action failed or was
//! refused (a checkpoint that stayed busy included), 2 for a bad request.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail};
use serde_json::Value;

use crate::actions::{self, ActionError, ErrorKind, Outcome, ProgressCell, Trigger};
use crate::cli::{Command, Target};
use crate::config::{Config, DatabaseConfig};
use crate::fleet::events::NoEvents;
use crate::fleet::monitor::Monitor;

/// Runs an action subcommand (or `backups`); returns the exit code.
pub fn run(command: &Command, config_file: Option<&PathBuf>) -> anyhow::Result<i32> {
    let (target, action) = match command {
        Command::Check(_) => bail!("check is not an action"),
        Command::Backups { target } => {
            let list = monitor(target, config_file).and_then(|m| actions::list_backups(&m));
            return match list {
                Ok(list) => {
                    println!("{}", serde_json::to_string_pretty(&list)?);
                    Ok(0)
                }
                Err(e) => report(Err(e)),
            };
        }
        Command::Action { target, action } => (target, action.clone()),
    };
    let m = match monitor(target, config_file) {
        Ok(m) => m,
        Err(e) => return report(Err(e)),
    };
    let claim = match actions::claim(&m, action) {
        Ok(c) => c,
        Err(e) => return report(Err(e)),
    };
    let progress = Arc::new(ProgressCell::default());
    let bar = std::io::stdout().is_terminal().then(|| {
        let b = indicatif::ProgressBar::new(0);
        b.set_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} pages ({eta})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b.set_message(claim.action().name());
        b
    });
    let worker = {
        let progress = progress.clone();
        std::thread::spawn(move || {
            let cancel = AtomicBool::new(false);
            claim.run(&NoEvents, Trigger::Manual, &progress, &cancel)
        })
    };
    while !worker.is_finished() {
        if let Some(b) = &bar {
            let p = progress.get();
            b.set_length(p.pages_total);
            b.set_position(p.pages_done);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    report(worker.join().map_err(|_| anyhow!("the action panicked"))?)
}

/// Prints an action's result as JSON on stdout and returns its [`exit_code`].
fn report(result: Result<Outcome, ActionError>) -> anyhow::Result<i32> {
    let code = exit_code(&result);
    match &result {
        Ok(outcome) => {
            let v = outcome.to_json();
            println!("{}", serde_json::to_string_pretty(&v)?);
            if outcome.busy() {
                eprintln!(
                    "{}",
                    v.get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("checkpoint busy")
                );
            }
        }
        Err(e) => {
            println!("{}", serde_json::to_string_pretty(e)?);
            eprintln!("sqlite_exporter: {}", e.error);
        }
    }
    Ok(code)
}

/// The exit code of an action's result: 0 done, 1 failed, refused or busy, 2 a bad request
/// (bad parameters, unknown database or backup).
fn exit_code(result: &Result<Outcome, ActionError>) -> i32 {
    match result {
        Ok(outcome) if outcome.busy() => 1,
        Ok(_) => 0,
        Err(e) => match e.kind {
            ErrorKind::InvalidInput | ErrorKind::NotFound => 2,
            _ => 1,
        },
    }
}

/// The monitor for `target`: a configured name when a config file is given, else a file path
/// with default settings. A config that cannot be loaded and a name it does not have are bad
/// requests, answered like the action's own.
fn monitor(target: &Target, config_file: Option<&PathBuf>) -> Result<Arc<Monitor>, ActionError> {
    let bad = |e: &dyn std::fmt::Display| ActionError::new(ErrorKind::InvalidInput, e.to_string());
    let mut db: DatabaseConfig = match config_file {
        Some(f) => {
            let (dbs, _) = Config::load(f).map_err(|e| bad(&e))?.databases();
            let found = dbs.iter().find(|d| d.name == target.database).or_else(|| {
                let p = std::path::absolute(&target.database).ok()?;
                dbs.iter().find(|d| d.path == p)
            });
            found.cloned().ok_or_else(|| {
                ActionError::new(
                    ErrorKind::NotFound,
                    format!("no database {:?} in {}", target.database, f.display()),
                )
            })?
        }
        None => Config::from_files(&[PathBuf::from(&target.database)])
            .map_err(|e| bad(&e))?
            .databases()
            .0
            .remove(0),
    };
    if let Some(dir) = &target.backup_dir {
        let mut settings = (*db.settings).clone();
        settings.backup.dir = dir.clone();
        db.settings = Arc::new(settings);
    }
    Ok(Arc::new(Monitor::new(db, 0.0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::checkpoint::{CheckpointReport, Mode};
    use crate::actions::optimize::OptimizeReport;

    fn checkpoint(busy: bool) -> Result<Outcome, ActionError> {
        Ok(Outcome::Checkpoint(CheckpointReport {
            mode: Mode::Truncate,
            busy,
            log_frames: 10,
            checkpointed_frames: if busy { 4 } else { 10 },
            frames_not_checkpointed: if busy { 6 } else { 0 },
            wal_bytes_before: 40_000,
            wal_bytes_after: if busy { 40_000 } else { 0 },
            duration_seconds: 0.01,
            message: "checkpoint".into(),
        }))
    }

    #[test]
    fn success_is_0_and_a_busy_checkpoint_is_1() {
        assert_eq!(exit_code(&checkpoint(false)), 0);
        assert_eq!(exit_code(&checkpoint(true)), 1);
        let optimized = Ok(Outcome::Optimize(OptimizeReport {
            duration_seconds: 0.01,
            message: "optimized".into(),
        }));
        assert_eq!(exit_code(&optimized), 0);
    }

    /// A match without a wildcard: a new kind does not compile until it has an exit code here.
    fn expected(kind: ErrorKind) -> i32 {
        match kind {
            ErrorKind::InvalidInput | ErrorKind::NotFound => 2,
            ErrorKind::Busy
            | ErrorKind::Refused
            | ErrorKind::Locked
            | ErrorKind::Cancelled
            | ErrorKind::Internal => 1,
        }
    }

    #[test]
    fn every_error_kind_has_its_exit_code() {
        for kind in ErrorKind::ALL {
            let result = Err(ActionError::new(kind, "why"));
            assert_eq!(exit_code(&result), expected(kind), "{kind:?}");
            assert_eq!(report(result).unwrap(), expected(kind), "{kind:?}");
        }
    }

    #[test]
    fn report_returns_the_exit_code() {
        assert_eq!(report(checkpoint(false)).unwrap(), 0);
        assert_eq!(report(checkpoint(true)).unwrap(), 1);
    }
}
