//! An HTTP/2 client over cleartext (prior knowledge) that opens WebSockets as RFC 8441
//! extended CONNECT streams, with hyper's client.
#![allow(dead_code, unreachable_pub)]

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper::client::conn::http2::SendRequest;
use hyper::ext::Protocol;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::time::Duration;
use wsproto::drivers::tokio::WebSocketStream;
use wsproto::{Config, Connection};

pub type H2WebSocket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// One h2c connection to `addr`, its driver running in a task.
pub async fn connect(addr: SocketAddr) -> SendRequest<Empty<Bytes>> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(connection);
    sender
}

/// Sends `CONNECT` with `:protocol = websocket` to `path` and returns the response head and,
/// for a 2xx, the stream as a client `WebSocketStream` (open from the start: RFC 8441 has no
/// key or accept exchange).
pub async fn open(
    sender: &mut SendRequest<Empty<Bytes>>,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (http::response::Parts, Option<H2WebSocket>) {
    // The server's SETTINGS (SETTINGS_ENABLE_CONNECT_PROTOCOL, RFC 8441 §3) may not have
    // arrived yet; hyper refuses extended CONNECT until they have.
    for _ in 0..200 {
        if sender.is_ready() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut builder = http::Request::connect(format!("http://{addr}{path}"))
        .version(http::Version::HTTP_2)
        .header("sec-websocket-version", "13")
        .extension(Protocol::from_static("websocket"));
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder.body(Empty::new()).unwrap();
    let mut response = tokio::time::timeout(Duration::from_secs(5), sender.send_request(request))
        .await
        .expect("the CONNECT is answered in time")
        .unwrap();
    if !response.status().is_success() {
        return (response.into_parts().0, None);
    }
    let upgraded = hyper::upgrade::on(&mut response).await.unwrap();
    let ws = WebSocketStream::from_connection(
        TokioIo::new(upgraded),
        Connection::upgraded_client(Config::default(), wsproto::os_entropy),
    );
    (response.into_parts().0, Some(ws))
}
