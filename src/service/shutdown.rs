//! Graceful shutdown on SIGTERM or SIGINT.
//!
//! The order matters. The shared cancel flag is set first, the moment the signal arrives, so
//! a running action (a backup copying 10 GB) stops at its next step and removes its temp file
//! instead of being killed mid-write; then the listeners stop accepting and in-flight requests
//! finish (an action answered synchronously answers with its cancellation), and connections
//! still open after `http::CONNECTION_GRACE` are closed; then the process waits, bounded by
//! [`ACTION_GRACE`], for actions still unwinding before it exits 0.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

/// How long shutdown waits for running actions to end after cancelling them.
pub const ACTION_GRACE: Duration = Duration::from_secs(30);

/// Completes when SIGTERM or SIGINT arrives, having set `cancel`.
pub async fn signalled(cancel: Arc<AtomicBool>) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            error!(error = %e, "cannot listen for SIGTERM");
            return std::future::pending().await;
        }
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "SIGINT",
    };
    cancel.store(true, Ordering::SeqCst);
    info!(
        signal = name,
        "shutting down: cancelling running actions, finishing requests"
    );
}

/// Waits up to `limit` for every running action to end; returns how many still run.
pub async fn drain_actions(limit: Duration) -> usize {
    let deadline = Instant::now() + limit;
    loop {
        let running = crate::fleet::monitor::running_actions();
        if running == 0 {
            return 0;
        }
        if Instant::now() >= deadline {
            warn!(
                running,
                "actions still running at the end of the grace period"
            );
            return running;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
