//! The HTTP/2 server loop of the examples: hyper-util's auto connection serves HTTP/1.1 and
//! HTTP/2 on one port (h2c by prior knowledge on plain TCP; over TLS the client picks by ALPN,
//! `h2` or `http/1.1`), with extended CONNECT allowed, so WebSockets arrive as HTTP/1.1
//! upgrades and as RFC 8441 streams alike. On SIGINT or SIGTERM it shuts down gracefully:
//! hyper-util's `GracefulShutdown` finishes the HTTP connections (GOAWAY on HTTP/2) while
//! `wsproto::drivers::tokio::Shutdown` closes the WebSockets with 1001.
#![allow(dead_code, reason = "each example uses a subset")]

use hyper::body::{Body, Incoming};
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use wsproto::drivers::tokio::Shutdown;

use crate::shutdown;

/// How long a client may take over its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `service` on every connection `listener` accepts, behind TLS when `tls` is given
/// (its configuration should offer ALPN `h2` and `http/1.1`, as `tls::server_config_h2`'s
/// does). Accept errors (out of file descriptors, say) are logged and retried after a pause,
/// and a failed connection ends only itself. Returns after a graceful shutdown on SIGINT or
/// SIGTERM: the service should hand each WebSocket to `shutdown.watch`.
pub async fn serve<S, B>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    service: S,
    shutdown: &Shutdown,
) -> std::io::Result<()>
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // RFC 8441 §3: SETTINGS_ENABLE_CONNECT_PROTOCOL = 1, or clients never send
    // `:protocol = websocket`.
    builder.http2().enable_connect_protocol();
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    let signals = shutdown::signals();
    tokio::pin!(signals);
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // EMFILE and friends pass; the open connections carry on meanwhile.
                    eprintln!("accept failed: {e}; retrying in 50 ms");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut signals => break,
        };
        let (builder, service, tls) = (builder.clone(), service.clone(), tls.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let result = match tls {
                None => connection(&builder, tcp, service, watcher).await,
                Some(tls) => {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.accept(tcp)).await {
                        Ok(Ok(stream)) => connection(&builder, stream, service, watcher).await,
                        Ok(Err(e)) => Err(e.into()),
                        Err(_) => Err("TLS handshake timed out".into()),
                    }
                }
            };
            if let Err(e) = result {
                eprintln!("connection ended: {e}");
            }
        });
    }
    drop(listener);
    let http = async {
        graceful.shutdown().await;
        Ok(())
    };
    shutdown::close_within_timeout(http, shutdown).await
}

/// One connection, HTTP/1.1 or HTTP/2 as the client speaks, upgrades included, watched for
/// the graceful shutdown.
async fn connection<I, S, B>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    service: S,
    watcher: hyper_util::server::graceful::Watcher,
) -> Result<(), Box<dyn StdError + Send + Sync>>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    watcher.watch(connection.into_owned()).await
}
