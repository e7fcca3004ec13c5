//! The chat room shared by the chat examples (`chat`, `axum_chat`): the page, and one guest's
//! life in the room once its WebSocket is open.
#![allow(dead_code, reason = "each example uses a subset")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::broadcast;
use wsproto::drivers::tokio::{ServerReader, WebSocketReader, WebSocketWriter};
use wsproto::drivers::{Error, Message};

/// Lines every client receives. A line starting with `* ` is a notice; any other line is
/// `guest-N: text`, so a guest cannot forge a notice.
pub type Line = Arc<str>;

/// The whole client: no external assets; text goes into the page with `textContent` only.
pub const PAGE: &[u8] = include_bytes!("chat_page.html");

/// The receiving half a guest reads from: the driver's own, or `Server`'s, which also sends
/// the Close when the server shuts down.
pub trait Inbox {
    /// The next message; `Ok(None)` once the connection is closed.
    fn recv(&mut self) -> impl Future<Output = Result<Option<Message>, Error>> + Send;
}

impl<S: AsyncRead + AsyncWrite + Send> Inbox for WebSocketReader<S> {
    fn recv(&mut self) -> impl Future<Output = Result<Option<Message>, Error>> + Send {
        WebSocketReader::recv(self)
    }
}

impl<S: AsyncRead + AsyncWrite + Send> Inbox for ServerReader<S> {
    fn recv(&mut self) -> impl Future<Output = Result<Option<Message>, Error>> + Send {
        ServerReader::recv(self)
    }
}

/// Runs one guest until it leaves: a reader (this task) and a writer fed by the room's
/// broadcast channel. `via` is added to the guest's welcome (" over HTTP/2.0", say).
pub async fn run_guest<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    mut reader: impl Inbox,
    writer: WebSocketWriter<S>,
    room: broadcast::Sender<Line>,
    guests: &AtomicU64,
    via: &str,
) -> Result<(), Error> {
    let name = format!("guest-{}", guests.fetch_add(1, Ordering::Relaxed));

    // Subscribe before announcing, so the guest sees its own "joined" line.
    let mut inbox = room.subscribe();
    writer.send_text(&format!("* you are {name}{via}")).await?;
    let _ = room.send(format!("* {name} joined").into());
    let sender = tokio::spawn(async move {
        loop {
            let line: Line = match inbox.recv().await {
                Ok(line) => line,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    format!("* {n} lines skipped: this tab reads too slowly").into()
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if writer.send_text(&line).await.is_err() {
                return; // the reader sees the failure too and cleans up
            }
        }
    });

    let result = loop {
        match reader.recv().await {
            Ok(Some(Message::Text(text))) => {
                let text = text.trim();
                if !text.is_empty() {
                    let _ = room.send(format!("{name}: {text}").into());
                }
            }
            Ok(Some(_)) => {} // pings are answered by the connection; binary is ignored
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
    };
    sender.abort();
    let _ = room.send(format!("* {name} left").into());
    result
}
