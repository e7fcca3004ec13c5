//! A browser chat room: one port serves the page at `/` and the WebSocket endpoint at `/ws`.
//!
//! `cargo run --release --example chat`, then open <http://127.0.0.1:8080/> in two tabs.
//!
//! It runs on `Server`, which reads each request head and hands plain HTTP requests to
//! `route` (the page, or a 404) and upgrade requests to the WebSocket handshake (`/ws` only).
//! Each client gets a reader (this task) and a writer fed by a broadcast channel; a client
//! that goes away is dropped on the first error or at the end of its closing handshake, and
//! the others see "guest-N left". SIGINT or SIGTERM closes every guest with 1001, then exits.
//!
//! With `--tls-cert cert.pem --tls-key key.pem` the page is served over https:// and, as the
//! page builds its WebSocket URL from its own location, the chat runs over wss://.

#[path = "common/args.rs"]
mod args;
#[path = "common/chat_room.rs"]
mod chat_room;
#[path = "common/tls.rs"]
mod tls;

use chat_room::{Line, PAGE};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::broadcast;
use wsproto::drivers::tokio::{Server, ServerStream};
use wsproto::drivers::{Answer, HttpRequest, HttpResponse};
use wsproto::{Accept, Config};

const USAGE: &str = "chat: a browser chat room over WebSocket (tokio)

usage: chat [--addr HOST:PORT] [--tls-cert PEM --tls-key PEM]

  --addr HOST:PORT   where to listen (default 127.0.0.1:8080); serves the page at / and
                     the WebSocket endpoint at /ws
  --tls-cert PEM     certificate chain (leaf first): serve https:// and wss://; needs --tls-key
  --tls-key PEM      the leaf's private key (PKCS#8, PKCS#1 or SEC1); needs --tls-cert";

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = args::Args::parse(USAGE, &["addr", tls::OPTIONS[0], tls::OPTIONS[1]], &[]);
    let tls = tls::server_config(&args).map(tokio_rustls::TlsAcceptor::from);
    let mut config = Config::default();
    config.max_message_size = 64 << 10; // chat lines are short
    // Browsers offer permessage-deflate; chat text compresses well.
    config.deflate = Some(wsproto::DeflateConfig::default());
    let server = Server::bind(args.get("addr", "127.0.0.1:8080"))
        .await?
        .config(config)
        .http(route)
        // The WebSocket endpoint is /ws only.
        .decide(|request| match request.path() {
            "/ws" => Answer::Accept(Accept::new()),
            _ => Answer::Reject {
                status: 404,
                headers: Vec::new(),
                body: b"not found\n".to_vec(),
            },
        })
        // SIGINT and SIGTERM: Close 1001 to every guest, then exit.
        .shutdown_on_signals()
        // A failed TLS handshake (a browser that does not trust the certificate, say) or
        // WebSocket handshake ends that connection only.
        .on_error(|e| eprintln!("chat: connection ended: {e}"));
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!(
        "chat: open {scheme}://{}/ in two browser tabs",
        server.local_addr()?
    );
    let (room, _) = broadcast::channel::<Line>(256);
    let guests = Arc::new(AtomicU64::new(1));
    match tls {
        None => {
            server
                .serve(move |ws| guest(ws, room.clone(), Arc::clone(&guests)))
                .await
        }
        Some(tls) => {
            server
                .serve_with(
                    move |tcp| tls.accept(tcp),
                    move |ws| guest(ws, room.clone(), Arc::clone(&guests)),
                )
                .await
        }
    }
}

/// One guest's task. Its reader is `Server`'s, which sends the server's Close at shutdown
/// and then sees the guest's answer.
async fn guest<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    ws: ServerStream<S>,
    room: broadcast::Sender<Line>,
    guests: Arc<AtomicU64>,
) {
    let (reader, writer) = ws.split();
    if let Err(e) = chat_room::run_guest(reader, writer, room, &guests, "").await {
        eprintln!("chat: connection ended: {e}");
    }
}

/// Plain HTTP: the page at `/`, a 404 elsewhere; `/ws` goes to the WebSocket handshake,
/// which checks everything else about the upgrade request and answers it.
fn route(request: &HttpRequest) -> Option<HttpResponse> {
    let response = match (request.method(), request.path()) {
        (_, "/ws") => return None,
        ("GET", "/") => {
            HttpResponse::new(200, PAGE).header("Content-Type", "text/html; charset=utf-8")
        }
        _ => HttpResponse::new(404, "not found\n").header("Content-Type", "text/plain"),
    };
    Some(
        response
            .header("Cache-Control", "no-store")
            .header("X-Content-Type-Options", "nosniff"),
    )
}
