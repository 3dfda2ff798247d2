//! The control API (SPEC §5): JSON in and out, bearer tokens, one error shape. Handlers only
//! translate requests into [`crate::actions`] calls and their results into responses.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Tokens;
use super::AppState;
use crate::actions::jobs::Jobs;
use crate::actions::{self, Action, ActionError, ErrorKind, Progress, Trigger};

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The control API's state: its settings (swapped on reload), tokens and jobs.
pub struct Control {
    settings: RwLock<crate::config::Control>,
    tokens: Tokens,
    /// Asynchronous actions.
    pub jobs: Jobs,
    /// Set on shutdown: running actions stop at their next step and clean up.
    pub cancel: Arc<AtomicBool>,
}

impl Control {
    /// Control API state for `settings`.
    pub fn new(settings: crate::config::Control, cancel: Arc<AtomicBool>) -> Self {
        Control {
            settings: RwLock::new(settings),
            tokens: Tokens::default(),
            jobs: Jobs::default(),
            cancel,
        }
    }

    /// Replaces the settings (config reload).
    pub fn set(&self, settings: crate::config::Control) {
        *self.settings.write().unwrap_or_else(|e| e.into_inner()) = settings;
    }

    fn settings(&self) -> crate::config::Control {
        self.settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The one error shape: `{"error": "...", "detail": ...}`.
pub struct ApiError {
    status: StatusCode,
    body: ActionError,
}

impl ApiError {
    fn new(status: StatusCode, error: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ActionError::new(ErrorKind::InvalidInput, error),
        }
    }
}

impl From<ActionError> for ApiError {
    fn from(e: ActionError) -> Self {
        let status = match e.kind {
            ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Busy => StatusCode::CONFLICT,
            ErrorKind::Refused => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::Locked | ErrorKind::Cancelled => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError { status, body: e }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(&self.body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

/// The `/api/v1` routes behind the auth check.
pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/api/v1/databases", get(list))
        .route("/api/v1/databases/{name}/health", get(health))
        .route("/api/v1/databases/{name}/backups", get(backups))
        .route("/api/v1/databases/{name}/{action}", post(action))
        .route("/api/v1/jobs/{id}", get(job))
        .layer(middleware::from_fn_with_state(state, auth))
}

async fn auth(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let settings = s.control.settings();
    if !settings.enabled {
        return ApiError::new(StatusCode::FORBIDDEN, "the control API is disabled")
            .detail(json!(
                "set control.enabled: true and control.token_file in the configuration"
            ))
            .into_response();
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    match presented {
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing bearer token (Authorization: Bearer <token>)",
        )
        .into_response(),
        Some(t) if !s.control.tokens.accepts(settings.token_file.as_ref(), t) => {
            ApiError::new(StatusCode::UNAUTHORIZED, "invalid bearer token").into_response()
        }
        Some(_) => next.run(req).await,
    }
}

impl ApiError {
    fn detail(mut self, detail: Value) -> Self {
        self.body.detail = Some(detail);
        self
    }
}

async fn list(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    let snap = s
        .fleet
        .snapshot()
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    let dbs: Vec<Value> = snap
        .databases
        .iter()
        .map(|r| {
            json!({
                "name": r.name,
                "path": r.path,
                "status": r.health.status,
                "up": r.up,
                "error": r.error.as_ref().map(|e| e.to_string()),
                "recommendations": r.health.recommendations.iter().map(|a| a.recommendation).collect::<Vec<_>>(),
                "running_action": s.fleet.monitor(&r.name).and_then(|m| m.running_action()),
            })
        })
        .collect();
    Ok(Json(json!({ "status": snap.status, "databases": dbs })))
}

fn not_found(name: &str) -> ApiError {
    ActionError::new(ErrorKind::NotFound, format!("unknown database {name:?}")).into()
}

async fn health(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let m = s.fleet.monitor(&name).ok_or_else(|| not_found(&name))?;
    let fleet = s.fleet.clone();
    let report =
        tokio::task::spawn_blocking(move || m.scrape(fleet.collectors(), fleet.events.as_ref()))
            .await
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(json!({
        "name": report.name,
        "path": report.path,
        "status": report.health.status,
        "up": report.up,
        "checks": {
            "integrity": report.checks.integrity,
            "wal": report.facts.wal,
            "size": { "facts": report.facts.size, "utilization_ratio": report.facts.size.utilization_ratio() },
            "performance": report.facts.performance,
            "schema": report.facts.schema,
            "background": report.checks,
        },
        "recommendations": report.health.recommendations,
        "errors": report.health.problems.iter().cloned().chain(report.error.iter().map(|e| e.to_string())).collect::<Vec<_>>(),
    })))
}

async fn backups(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let m = s.fleet.monitor(&name).ok_or_else(|| not_found(&name))?;
    let list = tokio::task::spawn_blocking(move || actions::list_backups(&m))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    Ok(Json(json!({ "database": name, "backups": list })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CheckpointBody {
    mode: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct BackupBody {
    label: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RestoreBody {
    backup: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RecoverBody {
    #[serde(default)]
    dry_run: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct VacuumBody {}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct IntegrityBody {
    mode: Option<crate::checks::integrity::Mode>,
}

#[derive(Deserialize, Default)]
struct AsyncQuery {
    #[serde(rename = "async", default)]
    run_async: bool,
}

fn parse<T: DeserializeOwned + Default>(body: &Bytes) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("invalid request body: {e}"),
        )
    })
}

fn parse_action(
    route: &str,
    body: &Bytes,
    m: &crate::fleet::monitor::Monitor,
) -> Result<Action, ApiError> {
    let bad = |msg: String| -> ApiError { ActionError::new(ErrorKind::InvalidInput, msg).into() };
    Ok(match route {
        "checkpoint" => {
            let b: CheckpointBody = parse(body)?;
            let mode = b
                .mode
                .as_deref()
                .unwrap_or("passive")
                .parse()
                .map_err(bad)?;
            Action::Checkpoint(mode)
        }
        "backup" => Action::Backup(parse::<BackupBody>(body)?.label),
        "restore" => {
            let name = parse::<RestoreBody>(body)?.backup;
            Action::Restore(name.ok_or_else(|| {
                bad("expected {\"backup\": \"<file name from the backup list>\"}".into())
            })?)
        }
        "recover" => Action::Recover(parse::<RecoverBody>(body)?.dry_run),
        "vacuum" => {
            parse::<VacuumBody>(body)?;
            Action::Vacuum
        }
        "integrity-check" => {
            let mode = parse::<IntegrityBody>(body)?.mode;
            Action::IntegrityCheck(mode.unwrap_or(m.config.settings.integrity_check.mode))
        }
        other => {
            return Err(
                ActionError::new(ErrorKind::NotFound, format!("unknown action {other:?}")).into(),
            )
        }
    })
}

async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    match http_body_util::Limited::new(body, MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body larger than {MAX_BODY_BYTES} bytes"),
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("cannot read request body: {e}"),
        )),
    }
}

async fn action(
    State(s): State<AppState>,
    Path((name, route)): Path<(String, String)>,
    query: Result<Query<AsyncQuery>, axum::extract::rejection::QueryRejection>,
    body: Body,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("invalid query string: {e}"),
        )
    })?;
    let body = read_body(body).await?;
    let m = s.fleet.monitor(&name).ok_or_else(|| not_found(&name))?;
    let action = parse_action(&route, &body, &m)?;
    let guard = m.begin_action(action.name()).map_err(|running| {
        ActionError::new(
            ErrorKind::Busy,
            format!("{running} already running on {name}; one action at a time"),
        )
        .with_detail(json!({ "running": running }))
    })?;
    let fleet = s.fleet.clone();
    let cancel = s.control.cancel.clone();
    if q.run_async {
        let job = s.control.jobs.start(&name, action.name());
        let j = job.clone();
        tokio::task::spawn_blocking(move || {
            let m = guard.monitor();
            // A job must end in a state even if the action panics.
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                actions::execute(
                    fleet.events.as_ref(),
                    m,
                    &action,
                    Trigger::Manual,
                    &j.progress,
                    &cancel,
                )
            }))
            .unwrap_or_else(|_| {
                Err(ActionError::new(
                    ErrorKind::Internal,
                    "the action panicked; see the exporter's log",
                ))
            });
            j.finish(r);
            drop(guard);
        });
        let view = job.view();
        let mut resp = (StatusCode::ACCEPTED, Json(json!({ "job": view }))).into_response();
        if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/jobs/{}", view.id)) {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        return Ok(resp);
    }
    let result = tokio::task::spawn_blocking(move || {
        let progress = Progress::default();
        let r = actions::execute(
            fleet.events.as_ref(),
            guard.monitor(),
            &action,
            Trigger::Manual,
            &progress,
            &cancel,
        );
        drop(guard);
        r
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(result?).into_response())
}

async fn job(State(s): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let job = s.control.jobs.get(&id).ok_or_else(|| {
        ApiError::from(ActionError::new(
            ErrorKind::NotFound,
            format!("unknown job {id:?}"),
        ))
    })?;
    Ok(Json(json!(job.view())))
}
