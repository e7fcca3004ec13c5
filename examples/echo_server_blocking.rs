//! An echo server on blocking sockets, one thread per connection.
//!
//! `cargo run --release --example echo_server_blocking -- --addr 127.0.0.1:9002`
//!
//! With `--tls-cert cert.pem --tls-key key.pem` it serves wss:// over
//! `rustls::StreamOwned<ServerConnection, TcpStream>`, a `Transport` like `TcpStream`.
//!
//! It runs on the blocking `Server`: accept errors under overload (out of file descriptors,
//! say) are logged and retried instead of ending the process. It has no graceful shutdown
//! (the tokio `Server` has).

#[path = "common/args.rs"]
mod args;
#[path = "common/tls.rs"]
mod tls;

use wsproto::Config;
use wsproto::drivers::blocking::{Server, Transport, WebSocket};

const USAGE: &str =
    "echo_server_blocking: a WebSocket echo server (std::net, a thread per connection)

usage: echo_server_blocking [--addr HOST:PORT] [--max-message-size BYTES] [--deflate]
                            [--tls-cert PEM --tls-key PEM]

  --addr HOST:PORT           where to listen (default 127.0.0.1:9002)
  --max-message-size BYTES   largest message accepted (default 16777216)
  --deflate                  accept permessage-deflate (RFC 7692) offers
  --tls-cert PEM             certificate chain (leaf first): serve wss://; needs --tls-key
  --tls-key PEM              the leaf's private key (PKCS#8, PKCS#1 or SEC1); needs --tls-cert";

fn main() -> std::io::Result<()> {
    let args = args::Args::parse(
        USAGE,
        &["addr", "max-message-size", tls::OPTIONS[0], tls::OPTIONS[1]],
        &["deflate"],
    );
    let tls = tls::server_config(&args);
    let mut config = Config::default();
    config.max_message_size = args.number("max-message-size", 16 << 20);
    if args.flag("deflate") {
        config.deflate = Some(wsproto::DeflateConfig::default());
    }
    let server = Server::bind(args.get("addr", "127.0.0.1:9002"))?
        .config(config)
        // A failed handshake (TLS or WebSocket) ends that connection only.
        .on_error(|e| eprintln!("connection ended: {e}"));
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    println!(
        "echo_server_blocking listening on {scheme}://{}",
        server.local_addr()?
    );
    match tls {
        None => server.serve(echo),
        // The TLS handshake runs inside the WebSocket handshake's first read, under its
        // timeout.
        Some(tls) => server.serve_with(
            move |tcp| {
                rustls::ServerConnection::new(tls.clone())
                    .map(|conn| rustls::StreamOwned::new(conn, tcp))
                    .map_err(std::io::Error::other)
            },
            echo,
        ),
    }
}

fn echo<S: Transport>(ws: WebSocket<S>) {
    if let Err(e) = echo_messages(ws) {
        eprintln!("connection ended: {e}");
    }
}

fn echo_messages<S: Transport>(mut ws: WebSocket<S>) -> Result<(), wsproto::drivers::Error> {
    // The reply's header is queued and its payload written from the receive buffer itself,
    // with one vectored write on a TcpStream (short payloads, and every payload on a TLS
    // stream, are copied behind the header instead).
    while let Some(()) = ws.recv_with_sender(|event, sender| match event {
        wsproto::Event::Text(text) => sender.send_text_borrowed(text),
        wsproto::Event::Binary(data) => sender.send_binary_borrowed(data),
        _ => Ok(()),
    })? {}
    Ok(())
}
