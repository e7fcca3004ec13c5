//! The axum glue: [`WebSocketUpgrade`], an extractor that upgrades a request (HTTP/1.1, or an
//! HTTP/2 extended CONNECT) into the tokio driver's [`WebSocketStream`], with
//! permessage-deflate when the [`Config`] asks for it.
//!
//! It is built on the [hyper glue](super::hyper), which leaves every handshake rule to the
//! core ([`crate::handshake_http`]). Register the route with `any`, not
//! `get`: an HTTP/1.1 upgrade is a `GET`, an HTTP/2 WebSocket (RFC 8441) a `CONNECT`.
//! `axum::serve` serves both, and enables HTTP/2's extended CONNECT, when axum's `http1`
//! and `http2` features are on.
//!
//! `axum::serve`'s graceful shutdown ends at the upgrade: the WebSockets outlive it. To close
//! them with 1001 "going away" at shutdown, hand each to
//! [`Shutdown::watch`](super::tokio::Shutdown::watch) with [`WebSocketUpgrade::request`]
//! (the `axum_echo_server` example does).
//!
//! ```no_run
//! use axum::{Router, response::Response, routing::any};
//! use wsproto::drivers::Message;
//! use wsproto::drivers::axum::WebSocketUpgrade;
//!
//! async fn handler(ws: WebSocketUpgrade) -> Response {
//!     let version = ws.http_version();
//!     ws.deflate(true)
//!         .protocols(["chat"])
//!         .on_upgrade(move |mut ws| async move {
//!             eprintln!("a WebSocket over {version:?}");
//!             while let Ok(Some(message)) = ws.recv().await {
//!                 if let Message::Text(text) = message {
//!                     if ws.send_text(&text).await.is_err() {
//!                         break;
//!                     }
//!                 }
//!             }
//!         })
//! }
//!
//! # async fn demo() -> std::io::Result<()> {
//! let app = Router::new().route("/ws", any(handler));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9001").await?;
//! axum::serve(listener, app).await
//! # }
//! ```

use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::future::Future;

use ::axum::body::Body;
use ::axum::extract::FromRequestParts;
use ::axum::response::{IntoResponse, Response};
use ::http::request::Parts;
use ::http::{Request, StatusCode, Version};
use ::hyper::upgrade::OnUpgrade;

use super::Error;
use super::hyper::{Upgrade, UpgradedStream};
use super::tokio::WebSocketStream;
use crate::config::Config;
use crate::handshake::Accept;
use crate::handshake::http::{self as handshake_http, Rejection};

/// The handler's WebSocket.
pub type WebSocket = WebSocketStream<UpgradedStream>;

type FailedUpgrade = Box<dyn FnOnce(Error) + Send + 'static>;

/// An extractor for a WebSocket handshake request: validated as it is extracted, answered by
/// [`on_upgrade`](Self::on_upgrade).
///
/// Extraction fails with the handshake's [`Rejection`], which renders as the core's 4xx
/// (status, headers, one-line body). The checks that depend on the [`Config`]
/// (`max_headers`, `allowed_origins`) run again in `on_upgrade`, with the config given by
/// then.
pub struct WebSocketUpgrade {
    /// The request head without its extensions, validated again with the final config.
    head: Request<()>,
    protocol: Option<String>,
    on_upgrade: Option<OnUpgrade>,
    /// The request's checks that need no config, passed: the offered subprotocols.
    checked: handshake_http::Upgrade,
    config: Config,
    supported: Vec<String>,
    on_failed_upgrade: Option<FailedUpgrade>,
}

impl fmt::Debug for WebSocketUpgrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketUpgrade")
            .field("request", self.checked.request())
            .field("http_version", &self.head.version())
            .field("config", &self.config)
            .field("protocols", &self.supported)
            .finish_non_exhaustive()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for WebSocketUpgrade {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Rejection> {
        let protocol = parts
            .extensions
            .get::<::hyper::ext::Protocol>()
            .map(|p| p.as_str().to_string());
        // Every rule but the config's limits; those are checked in `on_upgrade`.
        let lenient = Config::default()
            .max_headers(usize::MAX)
            .allowed_origins(None);
        let checked = handshake_http::Upgrade::new(parts, protocol.as_deref(), lenient)?;
        let mut head = Request::new(());
        *head.method_mut() = parts.method.clone();
        *head.uri_mut() = parts.uri.clone();
        *head.version_mut() = parts.version;
        *head.headers_mut() = parts.headers.clone();
        Ok(Self {
            head,
            protocol,
            on_upgrade: parts.extensions.remove::<OnUpgrade>(),
            checked,
            config: Config::default(),
            supported: Vec::new(),
            on_failed_upgrade: None,
        })
    }
}

impl WebSocketUpgrade {
    /// The connection's settings (default [`Config::default`]): limits, timeouts, allowed
    /// origins, and permessage-deflate, negotiated when `config.deflate` is set.
    #[must_use]
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Accepts permessage-deflate (RFC 7692) offers with the default settings (`true`), or
    /// none (`false`): shorthand for setting `deflate` in [`config`](Self::config).
    #[cfg(feature = "deflate")]
    #[must_use]
    pub fn deflate(mut self, on: bool) -> Self {
        self.config.deflate = match (on, self.config.deflate.take()) {
            (false, _) => None,
            (true, Some(kept)) => Some(kept),
            (true, None) => Some(crate::DeflateConfig::default()),
        };
        self
    }

    /// The subprotocols the server speaks. The one chosen is the client's most preferred
    /// (the first in its `Sec-WebSocket-Protocol`, RFC 6455 §4.1) among these; none when
    /// they have none in common.
    #[must_use]
    pub fn protocols<I>(mut self, protocols: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.supported = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// Called, in the upgrade's task, when the connection cannot be upgraded after the
    /// response (the client went away first, or hyper did not serve the request).
    #[must_use]
    pub fn on_failed_upgrade(mut self, callback: impl FnOnce(Error) + Send + 'static) -> Self {
        self.on_failed_upgrade = Some(Box::new(callback));
        self
    }

    /// The subprotocol that will be chosen, if any (see [`protocols`](Self::protocols)).
    #[must_use]
    pub fn selected_protocol(&self) -> Option<&str> {
        self.checked
            .request()
            .subprotocols()
            .iter()
            .find(|offered| self.supported.iter().any(|ours| ours == *offered))
            .map(String::as_str)
    }

    /// The HTTP version the WebSocket runs over: `HTTP/1.1` for an upgrade, `HTTP/2.0` for an
    /// extended CONNECT stream (RFC 8441).
    #[must_use]
    pub fn http_version(&self) -> Version {
        self.head.version()
    }

    /// The request: target, host, origin, offered subprotocols and extensions, headers.
    #[must_use]
    pub fn request(&self) -> &crate::handshake::Request {
        self.checked.request()
    }

    /// Answers the handshake and runs `callback` with the WebSocket, in a task of its own,
    /// once the response has been sent and hyper has handed the connection over.
    ///
    /// The response is a 101 (HTTP/1.1) or a 200 (HTTP/2) with the chosen subprotocol and
    /// the agreed permessage-deflate parameters. A request the final config refuses (too many
    /// headers, an origin not allowed) gets the core's 4xx instead, and `callback` is not
    /// run.
    pub fn on_upgrade<C, Fut>(self, callback: C) -> Response
    where
        C: FnOnce(WebSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let mut accept = Accept::new();
        if let Some(chosen) = self.selected_protocol() {
            accept = accept.subprotocol(chosen);
        }
        let upgrade = match Upgrade::from_pieces(
            &self.head,
            self.protocol.as_deref(),
            self.on_upgrade,
            self.config,
        ) {
            Ok(upgrade) => upgrade,
            Err(rejection) => return rejection.into_response(),
        };
        let (response, pending) = match upgrade.accept(accept) {
            Ok(accepted) => accepted,
            // A subprotocol the client offered and no extra headers: nothing to refuse.
            Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        };
        let on_failed_upgrade = self.on_failed_upgrade;
        tokio::spawn(async move {
            match pending.await {
                Ok(ws) => callback(ws).await,
                Err(e) => {
                    if let Some(on_failed_upgrade) = on_failed_upgrade {
                        on_failed_upgrade(e);
                    }
                }
            }
        });
        response.map(|()| Body::empty())
    }
}

impl IntoResponse for Rejection {
    /// The core's answer to the refused request: [`Rejection::response`].
    fn into_response(self) -> Response {
        self.response().map(Body::from)
    }
}
