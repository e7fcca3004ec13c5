//! The opening handshake as the connection runs it: the client's request and the check of
//! the 101, the server's reading of the request and its answer. The rules themselves live in
//! `crate::handshake`; this glue moves the connection on.

use super::{Connection, State};
use crate::config::Role;
use crate::entropy::Entropy;
use crate::error::{Error, UsageError};
use crate::extension::{self, Negotiated};
use crate::handshake::{self, Accept, ClientRequest, HandshakeError, HeadScanner};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

/// What a client must remember to check the server's response.
#[derive(Debug)]
pub(super) struct PendingClient {
    scanner: HeadScanner,
    key: String,
    subprotocols: Vec<String>,
    extension_names: Vec<String>,
}

impl Connection {
    /// A client connection that queues its opening handshake request at once (RFC 6455
    /// §4.1), with a fresh key from `entropy`, and opens when the server's 101 response is
    /// valid ([`Event::Accepted`](crate::Event::Accepted)). `entropy` also supplies the
    /// masking keys and must be a CSPRNG (see [`Entropy`]; under `std`,
    /// [`os_entropy`](crate::os_entropy) is the operating system's).
    #[must_use]
    pub fn client(
        mut request: ClientRequest,
        config: impl Into<alloc::sync::Arc<crate::Config>>,
        entropy: impl Entropy + Send + 'static,
    ) -> Self {
        let config = config.into();
        let mut entropy = entropy;
        let mut nonce = [0; 16];
        entropy(&mut nonce);
        let key = handshake::client_key(nonce);
        request.extension_offers(extension::client_offers(&config));
        let pending = PendingClient {
            scanner: HeadScanner::new(),
            key,
            subprotocols: request.subprotocols().to_vec(),
            extension_names: request
                .offered_extension_names()
                .into_iter()
                .map(String::from)
                .collect(),
        };
        let state = State::ReadingResponse(Box::new(pending));
        let mut conn = Self::new(Role::Client, config, Some(Box::new(entropy)), state);
        let State::ReadingResponse(pending) = &conn.state else {
            unreachable!("just made");
        };
        request.write(conn.writer.out.raw(), &pending.key);
        conn
    }

    /// Server: looks for the end of the request head; parses and checks it once complete.
    /// Returns whether the state moved on.
    pub(super) fn read_request(&mut self) -> Result<bool, HandshakeError> {
        let State::ReadingRequest(scanner) = &mut self.state else {
            unreachable!("read_request is called in ReadingRequest");
        };
        let Some(end) = self
            .reader
            .scan_head(&self.config, scanner)
            .map_err(|()| HandshakeError::HeadTooLarge)?
        else {
            return Ok(false);
        };
        let request =
            handshake::parse_request(&self.reader.bytes()[..end], self.config.max_headers)?;
        handshake::check_origin(&request, self.config.allowed_origins.as_deref())?;
        // Frames pipelined behind the head stay buffered until the answer.
        self.reader.skip_head(end);
        self.transition(State::AwaitingAnswer {
            request: Box::new(request),
            reported: false,
        });
        Ok(true)
    }

    /// Client: looks for the end of the response head; validates it once complete.
    /// Returns whether the connection opened.
    pub(super) fn read_response(&mut self) -> Result<bool, HandshakeError> {
        let State::ReadingResponse(pending) = &mut self.state else {
            unreachable!("read_response is called in ReadingResponse");
        };
        let Some(end) = self
            .reader
            .scan_head(&self.config, &mut pending.scanner)
            .map_err(|()| HandshakeError::ResponseHeadTooLarge)?
        else {
            return Ok(false);
        };
        let names: Vec<&str> = pending.extension_names.iter().map(String::as_str).collect();
        let response = handshake::parse_response(
            &self.reader.bytes()[..end],
            self.config.max_headers,
            &pending.key,
            &pending.subprotocols,
            &names,
        )?;
        self.agree_response(response)?;
        // Frames the server sent right behind its response are processed next, never lost.
        self.reader.skip_head(end);
        self.transition(State::Open);
        Ok(true)
    }

    /// Client: applies the extensions and subprotocol of a validated accepting response.
    fn agree_response(&mut self, response: handshake::Response) -> Result<(), HandshakeError> {
        let negotiated = extension::apply_response(&self.config, response.extensions())?;
        self.apply_negotiated(&negotiated);
        self.subprotocol = response.subprotocol().map(|p| Box::new(p.into()));
        self.response = Some(Box::new(response));
        Ok(())
    }

    /// Client: a connection whose handshake ran outside it (an RFC 8441 extended CONNECT over
    /// an HTTP/2 library), open from the start with what `response` agreed. The response was
    /// validated by [`handshake::check_extended_connect_response`]; permessage-deflate is
    /// checked against `config` here, as [`read_response`](Self::read_response) checks it.
    #[cfg(feature = "http2")]
    pub(crate) fn accepted_client(
        config: impl Into<alloc::sync::Arc<crate::Config>>,
        response: handshake::Response,
        entropy: impl Entropy + Send + 'static,
    ) -> Result<Self, HandshakeError> {
        let mut conn = Self::upgraded_client(config, entropy);
        conn.agree_response(response)?;
        Ok(conn)
    }

    /// Server: a connection whose handshake was answered outside it (the `http`-types
    /// handshake), open from the start with what that answer agreed: the extensions
    /// `negotiated` by [`extension::accept_offers`] and the `subprotocol` selected.
    #[cfg(feature = "http")]
    pub(crate) fn accepted_server(
        config: impl Into<alloc::sync::Arc<crate::Config>>,
        negotiated: &Negotiated,
        subprotocol: Option<&str>,
    ) -> Self {
        let mut conn = Self::upgraded_server(config);
        conn.apply_negotiated(negotiated);
        conn.subprotocol = subprotocol.map(|p| Box::new(p.into()));
        conn
    }

    fn apply_negotiated(&mut self, negotiated: &Negotiated) {
        let (inflater, deflater) = crate::deflate::agreed(negotiated, &self.config).unzip();
        self.reader.agree(negotiated.rsv_allowed, inflater);
        if let Some(deflater) = deflater {
            self.writer.set_deflater(deflater);
        }
    }

    /// Server: accepts the handshake request reported by [`Event::Request`](crate::Event):
    /// queues the 101 response (RFC 6455 §4.2.2) and opens the connection. Frames the client
    /// sent behind its request are processed by the next [`next_event`](Self::next_event).
    ///
    /// # Errors
    /// [`UsageError::NoRequestToAnswer`] unless a request awaits an answer;
    /// [`UsageError::InvalidAnswer`] when the subprotocol was not offered or a header is
    /// invalid. Nothing is sent then, and the request still awaits an answer.
    pub fn accept(&mut self, accept: Accept) -> Result<(), UsageError> {
        self.accept_taking_request(accept).map(drop)
    }

    /// [`accept`](Self::accept), handing over the request it answered rather than dropping
    /// it: a driver that keeps the request beside the connection needs no copy of it.
    pub(crate) fn accept_taking_request(
        &mut self,
        accept: Accept,
    ) -> Result<Box<handshake::Request>, UsageError> {
        let State::AwaitingAnswer { request, .. } = &self.state else {
            return Err(UsageError::NoRequestToAnswer);
        };
        accept.check(request)?;
        let (extensions, negotiated) = extension::accept_offers(&self.config, request.extensions());
        handshake::write_accept(
            self.writer.out.raw(),
            request,
            &accept,
            extensions.as_deref(),
        );
        self.apply_negotiated(&negotiated);
        self.subprotocol = accept.selected_subprotocol().map(|p| Box::new(p.into()));
        let State::AwaitingAnswer { request, .. } =
            core::mem::replace(&mut self.state, State::Open)
        else {
            unreachable!("checked above");
        };
        self.enter_state();
        Ok(request)
    }

    /// Server: refuses the handshake request with an HTTP response of `status` (3xx-5xx),
    /// extra `headers` and a `body`; `Connection: close` is added, and the connection then
    /// wants to shut down.
    ///
    /// # Errors
    /// [`UsageError::NoRequestToAnswer`]; [`UsageError::InvalidAnswer`] for a status outside
    /// 300-599 (or 304) or an invalid header. Nothing is sent then.
    pub fn reject(
        &mut self,
        status: u16,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), UsageError> {
        if !matches!(self.state, State::AwaitingAnswer { .. }) {
            return Err(UsageError::NoRequestToAnswer);
        }
        handshake::check_rejection(status, headers)?;
        handshake::write_rejection(self.writer.out.raw(), status, headers, body);
        self.transition(State::Failed(Box::new(Error::Handshake(
            HandshakeError::Rejected { status },
        ))));
        Ok(())
    }
}
