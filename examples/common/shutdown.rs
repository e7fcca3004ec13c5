//! Graceful shutdown for the examples served through hyper or axum: on SIGINT or SIGTERM the
//! server stops accepting, every WebSocket watched by `wsproto::drivers::tokio::Shutdown`
//! gets Close 1001, and the process waits up to `CLOSE_TIMEOUT` for the closing handshakes
//! (the `Server`-based examples get the same from `Server::shutdown_on_signals`).
#![allow(dead_code, reason = "each example uses a subset")]

use std::future::{Future, IntoFuture};
use std::time::Duration;
use wsproto::drivers::tokio::Shutdown;

/// How long shutdown waits for the connections to close, as `Server`'s default.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// SIGINT or SIGTERM, whichever comes first (Ctrl-C off Unix).
pub async fn signals() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt()).expect("SIGINT handler");
        let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Serves `app` with `axum::serve` until a signal, then shuts down: axum stops accepting and
/// finishes its HTTP connections while `shutdown` closes the WebSockets, both within
/// `CLOSE_TIMEOUT`.
pub async fn serve_axum(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    shutdown: &Shutdown,
) -> std::io::Result<()> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stopped.await;
        })
        .into_future();
    tokio::pin!(server);
    tokio::select! {
        // An accept loop that ended by itself: an error worth exiting with.
        result = &mut server => return result,
        () = signals() => {}
    }
    let _ = stop.send(());
    close_within_timeout(server, shutdown).await
}

/// Closes the WebSockets and lets `http` (the HTTP server, shutting down) finish, together,
/// within `CLOSE_TIMEOUT`.
pub async fn close_within_timeout<F>(http: F, shutdown: &Shutdown) -> std::io::Result<()>
where
    F: Future<Output = std::io::Result<()>>,
{
    let (still_open, http) = tokio::join!(
        shutdown.close_all(CLOSE_TIMEOUT),
        tokio::time::timeout(CLOSE_TIMEOUT, http)
    );
    if still_open > 0 {
        eprintln!("shutdown: {still_open} WebSockets still open after {CLOSE_TIMEOUT:?}; dropped");
    }
    match http {
        Ok(result) => result,
        Err(_) => {
            eprintln!("shutdown: HTTP connections still open after {CLOSE_TIMEOUT:?}; dropped");
            Ok(())
        }
    }
}
