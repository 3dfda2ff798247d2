//! HTTP: the listeners, the router and the handlers. No SQLite here: handlers ask the
//! [`Fleet`](crate::fleet::Fleet) for a snapshot and render it.

mod auth;
pub mod control;
mod landing;

use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

use crate::fleet::Fleet;
use crate::metrics;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The monitored databases.
    pub fleet: Arc<Fleet>,
    /// `--web.telemetry-path`.
    pub telemetry_path: String,
    /// The control API.
    pub control: Arc<control::Control>,
    /// Reaches the reload task for `POST /-/reload`.
    pub reload: crate::reload::ReloadHandle,
}

/// The router for every endpoint of SPEC §2.
pub fn router(state: AppState) -> Router {
    let telemetry = state.telemetry_path.clone();
    let mut r = Router::new()
        .route("/", get(landing::page))
        .route("/-/healthy", get(|| async { "Healthy\n" }))
        .route("/-/ready", get(|| async { "Ready\n" }))
        .route("/-/reload", post(reload))
        .route("/health", get(health))
        .merge(control::routes(state.clone()));
    if telemetry != "/" {
        r = r.route(&telemetry, get(metrics_handler));
    }
    r.with_state(state)
}

/// Binds every listen address first (so a bad one fails start-up before anything is served).
pub async fn bind(addresses: &[String]) -> std::io::Result<Vec<TcpListener>> {
    let mut out = Vec::new();
    for a in addresses {
        let addr = crate::cli::normalize_listen_address(a);
        let l = TcpListener::bind(&addr)
            .await
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {a}: {e}")))?;
        info!(address = %l.local_addr()?, "listening");
        out.push(l);
    }
    Ok(out)
}

/// Serves `router` on `listeners` until `shutdown` completes, then stops accepting, lets open
/// connections finish the request they are serving, and returns when they have.
pub async fn serve(
    listeners: Vec<TcpListener>,
    router: Router,
    shutdown: impl Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Every connection task holds a sender; when all are dropped, `recv` returns None.
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<()>(1);
    let mut tasks = Vec::new();
    for listener in listeners {
        let router = router.clone();
        let mut stop = stop_rx.clone();
        let (stop_rx, done_tx) = (stop_rx.clone(), done_tx.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let (stream, peer) = tokio::select! {
                    r = listener.accept() => match r {
                        Ok(x) => x,
                        Err(e) => { warn!(error = %e, "accept failed"); continue; }
                    },
                    _ = stop.changed() => break,
                };
                tokio::spawn(serve_connection(
                    stream,
                    peer,
                    router.clone(),
                    stop_rx.clone(),
                    done_tx.clone(),
                ));
            }
        }));
    }
    drop(done_tx);
    shutdown.await;
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    let _ = done_rx.recv().await;
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    router: Router,
    mut stop: tokio::sync::watch::Receiver<bool>,
    _done: tokio::sync::mpsc::Sender<()>,
) {
    let service = TowerToHyperService::new(router);
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        debug!(peer = %peer, error = %e, "connection ended with an error");
    }
}

async fn metrics_handler(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let snapshot = match s.fleet.snapshot().await {
        Ok(x) => x,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    };
    let body = metrics::render(&snapshot, &s.fleet.events, &s.fleet.exporter);
    let gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|e| e.trim().split(';').next() == Some("gzip"))
        });
    let mut resp = if gzip {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let compressed = enc.write_all(&body).and_then(|_| enc.finish());
        match compressed {
            Ok(z) => {
                let mut r = z.into_response();
                r.headers_mut()
                    .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                r
            }
            Err(_) => body.into_response(),
        }
    } else {
        body.into_response()
    };
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(metrics::CONTENT_TYPE),
    );
    resp
}

async fn health(State(s): State<AppState>) -> Response {
    match s.fleet.snapshot().await {
        Ok(snap) => {
            let code = if snap.status == crate::health::Status::Critical {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            };
            (code, Json(snap.as_ref().clone())).into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}

/// `POST /-/reload`: 200 once the new configuration serves; 500 with the error when it is
/// invalid (the old one keeps serving); 400 when there is no config file to reload.
async fn reload(State(s): State<AppState>) -> Response {
    use crate::reload::ReloadError;
    match s.reload.reload().await {
        Ok(()) => "configuration reloaded\n".into_response(),
        Err(e) => {
            let code = match e {
                ReloadError::NoConfigFile => StatusCode::BAD_REQUEST,
                ReloadError::Stopped => StatusCode::SERVICE_UNAVAILABLE,
                ReloadError::Invalid(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            (code, format!("failed to reload config: {e}\n")).into_response()
        }
    }
}

/// Renders any HTML-unsafe text.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
