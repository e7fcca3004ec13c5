//! Connection settings: the role, every limit with its default, and the timers.

use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

/// Which end of the connection this is. It decides masking (RFC 6455 §5.1) and who closes
/// the TCP connection first (§7.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Opens the connection; masks every frame it sends.
    Client,
    /// Accepts the connection; never masks.
    Server,
}

/// Limits and behaviour of a connection. Start from [`Config::default`] and change what you
/// need with the setters, in one expression:
///
/// ```
/// # use std::time::Duration;
/// let config = wsproto::Config::default()
///     .max_message_size(16 << 20)
///     .keepalive_interval(Some(Duration::from_secs(30)));
/// assert_eq!(config.max_message_size, 16 << 20);
/// ```
///
/// The fields stay public to read and to assign; the struct is `#[non_exhaustive]`, so new
/// settings can come without breaking callers, which is why a struct literal does not work.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// The largest message accepted, in bytes (default 1 MiB, as Python `websockets`).
    ///
    /// A frame whose declared length takes the message past this is rejected with 1009
    /// from its header, before any of its payload is buffered, so a peer cannot make the
    /// connection hold more than this (plus one read, and a control frame with the frame
    /// headers around them) per message.
    pub max_message_size: usize,
    /// The largest single data frame accepted, in bytes (default `None`: only
    /// `max_message_size` applies). Exceeding it fails with 1009.
    pub max_frame_size: Option<usize>,
    /// The most frames one message may arrive in (default 1,048,576). Fragments are joined
    /// in place, so they cost no memory beyond their payload (unlike Node `ws`, whose 2026
    /// advisory was memory exhaustion through tiny fragments); this bounds the work one
    /// message can cause. Autobahn case 9.3.1 sends 4 MiB as 65,537 frames. Exceeding it
    /// fails with 1008.
    pub max_fragments_per_message: usize,
    /// How many bytes `Connection::receive_buffer` offers for one read (default 64 KiB);
    /// less where a frame at least this long ends, so that a read stops there.
    pub read_buffer_size: usize,
    /// Report data messages in chunks, as their bytes arrive (default `false`: whole
    /// messages). Each chunk is lent from the receive buffer as
    /// [`Event::TextChunk`](crate::Event::TextChunk) or
    /// [`Event::BinaryChunk`](crate::Event::BinaryChunk), unmasked in place (text validated
    /// up to its last complete code point, compressed messages inflated a read's worth at a
    /// time), and the buffer is reused for the next read instead of growing to the
    /// message's size: receiving a message of any size takes at most two
    /// `read_buffer_size`s of memory (and the inflater's window). `max_message_size` still
    /// applies to the whole message; raise it for large transfers.
    pub stream_messages: bool,
    /// How long buffers emptied by traffic are kept for the next message before they are
    /// freed (default 1 s). Keeping them saves an allocation, zeroing and page faults per
    /// message on a busy connection (the 10 x 64 KiB echo bench spent 12% of its time
    /// there); freeing them keeps an idle connection at no heap buffers. The deadline comes
    /// through `poll_timeout`/`handle_timeout`; `Connection::release_buffers` frees them at
    /// once. `None` frees each buffer as soon as it is empty. The opening handshake's
    /// buffers are always freed as soon as they are drained: no second head follows.
    pub buffer_linger: Option<Duration>,
    /// Answer each Ping with a Pong automatically (default `true`, RFC 6455 §5.5.2).
    /// Pings are reported either way.
    pub auto_pong: bool,
    /// Send a Ping when nothing has been received for this long (default 20 s; `None` turns
    /// keepalive off). Receiving bytes does not ask the driver for the time, so the deadline
    /// moves only when the connection next learns it: the Ping goes out after between one
    /// and two intervals of silence.
    pub keepalive_interval: Option<Duration>,
    /// Fail the connection with 1011 when the keepalive Ping gets no Pong this long after it
    /// was sent (default 20 s; `None` waits forever).
    pub keepalive_timeout: Option<Duration>,
    /// After our Close is sent, how long to wait for the peer's Close (and, as a client, for
    /// the server to close TCP) before giving up and asking to shut down (default 10 s).
    pub close_timeout: Option<Duration>,
    /// How long the opening handshake may take (default 10 s), so that a peer that never
    /// finishes its request is dropped.
    pub handshake_timeout: Option<Duration>,
    /// The largest HTTP request or response head, in bytes (default 16 KiB). A server answers
    /// a larger request with 431.
    pub max_head_size: usize,
    /// The most header lines in an HTTP head (default 64). A server answers more with 431.
    pub max_headers: usize,
    /// Origins a server accepts (`Origin` header values, compared case-insensitively); a
    /// request from any other origin, or without one, gets 403. `None` (the default) accepts
    /// every origin.
    pub allowed_origins: Option<Vec<String>>,
    /// The high-water mark of the output queue, in bytes (default 64 KiB; `None`: no mark).
    /// Once this much waits to be written, message sends are refused with
    /// [`UsageError::OutputFull`](crate::UsageError::OutputFull) and
    /// [`Connection::wants_read`](crate::Connection::wants_read) turns false, so that a driver
    /// writes before it reads more. Control frames are never refused, and automatic Pongs
    /// do not pile up (one waits, answering the latest Ping), so a peer that sends without
    /// reading cannot grow the output by itself.
    ///
    /// The check comes before a send, so one message of any size is queued while the output
    /// is under the mark: the queue holds at most the mark plus one message. 64 KiB is one
    /// read (`read_buffer_size`): what the replies to one read can need, while 10,000
    /// connections that stopped reading hold at most 640 MiB of output between them.
    pub output_high_water: Option<usize>,
    /// permessage-deflate (RFC 7692) settings; `None` (the default) neither offers nor
    /// accepts compression.
    #[cfg(feature = "deflate")]
    pub deflate: Option<crate::deflate::DeflateConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_message_size: 1 << 20,
            max_frame_size: None,
            max_fragments_per_message: 1 << 20,
            read_buffer_size: 64 << 10,
            stream_messages: false,
            buffer_linger: Some(Duration::from_secs(1)),
            auto_pong: true,
            keepalive_interval: Some(Duration::from_secs(20)),
            keepalive_timeout: Some(Duration::from_secs(20)),
            close_timeout: Some(Duration::from_secs(10)),
            handshake_timeout: Some(Duration::from_secs(10)),
            max_head_size: 16 << 10,
            max_headers: 64,
            allowed_origins: None,
            output_high_water: Some(64 << 10),
            #[cfg(feature = "deflate")]
            deflate: None,
        }
    }
}

/// One chained setter per field, for settings structs that are `#[non_exhaustive]` and so
/// cannot be written as literals outside the crate: `Config::default().max_message_size(1 << 24)`.
macro_rules! setters {
    ($type:ty { $($(#[$cfg:meta])* $field:ident: $ty:ty;)* }) => {
        impl $type {
            $(
                $(#[$cfg])*
                #[doc = concat!("Sets [`", stringify!($field), "`](Self::", stringify!($field), ").")]
                #[must_use]
                pub fn $field(mut self, value: $ty) -> Self {
                    self.$field = value;
                    self
                }
            )*
        }
    };
}

#[cfg_attr(
    not(any(feature = "deflate", feature = "tokio")),
    expect(unused_imports, reason = "DeflateConfig and HubConfig use it")
)]
pub(crate) use setters;

setters! { Config {
    max_message_size: usize;
    max_frame_size: Option<usize>;
    max_fragments_per_message: usize;
    read_buffer_size: usize;
    stream_messages: bool;
    buffer_linger: Option<Duration>;
    auto_pong: bool;
    keepalive_interval: Option<Duration>;
    keepalive_timeout: Option<Duration>;
    close_timeout: Option<Duration>;
    handshake_timeout: Option<Duration>;
    max_head_size: usize;
    max_headers: usize;
    allowed_origins: Option<Vec<String>>;
    output_high_water: Option<usize>;
    #[cfg(feature = "deflate")]
    deflate: Option<crate::deflate::DeflateConfig>;
}}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setters_chain_from_the_default() {
        let config = Config::default()
            .max_message_size(1 << 24)
            .max_frame_size(Some(4096))
            .keepalive_interval(None)
            .allowed_origins(Some(alloc::vec!["https://example.com".into()]));
        assert_eq!(config.max_message_size, 1 << 24);
        assert_eq!(config.max_frame_size, Some(4096));
        assert_eq!(config.keepalive_interval, None);
        assert_eq!(
            config.allowed_origins.as_deref(),
            Some(&["https://example.com".into()][..])
        );
        // The rest keep their defaults.
        assert_eq!(config.read_buffer_size, 64 << 10);
        assert_eq!(config.close_timeout, Some(Duration::from_secs(10)));
    }
}
