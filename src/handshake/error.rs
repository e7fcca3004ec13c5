//! Handshake failures (`HandshakeError`, `UrlError`) and handshake builder misuse (`BuildError`).

use alloc::string::String;
use alloc::vec::Vec;

/// Why an opening handshake failed.
///
/// Server-side variants describe a client request the server must refuse; [`status`] gives the
/// HTTP status to answer with. Client-side variants describe a URL or a server response the
/// client must refuse; they have no status because a client answers nothing.
///
/// [`status`]: HandshakeError::status
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    // ---- server side: the client's request ----
    /// The request head is not valid HTTP/1.1 (the text says what httparse found).
    #[error("malformed request: {0}")]
    MalformedRequest(String),
    /// The request target is neither origin-form (`/path?query`) nor an absolute http(s)/ws(s)
    /// URI, or it carries a fragment.
    #[error("invalid request target")]
    InvalidRequestTarget,
    /// The request head grew past the configured limit before its blank line.
    #[error("request head too large")]
    HeadTooLarge,
    /// The request has more headers than the configured limit.
    #[error("too many headers")]
    TooManyHeaders,
    /// RFC 6455 §4.2.1 item 1: the method is not `GET`.
    #[error("method not allowed: expected GET")]
    MethodNotGet,
    /// RFC 8441 §4: an HTTP/2 (or later) request whose method is not `CONNECT`.
    #[error("method not allowed: expected CONNECT")]
    MethodNotConnect,
    /// RFC 8441 §5: an HTTP/2 (or later) CONNECT without a `:protocol` of `websocket`.
    #[error("missing :protocol websocket pseudo-header")]
    MissingProtocol,
    /// RFC 6455 §4.2.1 item 1: the request is older than HTTP/1.1.
    #[error("unsupported HTTP version: expected HTTP/1.1")]
    HttpVersion,
    /// RFC 6455 §4.2.1 item 2: no `Host` header, more than one, or an empty one.
    #[error("missing or invalid Host header")]
    MissingHost,
    /// RFC 6455 §4.2.1 item 3: no `Upgrade` header listing `websocket`.
    #[error("missing Upgrade: websocket header")]
    MissingUpgrade,
    /// RFC 6455 §4.2.1 item 4: no `Connection` header listing `upgrade`.
    #[error("missing Connection: upgrade header")]
    MissingConnectionUpgrade,
    /// RFC 6455 §4.2.1 item 5: no `Sec-WebSocket-Key` header.
    #[error("missing Sec-WebSocket-Key header")]
    MissingKey,
    /// RFC 6455 §4.2.1 item 5: the key repeats or does not decode to exactly 16 bytes.
    #[error("invalid Sec-WebSocket-Key header")]
    InvalidKey,
    /// RFC 6455 §4.2.1 item 6: `Sec-WebSocket-Version` is missing, repeated or not `13`.
    #[error("unsupported Sec-WebSocket-Version: expected 13")]
    UnsupportedVersion,
    /// The application refused the request's `Origin` (RFC 6455 §4.2.2 item 4, §10.2).
    #[error("origin not allowed")]
    OriginNotAllowed,
    /// The application rejected the handshake with this HTTP status.
    #[error("rejected by the application with status {status}")]
    Rejected {
        /// The status the application answered with.
        status: u16,
    },
    /// `Sec-WebSocket-Extensions` does not follow the RFC 6455 §9.1 grammar.
    #[error("malformed Sec-WebSocket-Extensions header: {0}")]
    MalformedExtensions(&'static str),
    /// The peer did not complete the handshake in time.
    #[error("handshake timed out")]
    Timeout,

    // ---- client side: the URL and the server's response ----
    /// The URL given to [`ClientRequest::new`](super::ClientRequest::new) is not a usable
    /// `ws://` or `wss://` URI (RFC 6455 §3).
    #[error("invalid url: {0}")]
    InvalidUrl(UrlError),
    /// The response head is not valid HTTP/1.1 (the text says what was wrong).
    #[error("malformed response: {0}")]
    MalformedResponse(String),
    /// RFC 6455 §4.1: the server answered with something other than `101`.
    #[error("unexpected response status {status}")]
    UnexpectedStatus {
        /// The status code received.
        status: u16,
        /// Every response header, in order, names as sent.
        headers: Vec<(String, Vec<u8>)>,
        /// For a 3xx status, the `Location` header if it is valid UTF-8.
        location: Option<String>,
    },
    /// RFC 6455 §4.1: the response has no `Upgrade` header listing `websocket`.
    #[error("response lacks Upgrade: websocket header")]
    ResponseMissingUpgrade,
    /// RFC 6455 §4.1: the response has no `Connection` header listing `upgrade`.
    #[error("response lacks Connection: upgrade header")]
    ResponseMissingConnection,
    /// RFC 6455 §4.1: the response has no `Sec-WebSocket-Accept` header.
    #[error("missing Sec-WebSocket-Accept header")]
    MissingAccept,
    /// RFC 6455 §4.1: `Sec-WebSocket-Accept` repeats or does not match the key sent.
    #[error("wrong Sec-WebSocket-Accept header")]
    WrongAccept,
    /// RFC 6455 §4.1: the server selected a subprotocol the client did not offer.
    #[error("server selected subprotocol {0:?} which was not offered")]
    SubprotocolNotOffered(String),
    /// RFC 6455 §4.1: the server accepted an extension the client did not offer.
    #[error("server accepted extension {0:?} which was not offered")]
    ExtensionNotOffered(String),
    /// The response head grew past the configured limit before its blank line.
    #[error("response head too large")]
    ResponseHeadTooLarge,
}

impl HandshakeError {
    /// The HTTP status a server answers this error with, or `None` for client-side errors.
    ///
    /// 405 for a wrong method, 426 for an unsupported `Sec-WebSocket-Version` (RFC 6455
    /// §4.2.2), 431 for oversized heads, 403 for a refused origin, 408 for a timeout, the
    /// application's own status for a rejection, and 400 for everything else the client got
    /// wrong.
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::MalformedRequest(_)
            | Self::InvalidRequestTarget
            | Self::HttpVersion
            | Self::MissingHost
            | Self::MissingUpgrade
            | Self::MissingConnectionUpgrade
            | Self::MissingProtocol
            | Self::MissingKey
            | Self::InvalidKey
            | Self::MalformedExtensions(_) => Some(400),
            Self::MethodNotGet | Self::MethodNotConnect => Some(405),
            Self::UnsupportedVersion => Some(426),
            Self::HeadTooLarge | Self::TooManyHeaders => Some(431),
            Self::OriginNotAllowed => Some(403),
            Self::Timeout => Some(408),
            Self::Rejected { status } => Some(*status),
            Self::InvalidUrl(_)
            | Self::MalformedResponse(_)
            | Self::UnexpectedStatus { .. }
            | Self::ResponseMissingUpgrade
            | Self::ResponseMissingConnection
            | Self::MissingAccept
            | Self::WrongAccept
            | Self::SubprotocolNotOffered(_)
            | Self::ExtensionNotOffered(_)
            | Self::ResponseHeadTooLarge => None,
        }
    }
}

/// Why a URL cannot be used to open a WebSocket (RFC 6455 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// The scheme is missing or is not `ws` or `wss`.
    #[error("unsupported scheme: expected ws or wss")]
    UnsupportedScheme,
    /// The authority has no host.
    #[error("missing host")]
    MissingHost,
    /// The host is not a DNS name, an IPv4 address or a bracketed IPv6 address.
    #[error("invalid host")]
    InvalidHost,
    /// The port is not a number from 1 to 65535.
    #[error("invalid port")]
    InvalidPort,
    /// The authority carries `user:password@`, which WebSocket URIs cannot use.
    #[error("user information is not allowed")]
    UserInfo,
    /// RFC 6455 §3: fragment identifiers MUST NOT be used in WebSocket URIs.
    #[error("fragment identifiers are not allowed")]
    Fragment,
    /// The URL contains whitespace, a control character or a non-ASCII character.
    #[error("whitespace, control or non-ASCII character")]
    InvalidCharacter,
    /// The path or query contains a character URIs do not allow, or a bad `%` escape.
    #[error("invalid character in path or query")]
    InvalidPath,
}

/// Why the application's handshake request or answer cannot be sent as built.
///
/// These are caller mistakes, not peer misbehaviour: nothing is sent and no state changes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The header name is not an RFC 7230 token.
    #[error("invalid header name {0:?}")]
    InvalidHeaderName(String),
    /// The value of the named header contains CR, LF or another control character.
    #[error("invalid value for header {0:?}")]
    InvalidHeaderValue(String),
    /// The handshake writes this header itself; setting it again would corrupt the handshake.
    #[error("header {0:?} is written by the handshake itself")]
    ReservedHeader(String),
    /// RFC 6455 §4.1 item 10: subprotocols must be distinct tokens.
    #[error("invalid or repeated subprotocol {0:?}")]
    InvalidSubprotocol(String),
    /// RFC 6455 §4.2.2 item 5.5: the server may only select a subprotocol the client offered.
    #[error("subprotocol {0:?} was not offered by the client")]
    SubprotocolNotOffered(String),
    /// The origin contains characters a header value cannot carry.
    #[error("invalid origin")]
    InvalidOrigin,
    /// A rejection must use a 3xx, 4xx or 5xx status that may carry a body.
    #[error("invalid rejection status {0}")]
    InvalidStatus(u16),
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    #[test]
    fn sec_4_2_2_status_per_error() {
        let cases = [
            (
                HandshakeError::MalformedRequest("invalid token".into()),
                Some(400),
            ),
            (HandshakeError::InvalidRequestTarget, Some(400)),
            (HandshakeError::HeadTooLarge, Some(431)),
            (HandshakeError::TooManyHeaders, Some(431)),
            (HandshakeError::MethodNotGet, Some(405)),
            (HandshakeError::HttpVersion, Some(400)),
            (HandshakeError::MissingHost, Some(400)),
            (HandshakeError::MissingUpgrade, Some(400)),
            (HandshakeError::MissingConnectionUpgrade, Some(400)),
            (HandshakeError::MissingKey, Some(400)),
            (HandshakeError::InvalidKey, Some(400)),
            (HandshakeError::UnsupportedVersion, Some(426)),
            (HandshakeError::OriginNotAllowed, Some(403)),
            (HandshakeError::Rejected { status: 503 }, Some(503)),
            (HandshakeError::MalformedExtensions("x"), Some(400)),
            (HandshakeError::Timeout, Some(408)),
            (HandshakeError::InvalidUrl(UrlError::Fragment), None),
            (HandshakeError::MalformedResponse("x".into()), None),
            (
                HandshakeError::UnexpectedStatus {
                    status: 302,
                    headers: vec![],
                    location: None,
                },
                None,
            ),
            (HandshakeError::ResponseMissingUpgrade, None),
            (HandshakeError::ResponseMissingConnection, None),
            (HandshakeError::MissingAccept, None),
            (HandshakeError::WrongAccept, None),
            (HandshakeError::SubprotocolNotOffered("x".into()), None),
            (HandshakeError::ExtensionNotOffered("x".into()), None),
            (HandshakeError::ResponseHeadTooLarge, None),
        ];
        for (err, status) in cases {
            assert_eq!(err.status(), status, "{err}");
        }
    }

    #[test]
    fn sec_4_2_2_messages_are_lowercase() {
        assert_eq!(
            HandshakeError::MalformedRequest("invalid token".into()).to_string(),
            "malformed request: invalid token"
        );
        assert_eq!(
            HandshakeError::InvalidUrl(UrlError::InvalidPort).to_string(),
            "invalid url: invalid port"
        );
        assert_eq!(
            HandshakeError::Rejected { status: 403 }.to_string(),
            "rejected by the application with status 403"
        );
    }
}
