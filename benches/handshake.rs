//! The server's opening handshake (RFC 6455 §4.2): parse a typical browser request and build
//! the 101 response, through each implementation's own server API.
//!
//! `cargo bench -p wsproto-benches --bench handshake`

mod common;

use common::{FASTWEBSOCKETS, MemSocket, OURS, SOCKUDO_WS, TOKIO_WEBSOCKETS, TUNGSTENITE};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use wsproto::{Accept, Config, Connection, Event};

/// What Chromium sends (the key is RFC 6455 §1.3's).
const REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\n\
Host: example.com:8000\r\n\
Connection: Upgrade\r\n\
Pragma: no-cache\r\n\
Cache-Control: no-cache\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36\r\n\
Upgrade: websocket\r\n\
Origin: http://example.com:8000\r\n\
Sec-WebSocket-Version: 13\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-US,en;q=0.9\r\n\
Cookie: session=0123456789abcdef0123456789abcdef\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
\r\n";

const ACCEPT_HEADER: &[u8] = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

fn wsproto(config: &Config) -> Connection {
    let mut conn = Connection::server(config.clone());
    conn.receive(REQUEST);
    match conn.next_event() {
        Ok(Some(Event::Request(_))) => {}
        other => panic!("expected the request, got {other:?}"),
    }
    conn.accept(Accept::new()).expect("a valid request");
    conn
}

fn tungstenite() -> tungstenite::WebSocket<MemSocket<'static>> {
    tungstenite::accept(MemSocket::new(REQUEST)).expect("a valid request")
}

fn tokio_websockets(
    rt: &tokio::runtime::Runtime,
    socket: MemSocket<'static>,
) -> tokio_websockets::WebSocketStream<MemSocket<'static>> {
    rt.block_on(async {
        let (_request, ws) = tokio_websockets::ServerBuilder::new()
            .accept(socket)
            .await
            .expect("a valid request");
        ws
    })
}

/// sockudo-ws's own HTTP/1.1 server handshake, then its stream over the socket with the
/// bytes read past the request.
fn sockudo_ws(
    rt: &tokio::runtime::Runtime,
    mut socket: MemSocket<'static>,
) -> sockudo_ws::WebSocketStream<MemSocket<'static>> {
    use sockudo_ws::{Config, Role, WebSocketStream, handshake};
    rt.block_on(async {
        let accepted = handshake::server_handshake(&mut socket)
            .await
            .expect("a valid request");
        WebSocketStream::from_raw_with_leftover(
            socket,
            Role::Server,
            Config::default(),
            accepted.leftover,
        )
    })
}

/// fastwebsockets answers the upgrade inside a hyper service: hyper parses the request and
/// writes the response, then hands the stream over. Returns the bytes written.
fn fastwebsockets(rt: &tokio::runtime::Runtime, mut socket: MemSocket<'static>) -> usize {
    use fastwebsockets::upgrade::{UpgradeFut, upgrade};
    use http_body_util::Empty;
    use hyper::body::{Bytes, Incoming};
    use hyper::{Request, Response};
    use hyper_util::rt::TokioIo;
    use std::sync::{Arc, Mutex};
    // hyper takes an EOF right after the request for a client that went away.
    socket.endless = true;
    rt.block_on(async {
        let pending: Arc<Mutex<Option<UpgradeFut>>> = Arc::default();
        let slot = Arc::clone(&pending);
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            let slot = Arc::clone(&slot);
            async move {
                let (response, fut) = upgrade(&mut req)?;
                *slot.lock().expect("not poisoned") = Some(fut);
                Ok::<Response<Empty<Bytes>>, fastwebsockets::WebSocketError>(response)
            }
        });
        hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(socket), service)
            .with_upgrades()
            .await
            .expect("a valid request");
        let fut = pending
            .lock()
            .expect("not poisoned")
            .take()
            .expect("upgraded");
        let ws = fut.await.expect("upgraded");
        let upgraded = ws.into_inner().into_inner();
        let parts = upgraded
            .downcast::<TokioIo<MemSocket<'static>>>()
            .map_err(|_| ())
            .expect("our socket");
        parts.io.into_inner().written
    })
}

fn bench_handshake(c: &mut Criterion) {
    let rt = common::runtime();
    let config = Config::default();

    // Each must answer 101 with the right accept key before being timed.
    let ours = wsproto(&config);
    let reply = ours.pending_output();
    assert!(reply.starts_with(b"HTTP/1.1 101"));
    assert!(
        reply
            .windows(ACCEPT_HEADER.len())
            .any(|w| w == ACCEPT_HEADER)
    );
    let ws = tungstenite::accept(MemSocket::capturing(REQUEST)).expect("a valid request");
    let reply = ws.get_ref().captured.as_deref().expect("captured");
    assert!(reply.starts_with(b"HTTP/1.1 101"), "{TUNGSTENITE}");
    assert!(
        reply
            .windows(ACCEPT_HEADER.len())
            .any(|w| w == ACCEPT_HEADER)
    );
    let ws = tokio_websockets(&rt, MemSocket::capturing(REQUEST));
    let reply = ws.get_ref().captured.as_deref().expect("captured");
    assert!(reply.starts_with(b"HTTP/1.1 101"), "{TOKIO_WEBSOCKETS}");
    assert!(
        reply
            .windows(ACCEPT_HEADER.len())
            .any(|w| w == ACCEPT_HEADER)
    );
    assert!(
        fastwebsockets(&rt, MemSocket::new(REQUEST)) > 100,
        "{FASTWEBSOCKETS}"
    );
    let ws = sockudo_ws(&rt, MemSocket::capturing(REQUEST));
    let reply = ws.get_ref().captured.as_deref().expect("captured");
    assert!(reply.starts_with(b"HTTP/1.1 101"), "{SOCKUDO_WS}");
    assert!(
        reply
            .windows(ACCEPT_HEADER.len())
            .any(|w| w == ACCEPT_HEADER)
    );

    let mut group = c.benchmark_group("handshake_server_browser_request");
    group.throughput(Throughput::Bytes(REQUEST.len() as u64));
    group.bench_function(OURS, |b| {
        b.iter(|| {
            let conn = wsproto(&config);
            black_box(conn.pending_output().len())
        })
    });
    group.bench_function(TUNGSTENITE, |b| b.iter(|| black_box(tungstenite())));
    group.bench_function(FASTWEBSOCKETS, |b| {
        b.iter(|| fastwebsockets(&rt, MemSocket::new(REQUEST)))
    });
    group.bench_function(TOKIO_WEBSOCKETS, |b| {
        b.iter(|| black_box(tokio_websockets(&rt, MemSocket::new(REQUEST))))
    });
    group.bench_function(SOCKUDO_WS, |b| {
        b.iter(|| black_box(sockudo_ws(&rt, MemSocket::new(REQUEST))))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = bench_handshake
}
criterion_main!(benches);
