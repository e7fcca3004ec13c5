//! A browser chat room: one port serves the page at `/` and the WebSocket endpoint at `/ws`.
//!
//! `cargo run --release --example chat`, then open <http://127.0.0.1:8080/> in two tabs.
//!
//! The example routes plain HTTP itself: it reads the request head from the socket, serves the
//! page (or a 404), and for `/ws` hands the bytes it already read to a server [`Connection`],
//! which checks the upgrade request and answers it. Each client gets a reader (this task)
//! and a writer fed by a broadcast channel; a client that goes away is dropped on the first
//! error or at the end of its closing handshake, and the others see "guest-N left".
//!
//! With `--tls-cert cert.pem --tls-key key.pem` the page is served over https:// and, as the
//! page builds its WebSocket URL from its own location, the chat runs over wss://.

#[path = "common/args.rs"]
mod args;
#[path = "common/chat_room.rs"]
mod chat_room;
#[path = "common/tls.rs"]
mod tls;

use chat_room::Line;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use wsproto::drivers::Answer;
use wsproto::drivers::tokio::WebSocketStream;
use wsproto::{Accept, Config, Connection};

const USAGE: &str = "chat: a browser chat room over WebSocket (tokio)

usage: chat [--addr HOST:PORT] [--tls-cert PEM --tls-key PEM]

  --addr HOST:PORT   where to listen (default 127.0.0.1:8080); serves the page at / and
                     the WebSocket endpoint at /ws
  --tls-cert PEM     certificate chain (leaf first): serve https:// and wss://; needs --tls-key
  --tls-key PEM      the leaf's private key (PKCS#8, PKCS#1 or SEC1); needs --tls-cert";

/// The largest request head read before routing (the core has the same default limit).
const MAX_HEAD: usize = 16 << 10;

/// How long a browser has to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = args::Args::parse(USAGE, &["addr", tls::OPTIONS[0], tls::OPTIONS[1]], &[]);
    let tls = tls::server_config(&args).map(tokio_rustls::TlsAcceptor::from);
    let listener = TcpListener::bind(args.get("addr", "127.0.0.1:8080")).await?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!(
        "chat: open {scheme}://{}/ in two browser tabs",
        listener.local_addr()?
    );
    let (room, _) = broadcast::channel::<Line>(256);
    let guests = Arc::new(AtomicU64::new(1));
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let room = room.clone();
        let guests = Arc::clone(&guests);
        let tls = tls.clone();
        tokio::spawn(async move {
            let result = match tls {
                None => route(stream, room, guests).await,
                // A failed TLS handshake (a browser that does not trust the certificate, say)
                // ends this connection only.
                Some(tls) => {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
                        Ok(Ok(stream)) => route(stream, room, guests).await,
                        Ok(Err(e)) => Err(format!("TLS handshake failed: {e}").into()),
                        Err(_) => Err("TLS handshake timed out".into()),
                    }
                }
            };
            if let Err(e) = result {
                eprintln!("chat: connection ended: {e}");
            }
        });
    }
}

/// Reads the request head and serves the page, a 404, or the WebSocket endpoint.
async fn route<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    mut stream: S,
    room: broadcast::Sender<Line>,
    guests: Arc<AtomicU64>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let Some(received) = tokio::time::timeout(Duration::from_secs(10), read_head(&mut stream))
        .await
        .map_err(|_| "no request head within 10 s")??
    else {
        return respond(
            &mut stream,
            "431 Request Header Fields Too Large",
            "text/plain",
            b"",
        )
        .await;
    };
    let request_line = received.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = std::str::from_utf8(request_line)?.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        // The core checks everything else about the upgrade request and answers it.
        (_, "/ws") => join(stream, &received, room, &guests).await?,
        ("GET", "/") => {
            respond(
                &mut stream,
                "200 OK",
                "text/html; charset=utf-8",
                chat_room::PAGE,
            )
            .await?
        }
        _ => respond(&mut stream, "404 Not Found", "text/plain", b"not found\n").await?,
    }
    Ok(())
}

/// Reads until the blank line that ends an HTTP head; returns every byte read (frames may
/// follow the head), or `None` when the head is too large.
async fn read_head(stream: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Option<Vec<u8>>> {
    let mut received = Vec::with_capacity(1024);
    let mut chunk = [0; 2048];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let scan_from = received.len().saturating_sub(3);
        received.extend_from_slice(&chunk[..n]);
        if received[scan_from..].windows(4).any(|w| w == b"\r\n\r\n") {
            return Ok(Some(received));
        }
        if received.len() >= MAX_HEAD {
            return Ok(None);
        }
    }
}

/// A plain HTTP/1.1 response; the connection closes after it.
async fn respond(
    stream: &mut (impl AsyncWrite + Unpin),
    status: &str,
    content_type: &str,
    body: &[u8],
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.shutdown().await?;
    Ok(())
}

/// Upgrades the connection and runs one guest until it leaves.
async fn join<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    stream: S,
    received: &[u8],
    room: broadcast::Sender<Line>,
    guests: &AtomicU64,
) -> Result<(), wsproto::drivers::Error> {
    let mut config = Config::default();
    config.max_message_size = 64 << 10; // chat lines are short
    // Browsers offer permessage-deflate; chat text compresses well.
    config.deflate = Some(wsproto::DeflateConfig::default());
    let mut conn = Connection::server(config);
    conn.receive(received);
    let ws = WebSocketStream::from_connection(stream, conn)
        .finish_accept(|_| Answer::Accept(Accept::new()))
        .await?;
    chat_room::run_guest(ws, room, guests, "").await
}
