//! Echo servers built on the peers, for the end-to-end comparison with `echo_server`
//! (`benches/e2e.sh`): same runtime (`#[tokio::main]`, one task per connection), `TCP_NODELAY`,
//! a 16 MiB message limit, text and binary messages echoed with their type.
//!
//! `cargo run --release -p wsproto-benches --example peer_echo_servers -- --peer tokio-websockets`

#[path = "../../examples/common/args.rs"]
mod args;

use futures_util::{SinkExt as _, StreamExt as _};
use std::error::Error;
use tokio::net::{TcpListener, TcpStream};

const USAGE: &str = "peer_echo_servers: a WebSocket echo server on one of the peers

usage: peer_echo_servers --peer NAME [--addr HOST:PORT]

  --peer NAME        tungstenite (through tokio-tungstenite), fastwebsockets (through hyper's
                     upgrade, as its documentation shows), tokio-websockets or sockudo-ws
  --addr HOST:PORT   where to listen (default 127.0.0.1:9002)";

const MAX_MESSAGE: usize = 16 << 20;

type BoxError = Box<dyn Error + Send + Sync>;

#[derive(Clone, Copy)]
enum Peer {
    Tungstenite,
    Fastwebsockets,
    TokioWebsockets,
    Sockudo,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = args::Args::parse(USAGE, &["peer", "addr"], &[]);
    let name = args.get("peer", "");
    let peer = match name.as_str() {
        "tungstenite" => Peer::Tungstenite,
        "fastwebsockets" => Peer::Fastwebsockets,
        "tokio-websockets" => Peer::TokioWebsockets,
        "sockudo-ws" => Peer::Sockudo,
        _ => {
            eprintln!("peer_echo_servers: unknown --peer {name:?}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    let listener = TcpListener::bind(args.get("addr", "127.0.0.1:9002")).await?;
    println!(
        "peer_echo_servers ({name}) listening on ws://{}",
        listener.local_addr()?
    );
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let result = match peer {
                Peer::Tungstenite => tungstenite(stream).await,
                Peer::Fastwebsockets => fastwebsockets(stream).await,
                Peer::TokioWebsockets => tokio_websockets(stream).await,
                Peer::Sockudo => sockudo_ws(stream).await,
            };
            if let Err(e) = result {
                eprintln!("connection ended: {e}");
            }
        });
    }
}

async fn tungstenite(stream: TcpStream) -> Result<(), BoxError> {
    use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let mut ws = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await?;
    while let Some(message) = ws.next().await {
        let message = message?;
        if message.is_text() || message.is_binary() {
            ws.send(message).await?;
        }
    }
    Ok(())
}

async fn tokio_websockets(stream: TcpStream) -> Result<(), BoxError> {
    use tokio_websockets::{Limits, ServerBuilder};
    let (_request, mut ws) = ServerBuilder::new()
        .limits(Limits::default().max_payload_len(Some(MAX_MESSAGE)))
        .accept(stream)
        .await?;
    while let Some(message) = ws.next().await {
        let message = message?;
        if message.is_text() || message.is_binary() {
            ws.send(message).await?;
        }
    }
    Ok(())
}

async fn sockudo_ws(mut stream: TcpStream) -> Result<(), BoxError> {
    use sockudo_ws::{Config, Role, WebSocketStream, handshake};
    // Its keepalive and idle timeout off, as the other servers run none.
    let config = Config::builder()
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .idle_timeout(0)
        .auto_ping(false)
        .build();
    // Its HTTP/1.1 server handshake; frame bytes read with the request are handed on.
    let accepted = handshake::server_handshake(&mut stream).await?;
    let mut ws =
        WebSocketStream::from_raw_with_leftover(stream, Role::Server, config, accepted.leftover);
    while let Some(message) = ws.next().await {
        let message = message?;
        if matches!(
            message,
            sockudo_ws::Message::Text(_) | sockudo_ws::Message::Binary(_)
        ) {
            ws.send(message).await?;
        }
    }
    Ok(())
}

async fn fastwebsockets(stream: TcpStream) -> Result<(), BoxError> {
    use fastwebsockets::upgrade;
    use http_body_util::Empty;
    use hyper::body::{Bytes, Incoming};
    use hyper::{Request, Response};

    async fn echo(upgrade: upgrade::UpgradeFut) -> Result<(), fastwebsockets::WebSocketError> {
        let mut ws = upgrade.await?;
        ws.set_max_message_size(MAX_MESSAGE);
        let mut ws = fastwebsockets::FragmentCollector::new(ws);
        loop {
            let frame = ws.read_frame().await?;
            match frame.opcode {
                fastwebsockets::OpCode::Close => return Ok(()),
                fastwebsockets::OpCode::Text | fastwebsockets::OpCode::Binary => {
                    ws.write_frame(frame).await?;
                }
                _ => {}
            }
        }
    }

    let service = hyper::service::service_fn(|mut request: Request<Incoming>| async move {
        let (response, upgrade) = upgrade::upgrade(&mut request)?;
        tokio::spawn(async move {
            if let Err(e) = echo(upgrade).await {
                eprintln!("connection ended: {e}");
            }
        });
        Ok::<Response<Empty<Bytes>>, fastwebsockets::WebSocketError>(response)
    });
    hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
        .with_upgrades()
        .await?;
    Ok(())
}
