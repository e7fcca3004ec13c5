//! Extension negotiation (RFC 6455 §9): the seam permessage-deflate plugs into.
//!
//! Parsed offers come in from the handshake; what was agreed goes out as the response header
//! (server) and as the RSV bits the connection then allows on frames. No extension is
//! implemented yet, so every offer is declined, which RFC 6455 §9.1 permits: the server
//! answers without `Sec-WebSocket-Extensions` and the client offers nothing (and so accepts
//! nothing: an extension in the response fails the handshake).

use crate::config::Config;
use crate::handshake::{ExtensionOffer, HandshakeError};
use alloc::string::String;
use alloc::vec::Vec;

/// What the handshake agreed on for extensions.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Negotiated {
    /// RSV bits the agreed extensions define; any other set bit fails the connection.
    pub(crate) rsv_allowed: u8,
}

/// Server side: chooses among the client's offers. Returns the `Sec-WebSocket-Extensions`
/// value to answer with, if any, and what the connection must apply.
pub(crate) fn accept_offers(
    _config: &Config,
    _offers: &[ExtensionOffer],
) -> (Option<String>, Negotiated) {
    (None, Negotiated::default())
}

/// Client side: the `Sec-WebSocket-Extensions` elements to offer.
pub(crate) fn client_offers(_config: &Config) -> Vec<String> {
    Vec::new()
}

/// Client side: applies the extensions the server accepted. The handshake has already
/// rejected names that were not offered.
///
/// # Errors
/// The server's parameters are not acceptable (the connection fails with 1010 where
/// RFC 7692 asks for it).
pub(crate) fn apply_response(
    _config: &Config,
    accepted: &[ExtensionOffer],
) -> Result<Negotiated, HandshakeError> {
    match accepted.first() {
        None => Ok(Negotiated::default()),
        Some(unexpected) => Err(HandshakeError::ExtensionNotOffered(
            unexpected.name().into(),
        )),
    }
}
