//! An echo server on blocking sockets, one thread per connection.
//!
//! `cargo run --release --example echo_server_blocking -- --addr 127.0.0.1:9002`

#[path = "common/args.rs"]
mod args;

use std::net::{TcpListener, TcpStream};
use wsproto::Config;
use wsproto::drivers::blocking::WebSocket;

const USAGE: &str =
    "echo_server_blocking: a WebSocket echo server (std::net, a thread per connection)

usage: echo_server_blocking [--addr HOST:PORT] [--max-message-size BYTES] [--deflate]

  --addr HOST:PORT           where to listen (default 127.0.0.1:9002)
  --max-message-size BYTES   largest message accepted (default 16777216)
  --deflate                  accept permessage-deflate (RFC 7692) offers";

fn main() -> std::io::Result<()> {
    let args = args::Args::parse(USAGE, &["addr", "max-message-size"], &["deflate"]);
    let mut config = Config::default();
    config.max_message_size = args.number("max-message-size", 16 << 20);
    if args.flag("deflate") {
        config.deflate = Some(wsproto::DeflateConfig::default());
    }
    let listener = TcpListener::bind(args.get("addr", "127.0.0.1:9002"))?;
    println!(
        "echo_server_blocking listening on ws://{}",
        listener.local_addr()?
    );
    for stream in listener.incoming() {
        let stream = stream?;
        stream.set_nodelay(true)?;
        let config = config.clone();
        std::thread::spawn(move || {
            if let Err(e) = echo(stream, config) {
                eprintln!("connection ended: {e}");
            }
        });
    }
    Ok(())
}

fn echo(stream: TcpStream, config: Config) -> Result<(), wsproto::drivers::Error> {
    let mut ws = WebSocket::accept(stream, config)?;
    // The reply's header is queued and its payload written from the receive buffer itself,
    // with one vectored write (short payloads are copied behind the header instead).
    while let Some(()) = ws.recv_with_sender(|event, sender| match event {
        wsproto::Event::Text(text) => sender.send_text_borrowed(text),
        wsproto::Event::Binary(data) => sender.send_binary_borrowed(data),
        _ => Ok(()),
    })? {}
    Ok(())
}
