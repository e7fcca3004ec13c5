//! An echo server on tokio: every text and binary message comes back with the same type.
//!
//! `cargo run --release --example echo_server -- --addr 127.0.0.1:9001`
//!
//! With `--tls-cert cert.pem --tls-key key.pem` it serves wss:// (TLS by tokio-rustls; the
//! driver runs on the TLS stream as on any other).

#[path = "common/args.rs"]
mod args;
#[path = "common/tls.rs"]
mod tls;

use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use wsproto::Config;
use wsproto::drivers::tokio::WebSocketStream;

const USAGE: &str = "echo_server: a WebSocket echo server (tokio, one task per connection)

usage: echo_server [--addr HOST:PORT] [--max-message-size BYTES] [--deflate]
                   [--tls-cert PEM --tls-key PEM]

  --addr HOST:PORT           where to listen (default 127.0.0.1:9001)
  --max-message-size BYTES   largest message accepted (default 16777216)
  --deflate                  accept permessage-deflate (RFC 7692) offers
  --tls-cert PEM             certificate chain (leaf first): serve wss://; needs --tls-key
  --tls-key PEM              the leaf's private key (PKCS#8, PKCS#1 or SEC1); needs --tls-cert";

/// How long a client has to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

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
    let config = Arc::new(config);
    let listener = TcpListener::bind(args.get("addr", "127.0.0.1:9001")).await?;
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    println!(
        "echo_server listening on {scheme}://{}",
        listener.local_addr()?
    );
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let config = Arc::clone(&config);
        let tls = tls.clone();
        tokio::spawn(async move {
            let result = match tls {
                None => echo(stream, &config).await,
                // A failed TLS handshake ends this connection only.
                Some(tls) => {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
                        Ok(Ok(stream)) => echo(stream, &config).await,
                        Ok(Err(e)) => return eprintln!("TLS handshake failed: {e}"),
                        Err(_) => return eprintln!("TLS handshake timed out"),
                    }
                }
            };
            if let Err(e) = result {
                eprintln!("connection ended: {e}");
            }
        });
    }
}

async fn echo<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    config: &Config,
) -> Result<(), wsproto::drivers::Error> {
    let mut ws = WebSocketStream::accept(stream, config.clone()).await?;
    // The reply's header is queued and its payload written from the receive buffer itself,
    // with one vectored write (short payloads are copied behind the header instead).
    while let Some(()) = ws
        .recv_with_sender(|event, sender| match event {
            wsproto::Event::Text(text) => sender.send_text_borrowed(text),
            wsproto::Event::Binary(data) => sender.send_binary_borrowed(data),
            _ => Ok(()),
        })
        .await?
    {}
    Ok(())
}
