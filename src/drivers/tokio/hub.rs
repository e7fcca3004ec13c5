//! [`Hub`]: publish and subscribe over topics, each published message prepared once
//! ([`PreparedMessage`]) and handed to every subscriber's bounded queue by reference count.
//!
//! A [`Subscriber`] joins any number of topics and receives what is published to them, in
//! order, through its own queue of [`HubConfig::queue`] messages. Publishing never waits: a
//! subscriber whose queue is full is a slow consumer, and [`HubConfig::slow_consumer`]
//! decides what happens to it: the message is dropped for it alone, or (the default, as
//! uWebSockets' `closeOnBackpressureLimit`) it is closed with a code (1013 "try again later"
//! unless another is chosen), which [`Subscriber::recv`] hands over before anything still
//! queued. [`HubStats`] counts what was published, delivered, dropped and closed.
//!
//! [`Subscriber::forward`] drains a subscriber into a [`WebSocketWriter`] (each message
//! sent from the shared frame, [`WebSocketWriter::send_prepared`]) and closes the WebSocket
//! with the slow-consumer code when it falls behind. A blocking driver's thread receives
//! with [`Subscriber::recv_blocking`] and sends with the blocking `send_prepared`.
//!
//! ```no_run
//! use wsproto::PreparedMessage;
//! use wsproto::drivers::tokio::{Hub, Server};
//!
//! # async fn demo() -> std::io::Result<()> {
//! let hub = Hub::new();
//! let publisher = hub.clone();
//! tokio::spawn(async move {
//!     let mut n = 0;
//!     loop {
//!         tokio::time::sleep(std::time::Duration::from_secs(1)).await;
//!         n += 1;
//!         publisher.publish("ticks", &PreparedMessage::text(&format!("tick {n}")));
//!     }
//! });
//! Server::bind("127.0.0.1:9001")
//!     .await?
//!     .serve(move |ws| {
//!         let mut subscriber = hub.subscriber();
//!         subscriber.subscribe("ticks");
//!         async move {
//!             let (mut reader, writer) = ws.split();
//!             tokio::select! {
//!                 _ = subscriber.forward(&writer) => {}
//!                 _ = async { while let Ok(Some(_)) = reader.recv().await {} } => {}
//!             }
//!         }
//!     })
//!     .await
//! # }
//! ```

use super::{Error, WebSocketWriter, lock};
use crate::close::CloseCode;
use crate::error::UsageError;
use crate::prepared::PreparedMessage;
use ::tokio::io::{AsyncRead, AsyncWrite};
use ::tokio::sync::mpsc;
use core::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::collections::HashMap;
use std::string::String;
use std::sync::{Arc, Mutex};
use std::vec::Vec;

/// What happens to a subscriber whose queue is full when a message is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SlowConsumer {
    /// The message is not delivered to it; it keeps its place and later messages.
    Drop,
    /// It is closed with this code: it receives nothing more, and its [`Subscriber::recv`]
    /// reports the close before anything still queued.
    Close(CloseCode),
}

/// A [`Hub`]'s settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HubConfig {
    /// Messages a subscriber may have queued (default 256). A subscriber that reads them as
    /// fast as they are published never holds more than a few.
    pub queue: usize,
    /// What happens to a subscriber whose queue is full (default: close it with 1013 "try
    /// again later", so that the client reconnects, and catches up, on its own schedule).
    pub slow_consumer: SlowConsumer,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            queue: 256,
            slow_consumer: SlowConsumer::Close(CloseCode::TRY_AGAIN_LATER),
        }
    }
}

crate::config::setters! { HubConfig {
    queue: usize;
    slow_consumer: SlowConsumer;
}}

/// What a [`Hub`] counted since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HubStats {
    /// Calls to [`Hub::publish`].
    pub published: u64,
    /// Messages queued for a subscriber.
    pub delivered: u64,
    /// Messages not queued for a slow subscriber ([`SlowConsumer::Drop`]).
    pub dropped: u64,
    /// Subscribers closed for being slow ([`SlowConsumer::Close`]).
    pub closed: u64,
}

/// Topics and their subscribers; cheap to clone (clones share them).
#[derive(Debug, Clone, Default)]
pub struct Hub {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    config: HubConfig,
    /// Each topic's subscribers, by id.
    topics: Mutex<HashMap<String, HashMap<u64, Arc<Slot>>>>,
    next_id: AtomicU64,
    published: AtomicU64,
    delivered: AtomicU64,
    dropped: AtomicU64,
    closed: AtomicU64,
}

/// A subscriber as publishers see it: its queue's sending end and its close mark.
#[derive(Debug)]
struct Slot {
    queue: mpsc::Sender<PreparedMessage>,
    /// The close code once it was closed for being slow; 0 while open.
    closed: AtomicU16,
}

impl Hub {
    /// A hub with the default [`HubConfig`].
    #[must_use]
    pub fn new() -> Self {
        Self::with_config(HubConfig::default())
    }

    /// A hub with `config`.
    #[must_use]
    pub fn with_config(config: HubConfig) -> Self {
        Self {
            shared: Arc::new(Shared {
                config: HubConfig {
                    queue: config.queue.max(1),
                    ..config
                },
                ..Shared::default()
            }),
        }
    }

    /// A new subscriber, in no topic yet.
    #[must_use]
    pub fn subscriber(&self) -> Subscriber {
        let (queue, received) = mpsc::channel(self.shared.config.queue);
        Subscriber {
            id: self.shared.next_id.fetch_add(1, Ordering::Relaxed),
            slot: Arc::new(Slot {
                queue,
                closed: AtomicU16::new(0),
            }),
            received,
            topics: Vec::new(),
            close_reported: false,
            shared: Arc::clone(&self.shared),
        }
    }

    /// Queues `message` for every subscriber of `topic` (a reference-count increment each:
    /// the frame is shared) and returns how many got it. Never waits: a subscriber whose
    /// queue is full is handled as [`HubConfig::slow_consumer`] says.
    pub fn publish(&self, topic: &str, message: &PreparedMessage) -> usize {
        let shared = &self.shared;
        shared.published.fetch_add(1, Ordering::Relaxed);
        let topics = lock(&shared.topics);
        let Some(subscribers) = topics.get(topic) else {
            return 0;
        };
        let mut delivered = 0;
        for slot in subscribers.values() {
            if slot.closed.load(Ordering::Acquire) != 0 {
                continue;
            }
            match slot.queue.try_send(message.clone()) {
                Ok(()) => delivered += 1,
                Err(mpsc::error::TrySendError::Full(_)) => match shared.config.slow_consumer {
                    SlowConsumer::Drop => {
                        shared.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    SlowConsumer::Close(code) => {
                        slot.closed.store(code.0, Ordering::Release);
                        shared.closed.fetch_add(1, Ordering::Relaxed);
                    }
                },
                // Its subscriber is being dropped, and leaves the topic as it goes.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        shared
            .delivered
            .fetch_add(delivered as u64, Ordering::Relaxed);
        delivered
    }

    /// How many subscribers `topic` has (closed ones included until they are dropped).
    #[must_use]
    pub fn subscribers(&self, topic: &str) -> usize {
        lock(&self.shared.topics).get(topic).map_or(0, HashMap::len)
    }

    /// The counters so far.
    #[must_use]
    pub fn stats(&self) -> HubStats {
        let shared = &self.shared;
        HubStats {
            published: shared.published.load(Ordering::Relaxed),
            delivered: shared.delivered.load(Ordering::Relaxed),
            dropped: shared.dropped.load(Ordering::Relaxed),
            closed: shared.closed.load(Ordering::Relaxed),
        }
    }
}

/// What a [`Subscriber`] receives.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// A message published to one of its topics.
    Message(PreparedMessage),
    /// It was closed for being slow, with this code; nothing follows.
    Close(CloseCode),
}

/// One subscriber: its topics and its bounded queue. Dropping it leaves every topic.
#[derive(Debug)]
pub struct Subscriber {
    id: u64,
    slot: Arc<Slot>,
    received: mpsc::Receiver<PreparedMessage>,
    topics: Vec<String>,
    close_reported: bool,
    shared: Arc<Shared>,
}

impl Subscriber {
    /// Joins `topic` (again is harmless).
    pub fn subscribe(&mut self, topic: &str) {
        if self.topics.iter().any(|t| t == topic) {
            return;
        }
        lock(&self.shared.topics)
            .entry(topic.into())
            .or_default()
            .insert(self.id, Arc::clone(&self.slot));
        self.topics.push(topic.into());
    }

    /// Leaves `topic`; messages of it already queued are still received.
    pub fn unsubscribe(&mut self, topic: &str) {
        let Some(at) = self.topics.iter().position(|t| t == topic) else {
            return;
        };
        self.topics.swap_remove(at);
        leave(&self.shared, topic, self.id);
    }

    /// The topics it is in.
    #[must_use]
    pub fn topics(&self) -> &[String] {
        &self.topics
    }

    /// The next message, in the order published; or the slow-consumer close (before
    /// anything still queued), then `None`. Cancel-safe.
    ///
    /// A subscriber is closed only when its queue is full, so a close never comes while
    /// this waits on an empty queue: it is seen at once, before the next message.
    pub async fn recv(&mut self) -> Option<Delivery> {
        loop {
            if let Some(end) = self.report_close() {
                return end;
            }
            // The slot holds the sending end, so the queue never ends while this lives.
            let message = self.received.recv().await?;
            if self.closed().is_none() {
                return Some(Delivery::Message(message));
            }
        }
    }

    /// [`recv`](Self::recv) for a thread outside any async runtime, such as a blocking
    /// driver's connection thread: it waits for the next message without an executor.
    ///
    /// # Panics
    /// When called from within an async runtime (tokio's `blocking_recv` rule).
    pub fn recv_blocking(&mut self) -> Option<Delivery> {
        loop {
            if let Some(end) = self.report_close() {
                return end;
            }
            let message = self.received.blocking_recv()?;
            if self.closed().is_none() {
                return Some(Delivery::Message(message));
            }
        }
    }

    /// Once closed for being slow: the close the first time, `None` after; `None` (nothing
    /// to report) while open.
    fn report_close(&mut self) -> Option<Option<Delivery>> {
        let code = self.closed()?;
        let first = !self.close_reported;
        self.close_reported = true;
        Some(first.then_some(Delivery::Close(code)))
    }

    /// The slow-consumer close code, once it was closed.
    #[must_use]
    pub fn closed(&self) -> Option<CloseCode> {
        match self.slot.closed.load(Ordering::Acquire) {
            0 => None,
            code => Some(CloseCode(code)),
        }
    }

    /// Sends every delivery to `writer`, each message from its shared frame, until the
    /// subscriber is closed for being slow (the WebSocket is then closed with that code
    /// and "too slow") or the WebSocket fails.
    ///
    /// Small messages that wait together go out in one write: their frames are copied into
    /// the connection's output one behind the other (up to 16 KiB at a time), so
    /// a subscriber behind by n messages costs one system call, not n. Larger frames are
    /// lent and written from the message itself. Cancel-safe: what was queued is written
    /// by the next write on the connection.
    ///
    /// # Errors
    /// The writer's, once it cannot send.
    pub async fn forward<S>(&mut self, writer: &WebSocketWriter<S>) -> Result<(), Error>
    where
        S: AsyncRead + AsyncWrite,
    {
        while let Some(delivery) = self.recv().await {
            let message = match delivery {
                Delivery::Message(message) => message,
                Delivery::Close(code) => {
                    writer.close(code, "too slow").await?;
                    continue;
                }
            };
            if !batched(&message) || self.received.is_empty() {
                writer.send_prepared(&message).await?;
                continue;
            }
            let mut next = Some(message);
            let mut queued = 0;
            let mut lend = None;
            while let Some(message) = next.take() {
                if !batched(&message) {
                    lend = Some(message);
                    break;
                }
                match writer.shared.conn().send_prepared(&message) {
                    Ok(()) => queued += message.frame().len(),
                    // Under a high-water mark set lower than a batch: lent after the flush.
                    Err(UsageError::OutputFull { .. }) => {
                        lend = Some(message);
                        break;
                    }
                    Err(e) => return Err(e.into()),
                }
                // A full batch leaves the rest queued, for the next one.
                if queued < BATCH_BYTES {
                    next = self.try_recv_message();
                }
            }
            writer.shared.flush().await?;
            if let Some(message) = lend {
                writer.send_prepared(&message).await?;
            }
        }
        Ok(())
    }

    /// The next queued message without waiting; `None` when none waits or once closed
    /// (`recv` then reports the close).
    fn try_recv_message(&mut self) -> Option<PreparedMessage> {
        if self.closed().is_some() {
            return None;
        }
        self.received.try_recv().ok()
    }
}

/// Frames up to this size are copied into a batch (a copy costs less than a system call);
/// larger ones are lent.
const BATCH_FRAME: usize = 4 << 10;

/// Bytes [`Subscriber::forward`] copies into one write at most: well under the default
/// output high-water mark (64 KiB), and a socket buffer's worth.
const BATCH_BYTES: usize = 16 << 10;

fn batched(message: &PreparedMessage) -> bool {
    message.frame().len() <= BATCH_FRAME
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        for topic in &self.topics {
            leave(&self.shared, topic, self.id);
        }
    }
}

/// Takes subscriber `id` out of `topic`, and the topic out of the hub once it is empty.
fn leave(shared: &Shared, topic: &str, id: u64) {
    let mut topics = lock(&shared.topics);
    if let Some(subscribers) = topics.get_mut(topic) {
        subscribers.remove(&id);
        if subscribers.is_empty() {
            topics.remove(topic);
        }
    }
}
