//! An echo server on tokio: every text and binary message comes back with the same type.
//!
//! `cargo run --release --example echo_server -- --addr 127.0.0.1:9001`
//!
//! With `--tls-cert cert.pem --tls-key key.pem` it serves wss:// (TLS by tokio-rustls; the
//! driver runs on the TLS stream as on any other).
//!
//! It runs on `Server`: accept errors under overload (out of file descriptors, say) are
//! logged and retried, and SIGINT or SIGTERM closes every connection with 1001 before exiting.

#[path = "common/args.rs"]
mod args;
#[path = "common/tls.rs"]
mod tls;

use tokio::io::{AsyncRead, AsyncWrite};
use wsproto::Config;
use wsproto::drivers::tokio::{Server, ServerStream};

const USAGE: &str = "echo_server: a WebSocket echo server (tokio, one task per connection)

usage: echo_server [--addr HOST:PORT] [--max-message-size BYTES] [--deflate]
                   [--tls-cert PEM --tls-key PEM]

  --addr HOST:PORT           where to listen (default 127.0.0.1:9001)
  --max-message-size BYTES   largest message accepted (default 16777216)
  --deflate                  accept permessage-deflate (RFC 7692) offers
  --tls-cert PEM             certificate chain (leaf first): serve wss://; needs --tls-key
  --tls-key PEM              the leaf's private key (PKCS#8, PKCS#1 or SEC1); needs --tls-cert";

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = args::Args::parse(
        USAGE,
        &["addr", "max-message-size", tls::OPTIONS[0], tls::OPTIONS[1]],
        &["deflate"],
    );
    let tls = tls::server_config(&args).map(tokio_rustls::TlsAcceptor::from);
    let mut config = Config::default();
    config.max_message_size = args.number("max-message-size", 16 << 20);
    if args.flag("deflate") {
        config.deflate = Some(wsproto::DeflateConfig::default());
    }
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

async fn echo<S: AsyncRead + AsyncWrite + Unpin>(mut ws: ServerStream<S>) {
    // The reply's header is queued and its payload written from the receive buffer itself,
    // with one vectored write (short payloads are copied behind the header instead).
    let result = async {
        while let Some(()) = ws
            .recv_with_sender(|event, sender| match event {
                wsproto::Event::Text(text) => sender.send_text_borrowed(text),
                wsproto::Event::Binary(data) => sender.send_binary_borrowed(data),
                _ => Ok(()),
            })
            .await?
        {}
        Ok::<_, wsproto::drivers::Error>(())
    }
    .await;
    if let Err(e) = result {
        eprintln!("connection ended: {e}");
    }
}
