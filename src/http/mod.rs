//! HTTP: the listeners, the router and the handlers. No SQLite here: handlers ask the
//! [`crate::fleet::Fleet`] for a snapshot and render it.

mod auth;
mod connection;
pub mod control;
mod landing;
mod listener;
pub mod web_config;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::net::TcpListener;
use tower_http::compression::{CompressionLayer, CompressionLevel};
use tracing::info;

pub use connection::{Timeouts, CONNECTION_GRACE, MAX_HEADER_BYTES};
pub use listener::{serve, Limits};

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
    /// How long a control API request's body may take to arrive once its head has (the
    /// header-read timeout again); `None` for no limit.
    pub body_deadline: Option<std::time::Duration>,
}

/// The router for every endpoint: landing page, metrics, health, reload and the control API.
/// A path that is none of them gets a plain 404, whatever credentials it carries; only the
/// control API's routes ask for a bearer token.
pub fn router(state: AppState) -> Router {
    let telemetry = state.telemetry_path.clone();
    let mut r = Router::new()
        .route("/-/healthy", get(|| async { "Healthy\n" }))
        .route("/-/ready", get(|| async { "Ready\n" }))
        .route("/-/reload", post(reload))
        .route("/health", get(health))
        .nest(control::PREFIX, control::routes(state.clone()))
        .route(&telemetry, get(metrics_handler));
    // As node_exporter does, metrics served at `/` take the landing page's place.
    if telemetry != "/" {
        r = r.route("/", get(landing::page));
    }
    r = r
        .fallback(|| async { (StatusCode::NOT_FOUND, "404 page not found\n") })
        // Negotiates with Accept-Encoding (q-values, any case) and adds `Vary`. The level of
        // the hand-made gzip it replaced: a large fleet's body is megabytes.
        .layer(CompressionLayer::new().quality(CompressionLevel::Fastest));
    if state.web.is_some() {
        r = r.layer(middleware::from_fn_with_state(state.clone(), web_layer));
    }
    r.with_state(state)
}

/// Paths the exporter serves besides the metrics; `--web.telemetry-path` may not take one.
const RESERVED_PATHS: &[&str] = &["/-/healthy", "/-/ready", "/-/reload", "/health"];

/// Checks a `--web.telemetry-path`: an absolute URL path, without query, fragment or the
/// router's `{capture}` and `*` syntax, that is no other endpoint's. `/` is accepted: the
/// metrics are served there instead of the landing page.
pub fn check_telemetry_path(path: &str) -> Result<String, String> {
    if !path.starts_with('/') {
        return Err(format!("{path:?} must start with /, e.g. /metrics"));
    }
    let valid = path.parse::<axum::http::uri::PathAndQuery>().ok();
    if valid.is_none_or(|p| p.as_str() != path || p.query().is_some())
        || path.contains(['{', '}', '*', '#'])
    {
        return Err(format!(
            "{path:?} is not a plain URL path (no query, fragment, {{capture}} or *)"
        ));
    }
    let control = path == control::PREFIX || path.starts_with(&format!("{}/", control::PREFIX));
    if control || RESERVED_PATHS.contains(&path) {
        return Err(format!("{path:?} is already another endpoint"));
    }
    Ok(path.to_string())
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

/// The listening TCP sockets systemd passed (`LISTEN_FDS`, `LISTEN_PID`), in order. An error
/// when there are none or one is not a listening TCP socket, so a unit that forgot its
/// `.socket` fails at start instead of serving nothing.
pub fn systemd_listeners() -> std::io::Result<Vec<TcpListener>> {
    let mut fds = listenfd::ListenFd::from_env();
    if fds.len() == 0 {
        return Err(std::io::Error::other(
            "--web.systemd-socket: systemd passed no sockets (LISTEN_FDS unset or not for this \
             process); start it from a .socket unit, or drop the flag",
        ));
    }
    let mut out = Vec::new();
    for i in 0..fds.len() {
        let l = fds
            .take_tcp_listener(i)
            .map_err(|e| {
                std::io::Error::new(e.kind(), format!("--web.systemd-socket: socket {i}: {e}"))
            })?
            .ok_or_else(|| {
                std::io::Error::other(format!(
                    "--web.systemd-socket: socket {i} is not a TCP socket"
                ))
            })?;
        l.set_nonblocking(true)?;
        let l = TcpListener::from_std(l)?;
        info!(address = %l.local_addr()?, "listening");
        out.push(l);
    }
    Ok(out)
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

async fn metrics_handler(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let started = std::time::Instant::now();
    let snapshot = match s.fleet.snapshot().await {
        Ok(x) => x,
        Err(e) => {
            s.fleet.exporter.record_scrape_error();
            return (StatusCode::INTERNAL_SERVER_ERROR, e).into_response();
        }
    };
    s.fleet
        .exporter
        .record_scrape(started.elapsed().as_secs_f64());
    let gzip = accepts_gzip(&headers);
    let openmetrics = prefers_openmetrics(&headers);
    // Rendering and compressing a large fleet's body is CPU work (tens of milliseconds at
    // 10,000 databases): both run on the blocking pool, never on the async workers that serve
    // every other connection. The compression layer leaves a response that already has a
    // `Content-Encoding` alone.
    let fleet = s.fleet.clone();
    let rendered = tokio::task::spawn_blocking(move || {
        let format = if openmetrics {
            metrics::Format::OpenMetrics
        } else {
            metrics::Format::Text
        };
        let body = metrics::render(
            &snapshot,
            s.fleet.collectors(),
            &s.events,
            &s.fleet.exporter,
            format,
        );
        if gzip {
            gzip_fast(&body).map(|b| (b, true))
        } else {
            Ok((body, false))
        }
    })
    .await;
    let Ok(Ok((body, gzipped))) = rendered else {
        fleet.exporter.record_scrape_error();
        return (StatusCode::INTERNAL_SERVER_ERROR, "rendering failed").into_response();
    };
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(if openmetrics {
            metrics::openmetrics::CONTENT_TYPE
        } else {
            metrics::CONTENT_TYPE
        }),
    );
    h.insert(
        header::VARY,
        HeaderValue::from_static("accept, accept-encoding"),
    );
    if gzipped {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    resp
}

/// `body` gzipped at the fastest level, as the compression layer does for other responses.
fn gzip_fast(body: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 8),
        flate2::Compression::fast(),
    );
    e.write_all(body)?;
    e.finish()
}

/// Whether the client's `Accept-Encoding` prefers gzip: `gzip` (or `x-gzip`, or `*` when
/// gzip is not named) with a q-value above 0 and not below `identity`'s, names compared
/// without case, as the compression layer decides for every other response.
///
/// Written here because the layer compresses while the body is sent, on the async worker,
/// and keeps its negotiation private; `/metrics` compresses on the blocking pool instead.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let (mut gzip, mut identity, mut any) = (None, None, None);
    for (coding, q) in weighted_items(headers, header::ACCEPT_ENCODING) {
        match coding.as_str() {
            "gzip" | "x-gzip" => gzip = Some(q),
            "identity" => identity = Some(q),
            "*" => any = Some(q),
            _ => {}
        }
    }
    let gzip = gzip.or(any).unwrap_or(0.0);
    gzip > 0.0 && identity.is_none_or(|i| gzip >= i)
}

/// Whether the client's `Accept` prefers OpenMetrics over the text format: an
/// `application/openmetrics-text` item with a q-value above 0 and not below the best of
/// `text/plain`, `text/*` and `*/*`.
fn prefers_openmetrics(headers: &HeaderMap) -> bool {
    let (mut openmetrics, mut text) = (None::<f64>, None::<f64>);
    for (media, q) in weighted_items(headers, header::ACCEPT) {
        let best = |slot: &mut Option<f64>| *slot = Some(slot.map_or(q, |s| s.max(q)));
        match media.as_str() {
            "application/openmetrics-text" => best(&mut openmetrics),
            "text/plain" | "text/*" | "*/*" => best(&mut text),
            _ => {}
        }
    }
    openmetrics.is_some_and(|o| o > 0.0 && text.is_none_or(|t| o >= t))
}

/// The items of every `name` header (`a;q=0.5, b`): each token lower-cased, with its q-value
/// (1 when absent). An item with an unreadable or out-of-range q-value is left out.
fn weighted_items(headers: &HeaderMap, name: header::HeaderName) -> Vec<(String, f64)> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|item| {
            let mut parts = item.split(';');
            let token = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
                .map_or(Some(1.0), |(_, v)| v.trim().parse::<f64>().ok())?;
            (0.0..=1.0).contains(&q).then_some((token, q))
        })
        .collect()
}

#[derive(serde::Deserialize)]
struct HealthQuery {
    database: Option<String>,
}

/// `GET /health`: every database; `?database=NAME`: that one (404 when it is not monitored).
/// 503 when a database shown is critical.
async fn health(
    State(s): State<AppState>,
    axum::extract::Query(q): axum::extract::Query<HealthQuery>,
) -> Response {
    let snapshot = s.fleet.latest(crate::fleet::SHOWN_MAX_AGE).await;
    if let (Some(name), Ok(snap)) = (&q.database, &snapshot) {
        let Some(r) = snap.databases.iter().find(|r| &r.name == name) else {
            return (
                StatusCode::NOT_FOUND,
                format!("no database {name:?} is monitored\n"),
            )
                .into_response();
        };
        let code = if r.health.status == crate::fleet::health::Status::Critical {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::OK
        };
        return (code, Json(r.as_ref().clone())).into_response();
    }
    match snapshot {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn preferred(accept: &str) -> bool {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(accept).unwrap());
        prefers_openmetrics(&h)
    }

    #[test]
    fn openmetrics_is_served_to_whoever_prefers_it() {
        // What Prometheus sends.
        assert!(preferred(
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
             version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        ));
        assert!(preferred("Application/OpenMetrics-Text; version=1.0.0"));
        assert!(!preferred(""));
        assert!(!preferred("*/*"));
        assert!(!preferred("text/plain"));
        assert!(!preferred("application/openmetrics-text;q=0"));
        assert!(!preferred(
            "application/openmetrics-text;q=0.2, text/plain;q=0.5"
        ));
        assert!(!preferred("application/openmetrics-text;q=bogus"));
        assert!(preferred("text/plain;q=0.5, application/openmetrics-text"));
    }

    fn accepts(v: &[&str]) -> bool {
        let mut h = HeaderMap::new();
        for v in v {
            h.append(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
        }
        accepts_gzip(&h)
    }

    #[test]
    fn gzip_is_negotiated_with_q_values_and_any_case() {
        assert!(accepts(&["gzip"]));
        assert!(accepts(&["GZIP"]));
        assert!(accepts(&["x-gzip"]));
        assert!(accepts(&["gzip, deflate"]));
        assert!(accepts(&["br;q=1, gzip;q=0.5"]));
        assert!(accepts(&["deflate", "gzip;q=0.2"]));
        assert!(accepts(&["*"]));
        assert!(accepts(&["gzip;q=1, identity;q=0.5"]));
        assert!(!accepts(&[]));
        assert!(!accepts(&["gzip;q=0"]));
        assert!(!accepts(&["gzip; q=0.000"]));
        assert!(!accepts(&["deflate, br"]));
        assert!(!accepts(&["*;q=0"]));
        assert!(!accepts(&["gzip;q=0, *"]));
        assert!(!accepts(&["gzip;q=0.5, identity"]));
        assert!(!accepts(&["gzip;q=bogus"]));
    }

    #[test]
    fn the_fast_gzip_decodes_to_the_body() {
        use std::io::Read;
        let body = b"sqlite_up{database=\"a\"} 1\n".repeat(1000);
        let gz = gzip_fast(&body).unwrap();
        assert!(gz.len() < body.len() / 10);
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, body);
    }
}
