//! The axum extractor (`wsproto::drivers::axum::WebSocketUpgrade`) behind `axum::serve` on
//! loopback: our client over HTTP/1.1 (echo, the chosen subprotocol, permessage-deflate, the
//! HTTP version the server reports), the core's exact 4xx for bad requests,
//! `on_failed_upgrade`, and an HTTP/2 extended CONNECT stream (RFC 8441) over h2c.
#[path = "common/h2c.rs"]
mod h2c;

use axum::Router;
use axum::response::Response;
use axum::routing::any;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;
use wsproto::drivers::Message;
use wsproto::drivers::axum::{WebSocket, WebSocketUpgrade};
use wsproto::drivers::tokio::WebSocketStream;
use wsproto::{ClientRequest, CloseCode, Config, DeflateConfig};

const LIMIT: Duration = Duration::from_secs(5);

/// Tells the client how the server sees the WebSocket, then echoes until the close.
async fn report_and_echo(mut ws: WebSocket, version: http::Version, protocol: Option<String>) {
    let report = format!(
        "{version:?} {} deflate={}",
        protocol.as_deref().unwrap_or("-"),
        ws.connection().is_deflate_negotiated()
    );
    if ws.send_text(&report).await.is_err() {
        return;
    }
    while let Ok(Some(message)) = ws.recv().await {
        let sent = match message {
            Message::Text(text) => ws.send_text(&text).await,
            Message::Binary(data) => ws.send_binary(&data).await,
            _ => Ok(()),
        };
        if sent.is_err() {
            return;
        }
    }
}

async fn echo(ws: WebSocketUpgrade) -> Response {
    let version = ws.http_version();
    let ws = ws.deflate(true).protocols(["superchat", "chat"]);
    let protocol = ws.selected_protocol().map(String::from);
    ws.on_upgrade(move |ws| report_and_echo(ws, version, protocol))
}

fn app() -> Router {
    Router::new().route("/echo", any(echo)).route(
        "/origin",
        any(|ws: WebSocketUpgrade| async move {
            let config = Config::default().allowed_origins(Some(vec!["https://ok.example".into()]));
            ws.config(config).on_upgrade(|_| async {})
        }),
    )
}

async fn serve(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn next_text(
    ws: &mut WebSocketStream<impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>,
) -> String {
    match timeout(LIMIT, ws.recv())
        .await
        .expect("a message in time")
        .unwrap()
    {
        Some(Message::Text(text)) => text,
        other => panic!("expected text, got {other:?}"),
    }
}

#[tokio::test]
async fn http1_echo_with_subprotocol_and_deflate() {
    let addr = serve(app()).await;
    let request = ClientRequest::new(&format!("ws://{addr}/echo"))
        .unwrap()
        .subprotocol("chat")
        .unwrap()
        .subprotocol("superchat")
        .unwrap();
    let config = Config::default().deflate(Some(DeflateConfig::default()));
    let mut ws = timeout(LIMIT, WebSocketStream::connect_with(request, config))
        .await
        .unwrap()
        .unwrap();
    assert!(ws.connection().is_deflate_negotiated());
    // The client's preference wins (RFC 6455 §4.1: offered in order of preference).
    assert_eq!(ws.connection().subprotocol(), Some("chat"));
    assert_eq!(next_text(&mut ws).await, "HTTP/1.1 chat deflate=true");
    ws.send_text("hello").await.unwrap();
    assert_eq!(next_text(&mut ws).await, "hello");
    let big = vec![7u8; 100_000];
    ws.send_binary(&big).await.unwrap();
    let echoed = timeout(LIMIT, ws.recv()).await.unwrap().unwrap();
    assert_eq!(echoed, Some(Message::Binary(big)));
    ws.close(CloseCode::NORMAL, "bye").await.unwrap();
    let closing = timeout(LIMIT, ws.recv()).await.unwrap().unwrap();
    assert_eq!(
        closing,
        Some(Message::Close {
            code: CloseCode::NORMAL,
            reason: "bye".into()
        })
    );
}

#[tokio::test]
async fn http1_without_offers_gets_no_subprotocol_and_no_deflate() {
    let addr = serve(app()).await;
    let mut ws = timeout(
        LIMIT,
        WebSocketStream::connect(&format!("ws://{addr}/echo")),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(!ws.connection().is_deflate_negotiated());
    assert_eq!(ws.connection().subprotocol(), None);
    assert_eq!(next_text(&mut ws).await, "HTTP/1.1 - deflate=false");
}

/// Sends raw request bytes and returns the status line, the headers but `date` (in order,
/// names lowercase) and the body, read to the end of the connection.
async fn raw_exchange(addr: SocketAddr, request: &str) -> (String, Vec<(String, String)>, String) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    timeout(LIMIT, tcp.read_to_end(&mut bytes))
        .await
        .expect("the server closes after its answer")
        .unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().to_string();
    let headers = lines
        .map(|line| {
            let (name, value) = line.split_once(": ").unwrap();
            (name.to_ascii_lowercase(), value.to_string())
        })
        .filter(|(name, _)| name != "date")
        .collect();
    (status, headers, body.to_string())
}

fn owned(headers: &[(&str, &str)]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(n, v)| ((*n).to_string(), (*v).to_string()))
        .collect()
}

const GOOD_REQUEST: &str = "GET /echo HTTP/1.1\r\n\
    Host: localhost\r\n\
    Upgrade: websocket\r\n\
    Connection: Upgrade\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

#[tokio::test]
async fn sec_4_2_1_missing_key_gets_the_core_400() {
    let addr = serve(app()).await;
    let request = GOOD_REQUEST.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "");
    let (status, headers, body) = raw_exchange(addr, &request).await;
    assert_eq!(status, "HTTP/1.1 400 Bad Request");
    assert_eq!(
        headers,
        owned(&[
            ("connection", "close"),
            ("content-type", "text/plain; charset=utf-8"),
            ("content-length", "33"),
        ])
    );
    assert_eq!(body, "missing Sec-WebSocket-Key header\n");
}

#[tokio::test]
async fn sec_4_2_1_wrong_version_gets_the_core_426() {
    let addr = serve(app()).await;
    let request = GOOD_REQUEST.replace("Version: 13", "Version: 8");
    let (status, headers, body) = raw_exchange(addr, &request).await;
    assert_eq!(status, "HTTP/1.1 426 Upgrade Required");
    assert_eq!(
        headers,
        owned(&[
            ("upgrade", "websocket"),
            ("sec-websocket-version", "13"),
            ("connection", "Upgrade, close"),
            ("content-type", "text/plain; charset=utf-8"),
            ("content-length", "47"),
        ])
    );
    assert_eq!(body, "unsupported Sec-WebSocket-Version: expected 13\n");
}

#[tokio::test]
async fn origin_refused_by_the_final_config_gets_the_core_403() {
    let addr = serve(app()).await;
    let request = GOOD_REQUEST.replace("/echo", "/origin").replace(
        "Host: localhost\r\n",
        "Host: localhost\r\nOrigin: https://evil.example\r\n",
    );
    let (status, headers, body) = raw_exchange(addr, &request).await;
    assert_eq!(status, "HTTP/1.1 403 Forbidden");
    assert_eq!(
        headers,
        owned(&[
            ("connection", "close"),
            ("content-type", "text/plain; charset=utf-8"),
            ("content-length", "19"),
        ])
    );
    assert_eq!(body, "origin not allowed\n");
}

/// hyper serving the router without `with_upgrades`: the 101 goes out, but the connection is
/// never handed over, so the upgrade fails after the response.
#[tokio::test]
async fn on_failed_upgrade_is_called_when_hyper_keeps_the_connection() {
    let (failed_tx, mut failed_rx) = mpsc::unbounded_channel();
    let app = Router::new().route(
        "/echo",
        any(move |ws: WebSocketUpgrade| {
            let failed_tx = failed_tx.clone();
            async move {
                ws.on_failed_upgrade(move |e| failed_tx.send(e.to_string()).unwrap())
                    .on_upgrade(|_| async { panic!("the upgrade cannot succeed") })
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let service = hyper_util::service::TowerToHyperService::new(app);
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
            .await;
    });
    let (status, _, _) = raw_exchange(addr, GOOD_REQUEST).await;
    assert_eq!(status, "HTTP/1.1 101 Switching Protocols");
    let error = timeout(LIMIT, failed_rx.recv()).await.unwrap().unwrap();
    assert_eq!(error, "io: upgrade expected but low level API in use");
}

#[tokio::test]
async fn rfc_8441_extended_connect_over_h2c() {
    let addr = serve(app()).await;
    let mut sender = h2c::connect(addr).await;
    let (head, ws) = h2c::open(
        &mut sender,
        addr,
        "/echo",
        &[("sec-websocket-protocol", "chat")],
    )
    .await;
    assert_eq!(head.status, http::StatusCode::OK);
    assert_eq!(head.version, http::Version::HTTP_2);
    assert_eq!(head.headers["sec-websocket-protocol"], "chat");
    assert_eq!(head.headers.get("sec-websocket-accept"), None);
    let mut ws = ws.unwrap();
    assert_eq!(next_text(&mut ws).await, "HTTP/2.0 chat deflate=false");
    for message in ["one", "two", "three"] {
        ws.send_text(message).await.unwrap();
        assert_eq!(next_text(&mut ws).await, message);
    }
    ws.send_binary(&[0, 1, 2, 255]).await.unwrap();
    let echoed = timeout(LIMIT, ws.recv()).await.unwrap().unwrap();
    assert_eq!(echoed, Some(Message::Binary(vec![0, 1, 2, 255])));
    // A second WebSocket on the same connection.
    let (_, second) = h2c::open(&mut sender, addr, "/echo", &[]).await;
    let mut second = second.unwrap();
    assert_eq!(next_text(&mut second).await, "HTTP/2.0 - deflate=false");
    second.send_text("again").await.unwrap();
    assert_eq!(next_text(&mut second).await, "again");
    ws.send_text("first still works").await.unwrap();
    assert_eq!(next_text(&mut ws).await, "first still works");
}

#[tokio::test]
async fn rfc_8441_bad_version_over_h2c_gets_the_core_426_without_connection_headers() {
    let addr = serve(app()).await;
    let mut sender = h2c::connect(addr).await;
    let (head, ws) = h2c::open(
        &mut sender,
        addr,
        "/echo",
        &[("sec-websocket-version", "8")],
    )
    .await;
    assert!(ws.is_none());
    assert_eq!(head.status, http::StatusCode::UPGRADE_REQUIRED);
    assert_eq!(head.headers.get("connection"), None);
    assert_eq!(head.headers.get("upgrade"), None);
    assert_eq!(head.headers["sec-websocket-version"], "13");
}
