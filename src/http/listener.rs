//! The accept loops: at most `--web.max-connections` connections open at once, accept errors
//! backed off and logged at a bounded rate, and shutdown that stops accepting, lets open
//! connections finish and closes the rest at the end of their grace period.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Semaphore};
use tracing::{debug, warn};

use super::connection::{stopped, Connection, Timeouts};
use super::web_config::WebConfig;

/// How connections are accepted and held.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The timeouts of each connection.
    pub timeouts: Timeouts,
    /// `--web.max-connections`: connections open at once, over all listeners. Past it, new
    /// connections wait in the kernel's listen backlog until one closes.
    pub max_connections: usize,
}

/// Serves `router` on `listeners` until `shutdown` completes, then stops accepting, lets open
/// connections finish the request they are serving, closes those still open after
/// [`super::connection::CONNECTION_GRACE`], and returns. With `tls` (a web config naming a
/// certificate), every connection must complete a TLS handshake, with the certificate current
/// at that moment; plain HTTP fails the handshake.
pub async fn serve(
    listeners: Vec<TcpListener>,
    router: Router,
    tls: Option<Arc<WebConfig>>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection holds a sender; when all are dropped, `recv` returns None.
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut tasks = Vec::new();
    for listener in listeners {
        let accepting = Accepting {
            listener,
            router: router.clone(),
            tls: tls.clone(),
            timeouts: limits.timeouts,
            slots: slots.clone(),
            stop: stop_rx.clone(),
            done: done_tx.clone(),
        };
        tasks.push(tokio::spawn(accepting.run()));
    }
    drop(done_tx);
    shutdown.await;
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    let _ = done_rx.recv().await;
}

/// One listener's accept loop.
struct Accepting {
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<WebConfig>>,
    timeouts: Timeouts,
    /// Shared by every listener: one permit per open connection.
    slots: Arc<Semaphore>,
    stop: watch::Receiver<bool>,
    done: mpsc::Sender<()>,
}

impl Accepting {
    async fn run(mut self) {
        let mut errors = AcceptErrors::default();
        loop {
            // A slot first, then accept: at the limit, connections wait in the backlog.
            let slot = tokio::select! {
                s = self.slots.clone().acquire_owned() => s,
                () = stopped(&mut self.stop) => return,
            };
            let Ok(slot) = slot else { return };
            let accepted = tokio::select! {
                r = self.listener.accept() => r,
                () = stopped(&mut self.stop) => return,
            };
            let (stream, peer) = match accepted {
                Ok(x) => x,
                Err(e) if peer_gone(&e) => {
                    debug!(error = %e, "accept failed; the connection was gone");
                    continue;
                }
                Err(e) => {
                    let pause = errors.failed(&e);
                    tokio::select! {
                        () = tokio::time::sleep(pause) => continue,
                        () = stopped(&mut self.stop) => return,
                    }
                }
            };
            errors.succeeded();
            let conn = Connection {
                peer,
                router: self.router.clone(),
                timeouts: self.timeouts,
                tls: self.tls.clone(),
                stop: self.stop.clone(),
                _slot: slot,
                _done: self.done.clone(),
            };
            tokio::spawn(conn.run(stream));
        }
    }
}

/// Whether an accept error concerns only the connection being accepted.
fn peer_gone(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    )
}

/// Back-off and log rate for accept errors that persist until something is freed: out of
/// descriptors (EMFILE, ENFILE) or memory. Retrying at once would spin a core and fill the
/// log, since the pending connection keeps the listener readable. Hand-written because the
/// loop is ours: hyper-util's server has no accept loop, and axum's `serve` (which sleeps a
/// second on such errors) cannot take the TLS handshake or the per-connection limits.
#[derive(Default)]
struct AcceptErrors {
    /// The current pause; doubles from [`Self::FIRST_PAUSE`] up to [`Self::MAX_PAUSE`].
    pause: Duration,
    /// When an error was last logged.
    logged: Option<Instant>,
    /// Errors since then.
    unlogged: u64,
}

impl AcceptErrors {
    const FIRST_PAUSE: Duration = Duration::from_millis(10);
    const MAX_PAUSE: Duration = Duration::from_secs(1);
    /// At most one log line per this interval.
    const LOG_EVERY: Duration = Duration::from_secs(10);

    /// Records a failure; returns how long to wait before accepting again.
    fn failed(&mut self, e: &std::io::Error) -> Duration {
        self.pause = (self.pause * 2).clamp(Self::FIRST_PAUSE, Self::MAX_PAUSE);
        if self.logged.is_none_or(|t| t.elapsed() >= Self::LOG_EVERY) {
            warn!(
                error = %e,
                errors_since_last_logged = self.unlogged,
                retry_in_ms = self.pause.as_millis() as u64,
                "accept failed; backing off"
            );
            self.logged = Some(Instant::now());
            self.unlogged = 0;
        } else {
            self.unlogged += 1;
        }
        self.pause
    }

    fn succeeded(&mut self) {
        self.pause = Duration::ZERO;
    }
}
