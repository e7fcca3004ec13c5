//! The browser chat room of `examples/chat.rs` on axum: the page at `/`, the WebSocket
//! endpoint at `/ws` (registered with `any`, so HTTP/1.1 upgrades and HTTP/2 extended CONNECT
//! streams both reach it), permessage-deflate accepted. Each guest's welcome line says which
//! HTTP version its WebSocket runs over.
//!
//! `cargo run --release --example axum_chat`, then open <http://127.0.0.1:8080/> in two tabs.

#[path = "common/args.rs"]
mod args;
#[path = "common/chat_room.rs"]
mod chat_room;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use chat_room::Line;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use wsproto::Config;
use wsproto::drivers::axum::WebSocketUpgrade;

const USAGE: &str = "axum_chat: a browser chat room over WebSocket (axum, HTTP/1.1 and h2c)

usage: axum_chat [--addr HOST:PORT]

  --addr HOST:PORT   where to listen (default 127.0.0.1:8080); serves the page at / and
                     the WebSocket endpoint at /ws";

#[derive(Clone)]
struct Room {
    lines: broadcast::Sender<Line>,
    guests: Arc<AtomicU64>,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = args::Args::parse(USAGE, &["addr"], &[]);
    let room = Room {
        lines: broadcast::channel(256).0,
        guests: Arc::new(AtomicU64::new(1)),
    };
    let app = Router::new()
        .route("/", get(page))
        .route("/ws", any(join))
        .with_state(room);
    let listener = TcpListener::bind(args.get("addr", "127.0.0.1:8080")).await?;
    println!(
        "axum_chat: open http://{}/ in two browser tabs",
        listener.local_addr()?
    );
    axum::serve(listener, app).await
}

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        chat_room::PAGE,
    )
        .into_response()
}

async fn join(State(room): State<Room>, ws: WebSocketUpgrade) -> Response {
    let mut config = Config::default();
    config.max_message_size = 64 << 10; // chat lines are short
    let via = format!(" (over {:?})", ws.http_version());
    // Browsers offer permessage-deflate; chat text compresses well.
    ws.config(config)
        .deflate(true)
        .on_upgrade(move |ws| async move {
            if let Err(e) = {
                let (reader, writer) = ws.split();
                chat_room::run_guest(reader, writer, room.lines, &room.guests, &via).await
            } {
                eprintln!("axum_chat: connection ended: {e}");
            }
        })
}
