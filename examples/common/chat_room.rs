//! The chat room shared by the chat examples (`chat`, `axum_chat`): the page, the room (a
//! [`Hub`] topic, shared with other chat processes through Redis when asked), and one
//! guest's life in the room once its WebSocket is open.
#![allow(dead_code, reason = "each example uses a subset")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncRead, AsyncWrite};
use wsproto::PreparedMessage;
use wsproto::drivers::tokio::{Hub, ServerReader, WebSocketReader, WebSocketWriter};
use wsproto::drivers::{Error, Message};

/// The whole client: no external assets; text goes into the page with `textContent` only.
pub const PAGE: &[u8] = include_bytes!("chat_page.html");

/// The hub topic (and, over Redis, the channel `wsproto-chat:room`) every line goes to.
const TOPIC: &str = "room";

/// Every guest of this process, and where their lines go: this process's hub, or Redis,
/// which hands each line back to the hub of every chat process (this one too). A line
/// starting with `* ` is a notice; any other line is `guest-N: text`, so a guest cannot
/// forge a notice.
#[derive(Clone)]
pub struct Room {
    hub: Hub,
    guests: Arc<AtomicU64>,
    /// Added to each guest's name: empty alone, `@<port>` over Redis, where several
    /// processes each count their guests from 1.
    node: String,
    #[cfg(feature = "redis")]
    relay: Option<wsproto::drivers::tokio::RedisRelay>,
}

impl Room {
    /// A room of this process alone.
    pub fn local() -> Self {
        Self {
            hub: Hub::new(),
            guests: Arc::new(AtomicU64::new(1)),
            node: String::new(),
            #[cfg(feature = "redis")]
            relay: None,
        }
    }

    /// A room shared by every chat process started with the same Redis URL; `node` tells
    /// this process's guests apart from the others'.
    #[cfg(feature = "redis")]
    pub async fn over_redis(
        url: &str,
        node: &str,
    ) -> Result<Self, wsproto::drivers::tokio::RelayError> {
        let mut room = Self::local();
        let relay = wsproto::drivers::tokio::RedisRelay::connect(
            url,
            room.hub.clone(),
            "wsproto-chat:",
            wsproto::MessageKind::Text,
        )
        .await?;
        room.relay = Some(relay);
        room.node = format!("@{node}");
        Ok(room)
    }

    /// The relay's counters, as a line, when the room is shared through Redis.
    pub fn relay_report(&self) -> Option<String> {
        #[cfg(feature = "redis")]
        if let Some(relay) = &self.relay {
            let stats = relay.stats();
            return Some(format!(
                "redis relay: published {}, received {}, invalid {}, resubscribed {}",
                stats.published, stats.received, stats.invalid, stats.resubscribed
            ));
        }
        None
    }

    /// Sends `line` to every guest (of every process, over Redis), or tells `guest` why it
    /// could not (Redis unreachable).
    async fn announce<S: AsyncRead + AsyncWrite>(&self, line: &str, guest: &WebSocketWriter<S>) {
        if let Err(e) = self.say(line).await {
            eprintln!("chat: {e}");
            let _ = guest.send_text(&format!("* not sent: {e}")).await;
        }
    }

    async fn say(&self, line: &str) -> Result<(), String> {
        #[cfg(feature = "redis")]
        if let Some(relay) = &self.relay {
            return relay
                .publish(TOPIC, line.as_bytes())
                .await
                .map(drop)
                .map_err(|e| e.to_string());
        }
        self.hub.publish(TOPIC, &PreparedMessage::text(line));
        Ok(())
    }
}

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

/// Runs one guest until it leaves: a reader (this task) and a writer that forwards the
/// room's lines, each framed once for all guests. A guest that falls 256 lines behind is
/// closed with 1013 (the hub's slow-consumer policy). `via` is added to the guest's welcome
/// (" over HTTP/2.0", say).
pub async fn run_guest<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    mut reader: impl Inbox,
    writer: WebSocketWriter<S>,
    room: &Room,
    via: &str,
) -> Result<(), Error> {
    let name = format!(
        "guest-{}{}",
        room.guests.fetch_add(1, Ordering::Relaxed),
        room.node
    );

    // Subscribe before announcing, so the guest sees its own "joined" line.
    let mut subscriber = room.hub.subscriber();
    subscriber.subscribe(TOPIC);
    writer.send_text(&format!("* you are {name}{via}")).await?;
    let forwarder = {
        let writer = writer.clone();
        // Ends when the guest is closed for being slow or its WebSocket fails; the reader
        // sees either too and cleans up.
        tokio::spawn(async move { subscriber.forward(&writer).await })
    };
    room.announce(&format!("* {name} joined"), &writer).await;

    let result = loop {
        match reader.recv().await {
            Ok(Some(Message::Text(text))) => {
                let text = text.trim();
                if !text.is_empty() {
                    room.announce(&format!("{name}: {text}"), &writer).await;
                }
            }
            Ok(Some(_)) => {} // pings are answered by the connection; binary is ignored
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
    };
    forwarder.abort();
    room.announce(&format!("* {name} left"), &writer).await;
    result
}
