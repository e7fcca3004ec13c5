//! An echo server on tokio: every text and binary message comes back with the same type.
//!
//! `cargo run --release --example echo_server -- --addr 127.0.0.1:9001`
//!
//! With `--tls-cert cert.pem --tls-key key.pem` it serves wss:// (TLS by tokio-rustls; the
//! driver runs on the TLS stream as on any other).
//!
//! It runs on `Server`: accept errors under overload (out of file descriptors, say) are
//! logged and retried, and SIGINT or SIGTERM closes every connection with 1001 before exiting.
//!
//! With `--http2` it serves HTTP/1.1 and HTTP/2 on one port through hyper instead (h2c by
//! prior knowledge; with the TLS flags, h2 or HTTP/1.1 as ALPN picks), and each WebSocket,
//! an HTTP/1.1 upgrade or an RFC 8441 extended CONNECT stream, is upgraded by
//! `drivers::hyper` and echoed the same way; SIGINT or SIGTERM closes them with 1001 too,
//! through `drivers::tokio::Shutdown`.

#[path = "common/args.rs"]
mod args;
#[path = "common/http2_server.rs"]
mod http2_server;
#[path = "common/shutdown.rs"]
mod shutdown;
#[path = "common/tls.rs"]
mod tls;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use std::convert::Infallible;
use tokio::io::{AsyncRead, AsyncWrite};
use wsproto::drivers::hyper::Upgrade;
use wsproto::drivers::tokio::{Server, ServerStream, Shutdown};
use wsproto::{Accept, Config, Event, Sender, UsageError};

const USAGE: &str = "echo_server: a WebSocket echo server (tokio, one task per connection)

usage: echo_server [--addr HOST:PORT] [--max-message-size BYTES] [--deflate]
                   [--tls-cert PEM --tls-key PEM] [--http2]

  --addr HOST:PORT           where to listen (default 127.0.0.1:9001)
  --max-message-size BYTES   largest message accepted (default 16777216)
  --deflate                  accept permessage-deflate (RFC 7692) offers
  --tls-cert PEM             certificate chain (leaf first): serve wss://; needs --tls-key
  --tls-key PEM              the leaf's private key (PKCS#8, PKCS#1 or SEC1); needs --tls-cert
  --http2                    serve HTTP/1.1 and HTTP/2 through hyper: h2c (prior knowledge),
                             or h2 over TLS (ALPN h2, http/1.1); WebSockets over HTTP/2 are
                             RFC 8441 extended CONNECT streams";

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = args::Args::parse(
        USAGE,
        &["addr", "max-message-size", tls::OPTIONS[0], tls::OPTIONS[1]],
        &["deflate", "http2"],
    );
    let mut config = Config::default();
    config.max_message_size = args.number("max-message-size", 16 << 20);
    if args.flag("deflate") {
        config.deflate = Some(wsproto::DeflateConfig::default());
    }
    if args.flag("http2") {
        return serve_http2(&args, config).await;
    }
    let tls = tls::server_config(&args).map(tokio_rustls::TlsAcceptor::from);
    let server = Server::bind(args.get("addr", "127.0.0.1:9001"))
        .await?
        .config(config)
        // SIGINT and SIGTERM: Close 1001 to every connection, then exit.
        .shutdown_on_signals()
        // A failed handshake (TLS or WebSocket) ends that connection only.
        .on_error(|e| eprintln!("connection ended: {e}"));
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    println!(
        "echo_server listening on {scheme}://{}",
        server.local_addr()?
    );
    match tls {
        None => server.serve(echo).await,
        // The TLS handshake runs within the config's handshake_timeout, like the WebSocket one.
        Some(tls) => server.serve_with(move |tcp| tls.accept(tcp), echo).await,
    }
}

/// One connection: echo until it closes. Written as a function returning an `async move`
/// block rather than an `async fn`, whose argument would be stored twice in the future the
/// task holds while the connection idles (688 bytes more per connection: 1,712 against 1,024).
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn stores its argument twice"
)]
fn echo<S: AsyncRead + AsyncWrite + Unpin>(mut ws: ServerStream<S>) -> impl Future<Output = ()> {
    async move {
        loop {
            match ws.recv_with_sender(reply).await {
                Ok(Some(())) => {}
                Ok(None) => return,
                Err(e) => return eprintln!("connection ended: {e}"),
            }
        }
    }
}

/// The echo: the reply's header is queued and its payload written from the receive buffer
/// itself, with one vectored write (short payloads are copied behind the header instead).
fn reply<'e>(event: Event<'e>, sender: &mut Sender<'e>) -> Result<(), UsageError> {
    match event {
        Event::Text(text) => sender.send_text_borrowed(text),
        Event::Binary(data) => sender.send_binary_borrowed(data),
        _ => Ok(()),
    }
}

/// `--http2`: hyper serves every connection, and each WebSocket request is upgraded.
async fn serve_http2(args: &args::Args, config: Config) -> std::io::Result<()> {
    let tls = tls::server_config_h2(args).map(tokio_rustls::TlsAcceptor::from);
    let listener = tokio::net::TcpListener::bind(args.get("addr", "127.0.0.1:9001")).await?;
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    let versions = if tls.is_some() {
        "h2, HTTP/1.1"
    } else {
        "h2c, HTTP/1.1"
    };
    println!(
        "echo_server listening on {scheme}://{} ({versions})",
        listener.local_addr()?
    );
    let shutdown = Shutdown::new();
    let watching = shutdown.clone();
    let service = hyper::service::service_fn(move |request| {
        upgrade(request, config.clone(), watching.clone())
    });
    http2_server::serve(listener, tls, service, &shutdown).await
}

/// Answers one request: a WebSocket handshake is accepted and its stream echoed on a task of
/// its own, watched by `shutdown`; anything else gets the core's 4xx.
async fn upgrade(
    mut request: Request<Incoming>,
    config: Config,
    shutdown: Shutdown,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let upgrade = match Upgrade::new(&mut request, config) {
        Ok(upgrade) => upgrade,
        Err(rejection) => return Ok(rejection.response().map(Full::from)),
    };
    let request = upgrade.request().clone();
    let Ok((response, pending)) = upgrade.accept(Accept::new()) else {
        unreachable!("Accept::new() chooses nothing that can be refused");
    };
    tokio::spawn(async move {
        match pending.await {
            Ok(ws) => echo(shutdown.watch(ws, request)).await,
            Err(e) => eprintln!("upgrade failed: {e}"),
        }
    });
    Ok(response.map(|()| Full::default()))
}
