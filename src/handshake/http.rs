//! The server's opening handshake over the `http` crate's types: an HTTP/1.1 upgrade
//! (RFC 6455 §4.2) or an HTTP/2 extended CONNECT (RFC 8441), judged by the same rules as the
//! bytes-in handshake of [`Connection::server`].
//!
//! A framework (hyper, axum, or anything built on `http`) has already parsed the request
//! head. [`Upgrade::new`] validates it, the application picks a subprotocol with an
//! [`Accept`], and [`Upgrade::accept`] returns the response to send and a [`Connection`] that
//! is already open, with permessage-deflate agreed as the [`Config`] asks. The bytes that
//! follow (the upgraded HTTP/1.1 stream or the HTTP/2 stream's DATA) go to
//! [`Connection::receive`]. A request that fails validation gives a [`Rejection`], whose
//! [`response`](Rejection::response) is the status, headers and body the bytes-in path sends
//! for the same request.
//!
//! # HTTP/2 and `:protocol`
//!
//! RFC 8441 carries the protocol to run in the `:protocol` pseudo-header field, which the
//! `http` crate does not model: HTTP/2 libraries put it in the request's extensions as their
//! own type (`h2::ext::Protocol`, re-exported as `hyper::ext::Protocol`). So that this module
//! depends on neither, the caller reads it and passes it as a `&str`:
//!
//! ```ignore
//! let protocol = parts.extensions.get::<hyper::ext::Protocol>().map(|p| p.as_str());
//! let upgrade = Upgrade::new(&parts, protocol, config);
//! ```
//!
//! It is read only for HTTP/2 and later requests; an HTTP/1.1 request passes `None`. The
//! server must also have enabled extended CONNECT (RFC 8441 §3,
//! `SETTINGS_ENABLE_CONNECT_PROTOCOL`; hyper's `enable_connect_protocol`).
//!
//! # Example
//!
//! ```
//! use wsproto::handshake_http::Upgrade;
//! use wsproto::{Accept, Config, ConnectionState};
//!
//! let request = http::Request::get("/chat")
//!     .header("Host", "server.example.com")
//!     .header("Upgrade", "websocket")
//!     .header("Connection", "Upgrade")
//!     .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
//!     .header("Sec-WebSocket-Protocol", "chat, superchat")
//!     .header("Sec-WebSocket-Version", "13")
//!     .body(())?;
//! let upgrade = match Upgrade::from_request(&request, None, Config::default()) {
//!     Ok(upgrade) => upgrade,
//!     // Send `rejection.response()` and close.
//!     Err(rejection) => panic!("{}", rejection.error()),
//! };
//! assert_eq!(upgrade.request().subprotocols(), ["chat", "superchat"]);
//! let (response, conn) = upgrade.accept(Accept::new().subprotocol("chat"))?;
//! assert_eq!(response.status(), http::StatusCode::SWITCHING_PROTOCOLS);
//! assert_eq!(
//!     response.headers()["sec-websocket-accept"],
//!     "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
//! );
//! assert_eq!(conn.state(), ConnectionState::Open);
//! assert_eq!(conn.subprotocol(), Some("chat"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use ::http::header::{HeaderMap, HeaderName, HeaderValue};
use ::http::{Method, Response, StatusCode, Uri, Version};
use alloc::borrow::Cow;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::server::{
    HttpVersion, RequestHead, accept_headers, check_origin, error_response, validate,
};
use super::{Accept, BuildError, HandshakeError, Headers, Request};
use crate::config::Config;
use crate::connection::Connection;
use crate::extension;

/// A WebSocket handshake request, read from `http` types, that passed validation and awaits
/// the application's answer.
#[derive(Debug)]
pub struct Upgrade {
    request: Request,
    version: Version,
    config: Config,
}

impl Upgrade {
    /// Validates a request head as [`Connection::server`] validates the same request's bytes.
    ///
    /// HTTP/1.1 is checked against RFC 6455 §4.2.1 (`GET`, `Host`, `Upgrade: websocket`,
    /// `Connection: upgrade`, `Sec-WebSocket-Version: 13`, a 16-byte `Sec-WebSocket-Key`);
    /// HTTP/2 and later against RFC 8441 §4-5 (`CONNECT` with `protocol` `websocket`,
    /// `Sec-WebSocket-Version: 13`, no key). Then, for both, `Config::max_headers`,
    /// `Config::allowed_origins` and the syntax of `Origin`, `Sec-WebSocket-Protocol` and
    /// `Sec-WebSocket-Extensions`. `protocol` is the `:protocol` pseudo-header of an
    /// HTTP/2 request (see the [module docs](self)), ignored for HTTP/1.x.
    ///
    /// # Errors
    /// A [`Rejection`] for the first failed check, in the order
    /// [`Connection::server`] checks them; its [`response`](Rejection::response) is the answer.
    pub fn new(
        head: &::http::request::Parts,
        protocol: Option<&str>,
        config: Config,
    ) -> Result<Self, Rejection> {
        Self::check(
            &head.method,
            &head.uri,
            head.version,
            &head.headers,
            protocol,
            config,
        )
    }

    /// [`Upgrade::new`] for a whole request; the body is not looked at.
    ///
    /// # Errors
    /// As [`Upgrade::new`].
    pub fn from_request<B>(
        request: &::http::Request<B>,
        protocol: Option<&str>,
        config: Config,
    ) -> Result<Self, Rejection> {
        Self::check(
            request.method(),
            request.uri(),
            request.version(),
            request.headers(),
            protocol,
            config,
        )
    }

    fn check(
        method: &Method,
        uri: &Uri,
        version: Version,
        headers: &HeaderMap,
        protocol: Option<&str>,
        config: Config,
    ) -> Result<Self, Rejection> {
        let kind = if version == Version::HTTP_11 {
            HttpVersion::Http11
        } else if version == Version::HTTP_2 || version == Version::HTTP_3 {
            HttpVersion::Http2OrLater
        } else {
            HttpVersion::Older
        };
        let extended_connect = kind == HttpVersion::Http2OrLater;
        let reject = |error| Rejection {
            error,
            extended_connect,
        };
        // The bytes-in path answers 431 when the head has more header lines than this.
        if headers.len() > config.max_headers {
            return Err(reject(HandshakeError::TooManyHeaders));
        }
        let target = uri.to_string();
        let owned: Headers = headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_bytes()))
            .collect();
        let request = validate(RequestHead {
            method: method.as_str(),
            version: kind,
            target: &target,
            headers: owned,
            authority: uri
                .authority()
                .map(|a| a.as_str())
                .filter(|_| extended_connect),
            protocol: protocol.filter(|_| extended_connect),
        })
        .map_err(reject)?;
        check_origin(&request, config.allowed_origins.as_deref()).map_err(reject)?;
        Ok(Self {
            request,
            version,
            config,
        })
    }

    /// The validated request: target, host, origin, offered subprotocols and extensions,
    /// headers (grouped by name, names in lowercase, as the `http` crate keeps them).
    #[must_use]
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// Whether this is an HTTP/2 (or later) extended CONNECT (RFC 8441) rather than an
    /// HTTP/1.1 upgrade.
    #[must_use]
    pub fn is_extended_connect(&self) -> bool {
        self.version != Version::HTTP_11
    }

    /// Accepts the handshake: negotiates permessage-deflate with the config's settings, as
    /// [`Connection::accept`] does, and returns the response and an open server
    /// [`Connection`] using what was agreed.
    ///
    /// The response is `101 Switching Protocols` with `Upgrade`, `Connection` and
    /// `Sec-WebSocket-Accept` for HTTP/1.1 (RFC 6455 §4.2.2), or `200 OK` without them for
    /// HTTP/2 (RFC 8441 §5); then `Sec-WebSocket-Protocol` and `Sec-WebSocket-Extensions` when
    /// agreed, and the [`Accept`]'s own headers, in that order. Its version is the request's.
    ///
    /// # Errors
    /// The [`BuildError`] of [`Connection::accept`]: a subprotocol the client did not offer,
    /// or an invalid or reserved header. Nothing is built then; the upgrade may be answered
    /// again.
    pub fn accept(&self, accept: Accept) -> Result<(Response<()>, Connection), BuildError> {
        accept.check(&self.request)?;
        let (extensions, negotiated) =
            extension::accept_offers(&self.config, self.request.extensions());
        let extended_connect = self.is_extended_connect();
        let mut response = Response::new(());
        *response.status_mut() = if extended_connect {
            StatusCode::OK
        } else {
            StatusCode::SWITCHING_PROTOCOLS
        };
        *response.version_mut() = self.version;
        let headers = accept_headers(
            &self.request,
            &accept,
            extensions.as_deref(),
            extended_connect,
        );
        *response.headers_mut() = header_map(&headers)?;
        let conn = Connection::accepted_server(
            self.config.clone(),
            &negotiated,
            accept.selected_subprotocol(),
        );
        Ok((response, conn))
    }
}

/// Builds a header map, keeping repeated names in order.
fn header_map(headers: &[(&str, Cow<'_, str>)]) -> Result<HeaderMap, BuildError> {
    let mut map = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let header_name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| BuildError::InvalidHeaderName((*name).into()))?;
        let header_value = HeaderValue::from_bytes(value.as_bytes())
            .map_err(|_| BuildError::InvalidHeaderValue((*name).into()))?;
        map.append(header_name, header_value);
    }
    Ok(map)
}

/// A request refused by the handshake, and the response it is owed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    error: HandshakeError,
    extended_connect: bool,
}

impl Rejection {
    /// Why the request was refused.
    #[must_use]
    pub fn error(&self) -> &HandshakeError {
        &self.error
    }

    /// The error, owned.
    #[must_use]
    pub fn into_error(self) -> HandshakeError {
        self.error
    }

    /// The status to answer with: [`HandshakeError::status`].
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.error
            .status()
            .and_then(|status| StatusCode::from_u16(status).ok())
            .unwrap_or(StatusCode::BAD_REQUEST)
    }

    /// The response the bytes-in handshake sends for the same request: the status, the
    /// headers (`Allow` for 405; `Upgrade: websocket` and `Sec-WebSocket-Version: 13` for 426;
    /// `Connection: close`, `Content-Type: text/plain; charset=utf-8`, `Content-Length`) and a
    /// one-line text body, the error's message.
    ///
    /// For HTTP/2 the connection-specific `Connection` and `Upgrade` headers are left out
    /// (RFC 9113 §8.2.2 forbids them); the stream ends, not the connection.
    #[must_use]
    pub fn response(&self) -> Response<String> {
        let Some(owed) = error_response(&self.error) else {
            // Only server-side errors are made into rejections; all of them have a status.
            let mut response = Response::new(String::new());
            *response.status_mut() = self.status();
            return response;
        };
        let headers: Vec<_> = owed
            .headers
            .into_iter()
            .filter(|(name, _)| {
                !(self.extended_connect
                    && (name.eq_ignore_ascii_case("Connection")
                        || name.eq_ignore_ascii_case("Upgrade")))
            })
            .collect();
        let mut response = Response::new(owed.body);
        *response.status_mut() = self.status();
        // The names and values are this crate's constants and numbers.
        *response.headers_mut() = header_map(&headers).unwrap_or_default();
        response
    }
}

impl core::fmt::Display for Rejection {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.error.fmt(f)
    }
}

impl core::error::Error for Rejection {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl From<Rejection> for HandshakeError {
    fn from(rejection: Rejection) -> Self {
        rejection.error
    }
}
