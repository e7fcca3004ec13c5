//! [`PreparedMessage`]: a message framed once, and compressed at most once per set of
//! permessage-deflate settings, for every server connection it is sent to. The building
//! block of a broadcast.
//!
//! A server's frames are not masked (RFC 6455 §5.1), so the bytes of a frame do not depend
//! on the connection: the prepared message holds the frame (header and payload) and every
//! connection sends those same bytes. [`Sender::send_prepared`](crate::Sender::send_prepared)
//! lends them for a vectored write without copying, and
//! [`Connection::send_prepared`](crate::Connection::send_prepared) copies the frame whole,
//! without framing or compressing it again.
//!
//! With permessage-deflate, a connection that agreed `server_no_context_takeover` (RFC 7692
//! §7.1.1.1) compresses every message from a fresh state, so what it sends depends only on
//! the compression level and its window bits: the first such connection compresses the
//! message, and every later one with the same settings sends the same compressed frame. A
//! connection that keeps its context (the default) must compress each message itself, as its
//! compressor's history is its own; so must one whose level differs from the one the shared
//! copy was made with. Those compressions are counted apart
//! ([`connection_deflates`](PreparedMessage::connection_deflates)).
//!
//! A client masks every frame with a fresh key, so a client connection frames (and masks)
//! the payload itself, as `send_binary` does.

use crate::buffer::encode_header;
use crate::event::MessageKind;
use crate::frame::Opcode;
use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;

/// A text or binary message framed once for many server connections; cheap to clone (the
/// frame is shared by reference count).
///
/// ```
/// use wsproto::{Config, Connection, PreparedMessage};
///
/// let message = PreparedMessage::text("price: 42");
/// let mut subscribers = [
///     Connection::upgraded_server(Config::default()),
///     Connection::upgraded_server(Config::default()),
/// ];
/// for conn in &mut subscribers {
///     conn.send_prepared(&message)?;
///     assert_eq!(conn.pending_output(), message.frame());
/// }
/// assert_eq!(&message.frame()[..2], &[0x81, 9]);
/// # Ok::<(), wsproto::UsageError>(())
/// ```
#[derive(Clone)]
pub struct PreparedMessage {
    inner: Arc<Inner>,
}

struct Inner {
    kind: MessageKind,
    /// The unmasked, uncompressed frame: header, then payload.
    frame: Box<[u8]>,
    header_len: usize,
    /// The compressed frames, made on first use, by compressor window bits (8 to 15).
    #[cfg(feature = "deflate")]
    deflated: [std::sync::OnceLock<DeflatedFrame>; 8],
    /// Compressions made to be shared.
    #[cfg(feature = "deflate")]
    shared_deflates: core::sync::atomic::AtomicU64,
    /// Compressions a connection made for itself.
    #[cfg(feature = "deflate")]
    connection_deflates: core::sync::atomic::AtomicU64,
}

/// A compressed frame and the level it was compressed at.
#[cfg(feature = "deflate")]
struct DeflatedFrame {
    level: u32,
    frame: Box<[u8]>,
}

impl core::fmt::Debug for PreparedMessage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PreparedMessage")
            .field("kind", &self.inner.kind)
            .field("len", &self.payload().len())
            .finish_non_exhaustive()
    }
}

impl PreparedMessage {
    /// A text message.
    #[must_use]
    pub fn text(text: &str) -> Self {
        Self::new(MessageKind::Text, text.as_bytes())
    }

    /// A binary message.
    #[must_use]
    pub fn binary(data: &[u8]) -> Self {
        Self::new(MessageKind::Binary, data)
    }

    fn new(kind: MessageKind, payload: &[u8]) -> Self {
        let (header, header_len) = encode_header(Opcode::of(kind), true, 0, None, payload.len());
        let mut frame = Vec::with_capacity(header_len + payload.len());
        frame.extend_from_slice(&header[..header_len]);
        frame.extend_from_slice(payload);
        Self {
            inner: Arc::new(Inner {
                kind,
                frame: frame.into_boxed_slice(),
                header_len,
                #[cfg(feature = "deflate")]
                deflated: Default::default(),
                #[cfg(feature = "deflate")]
                shared_deflates: core::sync::atomic::AtomicU64::new(0),
                #[cfg(feature = "deflate")]
                connection_deflates: core::sync::atomic::AtomicU64::new(0),
            }),
        }
    }

    /// Text or binary.
    #[must_use]
    pub fn kind(&self) -> MessageKind {
        self.inner.kind
    }

    /// The message itself.
    #[must_use]
    pub fn payload(&self) -> &[u8] {
        &self.inner.frame[self.inner.header_len..]
    }

    /// The frame a server connection that does not compress this message sends: the
    /// header, then the payload.
    #[must_use]
    pub fn frame(&self) -> &[u8] {
        &self.inner.frame
    }

    /// How many times the payload was compressed to be shared: at most once per window-bits
    /// setting among the connections without server context takeover it went to.
    #[cfg(feature = "deflate")]
    #[must_use]
    pub fn shared_deflates(&self) -> u64 {
        self.inner
            .shared_deflates
            .load(core::sync::atomic::Ordering::Relaxed)
    }

    /// How many connections compressed the payload for themselves: those that keep their
    /// compression context (RFC 7692 server context takeover, the default), and those whose
    /// level differs from the shared copy's.
    #[cfg(feature = "deflate")]
    #[must_use]
    pub fn connection_deflates(&self) -> u64 {
        self.inner
            .connection_deflates
            .load(core::sync::atomic::Ordering::Relaxed)
    }

    /// Counts a compression a connection made for itself.
    pub(crate) fn count_connection_deflate(&self) {
        #[cfg(feature = "deflate")]
        self.inner
            .connection_deflates
            .fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    }

    /// The compressed frame for a connection that compresses every message from a fresh
    /// state with `settings`, made on first use; `None` when the shared copy for these
    /// window bits was made at another level.
    #[cfg(feature = "deflate")]
    pub(crate) fn deflated_frame(&self, settings: crate::deflate::SharedDeflate) -> Option<&[u8]> {
        let slot = self
            .inner
            .deflated
            .get(usize::from(settings.window_bits.saturating_sub(8)))?;
        let deflated = slot.get_or_init(|| {
            self.inner
                .shared_deflates
                .fetch_add(1, core::sync::atomic::Ordering::Relaxed);
            let compressed = crate::deflate::deflate_whole(settings, self.payload());
            // RFC 7692 §6.1: RSV1 marks the compressed message.
            let (header, header_len) = encode_header(
                Opcode::of(self.inner.kind),
                true,
                crate::extension::RSV1,
                None,
                compressed.len(),
            );
            let mut frame = Vec::with_capacity(header_len + compressed.len());
            frame.extend_from_slice(&header[..header_len]);
            frame.extend_from_slice(&compressed);
            DeflatedFrame {
                level: settings.level,
                frame: frame.into_boxed_slice(),
            }
        });
        (deflated.level == settings.level).then_some(&*deflated.frame)
    }

    /// Without the feature nothing is compressed.
    #[cfg(not(feature = "deflate"))]
    pub(crate) fn deflated_frame(&self, settings: crate::deflate::SharedDeflate) -> Option<&[u8]> {
        match settings {}
    }
}
