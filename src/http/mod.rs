//! HTTP: the listeners, the router and the handlers. No SQLite here: handlers ask the
//! [`crate::fleet::Fleet`] for a snapshot and render it.

mod auth;
pub mod control;
mod landing;
pub mod web_config;

use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
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
    /// The histograms and counters the fleet reports to.
    pub events: Arc<metrics::EventMetrics>,
    /// `--web.telemetry-path`.
    pub telemetry_path: String,
    /// The control API.
    pub control: Arc<control::Control>,
    /// Reaches the reload task for `POST /-/reload`.
    pub reload: crate::service::reload::ReloadHandle,
    /// `--web.config.file`: basic auth and headers for every endpoint.
    pub web: Option<Arc<web_config::WebConfig>>,
}

/// The router for every endpoint: landing page, metrics, health, reload and the control API.
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
    if state.web.is_some() {
        r = r.layer(middleware::from_fn_with_state(state.clone(), web_layer));
    }
    r.with_state(state)
}

/// bcrypt verifications running at once (cache misses only).
const BCRYPT_AT_ONCE: usize = 2;
static BCRYPT: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(BCRYPT_AT_ONCE);

/// Basic auth (when `basic_auth_users` is set) and the configured headers, on every endpoint.
///
/// The control API authenticates with its own `Authorization: Bearer` token, and a request
/// has one `Authorization` header, so a request to `/api/v1/` that carries a bearer token is
/// passed to the control API's token check instead of basic auth: it gets through only with a
/// valid control token, and nothing is reachable without one credential or the other.
async fn web_layer(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let Some(web) = &s.web else {
        return next.run(req).await;
    };
    let loaded = web.current();
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let bearer_for_control = req.uri().path().starts_with("/api/v1/")
        && authorization.is_some_and(|a| a.len() > 7 && a[..7].eq_ignore_ascii_case("bearer "));
    // bcrypt is slow by design: verify off the async workers, so a client sending wrong
    // passwords cannot stall every other request.
    let allowed = bearer_for_control
        || match web.basic_auth_cached(&loaded, authorization) {
            Some(verdict) => verdict,
            None => {
                // At most BCRYPT_AT_ONCE verifications run at a time, whoever asks.
                let Ok(_permit) = BCRYPT.acquire().await else {
                    return StatusCode::SERVICE_UNAVAILABLE.into_response();
                };
                let (web, loaded, authorization) = (
                    web.clone(),
                    loaded.clone(),
                    authorization.map(str::to_owned),
                );
                tokio::task::spawn_blocking(move || {
                    web.basic_auth_ok(&loaded, authorization.as_deref())
                })
                .await
                .unwrap_or(false)
            }
        };
    let mut resp = if allowed {
        next.run(req).await
    } else {
        let mut r = (StatusCode::UNAUTHORIZED, "Unauthorized\n").into_response();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"sqlite_exporter\""),
        );
        r
    };
    for (name, value) in &loaded.headers {
        resp.headers_mut().insert(name.clone(), value.clone());
    }
    resp
}

/// Binds every listen address first (so a bad one fails start-up before anything is served).
pub async fn bind(addresses: &[String]) -> std::io::Result<Vec<TcpListener>> {
    let mut out = Vec::new();
    for a in addresses {
        let addr = normalize_listen_address(a);
        let mut bound = TcpListener::bind(&addr).await;
        if bound.is_err() && a.starts_with(':') {
            // A host without IPv6: `:PORT` falls back to every IPv4 interface.
            bound = TcpListener::bind(format!("0.0.0.0{a}")).await;
        }
        let l = bound
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {a}: {e}")))?;
        info!(address = %l.local_addr()?, "listening");
        out.push(l);
    }
    Ok(out)
}

/// Serves `router` on `listeners` until `shutdown` completes, then stops accepting, lets open
/// connections finish the request they are serving, and returns when they have. With `tls`
/// (a web config naming a certificate), every connection must complete a TLS handshake, with
/// the certificate current at that moment; plain HTTP fails the handshake.
pub async fn serve(
    listeners: Vec<TcpListener>,
    router: Router,
    tls: Option<Arc<web_config::WebConfig>>,
    shutdown: impl Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Every connection task holds a sender; when all are dropped, `recv` returns None.
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<()>(1);
    let mut tasks = Vec::new();
    for listener in listeners {
        let router = router.clone();
        let mut stop = stop_rx.clone();
        let (stop_rx, done_tx, tls) = (stop_rx.clone(), done_tx.clone(), tls.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let (stream, peer) = tokio::select! {
                    r = listener.accept() => match r {
                        Ok(x) => x,
                        Err(e) => { warn!(error = %e, "accept failed"); continue; }
                    },
                    _ = stop.changed() => break,
                };
                let conn = Connection {
                    peer,
                    router: router.clone(),
                    stop: stop_rx.clone(),
                    _done: done_tx.clone(),
                };
                match &tls {
                    None => {
                        tokio::spawn(conn.serve(stream));
                    }
                    Some(web) => {
                        tokio::spawn(conn.serve_tls(stream, web.clone()));
                    }
                }
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

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// One accepted connection.
struct Connection {
    peer: SocketAddr,
    router: Router,
    /// Fires on shutdown: finish the request in flight, then close.
    stop: tokio::sync::watch::Receiver<bool>,
    /// Dropped when the connection ends; shutdown waits for every one.
    _done: tokio::sync::mpsc::Sender<()>,
}

impl Connection {
    async fn serve_tls(self, stream: tokio::net::TcpStream, web: Arc<web_config::WebConfig>) {
        let Some(config) = web.current().tls.clone() else {
            warn!(peer = %self.peer, "the web config no longer has TLS settings; connection refused");
            return;
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => self.serve(tls).await,
            Ok(Err(e)) => debug!(peer = %self.peer, error = %e, "TLS handshake failed"),
            Err(_) => debug!(peer = %self.peer, "TLS handshake timed out"),
        }
    }

    async fn serve<S>(mut self, stream: S)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let service = TowerToHyperService::new(self.router);
        let builder = auto::Builder::new(TokioExecutor::new());
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        tokio::pin!(conn);
        let result = tokio::select! {
            r = conn.as_mut() => r,
            _ = self.stop.changed() => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(e) = result {
            debug!(peer = %self.peer, error = %e, "connection ended with an error");
        }
    }
}

async fn metrics_handler(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let snapshot = match s.fleet.snapshot().await {
        Ok(x) => x,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    };
    let gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|e| e.trim().split(';').next() == Some("gzip"))
        });
    // Rendering and compressing a large fleet's body is CPU work: off the async workers.
    let rendered = tokio::task::spawn_blocking(move || {
        let body = metrics::render(
            &snapshot,
            s.fleet.collectors(),
            &s.events,
            &s.fleet.exporter,
        );
        if !gzip {
            return (body, false);
        }
        let mut enc = flate2::write::GzEncoder::new(
            Vec::with_capacity(body.len() / 8),
            flate2::Compression::fast(),
        );
        match enc.write_all(&body).and_then(|_| enc.finish()) {
            Ok(z) => (z, true),
            Err(_) => (body, false),
        }
    })
    .await;
    let Ok((body, gzipped)) = rendered else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "rendering failed").into_response();
    };
    let mut resp = body.into_response();
    if gzipped {
        resp.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(metrics::CONTENT_TYPE),
    );
    resp
}

async fn health(State(s): State<AppState>) -> Response {
    match s.fleet.latest(crate::fleet::SHOWN_MAX_AGE).await {
        Ok(snap) => {
            let code = if snap.status == crate::fleet::health::Status::Critical {
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
    use crate::service::reload::ReloadError;
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

/// Turns `:PORT` into `[::]:PORT` — every interface, IPv6 and (dual-stack) IPv4, as Go's
/// `:PORT` does — and leaves other addresses as they are.
pub fn normalize_listen_address(addr: &str) -> String {
    if addr.starts_with(':') {
        format!("[::]{addr}")
    } else {
        addr.to_string()
    }
}
