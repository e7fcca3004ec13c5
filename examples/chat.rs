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
#[path = "common/tls.rs"]
mod tls;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::broadcast;
use wsproto::drivers::tokio::{Server, ServerStream};
use wsproto::drivers::{Answer, HttpRequest, HttpResponse, Message};
use wsproto::{Accept, Config};

const USAGE: &str = "chat: a browser chat room over WebSocket (tokio)

usage: chat [--addr HOST:PORT] [--tls-cert PEM --tls-key PEM]

  --addr HOST:PORT   where to listen (default 127.0.0.1:8080); serves the page at / and
                     the WebSocket endpoint at /ws
  --tls-cert PEM     certificate chain (leaf first): serve https:// and wss://; needs --tls-key
  --tls-key PEM      the leaf's private key (PKCS#8, PKCS#1 or SEC1); needs --tls-cert";

/// Lines every client receives. A line starting with `* ` is a notice; any other line is
/// `guest-N: text`, so a guest cannot forge a notice.
type Line = Arc<str>;

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

/// One guest's task.
async fn guest<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    ws: ServerStream<S>,
    room: broadcast::Sender<Line>,
    guests: Arc<AtomicU64>,
) {
    if let Err(e) = join(ws, room, &guests).await {
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

/// Runs one guest until it leaves.
async fn join<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    ws: ServerStream<S>,
    room: broadcast::Sender<Line>,
    guests: &AtomicU64,
) -> Result<(), wsproto::drivers::Error> {
    let name = format!("guest-{}", guests.fetch_add(1, Ordering::Relaxed));
    // The reader sends the server's Close at shutdown and then sees the guest's answer.
    let (mut reader, writer) = ws.split();

    // Subscribe before announcing, so the guest sees its own "joined" line.
    let mut inbox = room.subscribe();
    writer.send_text(&format!("* you are {name}")).await?;
    let _ = room.send(format!("* {name} joined").into());
    let sender = tokio::spawn(async move {
        loop {
            let line: Line = match inbox.recv().await {
                Ok(line) => line,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    format!("* {n} lines skipped: this tab reads too slowly").into()
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if writer.send_text(&line).await.is_err() {
                return; // the reader sees the failure too and cleans up
            }
        }
    });

    let result = loop {
        match reader.recv().await {
            Ok(Some(Message::Text(text))) => {
                let text = text.trim();
                if !text.is_empty() {
                    let _ = room.send(format!("{name}: {text}").into());
                }
            }
            Ok(Some(_)) => {} // pings are answered by the connection; binary is ignored
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
    };
    sender.abort();
    let _ = room.send(format!("* {name} left").into());
    result
}

/// The whole client: no external assets; text goes into the page with `textContent` only.
const PAGE: &[u8] = br#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>wsproto chat</title>
<link rel="icon" href="data:,">
<style>
  :root { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color-scheme: light dark; }
  body { margin: 0; height: 100vh; display: flex; flex-direction: column; }
  header { display: flex; align-items: center; justify-content: space-between;
           padding: .6rem 1rem; border-bottom: 1px solid #8885; }
  h1 { margin: 0; font-size: 1.1rem; }
  #status { font-size: .8rem; padding: .15rem .6rem; border-radius: 1rem; background: #8884; }
  #status.connected { background: #1f8a4c; color: #fff; }
  #status.disconnected { background: #b3261e; color: #fff; }
  #messages { flex: 1; overflow-y: auto; list-style: none; margin: 0; padding: .5rem 1rem; }
  #messages li { padding: .2rem 0; overflow-wrap: anywhere; white-space: pre-wrap; }
  #messages li.notice { color: #888; font-style: italic; }
  #messages .who { font-weight: 600; margin-right: .4rem; }
  #send-form { display: flex; gap: .5rem; padding: .6rem 1rem; border-top: 1px solid #8885; }
  #message { flex: 1; font: inherit; padding: .4rem .6rem; }
  button { font: inherit; padding: .4rem 1rem; }
</style>
</head>
<body>
<header><h1>wsproto chat</h1><span id="status">connecting</span></header>
<ul id="messages"></ul>
<form id="send-form" autocomplete="off">
  <input id="message" placeholder="Type a message and press Enter" maxlength="2000" autofocus>
  <button type="submit">Send</button>
</form>
<script>
"use strict";
(() => {
  const statusBox = document.getElementById("status");
  const list = document.getElementById("messages");
  const form = document.getElementById("send-form");
  const input = document.getElementById("message");
  let socket = null;

  function setStatus(text) {
    statusBox.textContent = text;
    statusBox.className = text;
  }

  // "* text" is a notice from the server; anything else is "guest-N: text".
  function show(line) {
    const item = document.createElement("li");
    const colon = line.indexOf(": ");
    if (line.startsWith("* ")) {
      item.className = "notice";
      item.textContent = line.slice(2);
    } else if (colon > 0) {
      const who = document.createElement("span");
      who.className = "who";
      who.textContent = line.slice(0, colon);
      item.append(who, line.slice(colon + 2));
    } else {
      item.textContent = line;
    }
    const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 8;
    list.append(item);
    if (atBottom) list.scrollTop = list.scrollHeight;
  }

  function connect() {
    setStatus("connecting");
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + "/ws");
    socket.onopen = () => setStatus("connected");
    socket.onmessage = (event) => {
      if (typeof event.data === "string") show(event.data);
    };
    socket.onclose = (event) => {
      setStatus("disconnected");
      show("* disconnected (code " + event.code + "), reconnecting in 2 s");
      setTimeout(connect, 2000);
    };
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (text && socket && socket.readyState === WebSocket.OPEN) {
      socket.send(text);
      input.value = "";
    }
    input.focus();
  });

  connect();
})();
</script>
</body>
</html>
"#;
