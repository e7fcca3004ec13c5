//! An echo server on axum: every text and binary message comes back with the same type, over
//! an HTTP/1.1 upgrade or an HTTP/2 extended CONNECT stream (RFC 8441, h2c). The WebSocket
//! endpoint is every path, registered with `any` so that `GET` upgrades and `CONNECT` streams
//! both reach it.
//!
//! `cargo run --release --example axum_echo_server -- --addr 127.0.0.1:9001 --deflate`
//!
//! `axum::serve` serves HTTP/1.1 and HTTP/2 with prior knowledge on the same port and
//! enables extended CONNECT. Autobahn runs against it in `.ci/autobahn`. SIGINT or SIGTERM
//! closes every WebSocket with 1001 "going away" before exiting (`drivers::tokio::Shutdown`).

#[path = "common/args.rs"]
mod args;
#[path = "common/shutdown.rs"]
mod shutdown;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::any;
use tokio::net::TcpListener;
use wsproto::Config;
use wsproto::drivers::axum::WebSocketUpgrade;
use wsproto::drivers::hyper::UpgradedStream;
use wsproto::drivers::tokio::{ServerStream, Shutdown};

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
    let shutdown = Shutdown::new();
    let app = Router::new()
        .route("/", any(upgrade))
        .route("/{*path}", any(upgrade))
        .with_state((config, shutdown.clone()));
    let listener = TcpListener::bind(args.get("addr", "127.0.0.1:9001")).await?;
    println!(
        "axum_echo_server listening on ws://{}",
        listener.local_addr()?
    );
    shutdown::serve_axum(listener, app, &shutdown).await
}

async fn upgrade(
    State((config, shutdown)): State<(Config, Shutdown)>,
    ws: WebSocketUpgrade,
) -> Response {
    let request = ws.request().clone();
    ws.config(config)
        .on_failed_upgrade(|e| eprintln!("upgrade failed: {e}"))
        .on_upgrade(move |ws| async move {
            if let Err(e) = echo(shutdown.watch(ws, request)).await {
                eprintln!("connection ended: {e}");
            }
        })
}

async fn echo(mut ws: ServerStream<UpgradedStream>) -> Result<(), wsproto::drivers::Error> {
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
