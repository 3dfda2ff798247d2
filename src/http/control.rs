//! The control API: JSON in and out, bearer tokens, one error shape. Handlers only
//! translate requests into [`crate::actions`] calls and their results into responses.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http_body_util::BodyExt;
use hyper::body::Body as _;
use serde::Deserialize;
use serde_json::{json, Value};
use tower_http::timeout::{DeadlineBody, RequestBodyDeadlineLayer};

use super::auth::Tokens;
use super::AppState;
use crate::actions::jobs::Jobs;
use crate::actions::{self, Action, ActionError, ErrorKind, ProgressCell, Trigger};

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A body declared larger than [`MAX_BODY_BYTES`] but at most this is read (and dropped)
/// before the 413, so the client gets the answer rather than a reset connection.
const DRAIN_MAX_BYTES: u64 = 1024 * 1024;

/// How long such a body may take to arrive before the 413 is sent anyway.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

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

/// Where the control API is mounted.
pub const PREFIX: &str = "/api/v1";

/// The routes under [`PREFIX`], each behind the auth check. A path under it that is no route
/// gets the API's JSON 404 without being asked for a token.
pub fn routes(state: AppState) -> Router<AppState> {
    let deadline = state.body_deadline;
    let mut r = Router::new()
        .route("/databases", get(list))
        .route("/databases/{name}/health", get(health))
        .route("/databases/{name}/backups", get(backups))
        .route("/databases/{name}/{action}", post(action))
        .route("/jobs/{id}", get(job))
        .route_layer(middleware::from_fn_with_state(state, auth));
    // A body that has not arrived whole by the deadline is answered 408 ([`read_body`]) and
    // its connection closed: once a request's head is in, the connection's own timeouts no
    // longer apply, and a client declaring a body it never sends (or trickles) would hold a
    // connection, and one of --web.max-connections, for ever.
    if let Some(d) = deadline {
        r = r.route_layer(
            tower::ServiceBuilder::new()
                .layer(RequestBodyDeadlineLayer::new(d))
                .map_request(|req: axum::http::Request<DeadlineBody<Body>>| req.map(Body::new)),
        );
    }
    r.fallback(unknown_route)
}

async fn unknown_route(method: Method, uri: Uri) -> ApiError {
    ActionError::new(
        ErrorKind::NotFound,
        format!("no control API route {method} {PREFIX}{}", uri.path()),
    )
    .into()
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
            // The scheme is case-insensitive (RFC 9110): `Bearer`, `bearer`, `BEARER`.
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(token)
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
        .latest(crate::fleet::SHOWN_MAX_AGE)
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
    let report = tokio::task::spawn_blocking(move || m.scrape(fleet.collectors()))
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
struct AsyncQuery {
    #[serde(rename = "async", default)]
    run_async: bool,
}

async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    // hyper gives a request body its Content-Length as its exact size: a body declared too
    // large is refused at once, before the client sends (or stalls on) any of it. The limit
    // below catches the bodies that declare no length. (tower-http's `RequestBodyLimitLayer`
    // decides the same way but answers in its own plain-text shape, not the API's.)
    let declared = body.size_hint().lower();
    if declared > MAX_BODY_BYTES as u64 {
        // A moderately large body is read and dropped before the answer (briefly): closing a
        // connection with unread data makes the kernel reset it, and a client still sending
        // would see a broken pipe instead of the 413. A body declared larger than that is
        // refused at once.
        if declared <= DRAIN_MAX_BYTES {
            let drain = http_body_util::Limited::new(body, DRAIN_MAX_BYTES as usize).collect();
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, drain).await;
        }
        return Err(too_large());
    }
    match http_body_util::Limited::new(body, MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) if caused_by_deadline(&*e) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "the request body did not arrive within --web.header-read-timeout",
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("cannot read request body: {e}"),
        )),
    }
}

/// Whether `e` or one of its causes is the body deadline's timeout.
fn caused_by_deadline(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = c.source();
    }
    false
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body larger than {MAX_BODY_BYTES} bytes"),
    )
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
    let claim = actions::claim(&m, Action::from_json(&route, &body)?)?;
    let events = s.fleet.events.clone();
    let cancel = s.control.cancel.clone();
    if q.run_async {
        let job = s.control.jobs.start(&name, claim.action().name());
        let j = job.clone();
        tokio::task::spawn_blocking(move || {
            j.finish(claim.run(events.as_ref(), Trigger::Manual, &j.progress, &cancel));
        });
        let view = job.view();
        let mut resp = (StatusCode::ACCEPTED, Json(json!({ "job": view }))).into_response();
        if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/jobs/{}", view.id)) {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        return Ok(resp);
    }
    let result = tokio::task::spawn_blocking(move || {
        claim.run(
            events.as_ref(),
            Trigger::Manual,
            &ProgressCell::default(),
            &cancel,
        )
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(result?.to_json()).into_response())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every error kind. The match in [`expected_status`] has no wildcard, so a new kind does
    /// not compile until it is given a status there (and added here).
    const KINDS: [ErrorKind; 7] = ErrorKind::ALL;

    fn expected_status(kind: ErrorKind) -> u16 {
        match kind {
            ErrorKind::InvalidInput => 400,
            ErrorKind::NotFound => 404,
            ErrorKind::Busy => 409,
            ErrorKind::Refused => 422,
            ErrorKind::Locked => 503,
            ErrorKind::Cancelled => 503,
            ErrorKind::Internal => 500,
        }
    }

    #[test]
    fn every_error_kind_has_its_http_status() {
        for kind in KINDS {
            let e = ApiError::from(ActionError::new(kind, "why"));
            assert_eq!(e.status.as_u16(), expected_status(kind), "{kind:?}");
            assert_eq!(e.body.kind, kind, "the error keeps its kind");
            let response = e.into_response();
            assert_eq!(
                response.status().as_u16(),
                expected_status(kind),
                "{kind:?}"
            );
            assert!(
                response.headers().get(header::WWW_AUTHENTICATE).is_none(),
                "only a 401 asks for a bearer token"
            );
        }
    }

    #[test]
    fn the_kinds_listed_are_distinct() {
        for (i, a) in KINDS.iter().enumerate() {
            assert!(!KINDS[i + 1..].contains(a), "{a:?} listed twice");
        }
    }
}
