//! [`RedisRelay`]: a [`Hub`]'s topics shared by several processes through Redis pub/sub,
//! so that a message published on one server reaches the subscribers of every server.
//!
//! Topic `T` is the Redis channel `<prefix>T`. [`RedisRelay::publish`] sends to Redis only;
//! each process, the publishing one too, hears the message back through one pattern
//! subscription (`PSUBSCRIBE <prefix>*`) and publishes it to its own hub, prepared once for
//! all its subscribers. Redis delivers a channel's messages in one order to every
//! subscriber, so every WebSocket in every process sees the same order, at the cost of a
//! round trip to Redis for the local ones too. A relay carries either text or binary
//! messages ([`MessageKind`]); text that is not UTF-8 is skipped and counted, never sent.
//!
//! Redis pub/sub is at-most-once: what is published while this process is not subscribed
//! (its connection to Redis broken, and being re-made with backoff from 100 ms to 5 s) is
//! not delivered to it. A subscription that stops answering pings for
//! [`RedisRelay::PING_TIMEOUT`] is treated as broken. [`RelayStats`] counts what went through
//! and how often the subscription was re-made.
//!
//! ```no_run
//! use wsproto::MessageKind;
//! use wsproto::drivers::tokio::{Hub, RedisRelay};
//!
//! # async fn demo() -> Result<(), wsproto::drivers::tokio::RelayError> {
//! let hub = Hub::new();
//! let relay = RedisRelay::connect("redis://127.0.0.1:6379", hub.clone(), "chat:", MessageKind::Text).await?;
//! let mut subscriber = hub.subscriber();
//! subscriber.subscribe("lobby");
//! // Reaches "lobby" in every process relayed through this Redis, this one included.
//! relay.publish("lobby", b"hello").await?;
//! # Ok(())
//! # }
//! ```

use super::Hub;
use crate::event::MessageKind;
use crate::prepared::PreparedMessage;
use ::redis::aio::{ConnectionManager, PubSubSink, PubSubStream};
use ::redis::{Client, RedisError};
use ::tokio::task::JoinHandle;
use ::tokio::time::{Instant, sleep, timeout};
use core::future::poll_fn;
use core::pin::{Pin, pin};
use core::sync::atomic::{AtomicU64, Ordering};
use core::task::Poll;
use core::time::Duration;
use futures_core::Stream;
use std::string::String;
use std::sync::Arc;

/// Why a [`RedisRelay`] could not connect or publish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// The Redis URL does not parse (`redis://host:port/db`, `rediss://`, `unix://`).
    #[error("invalid Redis URL {url:?}: {source}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        #[source]
        source: RedisError,
    },
    /// The first subscription failed: Redis unreachable, or it refused the connection.
    #[error("cannot subscribe to {pattern:?} on Redis: {source}")]
    Subscribe {
        /// The channel pattern.
        pattern: String,
        /// Redis's error.
        #[source]
        source: RedisError,
    },
    /// A message could not be published (the connection is re-made for the next one).
    #[error("cannot publish to Redis channel {channel:?}: {source}")]
    Publish {
        /// The Redis channel.
        channel: String,
        /// Redis's error.
        #[source]
        source: RedisError,
    },
}

/// What a [`RedisRelay`] counted since it connected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayStats {
    /// Messages sent to Redis by [`RedisRelay::publish`].
    pub published: u64,
    /// Messages heard from Redis and published to the hub.
    pub received: u64,
    /// Messages heard from Redis but skipped: text that is not UTF-8, or a channel name
    /// that is not (`<prefix>` followed by UTF-8).
    pub invalid: u64,
    /// Times the subscription broke and was made again.
    pub resubscribed: u64,
}

/// A [`Hub`] joined to Redis pub/sub; cheap to clone (clones share the connection). The
/// subscription ends when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct RedisRelay {
    inner: Arc<Inner>,
    publisher: ConnectionManager,
}

#[derive(Debug)]
struct Inner {
    prefix: String,
    counters: Arc<Counters>,
    listener: JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

#[derive(Debug, Default)]
struct Counters {
    published: AtomicU64,
    received: AtomicU64,
    invalid: AtomicU64,
    resubscribed: AtomicU64,
}

/// What the listening task needs to turn Redis messages into hub messages.
struct Listener {
    client: Client,
    pattern: String,
    prefix: String,
    hub: Hub,
    kind: MessageKind,
    counters: Arc<Counters>,
}

/// Backoff between attempts to subscribe again: doubled from the first to the last.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_LAST: Duration = Duration::from_secs(5);

impl RedisRelay {
    /// How often an idle subscription is pinged.
    pub const PING_EVERY: Duration = Duration::from_secs(15);
    /// How long a ping may go unanswered before the subscription is made again.
    pub const PING_TIMEOUT: Duration = Duration::from_secs(5);

    /// Connects to the Redis server at `url`, subscribes to every channel starting with
    /// `prefix` and publishes what arrives on channel `<prefix>T` to `hub`'s topic `T`,
    /// as `kind` messages. Returns once subscribed, so nothing published after it returns
    /// is missed. Must be called within a tokio runtime: the subscription runs in a task.
    ///
    /// # Errors
    /// [`RelayError::Url`], or [`RelayError::Subscribe`] when Redis cannot be reached.
    pub async fn connect(
        url: &str,
        hub: Hub,
        prefix: &str,
        kind: MessageKind,
    ) -> Result<Self, RelayError> {
        let client = Client::open(url).map_err(|source| RelayError::Url {
            url: url.into(),
            source,
        })?;
        let pattern = channel_pattern(prefix);
        let subscribe_error = |source| RelayError::Subscribe {
            pattern: pattern.clone(),
            source,
        };
        let subscription = subscribe(&client, &pattern)
            .await
            .map_err(subscribe_error)?;
        let publisher = client
            .get_connection_manager()
            .await
            .map_err(subscribe_error)?;
        let counters = Arc::new(Counters::default());
        let listener = Listener {
            client,
            pattern,
            prefix: prefix.into(),
            hub,
            kind,
            counters: Arc::clone(&counters),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                prefix: prefix.into(),
                counters,
                listener: ::tokio::spawn(listener.run(subscription)),
            }),
            publisher,
        })
    }

    /// Publishes `payload` to `topic` in every process relayed through this Redis, this one
    /// included (it arrives here from Redis, in the order Redis gives every process).
    /// Returns how many processes' subscriptions Redis handed it to.
    ///
    /// # Errors
    /// [`RelayError::Publish`] when Redis cannot be reached, also after one retry on a
    /// connection made again.
    pub async fn publish(&self, topic: &str, payload: &[u8]) -> Result<usize, RelayError> {
        let channel = [self.inner.prefix.as_str(), topic].concat();
        let mut connection = self.publisher.clone();
        let publish = ::redis::cmd("PUBLISH").arg(&channel).arg(payload).clone();
        let mut result = publish.query_async(&mut connection).await;
        // A connection Redis dropped (a restart, say) is found broken only when used, and
        // is then made again: one retry on the new one, so that a restart loses nothing.
        // If Redis had received the message before the connection broke, it goes twice.
        if result
            .as_ref()
            .is_err_and(RedisError::is_connection_dropped)
        {
            result = publish.query_async(&mut connection).await;
        }
        let receivers: usize = result.map_err(|source| RelayError::Publish { channel, source })?;
        self.inner
            .counters
            .published
            .fetch_add(1, Ordering::Relaxed);
        Ok(receivers)
    }

    /// The counters so far.
    #[must_use]
    pub fn stats(&self) -> RelayStats {
        let counters = &self.inner.counters;
        RelayStats {
            published: counters.published.load(Ordering::Relaxed),
            received: counters.received.load(Ordering::Relaxed),
            invalid: counters.invalid.load(Ordering::Relaxed),
            resubscribed: counters.resubscribed.load(Ordering::Relaxed),
        }
    }
}

impl Listener {
    /// Relays until aborted: the subscription `connect` made, then each one made again
    /// after it breaks.
    async fn run(self, first: (PubSubSink, PubSubStream)) {
        let mut subscription = Some(first);
        let mut retry = RETRY_FIRST;
        loop {
            let (sink, stream) = match subscription.take() {
                Some(subscription) => subscription,
                None => match subscribe(&self.client, &self.pattern).await {
                    Ok(subscription) => {
                        self.counters.resubscribed.fetch_add(1, Ordering::Relaxed);
                        retry = RETRY_FIRST;
                        subscription
                    }
                    Err(_) => {
                        sleep(retry).await;
                        retry = (retry * 2).min(RETRY_LAST);
                        continue;
                    }
                },
            };
            self.relay(sink, stream).await;
            sleep(retry).await;
        }
    }

    /// Publishes each message of one subscription to the hub until the subscription ends
    /// or stops answering pings.
    async fn relay(&self, mut sink: PubSubSink, mut stream: PubSubStream) {
        let mut ping = pin!(sleep(RedisRelay::PING_EVERY));
        loop {
            // The next message (`Some`), or the ping timer (`None`): whichever comes first.
            let next = poll_fn(|cx| match Pin::new(&mut stream).poll_next(cx) {
                Poll::Ready(message) => Poll::Ready(Some(message)),
                Poll::Pending => ping.as_mut().poll(cx).map(|()| None),
            })
            .await;
            match next {
                Some(Some(message)) => {
                    // A channel name that is not UTF-8 reads "?", without the prefix.
                    match message
                        .get_channel_name()
                        .strip_prefix(self.prefix.as_str())
                    {
                        Some(topic) => self.deliver(topic, message.get_payload_bytes()),
                        None => {
                            self.counters.invalid.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                Some(None) => return,
                None => {
                    let pong =
                        timeout(RedisRelay::PING_TIMEOUT, sink.ping::<::redis::Value>()).await;
                    if !matches!(pong, Ok(Ok(_))) {
                        return;
                    }
                }
            }
            // Pinged only when idle: a message is as good a sign of life as a pong.
            ping.as_mut().reset(Instant::now() + RedisRelay::PING_EVERY);
        }
    }

    fn deliver(&self, topic: &str, payload: &[u8]) {
        let message = match self.kind {
            MessageKind::Binary => PreparedMessage::binary(payload),
            MessageKind::Text => match core::str::from_utf8(payload) {
                Ok(text) => PreparedMessage::text(text),
                Err(_) => {
                    self.counters.invalid.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            },
        };
        self.counters.received.fetch_add(1, Ordering::Relaxed);
        self.hub.publish(topic, &message);
    }
}

async fn subscribe(
    client: &Client,
    pattern: &str,
) -> Result<(PubSubSink, PubSubStream), RedisError> {
    let (mut sink, stream) = client.get_async_pubsub().await?.split();
    sink.psubscribe(pattern).await?;
    Ok((sink, stream))
}

/// `PSUBSCRIBE`'s pattern for every channel that starts with `prefix`: its glob characters
/// (`*`, `?`, `[`, `]`, `\`) escaped, then `*`.
fn channel_pattern(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('*');
    pattern
}

#[cfg(test)]
mod tests {
    use super::channel_pattern;

    #[test]
    fn the_pattern_matches_the_prefix_literally() {
        assert_eq!(channel_pattern("chat:"), "chat:*");
        assert_eq!(channel_pattern(""), "*");
        assert_eq!(channel_pattern(r"a*b?[c]\d"), r"a\*b\?\[c\]\\d*");
    }
}
