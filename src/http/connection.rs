//! One accepted connection, served by hyper (HTTP/1 or HTTP/2, TLS when configured), with the
//! limits hyper does not keep on its own: how long a client may take to send a request head,
//! how long a connection may sit idle, and how long shutdown waits for it.
//!
//! Why these are watched here rather than by hyper: hyper's `header_read_timeout` starts as
//! soon as a keep-alive connection waits for its next request, so it would also close every
//! idle keep-alive connection (Prometheus' among them, between scrapes) after the header
//! timeout; it does not cover the bytes hyper-util's HTTP/1-or-2 detection reads first (a
//! client that sends nothing, or fewer than 24 bytes, is never timed out), nor HTTP/2, nor the
//! TLS handshake. One small watchdog per connection covers all of them, from what the
//! connection's reads, writes and requests tell it ([`Activity`]).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify, OwnedSemaphorePermit};
use tower::ServiceExt as _;
use tracing::{debug, warn};

use super::web_config::WebConfig;

/// Largest request head accepted (request line and headers; HTTP/2: the decoded header list).
/// Larger ones are answered 431 (HTTP/1) or refused (HTTP/2). Bearer tokens and basic-auth
/// headers are a few hundred bytes; hyper's own default is about 400 KB.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// How long shutdown lets an open connection finish the request it is serving before closing
/// it. Running actions have their own grace (`service::shutdown::ACTION_GRACE`), which
/// closing their connection does not shorten.
pub const CONNECTION_GRACE: Duration = Duration::from_secs(10);

/// The timeouts every connection is held to. `None` turns one off.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// `--web.header-read-timeout`: from accepting the connection (for its first request) or
    /// from the first byte of a later one, until the request head has arrived.
    pub header_read: Option<Duration>,
    /// `--web.idle-timeout`: how long a connection with no request in flight and no bytes
    /// moving is kept open.
    pub idle: Option<Duration>,
}

/// One accepted connection and what it needs to be served.
pub struct Connection {
    pub peer: SocketAddr,
    pub router: Router,
    pub timeouts: Timeouts,
    /// `Some` when the web config names a certificate: a TLS handshake comes first.
    pub tls: Option<Arc<WebConfig>>,
    /// Turns true on shutdown: finish the request in flight, then close.
    pub stop: watch::Receiver<bool>,
    /// One of `--web.max-connections`; released when the connection ends.
    pub _slot: OwnedSemaphorePermit,
    /// Dropped when the connection ends; shutdown waits for every one.
    pub _done: tokio::sync::mpsc::Sender<()>,
}

impl Connection {
    /// Serves the connection until the client closes it, a timeout closes it, or shutdown's
    /// grace period ends.
    pub async fn run(self, stream: TcpStream) {
        let activity = Arc::new(Activity::new());
        let io = Tracked {
            inner: stream,
            activity: activity.clone(),
        };
        let (peer, timeouts, stop) = (self.peer, self.timeouts, self.stop.clone());
        tokio::select! {
            () = self.serve(io, activity.clone()) => {}
            why = watchdog(&activity, timeouts) => debug!(%peer, "closing the connection: {why}"),
            () = grace_over(stop) => {
                debug!(%peer, "closing the connection: still open at the end of the shutdown grace period");
            }
        }
    }

    async fn serve(self, io: Tracked, activity: Arc<Activity>) {
        let Some(web) = self.tls.clone() else {
            return self.http(io, activity).await;
        };
        let Some(config) = web.current().tls.clone() else {
            warn!(peer = %self.peer, "the web config no longer has TLS settings; connection refused");
            return;
        };
        match tokio_rustls::TlsAcceptor::from(config).accept(io).await {
            Ok(tls) => self.http(tls, activity).await,
            Err(e) => debug!(peer = %self.peer, error = %e, "TLS handshake failed"),
        }
    }

    async fn http<S>(mut self, stream: S, activity: Arc<Activity>)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let router = self.router.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let request = InFlight::start(activity.clone());
            let router = router.clone();
            async move {
                let response = router.oneshot(req).await;
                drop(request);
                response
            }
        });
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder.http1().max_buf_size(MAX_HEADER_BYTES);
        builder
            .http2()
            .max_header_list_size(MAX_HEADER_BYTES as u32);
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        tokio::pin!(conn);
        let result = tokio::select! {
            r = conn.as_mut() => r,
            () = stopped(&mut self.stop) => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(e) = result {
            debug!(peer = %self.peer, error = %e, "connection ended with an error");
        }
    }
}

/// Completes when shutdown has begun (or the server is gone).
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    // Drops the value's read guard here, so no caller holds it across an await.
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Completes [`CONNECTION_GRACE`] after shutdown began.
async fn grace_over(mut stop: watch::Receiver<bool>) {
    stopped(&mut stop).await;
    tokio::time::sleep(CONNECTION_GRACE).await;
}

/// What the watchdog knows of one connection, told by its reads, writes and requests. Times
/// are milliseconds since `start`.
struct Activity {
    start: Instant,
    /// When a byte was last read or written, or a response produced.
    last_io: AtomicU64,
    /// When the request head now being read began, plus one; 0 while none is. A connection
    /// starts in this state: its first request is timed from accept.
    head_since: AtomicU64,
    /// Requests whose response has not been produced yet; no timeout applies while one runs
    /// (an action answered synchronously may take minutes).
    in_flight: AtomicUsize,
    /// Wakes the watchdog when its deadline may have moved.
    changed: Notify,
}

impl Activity {
    fn new() -> Self {
        Activity {
            start: Instant::now(),
            last_io: AtomicU64::new(0),
            head_since: AtomicU64::new(1),
            in_flight: AtomicUsize::new(0),
            changed: Notify::new(),
        }
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn read(&self) {
        let now = self.now();
        self.last_io.store(now, Ordering::Relaxed);
        // Bytes between requests begin the next request's head.
        if self.in_flight.load(Ordering::Relaxed) == 0
            && self
                .head_since
                .compare_exchange(0, now + 1, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.changed.notify_one();
        }
    }

    fn wrote(&self) {
        self.last_io.store(self.now(), Ordering::Relaxed);
    }

    /// When the connection is to be closed and why; `None` while a request is in flight.
    fn deadline(&self, t: Timeouts) -> Option<(Instant, &'static str)> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let at = |ms: u64, d: Duration| self.start + Duration::from_millis(ms) + d;
        let head = self.head_since.load(Ordering::Relaxed);
        match (head, t.header_read) {
            (1.., Some(d)) => Some((
                at(head - 1, d),
                "no complete request head within --web.header-read-timeout",
            )),
            _ => t.idle.map(|d| {
                (
                    at(self.last_io.load(Ordering::Relaxed), d),
                    "idle for --web.idle-timeout",
                )
            }),
        }
    }
}

/// Returns when `activity` has passed one of `timeouts`, saying which.
async fn watchdog(activity: &Activity, timeouts: Timeouts) -> &'static str {
    loop {
        match activity.deadline(timeouts) {
            Some((at, why)) if at <= Instant::now() => return why,
            Some((at, _)) => {
                let at = tokio::time::Instant::from_std(at);
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = activity.changed.notified() => {}
                }
            }
            None => activity.changed.notified().await,
        }
    }
}

/// A request being served: counted from its head's arrival until its response is produced.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        activity.head_since.store(0, Ordering::Relaxed);
        InFlight(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.wrote();
        if self.0.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.0.changed.notify_one();
        }
    }
}

/// The TCP stream, telling [`Activity`] of every byte read or written.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(1..))) {
            self.activity.wrote();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(1..))) {
            self.activity.wrote();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
