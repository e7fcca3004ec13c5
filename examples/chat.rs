//! A browser chat room: one port serves the page at `/` and the WebSocket endpoint at `/ws`.
//!
//! `cargo run --release --example chat`, then open <http://127.0.0.1:8080/> in two tabs.
//!
//! It runs on `Server`, which reads each request head and hands plain HTTP requests to
//! `route` (the page, or a 404) and upgrade requests to the WebSocket handshake (`/ws` only).
//! Each client gets a reader (this task) and a writer fed by the room, a `Hub` topic: each
//! line is framed once for every guest. A client that goes away is dropped on the first
//! error or at the end of its closing handshake, and the others see "guest-N left". SIGINT
//! or SIGTERM closes every guest with 1001, then exits.
//!
//! With `--tls-cert cert.pem --tls-key key.pem` the page is served over https:// and, as the
//! page builds its WebSocket URL from its own location, the chat runs over wss://.
//!
//! Several chat processes share one room through Redis pub/sub (`RedisRelay`, the `redis`
//! feature): start each with the same `--redis` URL, and a line typed on one reaches the
//! guests of all.
//!
//! ```sh
//! cargo run --release --features redis --example chat -- --addr 127.0.0.1:8080 --redis redis://127.0.0.1:6379
//! cargo run --release --features redis --example chat -- --addr 127.0.0.1:8081 --redis redis://127.0.0.1:6379
//! ```

#[path = "common/args.rs"]
mod args;
#[path = "common/chat_room.rs"]
mod chat_room;
#[path = "common/tls.rs"]
mod tls;

use chat_room::{PAGE, Room};
use tokio::io::{AsyncRead, AsyncWrite};
use wsproto::drivers::tokio::{Server, ServerStream};
use wsproto::drivers::{Answer, HttpRequest, HttpResponse};
use wsproto::{Accept, Config};

const USAGE: &str = "chat: a browser chat room over WebSocket (tokio)

usage: chat [--addr HOST:PORT] [--tls-cert PEM --tls-key PEM] [--redis URL]

  --addr HOST:PORT   where to listen (default 127.0.0.1:8080); serves the page at / and
                     the WebSocket endpoint at /ws
  --tls-cert PEM     certificate chain (leaf first): serve https:// and wss://; needs --tls-key
  --tls-key PEM      the leaf's private key (PKCS#8, PKCS#1 or SEC1); needs --tls-cert
  --redis URL        share the room with every chat process given the same Redis server
                     (redis://HOST:PORT); needs the `redis` feature:
                     cargo run --release --features redis --example chat -- --redis URL";

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = args::Args::parse(
        USAGE,
        &["addr", tls::OPTIONS[0], tls::OPTIONS[1], "redis"],
        &[],
    );
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
    let addr = server.local_addr()?;
    let room = match args.flag("redis") {
        false => Room::local(),
        true => join_redis(&args.get("redis", ""), addr.port()).await,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("chat: open {scheme}://{addr}/ in two browser tabs");
    let served = {
        let room = room.clone();
        match tls {
            None => server.serve(move |ws| guest(ws, room.clone())).await,
            Some(tls) => {
                server
                    .serve_with(
                        move |tcp| tls.accept(tcp),
                        move |ws| guest(ws, room.clone()),
                    )
                    .await
            }
        }
    };
    // After a shutdown by signal: what went through Redis, if the room was shared.
    if let Some(report) = room.relay_report() {
        println!("chat: {report}");
    }
    served
}

/// The room shared through Redis at `url`; guests are named `guest-N@<port>`. Exits when
/// Redis cannot be reached.
#[cfg(feature = "redis")]
async fn join_redis(url: &str, port: u16) -> Room {
    match Room::over_redis(url, &port.to_string()).await {
        Ok(room) => {
            println!("chat: sharing the room through {url}");
            room
        }
        Err(e) => {
            eprintln!("chat: {e}");
            std::process::exit(1)
        }
    }
}

#[cfg(not(feature = "redis"))]
async fn join_redis(_url: &str, _port: u16) -> Room {
    eprintln!(
        "chat: --redis needs the redis feature: \
         cargo run --release --features redis --example chat -- --redis URL"
    );
    std::process::exit(2)
}

/// One guest's task. Its reader is `Server`'s, which sends the server's Close at shutdown
/// and then sees the guest's answer.
async fn guest<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    ws: ServerStream<S>,
    room: Room,
) {
    let (reader, writer) = ws.split();
    if let Err(e) = chat_room::run_guest(reader, writer, &room, "").await {
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
