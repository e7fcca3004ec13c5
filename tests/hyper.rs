//! The hyper glue (`wsproto::drivers::hyper::Upgrade`) in a plain hyper service, served by
//! hyper-util's auto builder (HTTP/1.1 and h2c, extended CONNECT enabled): our client over an
//! HTTP/1.1 upgrade, hyper's HTTP/2 client over an RFC 8441 stream, and the core's 4xx for a
//! refused request; and `drivers::tokio::Shutdown` closing those WebSockets with 1001.
#[path = "common/h2c.rs"]
mod h2c;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::time::timeout;
use wsproto::drivers::Message;
use wsproto::drivers::hyper::Upgrade;
use wsproto::drivers::tokio::{Shutdown, WebSocketStream};
use wsproto::{Accept, ClientRequest, CloseCode, Config, DeflateConfig};

const LIMIT: Duration = Duration::from_secs(5);

/// Accepts with the first offered subprotocol and permessage-deflate, reports the HTTP
/// version in the first message, then echoes; each WebSocket is watched by `shutdown`.
async fn service(
    mut request: Request<Incoming>,
    shutdown: Shutdown,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let config = Config::default().deflate(Some(DeflateConfig::default()));
    let upgrade = match Upgrade::new(&mut request, config) {
        Ok(upgrade) => upgrade,
        Err(rejection) => return Ok(rejection.response().map(Full::from)),
    };
    let mut accept = Accept::new();
    if let Some(first) = upgrade.request().subprotocols().first() {
        accept = accept.subprotocol(first);
    }
    let request = upgrade.request().clone();
    let (response, pending) = upgrade.accept(accept).unwrap();
    tokio::spawn(async move {
        let version = pending.http_version();
        let mut ws = shutdown.watch(pending.await.unwrap(), request);
        let report = format!(
            "{version:?} deflate={}",
            ws.connection().is_deflate_negotiated()
        );
        ws.send_text(&report).await.unwrap();
        while let Ok(Some(Message::Text(text))) = ws.recv().await {
            ws.send_text(&text).await.unwrap();
        }
    });
    Ok(response.map(|()| Full::default()))
}

async fn serve() -> SocketAddr {
    serve_watched(Shutdown::new()).await
}

/// Serves `service` on HTTP/1.1 and h2c, its WebSockets watched by `shutdown`.
async fn serve_watched(shutdown: Shutdown) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let mut builder = auto::Builder::new(TokioExecutor::new());
                builder.http2().enable_connect_protocol();
                let _ = builder
                    .serve_connection_with_upgrades(
                        TokioIo::new(tcp),
                        hyper::service::service_fn(|r| service(r, shutdown.clone())),
                    )
                    .await;
            });
        }
    });
    addr
}

async fn next_text<S>(ws: &mut WebSocketStream<S>) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
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
async fn http1_upgrade_with_deflate_echoes() {
    let addr = serve().await;
    let request = ClientRequest::new(&format!("ws://{addr}/"))
        .unwrap()
        .subprotocol("chat")
        .unwrap();
    let config = Config::default().deflate(Some(DeflateConfig::default()));
    let mut ws = timeout(LIMIT, WebSocketStream::connect_with(request, config))
        .await
        .unwrap()
        .unwrap();
    assert!(ws.connection().is_deflate_negotiated());
    assert_eq!(ws.connection().subprotocol(), Some("chat"));
    assert_eq!(next_text(&mut ws).await, "HTTP/1.1 deflate=true");
    ws.send_text("hello over 1.1").await.unwrap();
    assert_eq!(next_text(&mut ws).await, "hello over 1.1");
}

#[tokio::test]
async fn rfc_8441_stream_echoes() {
    let addr = serve().await;
    let mut sender = h2c::connect(addr).await;
    let (head, ws) = h2c::open(&mut sender, addr, "/", &[]).await;
    assert_eq!(head.status, http::StatusCode::OK);
    // Our client offered no deflate: the server agreed none.
    assert_eq!(head.headers.get("sec-websocket-extensions"), None);
    let mut ws = ws.unwrap();
    assert_eq!(next_text(&mut ws).await, "HTTP/2.0 deflate=false");
    ws.send_text("hello over 2").await.unwrap();
    assert_eq!(next_text(&mut ws).await, "hello over 2");
}

#[tokio::test]
async fn rfc_8441_connect_without_protocol_is_refused_with_the_core_answer() {
    let addr = serve().await;
    let mut sender = h2c::connect(addr).await;
    // A GET over HTTP/2 is no extended CONNECT (RFC 8441 §4).
    let request = Request::get(format!("http://{addr}/"))
        .version(http::Version::HTTP_2)
        .header("sec-websocket-version", "13")
        .body(http_body_util::Empty::new())
        .unwrap();
    let response = timeout(LIMIT, sender.send_request(request))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), http::StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "CONNECT");
    assert_eq!(response.headers().get("connection"), None);
}

/// Expects the server's Close 1001 "going away"; `recv` answers it, then the stream ends.
async fn expect_going_away<S>(ws: &mut WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let close = timeout(LIMIT, ws.recv()).await.expect("the Close in time");
    assert_eq!(
        close.unwrap(),
        Some(Message::Close {
            code: CloseCode::GOING_AWAY,
            reason: "going away".into()
        })
    );
    assert_eq!(timeout(LIMIT, ws.recv()).await.unwrap().unwrap(), None);
}

/// Issue 16: `Shutdown::close_all` sends Close 1001 to WebSockets over HTTP/1.1 upgrades and
/// over RFC 8441 streams of one h2c connection, and returns once their handlers let go;
/// one watched after the shutdown started is closed at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_http1_and_h2_websockets_with_1001() {
    let shutdown = Shutdown::new();
    let addr = serve_watched(shutdown.clone()).await;
    let mut http1 = Vec::new();
    for _ in 0..3 {
        let mut ws = timeout(LIMIT, WebSocketStream::connect(&format!("ws://{addr}/")))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(next_text(&mut ws).await, "HTTP/1.1 deflate=false");
        http1.push(ws);
    }
    let mut sender = h2c::connect(addr).await;
    let mut h2 = Vec::new();
    for _ in 0..3 {
        let mut ws = h2c::open(&mut sender, addr, "/", &[]).await.1.unwrap();
        assert_eq!(next_text(&mut ws).await, "HTTP/2.0 deflate=false");
        h2.push(ws);
    }
    assert_eq!(shutdown.handle().connections(), 6);

    let started = Instant::now();
    let closing = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { shutdown.close_all(LIMIT).await }
    });
    for ws in &mut http1 {
        expect_going_away(ws).await;
    }
    for ws in &mut h2 {
        expect_going_away(ws).await;
    }
    assert_eq!(closing.await.unwrap(), 0, "every WebSocket let go");
    assert!(started.elapsed() < LIMIT);
    assert!(shutdown.handle().is_shutting_down());

    // A WebSocket that opens now (its upgrade was under way, say) is watched already shut.
    let mut late = timeout(LIMIT, WebSocketStream::connect(&format!("ws://{addr}/")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next_text(&mut late).await, "HTTP/1.1 deflate=false");
    expect_going_away(&mut late).await;
}

/// A peer that never answers the Close keeps its WebSocket open: `close_all` gives up at its
/// timeout and counts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_gives_up_on_a_silent_peer_at_its_timeout() {
    let shutdown = Shutdown::new();
    let addr = serve_watched(shutdown.clone()).await;
    let mut silent = timeout(LIMIT, WebSocketStream::connect(&format!("ws://{addr}/")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next_text(&mut silent).await, "HTTP/1.1 deflate=false");
    let wait = Duration::from_millis(300);
    let started = Instant::now();
    // The client does not read, so it never answers the Close.
    assert_eq!(shutdown.close_all(wait).await, 1);
    assert!(started.elapsed() >= wait);
    // The Close did go out; answered late, it still ends the handler.
    expect_going_away(&mut silent).await;
    assert_eq!(shutdown.close_all(LIMIT).await, 0);
}
