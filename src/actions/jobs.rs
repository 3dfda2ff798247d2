//! Asynchronous actions (`?async=true`): each becomes a job with an id, a state and progress,
//! visible at `GET /api/v1/jobs/{id}` until it is evicted (the newest 1,000 finished jobs are
//! kept).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::actions::{ActionError, Outcome, Progress, ProgressCell};

/// Finished jobs kept for inspection.
const KEEP_FINISHED: usize = 1000;

/// A job's state.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase", tag = "state")]
pub enum JobState {
    /// Still running.
    Running,
    /// Finished with a result.
    Succeeded {
        /// The action's result (boxed: reports are far larger than the other states).
        result: Box<Outcome>,
    },
    /// Finished with an error.
    Failed {
        /// The action's error.
        error: ActionError,
    },
}

/// One asynchronous action.
pub struct Job {
    /// Its id.
    pub id: String,
    /// The database.
    pub database: String,
    /// The action name.
    pub action: &'static str,
    /// Pages done / total, updated by the action.
    pub progress: Arc<ProgressCell>,
    started_at: f64,
    state: Mutex<(JobState, Option<f64>)>,
}

/// What `GET /api/v1/jobs/{id}` shows.
#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    /// Id.
    pub id: String,
    /// Database.
    pub database: String,
    /// Action.
    pub action: &'static str,
    /// State, with the result or error when finished.
    #[serde(flatten)]
    pub state: JobState,
    /// Progress.
    pub progress: Progress,
    /// Unix time started.
    pub started_at: f64,
    /// Unix time finished.
    pub finished_at: Option<f64>,
}

impl Job {
    /// Records the outcome.
    pub fn finish(&self, result: Result<Outcome, ActionError>) {
        let state = match result {
            Ok(result) => JobState::Succeeded {
                result: Box::new(result),
            },
            Err(error) => JobState::Failed { error },
        };
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = (state, Some(crate::unix_now()));
    }

    /// A snapshot for the API.
    pub fn view(&self) -> JobView {
        let (state, finished_at) = self.state.lock().unwrap_or_else(|e| e.into_inner()).clone();
        JobView {
            id: self.id.clone(),
            database: self.database.clone(),
            action: self.action,
            state,
            progress: self.progress.get(),
            started_at: self.started_at,
            finished_at,
        }
    }

    fn finished(&self) -> bool {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .is_some()
    }
}

/// Every job of this process.
#[derive(Default)]
pub struct Jobs {
    jobs: Mutex<BTreeMap<String, Arc<Job>>>,
    next: Mutex<u64>,
}

impl Jobs {
    /// Registers a running job.
    pub fn start(&self, database: &str, action: &'static str) -> Arc<Job> {
        let id = {
            let mut n = self.next.lock().unwrap_or_else(|e| e.into_inner());
            *n += 1;
            format!("{:08x}{:08x}", *n, rand::random::<u32>())
        };
        let job = Arc::new(Job {
            id: id.clone(),
            database: database.to_string(),
            action,
            progress: Arc::new(ProgressCell::default()),
            started_at: crate::unix_now(),
            state: Mutex::new((JobState::Running, None)),
        });
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.insert(id, job.clone());
        let finished: Vec<String> = jobs
            .iter()
            .filter(|(_, j)| j.finished())
            .map(|(k, _)| k.clone())
            .collect();
        for k in finished
            .iter()
            .take(finished.len().saturating_sub(KEEP_FINISHED))
        {
            jobs.remove(k);
        }
        job
    }

    /// A job by id.
    pub fn get(&self, id: &str) -> Option<Arc<Job>> {
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }
}
