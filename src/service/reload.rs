//! Live reload, after blackbox_exporter: one task serialises every reason to re-read
//! the configuration — SIGHUP, `POST /-/reload` (through a [`ReloadHandle`]) and the config
//! file changing on disk — and every reason to re-expand glob entries — files appearing or
//! disappearing in their directories, and a periodic re-evaluation.
//!
//! A new configuration is parsed and validated in full before anything changes; only a valid
//! one is swapped in ([`Fleet::apply`] keeps the monitors of unchanged databases, with their
//! histograms and cached checks). An invalid one is logged and reported to the caller, the old
//! one keeps serving, and `sqlite_exporter_config_last_reload_successful` drops to 0.
//!
//! Watching (`notify`) is on the config file's *parent directory*, not the file: editors save
//! by renaming a new file over the old one and Kubernetes swaps a `..data` symlink, and a watch
//! on the file itself would follow the old inode and miss both. Any event there makes the task
//! read the file again, and it reloads only when the text differs from the text it last tried,
//! so unrelated files in `/etc` cost a read, not a reload. Events come in bursts (write,
//! close, rename); they are debounced. The glob directories ([`Config::glob_dirs`]) are watched
//! the same way for files created, removed or renamed. Every [`RESCAN_INTERVAL`] the task also
//! re-expands the globs and re-reads the file, a safety net for file systems without inotify
//! (NFS, some FUSE mounts) and for globs whose wildcards sit above the last directory.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::event::{EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, error, info, warn};

use crate::config::{self, Config, ConfigError, DatabaseConfig};
use crate::fleet::Fleet;
use crate::service::scheduler;

/// How long the file system must stay quiet before a burst of events is acted on.
const DEBOUNCE: Duration = Duration::from_millis(250);

/// A burst is acted on after this long even if events keep coming.
const DEBOUNCE_MAX: Duration = Duration::from_secs(2);

/// How often globs are re-expanded and the config file re-read without any event.
pub const RESCAN_INTERVAL: Duration = Duration::from_secs(10);

/// Why a reload did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// Started from positional files or `--demo`: there is nothing to re-read.
    #[error("there is no configuration file to reload (start with --config.file to use reload)")]
    NoConfigFile,
    /// The new configuration is invalid; the old one keeps serving.
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    /// The reload task has stopped (shutdown).
    #[error("the exporter is shutting down")]
    Stopped,
}

type Reply = oneshot::Sender<Result<(), ReloadError>>;

/// Asks the reload task for a reload and waits for its outcome; cheap to clone.
#[derive(Clone)]
pub struct ReloadHandle {
    /// `None` when there is no config file to reload.
    requests: Option<mpsc::Sender<Reply>>,
}

impl ReloadHandle {
    /// A handle that always answers [`ReloadError::NoConfigFile`].
    pub fn without_file() -> Self {
        ReloadHandle { requests: None }
    }

    /// Reloads the configuration file now (after any reload already under way).
    pub async fn reload(&self) -> Result<(), ReloadError> {
        let Some(requests) = &self.requests else {
            return Err(ReloadError::NoConfigFile);
        };
        let (tx, rx) = oneshot::channel();
        requests.send(tx).await.map_err(|_| ReloadError::Stopped)?;
        rx.await.map_err(|_| ReloadError::Stopped)?
    }
}

/// What a new configuration is applied to.
pub struct Target {
    /// The monitored databases.
    pub fleet: Arc<Fleet>,
    /// Swaps the control API's settings (kept as a callback so this module has no HTTP in it).
    pub set_control: Box<dyn Fn(config::Control) + Send + Sync>,
}

/// The databases of `config` now, logging names that collide.
pub fn databases(config: &Config) -> Vec<DatabaseConfig> {
    let (dbs, conflicts) = config.databases();
    for c in conflicts {
        error!(conflict = %c, "database skipped");
    }
    dbs
}

/// Starts the reload task for `config` (loaded from `config.file`), already applied to
/// `target`. Returns the handle for `POST /-/reload` and the task, which ends when `stop`
/// changes.
pub fn spawn(
    config: Config,
    target: Target,
    stop: watch::Receiver<bool>,
) -> (ReloadHandle, Option<tokio::task::JoinHandle<()>>) {
    let Some(file) = config.file.clone() else {
        return (ReloadHandle::without_file(), None);
    };
    let (tx, rx) = mpsc::channel(8);
    let task = Reloader::new(file, config, target);
    let join = tokio::spawn(task.run(rx, stop));
    (ReloadHandle { requests: Some(tx) }, Some(join))
}

/// What the file system told the task, reduced to what it acts on.
#[derive(Debug, Default, Clone, Copy)]
struct Changes {
    /// Something changed in the config file's directory.
    config_dir: bool,
    /// A file appeared, disappeared or was renamed in a glob directory.
    glob_dir: bool,
}

/// The reload task's state.
struct Reloader {
    /// The config file, as given (so paths resolved against it stay as they were at start and
    /// unchanged databases compare equal).
    file: PathBuf,
    /// Its directory, absolute: the watched path, which event paths are built from.
    dir: Option<PathBuf>,
    /// The configuration being served.
    config: Config,
    /// Text of the file at the last reload attempt, to ignore events that changed nothing.
    last_text: Option<String>,
    target: Target,
    /// Watched directories.
    watched: BTreeSet<PathBuf>,
    watcher: Option<RecommendedWatcher>,
    events: mpsc::UnboundedReceiver<notify::Event>,
    /// Glob conflicts already logged, so a rescan every 10 s does not repeat them.
    logged_conflicts: BTreeSet<String>,
}

impl Reloader {
    fn new(file: PathBuf, config: Config, target: Target) -> Self {
        let dir = std::path::absolute(&file)
            .ok()
            .and_then(|f| f.parent().map(Path::to_path_buf));
        let (tx, events) = mpsc::unbounded_channel();
        let name = file
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default();
        let watcher =
            notify::recommended_watcher(move |r: notify::Result<notify::Event>| match r {
                Ok(e) if relevant(&e, &name) => {
                    let _ = tx.send(e);
                }
                Ok(_) => {}
                Err(e) => warn!(error = %e, "file watch error"),
            })
            .map_err(|e| warn!(error = %e, "cannot watch files; relying on the periodic re-read"))
            .ok();
        let last_text = std::fs::read_to_string(&file).ok();
        // `app` logged these when it applied `config`.
        let logged_conflicts = config.databases().1.iter().map(|c| c.to_string()).collect();
        let mut r = Reloader {
            file,
            dir,
            config,
            last_text,
            target,
            watched: BTreeSet::new(),
            watcher,
            events,
            logged_conflicts,
        };
        r.update_watches();
        r
    }

    async fn run(mut self, mut requests: mpsc::Receiver<Reply>, mut stop: watch::Receiver<bool>) {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = signal(SignalKind::hangup())
            .map_err(|e| error!(error = %e, "cannot listen for SIGHUP"))
            .ok();
        let mut tick = tokio::time::interval(RESCAN_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                Some(reply) = requests.recv() => {
                    let _ = reply.send(self.reload("api"));
                }
                Some(()) = recv_signal(&mut hup) => {
                    let _ = self.reload("SIGHUP");
                }
                Some(first) = self.events.recv() => {
                    let changes = self.debounce(first).await;
                    self.on_changes(changes);
                }
                _ = tick.tick() => {
                    self.update_watches();
                    self.on_changes(Changes { config_dir: true, glob_dir: true });
                }
            }
        }
        debug!("reload task stopped");
    }

    /// Collects events until the file system has been quiet for [`DEBOUNCE`].
    async fn debounce(&mut self, first: notify::Event) -> Changes {
        let mut changes = self.classify(&first, Changes::default());
        let until = tokio::time::Instant::now() + DEBOUNCE_MAX;
        while tokio::time::Instant::now() < until {
            match tokio::time::timeout(DEBOUNCE, self.events.recv()).await {
                Ok(Some(e)) => changes = self.classify(&e, changes),
                _ => break,
            }
        }
        changes
    }

    fn classify(&self, e: &notify::Event, mut c: Changes) -> Changes {
        let config_dir = self.dir.as_deref();
        let glob_dirs = self.config.glob_dirs();
        let names_changed = changes_names(e.kind);
        for p in &e.paths {
            let parent = p.parent();
            c.config_dir |= parent.is_some() && parent == config_dir;
            c.glob_dir |= names_changed
                && !config::is_companion_file(p)
                && parent.is_some_and(|d| glob_dirs.iter().any(|g| g == d));
        }
        c
    }

    /// Reloads when the config file's text changed; re-expands globs when asked to.
    fn on_changes(&mut self, c: Changes) {
        if c.config_dir {
            let text = std::fs::read_to_string(&self.file).ok();
            if text.is_some() && text != self.last_text {
                let _ = self.reload("file change");
                return;
            }
        }
        if c.glob_dir {
            self.rediscover();
        }
    }

    /// Reads, validates and — only when valid — applies the config file.
    fn reload(&mut self, trigger: &str) -> Result<(), ReloadError> {
        self.last_text = std::fs::read_to_string(&self.file).ok();
        let fleet = self.target.fleet.clone();
        let config = match Config::load(&self.file) {
            Ok(c) => c,
            Err(e) => {
                error!(trigger, error = %e, "configuration NOT reloaded; keeping the previous one");
                fleet.exporter.record_reload(false);
                return Err(e.into());
            }
        };
        for w in config.warnings() {
            warn!(trigger, "{w}");
        }
        (self.target.set_control)(config.control.clone());
        self.config = config;
        self.logged_conflicts.clear();
        self.rediscover();
        self.update_watches();
        fleet.exporter.record_reload(true);
        info!(
            trigger,
            databases = fleet.monitors().len(),
            "configuration reloaded"
        );
        Ok(())
    }

    /// Makes the fleet monitor what the configuration matches now, and cleans leftovers of
    /// killed backups in backup directories new to the fleet.
    fn rediscover(&mut self) {
        let fleet = &self.target.fleet;
        let before = scheduler::backup_dirs(fleet);
        let (dbs, conflicts) = self.config.databases();
        for c in conflicts {
            if self.logged_conflicts.insert(c.to_string()) {
                error!(conflict = %c, "database skipped");
            }
        }
        fleet.set_defaults(self.config.defaults.clone());
        fleet.apply(dbs);
        let after = scheduler::backup_dirs(fleet);
        scheduler::remove_backup_leftovers(after.difference(&before));
    }

    /// Watches the config file's directory and every glob directory (adding ones that appeared
    /// since, dropping ones no longer configured).
    fn update_watches(&mut self) {
        let Some(watcher) = self.watcher.as_mut() else {
            return;
        };
        let mut want: BTreeSet<PathBuf> = self.config.glob_dirs().into_iter().collect();
        want.extend(self.dir.clone());
        for gone in self.watched.difference(&want).cloned().collect::<Vec<_>>() {
            let _ = watcher.unwatch(&gone);
            self.watched.remove(&gone);
        }
        for dir in want.difference(&self.watched).cloned().collect::<Vec<_>>() {
            match watcher.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    debug!(dir = %dir.display(), "watching");
                    self.watched.insert(dir);
                }
                Err(e) => {
                    debug!(dir = %dir.display(), error = %e, "cannot watch yet; rescanning periodically")
                }
            }
        }
    }
}

/// Whether a file event can matter: any change to the config file (`config_name`) or to a
/// Kubernetes `..data` link, and files appearing, disappearing or renamed — but not writes to
/// monitored databases (the write probe alone makes one per scrape) nor their companion files.
fn relevant(e: &notify::Event, config_name: &std::ffi::OsStr) -> bool {
    let names_changed = changes_names(e.kind);
    e.paths.iter().any(|p| {
        p.file_name() == Some(config_name)
            || is_kubernetes_swap(p)
            || (names_changed && !config::is_companion_file(p))
    })
}

/// Whether the event creates, removes or renames a file.
fn changes_names(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::Create(_) | EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_))
    )
}

/// Kubernetes mounts a ConfigMap as symlinks into `..data`, which it swaps atomically.
fn is_kubernetes_swap(p: &Path) -> bool {
    p.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with(".."))
}

async fn recv_signal(s: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match s {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}
