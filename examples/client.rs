//! A command-line client: each stdin line goes out as a text message, each message received
//! is printed; at the end of stdin it closes with 1000 and waits for the closing handshake.
//!
//! `cargo run --release --example client -- --url ws://127.0.0.1:9001/`

#[path = "common/args.rs"]
mod args;

use std::io::BufRead;
use std::process::ExitCode;
use tokio::sync::mpsc;
use wsproto::CloseCode;
use wsproto::drivers::tokio::WebSocketStream;
use wsproto::drivers::{Error, Message};

const USAGE: &str = "client: send stdin lines as WebSocket text messages, print what arrives

usage: client [--url URL]

  --url URL   the server (default ws://127.0.0.1:9001/)

Binary messages are printed as their length and first bytes in hex. At the end of stdin
(Ctrl-D) the client closes with 1000 and waits for the server's Close.";

#[tokio::main]
async fn main() -> ExitCode {
    let args = args::Args::parse(USAGE, &["url"], &[]);
    match run(&args.get("url", "ws://127.0.0.1:9001/")).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("client: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(url: &str) -> Result<(), Error> {
    let ws = WebSocketStream::connect(url).await?;
    eprintln!("client: connected to {url}; type lines to send, Ctrl-D to close");
    let (mut reader, writer) = ws.split();

    // A plain thread reads stdin, so a blocked read never holds up the runtime's exit.
    let (lines_tx, mut lines) = mpsc::channel::<String>(16);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if lines_tx.blocking_send(line).is_err() {
                break;
            }
        }
    });

    let mut printer = tokio::spawn(async move {
        while let Some(message) = reader.recv().await? {
            match message {
                Message::Text(text) => println!("{text}"),
                Message::Binary(data) => println!("{}", binary_summary(&data)),
                Message::Close { code, reason } => {
                    eprintln!("client: server closed: {code} {reason}")
                }
                Message::Ping(_) | Message::Pong(_) => {}
            }
        }
        Ok::<(), Error>(())
    });

    loop {
        tokio::select! {
            line = lines.recv() => match line {
                Some(line) => writer.send_text(&line).await?,
                None => break,
            },
            // The server closed first (or the connection failed).
            done = &mut printer => return done.expect("the printer task panicked"),
        }
    }
    match writer.close(CloseCode::NORMAL, "").await {
        // The server may have started closing meanwhile; the printer reports how it ended.
        Ok(()) | Err(Error::Usage(_)) => {}
        Err(e) => return Err(e),
    }
    printer.await.expect("the printer task panicked")
}

/// `binary, 300 bytes: 00 01 02 ...` (at most the first 32 bytes).
fn binary_summary(data: &[u8]) -> String {
    let mut out = format!("binary, {} bytes:", data.len());
    for byte in data.iter().take(32) {
        out.push_str(&format!(" {byte:02x}"));
    }
    if data.len() > 32 {
        out.push_str(" ...");
    }
    out
}
