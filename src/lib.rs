//! A sans-IO WebSocket (RFC 6455) protocol core.
#![no_std]
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod buffer;
mod close;
mod config;
mod connection;
mod entropy;
mod error;
mod event;
mod frame;
mod mask;
mod utf8;

pub use close::{CloseCode, MAX_CLOSE_REASON};
pub use config::{Config, Role};
pub use connection::{Connection, ConnectionState};
pub use entropy::Entropy;
pub use error::{Error, ProtocolError, UsageError};
pub use event::{Event, MessageKind};
pub use frame::{FrameHeader, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN, Opcode};
pub use mask::apply_mask;
