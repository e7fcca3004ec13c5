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
    // The reply's header is queued and its payload written from the receive buffer itself,
    // with one vectored write (short payloads are copied behind the header instead).
    while let Some(()) = ws
        .recv_with_sender(|event, sender| match event {
            wsproto::Event::Text(text) => sender.send_text_borrowed(text),
            wsproto::Event::Binary(data) => sender.send_binary_borrowed(data),
            _ => Ok(()),
        })
        .await?
    {}
    Ok(())
}
