//! The browser chat room of `examples/chat.rs` on axum: the page at `/`, the WebSocket
//! endpoint at `/ws` (registered with `any`, so HTTP/1.1 upgrades and HTTP/2 extended CONNECT
//! streams both reach it), permessage-deflate accepted. Each guest's welcome line says which
//! HTTP version its WebSocket runs over.
//!
//! `cargo run --release --example axum_chat`, then open <http://127.0.0.1:8080/> in two tabs.
//!
//! With `--tls-cert cert.pem --tls-key key.pem` it serves https:// with ALPN `h2` and
//! `http/1.1` (axum's router on hyper-util's connection, `common/http2_server.rs`, since
//! `axum::serve` has no TLS): a browser then loads the page over HTTP/2 and opens its
//! WebSocket as an RFC 8441 stream on the same connection, and the welcome line says
//! `over HTTP/2.0`.
//!
//! SIGINT or SIGTERM closes every guest's WebSocket with 1001 "going away" before exiting
//! (`drivers::tokio::Shutdown`).

#[path = "common/args.rs"]
mod args;
#[path = "common/chat_room.rs"]
mod chat_room;
#[path = "common/http2_server.rs"]
mod http2_server;
#[path = "common/shutdown.rs"]
mod shutdown;
#[path = "common/tls.rs"]
mod tls;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use tokio::net::TcpListener;
use wsproto::Config;
use wsproto::drivers::axum::WebSocketUpgrade;
use wsproto::drivers::tokio::Shutdown;

const USAGE: &str = "axum_chat: a browser chat room over WebSocket (axum, HTTP/1.1 and HTTP/2)

usage: axum_chat [--addr HOST:PORT] [--tls-cert PEM --tls-key PEM]

  --addr HOST:PORT   where to listen (default 127.0.0.1:8080); serves the page at / and
                     the WebSocket endpoint at /ws (HTTP/1.1 and h2c)
  --tls-cert PEM     certificate chain (leaf first): serve https:// with ALPN h2 and
                     http/1.1; needs --tls-key
  --tls-key PEM      the leaf's private key (PKCS#8, PKCS#1 or SEC1); needs --tls-cert";

/// What every handler shares: the room, and the shutdown that closes its WebSockets.
#[derive(Clone)]
struct App {
    room: chat_room::Room,
    shutdown: Shutdown,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = args::Args::parse(USAGE, &["addr", tls::OPTIONS[0], tls::OPTIONS[1]], &[]);
    let tls = tls::server_config_h2(&args).map(tokio_rustls::TlsAcceptor::from);
    let state = App {
        room: chat_room::Room::local(),
        shutdown: Shutdown::new(),
    };
    let shutdown = state.shutdown.clone();
    let app = Router::new()
        .route("/", get(page))
        .route("/ws", any(join))
        .with_state(state);
    let listener = TcpListener::bind(args.get("addr", "127.0.0.1:8080")).await?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!(
        "axum_chat: open {scheme}://{}/ in two browser tabs",
        listener.local_addr()?
    );
    match tls {
        None => shutdown::serve_axum(listener, app, &shutdown).await,
        Some(tls) => {
            let service = hyper_util::service::TowerToHyperService::new(app);
            http2_server::serve(listener, Some(tls), service, &shutdown).await
        }
    }
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

async fn join(State(app): State<App>, ws: WebSocketUpgrade) -> Response {
    let mut config = Config::default();
    config.max_message_size = 64 << 10; // chat lines are short
    let via = format!(" (over {:?})", ws.http_version());
    let request = ws.request().clone();
    // Browsers offer permessage-deflate; chat text compresses well.
    ws.config(config)
        .deflate(true)
        .on_upgrade(move |ws| async move {
            if let Err(e) = {
                let (reader, writer) = app.shutdown.watch(ws, request).split();
                chat_room::run_guest(reader, writer, &app.room, &via).await
            } {
                eprintln!("axum_chat: connection ended: {e}");
            }
        })
}
