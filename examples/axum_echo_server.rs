//! An echo server on axum: every text and binary message comes back with the same type, over
//! an HTTP/1.1 upgrade or an HTTP/2 extended CONNECT stream (RFC 8441, h2c). The WebSocket
//! endpoint is every path, registered with `any` so that `GET` upgrades and `CONNECT` streams
//! both reach it.
//!
//! `cargo run --release --example axum_echo_server -- --addr 127.0.0.1:9001 --deflate`
//!
//! `axum::serve` serves HTTP/1.1 and HTTP/2 with prior knowledge on the same port and
//! enables extended CONNECT. Autobahn runs against it in `.ci/autobahn`.

#[path = "common/args.rs"]
mod args;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::any;
use tokio::net::TcpListener;
use wsproto::Config;
use wsproto::drivers::axum::{WebSocket, WebSocketUpgrade};

const USAGE: &str = "axum_echo_server: a WebSocket echo server on axum (HTTP/1.1 and h2c)

usage: axum_echo_server [--addr HOST:PORT] [--max-message-size BYTES] [--deflate]

  --addr HOST:PORT           where to listen (default 127.0.0.1:9001)
  --max-message-size BYTES   largest message accepted (default 16777216)
  --deflate                  accept permessage-deflate (RFC 7692) offers";

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = args::Args::parse(USAGE, &["addr", "max-message-size"], &["deflate"]);
    let mut config = Config::default();
    config.max_message_size = args.number("max-message-size", 16 << 20);
    if args.flag("deflate") {
        config.deflate = Some(wsproto::DeflateConfig::default());
    }
    let app = Router::new()
        .route("/", any(upgrade))
        .route("/{*path}", any(upgrade))
        .with_state(config);
    let listener = TcpListener::bind(args.get("addr", "127.0.0.1:9001")).await?;
    println!(
        "axum_echo_server listening on ws://{}",
        listener.local_addr()?
    );
    axum::serve(listener, app).await
}

async fn upgrade(State(config): State<Config>, ws: WebSocketUpgrade) -> Response {
    ws.config(config)
        .on_failed_upgrade(|e| eprintln!("upgrade failed: {e}"))
        .on_upgrade(|ws| async {
            if let Err(e) = echo(ws).await {
                eprintln!("connection ended: {e}");
            }
        })
}

async fn echo(mut ws: WebSocket) -> Result<(), wsproto::drivers::Error> {
    // The reply's header is queued and its payload written from the receive buffer itself.
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
