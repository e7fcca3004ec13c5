//! An echo server on tokio: every text and binary message comes back with the same type.
//!
//! `cargo run --release --example echo_server -- --addr 127.0.0.1:9001`

#[path = "common/args.rs"]
mod args;

use std::sync::Arc;
use tokio::net::TcpListener;
use wsproto::Config;
use wsproto::drivers::tokio::WebSocketStream;

const USAGE: &str = "echo_server: a WebSocket echo server (tokio, one task per connection)

usage: echo_server [--addr HOST:PORT] [--max-message-size BYTES] [--deflate]

  --addr HOST:PORT           where to listen (default 127.0.0.1:9001)
  --max-message-size BYTES   largest message accepted (default 16777216)
  --deflate                  accept permessage-deflate (RFC 7692) offers";

/// An owned copy of what to send back.
/// The reused payload buffer is dropped after a message larger than this, so one large
/// message does not pin its size for the life of the connection.
const KEEP_PAYLOAD_CAPACITY: usize = 256 << 10;

/// What to send back; the payload itself waits in a buffer reused for every message.
enum Echo {
    Text,
    Binary,
    Nothing,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = args::Args::parse(USAGE, &["addr", "max-message-size"], &["deflate"]);
    let mut config = Config::default();
    config.max_message_size = args.number("max-message-size", 16 << 20);
    if args.flag("deflate") {
        config.deflate = Some(wsproto::DeflateConfig::default());
    }
    let config = Arc::new(config);
    let listener = TcpListener::bind(args.get("addr", "127.0.0.1:9001")).await?;
    println!("echo_server listening on ws://{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let config = Arc::clone(&config);
        tokio::spawn(async move {
            if let Err(e) = echo(stream, &config).await {
                eprintln!("connection ended: {e}");
            }
        });
    }
}

async fn echo(
    stream: tokio::net::TcpStream,
    config: &Config,
) -> Result<(), wsproto::drivers::Error> {
    let mut ws = WebSocketStream::accept(stream, config.clone()).await?;
    // The event lends the payload from the connection's buffer, which sending needs too:
    // copy it out once, into memory kept from one message to the next.
    let mut payload = Vec::new();
    loop {
        let echo = ws
            .recv_with(|event| {
                let (echo, bytes) = match event {
                    wsproto::Event::Text(text) => (Echo::Text, text.as_bytes()),
                    wsproto::Event::Binary(data) => (Echo::Binary, data),
                    _ => return Echo::Nothing,
                };
                payload.clear();
                payload.extend_from_slice(bytes);
                echo
            })
            .await?;
        match echo {
            None => return Ok(()),
            Some(Echo::Text) => {
                let text = std::str::from_utf8(&payload).expect("a Text event is UTF-8");
                ws.send_text(text).await?;
            }
            Some(Echo::Binary) => ws.send_binary(&payload).await?,
            Some(Echo::Nothing) => {}
        }
        if payload.capacity() > KEEP_PAYLOAD_CAPACITY {
            payload = Vec::new();
        }
    }
}
