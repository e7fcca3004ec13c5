//! A command-line client: each stdin line goes out as a text message, each message received
//! is printed; at the end of stdin it closes with 1000 and waits for the closing handshake.
//!
//! `cargo run --release --example client -- --url wss://echo.example/ --deflate`
//!
//! wss:// is verified against Mozilla's roots (the `webpki-roots` feature) plus `--ca-file`;
//! proxies come from `--proxy` or, without it, from the environment as curl reads it.

#[path = "common/args.rs"]
mod args;

use std::io::BufRead;
use std::process::ExitCode;
use tokio::sync::mpsc;
use wsproto::drivers::proxy::Proxy;
use wsproto::drivers::tokio::WebSocketStream;
use wsproto::drivers::{Connector, Error, Message, tls};
use wsproto::{ClientRequest, CloseCode, Config, DeflateConfig};

const USAGE: &str = "client: send stdin lines as WebSocket text messages, print what arrives

usage: client [--url URL] [--ca-file PEM] [--proxy URL] [--subprotocol NAME] [--deflate]

  --url URL           the server, ws:// or wss:// (default ws://127.0.0.1:9001/)
  --ca-file PEM       also trust the CA certificates in this PEM file, for wss://
  --proxy URL         tunnel through this proxy: http://[user:pass@]host[:port] (HTTP
                      CONNECT) or socks5://[user:pass@]host[:port]; without it the
                      environment's https_proxy, http_proxy, all_proxy and no_proxy are
                      read as curl reads them
  --subprotocol NAME  offer this subprotocol
  --deflate           offer permessage-deflate (RFC 7692)

What was agreed (subprotocol, compression) is printed on stderr once connected.

Binary messages are printed as their length and first bytes in hex. At the end of stdin
(Ctrl-D) the client closes with 1000 and waits for the server's Close.";

#[tokio::main]
async fn main() -> ExitCode {
    let args = args::Args::parse(
        USAGE,
        &["url", "ca-file", "proxy", "subprotocol"],
        &["deflate"],
    );
    let url = args.get("url", "ws://127.0.0.1:9001/");
    let connected = match connect(&args, &url).await {
        Ok(ws) => ws,
        Err(e) => {
            eprintln!("client: cannot connect to {url}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match run(connected).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("client: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Connects as the options say, and tells what was agreed.
async fn connect(
    args: &args::Args,
    url: &str,
) -> Result<WebSocketStream<wsproto::drivers::tokio::ClientStream>, Box<dyn std::error::Error>> {
    let mut request = ClientRequest::new(url)?;
    if args.flag("subprotocol") {
        request = request.subprotocol(&args.get("subprotocol", ""))?;
    }
    let mut config = Config::default();
    if args.flag("deflate") {
        config.deflate = Some(DeflateConfig::default());
    }
    let mut connector = Connector::new().proxy_from_env();
    if args.flag("proxy") {
        connector = connector.proxy(Proxy::parse(&args.get("proxy", ""))?);
    }
    if args.flag("ca-file") {
        let path = args.get("ca-file", "");
        let pem = std::fs::read(&path).map_err(|e| format!("{path}: {e}"))?;
        let config = tls::client_config_with_pem_roots(&pem).map_err(|e| format!("{path}: {e}"))?;
        connector = connector.tls_config(config);
    }
    let ws = WebSocketStream::connect_using(request, config, &connector).await?;
    let conn = ws.connection();
    eprintln!(
        "client: connected to {url} (subprotocol: {}, permessage-deflate: {}); \
         type lines to send, Ctrl-D to close",
        conn.subprotocol().unwrap_or("none"),
        if conn.is_deflate_negotiated() {
            "on"
        } else {
            "off"
        },
    );
    Ok(ws)
}

async fn run(ws: WebSocketStream<wsproto::drivers::tokio::ClientStream>) -> Result<(), Error> {
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
                // Only with `Config::stream_messages`, which this client leaves off.
                Message::TextChunk { .. } | Message::BinaryChunk { .. } => {}
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
