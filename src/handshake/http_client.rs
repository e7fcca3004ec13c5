//! The client's opening handshake over HTTP/2 (RFC 8441): the extended CONNECT request as
//! `http` types, and the check of its answer, with the rules of the HTTP/1.1 client.

use ::http::header::{HeaderName, HeaderValue};
use ::http::{Method, Request, Uri, Version};
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::{ClientRequest, HandshakeError, Headers, check_extended_connect_response};
use crate::config::Config;
use crate::connection::Connection;
use crate::entropy::Entropy;
use crate::extension;

/// An extended CONNECT on its way: what was offered, kept to check the answer.
#[derive(Debug)]
pub(crate) struct ExtendedConnect {
    request: ClientRequest,
    config: Config,
}

impl ExtendedConnect {
    /// Prepares the request for `request`, offering permessage-deflate as `config` asks.
    pub(crate) fn new(mut request: ClientRequest, config: Config) -> Self {
        request.extension_offers(extension::client_offers(&config));
        Self { request, config }
    }

    /// The request head: `CONNECT` over HTTP/2 with `:scheme`, `:authority` and `:path` from
    /// the URL (RFC 8441 §4), `Sec-WebSocket-Version: 13`, the subprotocol and extension
    /// offers, `Origin` and the application's headers (RFC 8441 §5: as in RFC 6455 §4.1, but
    /// without `Upgrade`, `Connection`, `Host` and `Sec-WebSocket-Key`). The `:protocol`
    /// pseudo-header is the HTTP/2 library's to add, as its own extension type.
    ///
    /// # Errors
    /// [`HandshakeError::MalformedRequest`] should the `http` crate refuse the URI or a
    /// header; unreachable in practice, as [`ClientRequest`] checked the URL and headers when
    /// it was built.
    pub(crate) fn request(&self) -> Result<Request<()>, HandshakeError> {
        let request = &self.request;
        let scheme = if request.is_secure() { "https" } else { "http" };
        let uri = Uri::builder()
            .scheme(scheme)
            .authority(request.authority())
            .path_and_query(request.resource())
            .build()
            .map_err(|e| HandshakeError::MalformedRequest(e.to_string()))?;
        let mut head = Request::new(());
        *head.method_mut() = Method::CONNECT;
        *head.version_mut() = Version::HTTP_2;
        *head.uri_mut() = uri;
        let mut headers: Vec<(&str, String)> = Vec::new();
        headers.push(("sec-websocket-version", "13".into()));
        if let Some(origin) = request.origin_value() {
            headers.push(("origin", origin.into()));
        }
        if !request.subprotocols().is_empty() {
            headers.push(("sec-websocket-protocol", request.subprotocols().join(", ")));
        }
        let offers = request.extension_offer_values();
        if !offers.is_empty() {
            headers.push(("sec-websocket-extensions", offers.join(", ")));
        }
        for (name, value) in request.extra_headers() {
            headers.push((name, value.clone()));
        }
        let map = head.headers_mut();
        for (name, value) in headers {
            // Names are tokens and values free of controls: `ClientRequest` checked them.
            let name = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
                .map_err(|e| HandshakeError::MalformedRequest(e.to_string()))?;
            let value = HeaderValue::from_str(&value)
                .map_err(|e| HandshakeError::MalformedRequest(e.to_string()))?;
            map.append(name, value);
        }
        Ok(head)
    }

    /// Checks the answer (RFC 8441 §5: a 2xx; extensions and subprotocol as offered) and
    /// returns a client [`Connection`], open, with what it agreed. `entropy` supplies the
    /// masking keys.
    ///
    /// # Errors
    /// [`HandshakeError::UnexpectedStatus`] for a status outside 2xx; the extension and
    /// subprotocol errors of the HTTP/1.1 client's response check.
    pub(crate) fn finish(
        self,
        response: &::http::response::Parts,
        entropy: impl Entropy + Send + 'static,
    ) -> Result<Connection, HandshakeError> {
        let headers: Headers = response
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_bytes()))
            .collect();
        let names = self.request.offered_extension_names();
        let checked = check_extended_connect_response(
            response.status.as_u16(),
            headers,
            self.request.subprotocols(),
            &names,
        )?;
        Connection::accepted_client(self.config, checked, entropy)
    }
}
