//! The hyper glue: a hyper 1 request (an HTTP/1.1 upgrade or an HTTP/2 extended CONNECT)
//! upgraded into the tokio driver's [`WebSocketStream`].
//!
//! The handshake is judged by [`crate::handshake_http::Upgrade`],
//! the core's own rules over `http` types; this module only reads what hyper keeps outside
//! the request head (the `:protocol` of an extended CONNECT, `hyper::ext::Protocol`, and
//! the stream to come, `hyper::upgrade::OnUpgrade`) and turns the upgraded IO into a stream.
//!
//! The answer comes first and the stream later: [`Upgrade::accept`] gives the response to
//! return from the hyper service (101 for HTTP/1.1, 200 for HTTP/2) and a
//! [`PendingWebSocket`], a future that resolves to the [`WebSocketStream`] once hyper has
//! sent the response and handed the connection (or the HTTP/2 stream) over. Await it in a
//! task of its own, after the service has returned the response.
//!
//! For HTTP/2 the server must allow extended CONNECT (RFC 8441 §3):
//! `http2().enable_connect_protocol()` on hyper's (or hyper-util's) connection builder.
//!
//! An upgraded WebSocket no longer belongs to hyper's connection, so hyper's graceful
//! shutdown does not close it: hand it to [`Shutdown::watch`](super::tokio::Shutdown::watch)
//! to have it closed with 1001 "going away" at shutdown.
//!
//! Over HTTP/2, read every WebSocket steadily: h2 closes the whole connection with
//! `ENHANCE_YOUR_CALM` once too many small DATA frames wait unread (see
//! `drivers::tokio::http2`, feature `http2`).
//!
//! ```no_run
//! use http_body_util::Full;
//! use hyper::body::{Bytes, Incoming};
//! use hyper::{Request, Response};
//! use wsproto::drivers::hyper::Upgrade;
//! use wsproto::{Accept, Config};
//!
//! async fn service(mut request: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
//!     let upgrade = match Upgrade::new(&mut request, Config::default()) {
//!         Ok(upgrade) => upgrade,
//!         // The core's 4xx: status, headers and a one-line body.
//!         Err(rejection) => return Ok(rejection.response().map(Full::from)),
//!     };
//!     let version = upgrade.http_version();
//!     let Ok((response, pending)) = upgrade.accept(Accept::new()) else {
//!         unreachable!("Accept::new() chooses nothing that can be refused");
//!     };
//!     tokio::spawn(async move {
//!         let Ok(mut ws) = pending.await else { return };
//!         eprintln!("a WebSocket over {version:?}");
//!         while let Ok(Some(message)) = ws.recv().await {
//!             // ...
//!             # let _ = message;
//!         }
//!     });
//!     Ok(response.map(|()| Full::default()))
//! }
//! ```

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, ready};

use ::http::{Request, Response, Version};
use ::hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;

use super::Error;
use super::tokio::WebSocketStream;
use crate::config::Config;
use crate::connection::Connection;
use crate::handshake::http::{self as handshake_http, Rejection};
use crate::handshake::{Accept, BuildError};

/// The stream an upgraded WebSocket runs on: hyper's upgraded connection (HTTP/1.1) or
/// extended CONNECT stream (HTTP/2), as tokio IO.
pub type UpgradedStream = TokioIo<Upgraded>;

/// A hyper request that passed the WebSocket handshake's validation and awaits the
/// application's answer.
#[derive(Debug)]
pub struct Upgrade {
    handshake: handshake_http::Upgrade,
    on_upgrade: Option<OnUpgrade>,
    version: Version,
}

impl Upgrade {
    /// Validates a hyper request as a WebSocket handshake and takes hold of its upgrade.
    ///
    /// For HTTP/2 the `:protocol` pseudo-header is read from the request's
    /// `hyper::ext::Protocol` extension. The request's `OnUpgrade` extension is taken, so
    /// that the stream can be claimed after the response is sent; the rest of the request is
    /// left as it was.
    ///
    /// # Errors
    /// The [`Rejection`] of [`handshake_http::Upgrade::new`]: answer with its
    /// [`response`](Rejection::response).
    pub fn new<B>(request: &mut Request<B>, config: Config) -> Result<Self, Rejection> {
        let protocol = protocol(request.extensions());
        let handshake = handshake_http::Upgrade::from_request(request, protocol, config)?;
        Ok(Self {
            handshake,
            on_upgrade: request.extensions_mut().remove::<OnUpgrade>(),
            version: request.version(),
        })
    }

    /// [`Upgrade::new`] for a request head taken apart (`Request::into_parts`), as
    /// frameworks' extractors see it.
    ///
    /// # Errors
    /// As [`Upgrade::new`].
    pub fn from_parts(
        parts: &mut ::http::request::Parts,
        config: Config,
    ) -> Result<Self, Rejection> {
        let protocol = protocol(&parts.extensions);
        let handshake = handshake_http::Upgrade::new(parts, protocol, config)?;
        Ok(Self {
            handshake,
            on_upgrade: parts.extensions.remove::<OnUpgrade>(),
            version: parts.version,
        })
    }

    /// An upgrade whose pieces a framework kept apart: the request head (its extensions
    /// unused), the `:protocol`, hyper's `OnUpgrade`.
    #[cfg(feature = "axum")]
    pub(crate) fn from_pieces(
        head: &Request<()>,
        protocol: Option<&str>,
        on_upgrade: Option<OnUpgrade>,
        config: Config,
    ) -> Result<Self, Rejection> {
        Ok(Self {
            handshake: handshake_http::Upgrade::from_request(head, protocol, config)?,
            on_upgrade,
            version: head.version(),
        })
    }

    /// The validated request: target, host, origin, offered subprotocols and extensions,
    /// headers.
    #[must_use]
    pub fn request(&self) -> &crate::handshake::Request {
        self.handshake.request()
    }

    /// The HTTP version the WebSocket runs over: `HTTP/1.1` for an upgrade, `HTTP/2.0` for an
    /// extended CONNECT stream (RFC 8441).
    #[must_use]
    pub fn http_version(&self) -> Version {
        self.version
    }

    /// Accepts the handshake (a subprotocol, extra headers; permessage-deflate as the
    /// [`Config`] asks) and returns the response to send and the WebSocket to come.
    ///
    /// # Errors
    /// The [`BuildError`] of [`handshake_http::Upgrade::accept`]: a subprotocol the client did
    /// not offer, or an invalid or reserved header. The request is spent then; answer it with
    /// an error status.
    pub fn accept(self, accept: Accept) -> Result<(Response<()>, PendingWebSocket), BuildError> {
        let (response, conn) = self.handshake.accept(accept)?;
        Ok((
            response,
            PendingWebSocket {
                on_upgrade: self.on_upgrade,
                conn: Some(conn),
                version: self.version,
            },
        ))
    }
}

/// The `:protocol` of an HTTP/2 extended CONNECT, as hyper keeps it.
fn protocol(extensions: &::http::Extensions) -> Option<&str> {
    extensions
        .get::<::hyper::ext::Protocol>()
        .map(::hyper::ext::Protocol::as_str)
}

/// The WebSocket of an accepted [`Upgrade`]: resolves once hyper hands the connection over,
/// after the response was sent.
#[derive(Debug)]
#[must_use = "the WebSocket arrives only when this future is awaited"]
pub struct PendingWebSocket {
    on_upgrade: Option<OnUpgrade>,
    conn: Option<Connection>,
    version: Version,
}

impl PendingWebSocket {
    /// The HTTP version the WebSocket runs over.
    #[must_use]
    pub fn http_version(&self) -> Version {
        self.version
    }
}

impl Future for PendingWebSocket {
    /// The WebSocket, open; or `Error::Io` carrying hyper's error when the upgrade failed (the
    /// connection closed first, or the request was not served by hyper, so nothing can be
    /// upgraded).
    type Output = Result<WebSocketStream<UpgradedStream>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let Some(on_upgrade) = this.on_upgrade.as_mut() else {
            return Poll::Ready(Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "the request cannot be upgraded: hyper did not serve it",
            ))));
        };
        let upgraded = ready!(Pin::new(on_upgrade).poll(cx)).map_err(std::io::Error::other)?;
        let conn = this.conn.take().ok_or(Error::Closed)?;
        Poll::Ready(Ok(WebSocketStream::from_connection(
            TokioIo::new(upgraded),
            conn,
        )))
    }
}
