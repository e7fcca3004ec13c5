//! Server side of the opening handshake: request validation (RFC 6455 §4.2) and responses.

use alloc::borrow::Cow;
use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::mem::MaybeUninit;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::{
    BuildError, ExtensionOffer, HandshakeError, Headers, Span, accept_key, check_header,
    elements_of, header_values, is_header_value, lists_token, parse_extensions, trim_ows,
    write_header,
};

/// A client's opening handshake request that passed RFC 6455 §4.2.1 validation.
///
/// Owned, built once per handshake, so the application can inspect it while deciding to
/// [`Accept`] or reject.
#[derive(Clone)]
pub struct Request {
    /// The headers, and after them in the same buffer the method and target (and for
    /// HTTP/2 the `:authority`): the text fields below are spans of it, checked to be UTF-8.
    head: Headers,
    method: Span,
    target: Span,
    /// Of the target: the path (empty means `/`: absolute-form without a path). A target
    /// has no fragment, so the path ends at the end of the target or at the `?` that starts
    /// the query.
    path: Span,
    host: Span,
    origin: Option<Span>,
    /// Empty for HTTP/2.
    key: Span,
    /// Boxed slices rather than `Vec`s: eight bytes less each in a request that a server
    /// keeps for as long as its connection.
    subprotocols: Box<[String]>,
    extensions: Box<[ExtensionOffer]>,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method())
            .field("target", &self.target())
            .field("host", &self.host())
            .field("origin", &self.origin())
            .field("key", &self.key())
            .field("subprotocols", &self.subprotocols)
            .field("extensions", &self.extensions)
            .field("headers", &self.head)
            .finish()
    }
}

/// Equal when what the accessors show is: where the text sits in the buffer does not count.
impl PartialEq for Request {
    fn eq(&self, other: &Self) -> bool {
        self.method() == other.method()
            && self.target() == other.target()
            && self.path() == other.path()
            && self.query() == other.query()
            && self.host() == other.host()
            && self.origin() == other.origin()
            && self.key() == other.key()
            && self.subprotocols == other.subprotocols
            && self.extensions == other.extensions
            && self.headers().eq(other.headers())
    }
}

impl Eq for Request {}

impl Request {
    /// The request method: `GET` once validated, or `CONNECT` for HTTP/2 (RFC 8441 §4).
    #[must_use]
    pub fn method(&self) -> &str {
        self.head.text(self.method)
    }

    /// The request target exactly as sent: `/path?query`, or an absolute URI.
    #[must_use]
    pub fn target(&self) -> &str {
        self.head.text(self.target)
    }

    /// The path of the target, without the query; `/` if an absolute URI had none.
    #[must_use]
    pub fn path(&self) -> &str {
        match self.target().get(self.path.range()) {
            Some("") | None => "/",
            Some(path) => path,
        }
    }

    /// The query of the target, without the `?`, if there was one.
    #[must_use]
    pub fn query(&self) -> Option<&str> {
        self.target().get(self.path.range().end + 1..)
    }

    /// The `Host` header value, trimmed (RFC 6455 §4.2.1 item 2).
    #[must_use]
    pub fn host(&self) -> &str {
        self.head.text(self.host)
    }

    /// The `Origin` header value, trimmed, if sent (RFC 6455 §4.2.1 item 7).
    ///
    /// Browsers always send it; the server checks it to refuse cross-origin pages (§10.2).
    #[must_use]
    pub fn origin(&self) -> Option<&str> {
        self.origin.map(|origin| self.head.text(origin))
    }

    /// The `Sec-WebSocket-Key` value, trimmed; it decodes to 16 bytes (RFC 6455 §4.2.1 item 5).
    ///
    /// Empty for an HTTP/2 extended CONNECT, which has no key (RFC 8441 §5).
    #[must_use]
    pub fn key(&self) -> &str {
        self.head.text(self.key)
    }

    /// The subprotocols offered, in order of preference, from every `Sec-WebSocket-Protocol`
    /// header (RFC 6455 §4.2.1 item 8).
    #[must_use]
    pub fn subprotocols(&self) -> &[String] {
        &self.subprotocols
    }

    /// The extensions offered, in order, from every `Sec-WebSocket-Extensions` header
    /// (RFC 6455 §4.2.1 item 9).
    #[must_use]
    pub fn extensions(&self) -> &[ExtensionOffer] {
        &self.extensions
    }

    /// Every header in the order sent: name as sent, raw value.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.head.iter()
    }

    /// The value of the first header called `name` (ASCII case-insensitive).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        header_values(&self.head, name).next()
    }
}

/// RFC 6455 §4.2.2 item 4 and §10.2: a server with a list of allowed origins refuses a
/// request from any other origin, or without one (compared case-insensitively). `None`
/// accepts every origin.
///
/// # Errors
/// [`HandshakeError::OriginNotAllowed`], answered with 403.
pub(crate) fn check_origin(
    request: &Request,
    allowed: Option<&[String]>,
) -> Result<(), HandshakeError> {
    let Some(allowed) = allowed else {
        return Ok(());
    };
    let origin = request.origin();
    if origin.is_some_and(|origin| allowed.iter().any(|a| a.eq_ignore_ascii_case(origin))) {
        Ok(())
    } else {
        Err(HandshakeError::OriginNotAllowed)
    }
}

/// How many header slots a request gets on the stack: `Config::max_headers`' default.
const STACK_HEADERS: usize = 64;

/// Parses and validates a complete request head (ending in `\r\n\r\n`).
///
/// Checks run in this order, so the answer is the most specific status that applies:
/// HTTP syntax (400, or 431 for more than `max_headers` headers), then [`validate`]'s checks.
///
/// # Errors
///
/// The [`HandshakeError`] for the first failed check; its [`status`](HandshakeError::status)
/// is the response to send.
pub(crate) fn parse_request(head: &[u8], max_headers: usize) -> Result<Request, HandshakeError> {
    let malformed = |reason: &str| HandshakeError::MalformedRequest(reason.into());
    // Room for the headers on the stack up to the default limit, left uninitialized: a
    // zeroed 2 KiB vector per request was a tenth of a handshake.
    let mut stack = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_HEADERS];
    let mut heap = Vec::new();
    let slots = if max_headers <= STACK_HEADERS {
        &mut stack[..max_headers]
    } else {
        heap.resize_with(max_headers, MaybeUninit::uninit);
        &mut heap[..]
    };
    let mut parsed = httparse::Request::new(&mut []);
    let len = match parsed.parse_with_uninit_headers(head, slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Err(malformed("incomplete request head")),
        Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::TooManyHeaders),
        Err(err) => return Err(HandshakeError::MalformedRequest(err.to_string())),
    };
    // httparse also ends a head at a bare `\n\n`; the scanner only at `\r\n\r\n`. Refusing the
    // difference keeps both agreeing on where the frames start.
    if len != head.len() {
        return Err(malformed("bare LF line ending"));
    }
    let (Some(method), Some(target), Some(version)) = (parsed.method, parsed.path, parsed.version)
    else {
        return Err(malformed("incomplete request line"));
    };
    validate(RequestHead {
        method,
        version: if version == 1 {
            HttpVersion::Http11
        } else {
            HttpVersion::Older
        },
        target,
        headers: Headers::from_httparse(head, parsed.headers, method.len() + target.len()),
        authority: None,
        protocol: None,
    })
}

/// The HTTP version of a request head, as far as the handshake rules care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HttpVersion {
    /// HTTP/1.0 or older: no upgrade is possible (RFC 6455 §4.2.1 item 1).
    Older,
    /// HTTP/1.1: the RFC 6455 §4.2.1 `GET` + `Upgrade` handshake.
    Http11,
    /// HTTP/2 or later: the RFC 8441 (and RFC 9220) extended CONNECT.
    Http2OrLater,
}

/// A request head as the validation reads it, whichever parser produced it: the bytes-in
/// path's httparse or the `http` crate's types.
#[derive(Debug)]
pub(crate) struct RequestHead<'a> {
    /// The method, case-sensitive.
    pub(crate) method: &'a str,
    pub(crate) version: HttpVersion,
    /// The request target as sent (HTTP/1.1), or the URI the HTTP/2 pseudo-headers make.
    pub(crate) target: &'a str,
    /// Every header field; repeated names keep every value, in order.
    pub(crate) headers: Headers,
    /// HTTP/2 and later: the `:authority` pseudo-header, which stands for `Host`.
    pub(crate) authority: Option<&'a str>,
    /// HTTP/2 and later: the `:protocol` pseudo-header of an extended CONNECT (RFC 8441 §4).
    pub(crate) protocol: Option<&'a str>,
}

/// Validates a request head against RFC 6455 §4.2.1, or RFC 8441 §4-5 for HTTP/2 and later.
///
/// HTTP/1.x checks run in this order, so the answer is the most specific status that applies:
/// method `GET` (405), HTTP/1.1 (400), request target (400), `Host` (400),
/// `Upgrade: websocket` (400), `Connection: upgrade` (400), `Sec-WebSocket-Version: 13` (426),
/// `Sec-WebSocket-Key` (400), then `Origin`, `Sec-WebSocket-Protocol` and
/// `Sec-WebSocket-Extensions` syntax (400). The version comes before the key because pre-RFC
/// drafts send no `Sec-WebSocket-Key` and are best answered with 426 and
/// `Sec-WebSocket-Version: 13`.
///
/// HTTP/2 and later (RFC 8441): method `CONNECT` (405), `:protocol` `websocket` (400), target
/// (400), `:authority` or `Host` (400), `Sec-WebSocket-Version: 13` (426), then the same
/// `Origin`, subprotocol and extension checks. There is no key, `Upgrade` or `Connection`.
///
/// # Errors
///
/// The [`HandshakeError`] for the first failed check.
pub(crate) fn validate(head: RequestHead<'_>) -> Result<Request, HandshakeError> {
    let malformed = |reason: &str| HandshakeError::MalformedRequest(reason.into());
    let RequestHead {
        method,
        version,
        target,
        headers,
        authority,
        protocol,
    } = head;
    let mut headers = headers;
    let extended_connect = version == HttpVersion::Http2OrLater;

    if extended_connect {
        // RFC 8441 §4: an extended CONNECT, whose `:protocol` names the protocol to run.
        if method != "CONNECT" {
            return Err(HandshakeError::MethodNotConnect);
        }
        // RFC 8441 §5: the `:protocol` pseudo-header field MUST be "websocket".
        if protocol != Some("websocket") {
            return Err(HandshakeError::MissingProtocol);
        }
    } else {
        // RFC 6455 §4.2.1 item 1: an HTTP/1.1 or higher GET request. Methods are
        // case-sensitive.
        if method != "GET" {
            return Err(HandshakeError::MethodNotGet);
        }
        if version != HttpVersion::Http11 {
            return Err(HandshakeError::HttpVersion);
        }
    }
    let path = path_of(target).ok_or(HandshakeError::InvalidRequestTarget)?;
    let found = Found::new(&headers);

    // RFC 6455 §4.2.1 item 2: a Host header field; RFC 7230 §5.4: exactly one. RFC 8441 §4
    // (with RFC 9113 §8.3.1): HTTP/2 carries it as `:authority`.
    let host = match authority {
        Some(authority) => Some(authority.as_bytes()),
        None => found.only(Known::Host).ok().flatten(),
    };
    let host = host
        .filter(|h| !h.is_empty() && core::str::from_utf8(h).is_ok())
        .ok_or(HandshakeError::MissingHost)?;
    // A header's span is taken now, before the pushes below may move the buffer; an
    // `:authority` is pushed with them.
    let host_header = authority.is_none().then(|| headers.span_of(host));

    if !extended_connect {
        // RFC 6455 §4.2.1 items 3 and 4: Upgrade includes "websocket", Connection includes
        // "Upgrade", both case-insensitive.
        if !found.has_token(Known::Upgrade, "websocket") {
            return Err(HandshakeError::MissingUpgrade);
        }
        if !found.has_token(Known::Connection, "upgrade") {
            return Err(HandshakeError::MissingConnectionUpgrade);
        }
    }

    // RFC 6455 §4.2.1 item 6: Sec-WebSocket-Version MUST be 13; RFC 8441 §5 keeps it.
    if found.only(Known::Version) != Ok(Some(b"13".as_slice())) {
        return Err(HandshakeError::UnsupportedVersion);
    }

    // RFC 6455 §4.2.1 item 5: a base64-encoded 16-byte nonce; §11.3.1: at most once.
    // RFC 8441 §5: HTTP/2 has no key (nor Sec-WebSocket-Accept); one sent is ignored.
    let key = if extended_connect {
        Span::default()
    } else {
        match found.only(Known::Key) {
            Ok(None) => return Err(HandshakeError::MissingKey),
            Ok(Some(key)) if is_nonce(key) => headers.span_of(key),
            _ => return Err(HandshakeError::InvalidKey),
        }
    };

    // RFC 6455 §4.2.1 item 7 and RFC 6454 §7.3: one ASCII origin. Two or a garbled one would
    // let a page slip past the application's origin check, so refuse rather than guess.
    let origin = match found.only(Known::Origin) {
        Ok(None) => None,
        Ok(Some(origin)) if core::str::from_utf8(origin).is_ok() => Some(headers.span_of(origin)),
        Ok(Some(_)) => return Err(malformed("invalid Origin header")),
        Err(Repeated) => return Err(malformed("more than one Origin header")),
    };

    // RFC 6455 §4.2.1 item 8: a comma list of subprotocols, possibly over several headers.
    let subprotocols = found
        .list_elements(Known::Protocol)
        .map(|p| {
            core::str::from_utf8(p)
                .map(String::from)
                .map_err(|_| malformed("invalid Sec-WebSocket-Protocol header"))
        })
        .collect::<Result<_, _>>()?;

    // RFC 6455 §4.2.1 item 9 and §9.1.
    let extensions = parse_extensions(found.values(Known::Extensions))?.into();

    let host = match host_header {
        Some(span) => span,
        None => headers.push_text(authority.unwrap_or_default()),
    };
    let method = headers.push_text(method);
    let target = headers.push_text(target);
    Ok(Request {
        head: headers,
        method,
        target,
        path,
        host,
        origin,
        key,
        subprotocols,
        extensions,
    })
}

/// The path of a request target, as a span of it; the query, if any, follows it past its
/// `?`.
///
/// RFC 6455 §4.2.1 item 1 and §3: the target is a resource name (`/path?query`) or an absolute
/// http(s) URI holding one (ws(s) is accepted too); fragments are not allowed.
fn path_of(target: &str) -> Option<Span> {
    if target.contains('#') {
        return None;
    }
    let path_start = if target.starts_with('/') {
        0
    } else {
        let (scheme, rest) = target.split_once("://")?;
        let known = ["http", "https", "ws", "wss"];
        if !known.iter().any(|k| k.eq_ignore_ascii_case(scheme)) {
            return None;
        }
        let authority_len = rest.find(['/', '?']).unwrap_or(rest.len());
        if authority_len == 0 {
            return None;
        }
        scheme.len() + "://".len() + authority_len
    };
    let path_end = target[path_start..]
        .find('?')
        .map_or(target.len(), |i| path_start + i);
    // A target past 4 GiB (never within `max_head_size`) has no span to keep.
    u32::try_from(target.len()).ok()?;
    Some(Span::new(path_start, path_end))
}

/// A header that may appear once came more than once.
#[derive(Debug, PartialEq, Eq)]
struct Repeated;

/// The request headers the handshake reads.
#[derive(Debug, Clone, Copy)]
enum Known {
    Host,
    Upgrade,
    Connection,
    Version,
    Key,
    Origin,
    Protocol,
    Extensions,
}

impl Known {
    const ALL: [Self; 8] = [
        Self::Host,
        Self::Upgrade,
        Self::Connection,
        Self::Version,
        Self::Key,
        Self::Origin,
        Self::Protocol,
        Self::Extensions,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Host => "Host",
            Self::Upgrade => "Upgrade",
            Self::Connection => "Connection",
            Self::Version => "Sec-WebSocket-Version",
            Self::Key => "Sec-WebSocket-Key",
            Self::Origin => "Origin",
            Self::Protocol => "Sec-WebSocket-Protocol",
            Self::Extensions => "Sec-WebSocket-Extensions",
        }
    }

    /// Which of them `name` is (ASCII case-insensitive). The lengths all differ.
    fn of(name: &[u8]) -> Option<Self> {
        let known = match name.len() {
            4 => Self::Host,
            6 => Self::Origin,
            7 => Self::Upgrade,
            10 => Self::Connection,
            17 => Self::Key,
            21 => Self::Version,
            22 => Self::Protocol,
            24 => Self::Extensions,
            _ => return None,
        };
        name.eq_ignore_ascii_case(known.name().as_bytes())
            .then_some(known)
    }
}

/// The [`Known`] headers of a request, found in one pass over its fields rather than one
/// pass per name (the lookups were a sixth of a handshake).
struct Found<'a> {
    headers: &'a Headers,
    /// Per [`Known`] header, its first value and how many times it came (at most 2 counted).
    first: [(Option<&'a [u8]>, u8); Known::ALL.len()],
}

impl<'a> Found<'a> {
    fn new(headers: &'a Headers) -> Self {
        let mut first = [(None, 0); Known::ALL.len()];
        for (name, value) in headers.fields() {
            if let Some(known) = Known::of(name) {
                let (first, count) = &mut first[known as usize];
                first.get_or_insert(value);
                *count = (*count + 1).min(2);
            }
        }
        Self { headers, first }
    }

    /// The trimmed value of the only header `known`, or `None` if there is none.
    fn only(&self, known: Known) -> Result<Option<&'a [u8]>, Repeated> {
        match self.first[known as usize] {
            (_, 2) => Err(Repeated),
            (value, _) => Ok(value.map(trim_ows)),
        }
    }

    /// Every value of header `known`, in order.
    fn values(&self, known: Known) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        let (first, count) = self.first[known as usize];
        // Found once (or never): that value; else every one, in order.
        let once = first.filter(|_| count == 1);
        let all = (count > 1).then(|| header_values(self.headers, known.name()));
        once.into_iter().chain(all.into_iter().flatten())
    }

    /// [`list_elements`] of header `known`.
    fn list_elements(&self, known: Known) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        elements_of(self.values(known))
    }

    /// Whether header `known` lists `token` (ASCII case-insensitive).
    fn has_token(&self, known: Known, token: &str) -> bool {
        lists_token(self.list_elements(known), token)
    }
}

/// RFC 6455 §4.2.1 item 5: the base64 encoding of 16 bytes, which is 24 characters. Decoded
/// on the stack, into the 18 bytes the decoder asks of 24 characters.
fn is_nonce(key: &[u8]) -> bool {
    let mut nonce = [0; 18];
    key.len() == 24 && STANDARD.decode_slice(key, &mut nonce) == Ok(16)
}

/// The application's answer accepting a handshake: a subprotocol and extra headers.
///
/// Extensions are negotiated by the connection itself, not here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accept {
    subprotocol: Option<String>,
    headers: Vec<(String, String)>,
}

/// Headers the 101 response writes itself (RFC 6455 §4.2.2) or that a 1xx response must not
/// carry (RFC 7230 §3.3.2, §3.3.1).
const ACCEPT_RESERVED: &[&str] = &[
    "Upgrade",
    "Connection",
    "Sec-WebSocket-Accept",
    "Sec-WebSocket-Protocol",
    "Sec-WebSocket-Extensions",
    "Content-Length",
    "Transfer-Encoding",
];

impl Accept {
    /// An answer with no subprotocol and no extra headers.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Selects `name`, which must be one of [`Request::subprotocols`] (RFC 6455 §4.2.2 item 5.5).
    #[must_use]
    pub fn subprotocol(mut self, name: &str) -> Self {
        self.subprotocol = Some(name.into());
        self
    }

    /// Adds a header to the 101 response, such as `Set-Cookie`.
    ///
    /// Validated when the answer is applied: the name must be a token that the handshake
    /// does not write itself, and the value must not contain CR, LF or other controls.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The subprotocol selected, if any.
    #[must_use]
    pub(crate) fn selected_subprotocol(&self) -> Option<&str> {
        self.subprotocol.as_deref()
    }

    /// Checks the answer against the request before anything is written.
    ///
    /// # Errors
    ///
    /// [`BuildError::SubprotocolNotOffered`] if the subprotocol is not one the client offered
    /// (compared exactly), or the [`BuildError`] for the first invalid header.
    pub(crate) fn check(&self, request: &Request) -> Result<(), BuildError> {
        if let Some(chosen) = &self.subprotocol {
            // RFC 6455 §4.2.2 item 5.5: the value MUST be one the client offered.
            if !request.subprotocols().iter().any(|p| p == chosen) {
                return Err(BuildError::SubprotocolNotOffered(chosen.clone()));
            }
        }
        for (name, value) in &self.headers {
            check_header(name, value, ACCEPT_RESERVED)?;
        }
        Ok(())
    }
}

/// The headers of the answer accepting `request`, in the order they are written.
///
/// HTTP/1.1 (a 101): `Upgrade`, `Connection` and `Sec-WebSocket-Accept` (RFC 6455 §4.2.2
/// item 5); an HTTP/2 extended CONNECT (a 200) has none of them (RFC 8441 §5). Then the
/// subprotocol, the negotiated `Sec-WebSocket-Extensions` value (`extensions_header`, `None`
/// if no extension was accepted) and the application's headers. `accept` must have passed
/// [`Accept::check`] for this request.
pub(crate) fn accept_headers<'a>(
    request: &Request,
    accept: &'a Accept,
    extensions_header: Option<&'a str>,
    extended_connect: bool,
) -> Vec<(&'a str, Cow<'a, str>)> {
    debug_assert_eq!(accept.check(request), Ok(()));
    let mut headers = Vec::with_capacity(5 + accept.headers.len());
    if !extended_connect {
        headers.push(("Upgrade", Cow::Borrowed("websocket")));
        headers.push(("Connection", Cow::Borrowed("Upgrade")));
        // RFC 6455 §4.2.2 item 5.4: the accept value proves the server read this key.
        let accept_value = accept_key(request.key().as_bytes());
        headers.push(("Sec-WebSocket-Accept", Cow::Owned(accept_value)));
    }
    if let Some(subprotocol) = &accept.subprotocol {
        headers.push((
            "Sec-WebSocket-Protocol",
            Cow::Borrowed(subprotocol.as_str()),
        ));
    }
    if let Some(extensions) = extensions_header {
        debug_assert!(!extensions.is_empty() && is_header_value(extensions));
        headers.push(("Sec-WebSocket-Extensions", Cow::Borrowed(extensions)));
    }
    for (name, value) in &accept.headers {
        headers.push((name.as_str(), Cow::Borrowed(value.as_str())));
    }
    headers
}

/// Writes the `101 Switching Protocols` response (RFC 6455 §4.2.2 item 5) for `request`, with
/// the [`accept_headers`] of an HTTP/1.1 handshake.
pub(crate) fn write_accept(
    out: &mut Vec<u8>,
    request: &Request,
    accept: &Accept,
    extensions_header: Option<&str>,
) {
    const STATUS_LINE: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\n";
    let headers = accept_headers(request, accept, extensions_header, false);
    // Grown once: a line at a time it took four reallocations.
    let lines: usize = headers
        .iter()
        .map(|(name, value)| name.len() + ": ".len() + value.len() + "\r\n".len())
        .sum();
    out.reserve(STATUS_LINE.len() + lines + "\r\n".len());
    out.extend_from_slice(STATUS_LINE);
    for (name, value) in headers {
        write_header(out, name, value.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

/// Headers a rejection writes itself from the body it is given.
const REJECTION_RESERVED: &[&str] = &["Connection", "Content-Length", "Transfer-Encoding"];

/// Checks an application's rejection before [`write_rejection`] writes it.
///
/// # Errors
///
/// [`BuildError::InvalidStatus`] unless `status` is 3xx (a redirect), 4xx or 5xx and may carry a
/// body (not 304), or the [`BuildError`] for the first invalid header.
pub(crate) fn check_rejection(status: u16, headers: &[(&str, &str)]) -> Result<(), BuildError> {
    if !(300..=599).contains(&status) || status == 304 {
        return Err(BuildError::InvalidStatus(status));
    }
    for (name, value) in headers {
        check_header(name, value, REJECTION_RESERVED)?;
    }
    Ok(())
}

/// Writes a response refusing the handshake, after which the server closes the connection.
///
/// The application's headers come first, then `Connection: close`, a
/// `Content-Type: text/plain; charset=utf-8` unless the application set its own, and the
/// `Content-Length` of `body`. The inputs must have passed [`check_rejection`].
pub(crate) fn write_rejection(
    out: &mut Vec<u8>,
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
) {
    debug_assert_eq!(check_rejection(status, headers), Ok(()));
    write_response(out, status, headers, "close", body);
}

/// The response a server owes for a failed handshake.
#[derive(Debug)]
pub(crate) struct ErrorResponse {
    pub(crate) status: u16,
    /// Every header, in the order written, `Content-Type` and `Content-Length` included.
    pub(crate) headers: Vec<(&'static str, Cow<'static, str>)>,
    /// A one-line text body: the error's message.
    pub(crate) body: String,
}

/// The response a server owes for a failed handshake: `err.status()`, a one-line text body,
/// `Allow: GET` for 405 (RFC 9110 §15.5.6; `Allow: CONNECT` when an HTTP/2 request was not an
/// extended CONNECT) and, for 426, `Upgrade: websocket` (RFC 9110 §15.5.22) plus
/// `Sec-WebSocket-Version: 13` (RFC 6455 §4.2.2), then `Connection: close`.
///
/// `None` for client-side errors, which have no status.
pub(crate) fn error_response(err: &HandshakeError) -> Option<ErrorResponse> {
    let status = err.status()?;
    let mut body = err.to_string();
    body.push('\n');
    let (headers, connection): (&[(&'static str, &'static str)], _) = match (status, err) {
        (405, HandshakeError::MethodNotConnect) => (&[("Allow", "CONNECT")], "close"),
        (405, _) => (&[("Allow", "GET")], "close"),
        // RFC 9110 §7.8: a sender of Upgrade MUST also list "upgrade" in Connection.
        (426, _) => (
            &[("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13")],
            "Upgrade, close",
        ),
        _ => (&[], "close"),
    };
    let headers = response_headers(headers, connection, body.len());
    Some(ErrorResponse {
        status,
        headers,
        body,
    })
}

/// Writes the [`error_response`] a server owes for a failed handshake.
///
/// Writes nothing for client-side errors, which have no status.
pub(crate) fn write_error_response(out: &mut Vec<u8>, err: &HandshakeError) {
    let Some(response) = error_response(err) else {
        return;
    };
    write_head(out, response.status, &response.headers);
    out.extend_from_slice(response.body.as_bytes());
}

fn write_response(
    out: &mut Vec<u8>,
    status: u16,
    headers: &[(&str, &str)],
    connection: &str,
    body: &[u8],
) {
    write_head(
        out,
        status,
        &response_headers(headers, connection, body.len()),
    );
    out.extend_from_slice(body);
}

/// The headers of a response with a body: the given ones, `Connection`, a
/// `Content-Type: text/plain; charset=utf-8` unless one was given, and `Content-Length`.
fn response_headers<'a>(
    headers: &[(&'a str, &'a str)],
    connection: &'a str,
    body_len: usize,
) -> Vec<(&'a str, Cow<'a, str>)> {
    let mut out: Vec<_> = headers
        .iter()
        .map(|&(name, value)| (name, Cow::Borrowed(value)))
        .collect();
    out.push(("Connection", Cow::Borrowed(connection)));
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("Content-Type"))
    {
        out.push(("Content-Type", Cow::Borrowed("text/plain; charset=utf-8")));
    }
    out.push(("Content-Length", Cow::Owned(body_len.to_string())));
    out
}

/// Writes a status line and headers, up to and including the blank line.
fn write_head(out: &mut Vec<u8>, status: u16, headers: &[(&str, Cow<'_, str>)]) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason_phrase(status).as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        write_header(out, name, value.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

/// RFC 9110 §15: the reason phrase for `status`; empty (which RFC 7230 §3.1.2 allows) if unknown.
pub(crate) fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    const SEC_1_2_REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\n\
        Host: server.example.com\r\n\
        Upgrade: websocket\r\n\
        Connection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Origin: http://example.com\r\n\
        Sec-WebSocket-Protocol: chat, superchat\r\n\
        Sec-WebSocket-Version: 13\r\n\r\n";

    fn text(bytes: &[u8]) -> &str {
        core::str::from_utf8(bytes).unwrap()
    }

    /// The §1.2 request with header `name` replaced by `line` (or removed if `line` is empty).
    fn with_header(name: &str, line: &[u8]) -> Vec<u8> {
        replace_header(SEC_1_2_REQUEST, name, line)
    }

    fn replace_header(head: &[u8], name: &str, line: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for l in head.split_inclusive(|&b| b == b'\n') {
            let is_it = l.len() > name.len()
                && l[..name.len()].eq_ignore_ascii_case(name.as_bytes())
                && l[name.len()] == b':';
            out.extend_from_slice(if is_it { line } else { l });
        }
        out
    }

    #[test]
    fn sec_1_2_example_request_parses() {
        let request = parse_request(SEC_1_2_REQUEST, 16).unwrap();
        assert_eq!(request.method(), "GET");
        assert_eq!(request.target(), "/chat");
        assert_eq!(request.path(), "/chat");
        assert_eq!(request.query(), None);
        assert_eq!(request.host(), "server.example.com");
        assert_eq!(request.origin(), Some("http://example.com"));
        assert_eq!(request.key(), "dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(request.subprotocols(), ["chat", "superchat"]);
        assert_eq!(request.extensions(), []);
        assert_eq!(request.headers().count(), 7);
        assert_eq!(
            request.headers().next(),
            Some(("Host", b"server.example.com".as_slice()))
        );
        assert_eq!(
            request.header("sec-websocket-VERSION"),
            Some(b"13".as_slice())
        );
        assert_eq!(request.header("Cookie"), None);
    }

    /// The text fields are spans of the one copied header block: values come out trimmed
    /// of the whitespace around them, and the method and target, stored after the headers,
    /// come out whole. A request with the same content built field by field (as the `http`
    /// path builds it) is equal, though its buffer is laid out differently.
    #[test]
    fn sec_4_2_1_fields_are_spans_of_one_copy() {
        let head = b"GET http://server.example.com/chat?room=1 HTTP/1.1\r\n\
            Host: \t server.example.com \r\n\
            Upgrade: websocket\r\n\
            Connection: keep-alive, Upgrade\r\n\
            Sec-WebSocket-Key:  dGhlIHNhbXBsZSBub25jZQ==\t\r\n\
            Origin: http://example.com  \r\n\
            Sec-WebSocket-Version: 13\r\n\r\n";
        let request = parse_request(head, 16).unwrap();
        assert_eq!(request.method(), "GET");
        assert_eq!(request.target(), "http://server.example.com/chat?room=1");
        assert_eq!(request.path(), "/chat");
        assert_eq!(request.query(), Some("room=1"));
        assert_eq!(request.host(), "server.example.com");
        assert_eq!(request.origin(), Some("http://example.com"));
        assert_eq!(request.key(), "dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(
            request.headers().nth(3),
            Some(("Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ==".as_slice()))
        );

        let fields: Headers = request.headers().collect();
        let rebuilt = validate(RequestHead {
            method: "GET",
            version: HttpVersion::Http11,
            target: "http://server.example.com/chat?room=1",
            headers: fields,
            authority: None,
            protocol: None,
        })
        .unwrap();
        assert_eq!(rebuilt, request);
        assert_ne!(rebuilt.head, request.head, "laid out differently");
    }

    /// RFC 6455 §4.2.1 item 5: 16 bytes in base64, which is 24 characters with `==`.
    #[test]
    fn sec_4_2_1_key_is_16_bytes_of_base64() {
        assert!(is_nonce(b"dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(!is_nonce(b"dGhlIHNhbXBsZSBub25jZQ")); // padding left off
        assert!(!is_nonce(b"dGhlIHNhbXBsZSBub25jZSE=")); // 17 bytes
        assert!(!is_nonce(b"dGhlIHNhbXBsZSBub25jZSEhISE=")); // 20 bytes
        assert!(!is_nonce(b"dGhlIHNhbXBsZSBub25j!Q==")); // not base64
        assert!(!is_nonce(b""));
    }

    #[test]
    fn sec_1_2_example_response_written() {
        let request = parse_request(SEC_1_2_REQUEST, 16).unwrap();
        let accept = Accept::new().subprotocol("chat");
        assert_eq!(accept.check(&request), Ok(()));
        assert_eq!(accept.selected_subprotocol(), Some("chat"));
        let mut out = Vec::new();
        write_accept(&mut out, &request, &accept, None);
        assert_eq!(
            text(&out),
            "HTTP/1.1 101 Switching Protocols\r\n\
             Upgrade: websocket\r\n\
             Connection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
             Sec-WebSocket-Protocol: chat\r\n\r\n"
        );
    }

    #[test]
    fn sec_4_2_2_response_with_extensions_and_headers() {
        let request = parse_request(SEC_1_2_REQUEST, 16).unwrap();
        let accept = Accept::new().header("Set-Cookie", "a=b");
        assert_eq!(accept.check(&request), Ok(()));
        let mut out = Vec::new();
        write_accept(&mut out, &request, &accept, Some("permessage-deflate"));
        assert_eq!(
            text(&out),
            "HTTP/1.1 101 Switching Protocols\r\n\
             Upgrade: websocket\r\n\
             Connection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
             Sec-WebSocket-Extensions: permessage-deflate\r\n\
             Set-Cookie: a=b\r\n\r\n"
        );
    }

    #[test]
    fn sec_4_2_2_accept_check_rejects_misuse() {
        let request = parse_request(SEC_1_2_REQUEST, 16).unwrap();
        let cases = [
            (
                Accept::new().subprotocol("mqtt"),
                BuildError::SubprotocolNotOffered("mqtt".into()),
            ),
            // Subprotocol names are compared exactly.
            (
                Accept::new().subprotocol("Chat"),
                BuildError::SubprotocolNotOffered("Chat".into()),
            ),
            (
                Accept::new().header("X-A", "1\r\nSet-Cookie: evil"),
                BuildError::InvalidHeaderValue("X-A".into()),
            ),
            (
                Accept::new().header("X-A\r\nB", "1"),
                BuildError::InvalidHeaderName("X-A\r\nB".into()),
            ),
            (
                Accept::new().header("", "1"),
                BuildError::InvalidHeaderName("".into()),
            ),
            (
                Accept::new().header("sec-websocket-accept", "x"),
                BuildError::ReservedHeader("sec-websocket-accept".into()),
            ),
            (
                Accept::new().header("Content-Length", "0"),
                BuildError::ReservedHeader("Content-Length".into()),
            ),
        ];
        for (accept, err) in cases {
            assert_eq!(accept.check(&request), Err(err));
        }
    }

    #[test]
    fn sec_4_2_1_target_forms() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("/chat?room=1&x", "/chat", Some("room=1&x")),
            ("/?", "/", Some("")),
            ("/", "/", None),
            ("http://example.com/chat?a", "/chat", Some("a")),
            ("WSS://example.com", "/", None),
            ("ws://example.com?a=b", "/", Some("a=b")),
        ];
        for &(target, path, query) in cases {
            let head = text(SEC_1_2_REQUEST).replacen("/chat", target, 1);
            let request = parse_request(head.as_bytes(), 16).unwrap();
            assert_eq!(request.target(), target);
            assert_eq!(request.path(), path, "{target}");
            assert_eq!(request.query(), query, "{target}");
        }
        for target in [
            "chat",
            "*",
            "/a#b",
            "ftp://x/",
            "http:///x",
            "example.com:80",
        ] {
            let head = text(SEC_1_2_REQUEST).replacen("/chat", target, 1);
            assert_eq!(
                parse_request(head.as_bytes(), 16).map(drop),
                Err(HandshakeError::InvalidRequestTarget),
                "{target}"
            );
        }
    }

    #[test]
    fn sec_4_2_1_lenient_where_http_allows() {
        let head = "GET / HTTP/1.1\r\n\
            host: h\r\n\
            upgrade: h2c\r\n\
            UPGRADE: WebSocket\r\n\
            connection: keep-alive\r\n\
            CONNECTION: Upgrade\r\n\
            sec-websocket-key:  dGhlIHNhbXBsZSBub25jZQ== \r\n\
            sec-websocket-version: 13\r\n\
            Sec-WebSocket-Protocol: a,, b\r\n\
            Sec-WebSocket-Protocol: c\r\n\
            Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
            Sec-WebSocket-Extensions: x-foo\r\n\r\n";
        let request = parse_request(head.as_bytes(), 16).unwrap();
        assert_eq!(request.origin(), None);
        assert_eq!(request.key(), "dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(request.subprotocols(), ["a", "b", "c"]);
        let names: Vec<_> = request.extensions().iter().map(|e| e.name()).collect();
        assert_eq!(names, ["permessage-deflate", "x-foo"]);
    }

    #[test]
    fn sec_4_2_1_rejections_with_status() {
        let get = text(SEC_1_2_REQUEST);
        let cases: Vec<(Vec<u8>, HandshakeError)> = vec![
            (
                b"GET /chat HTTP/1.1\r\nHo st: x\r\n\r\n".to_vec(),
                HandshakeError::MalformedRequest("invalid header name".into()),
            ),
            (
                b"GET /chat HTTP/1.1\r\nHost: x\r\n".to_vec(),
                HandshakeError::MalformedRequest("incomplete request head".into()),
            ),
            (
                b"GET /chat HTTP/1.1\nHost: x\n\n\r\n\r\n".to_vec(),
                HandshakeError::MalformedRequest("bare LF line ending".into()),
            ),
            (
                get.replacen("GET", "POST", 1).into_bytes(),
                HandshakeError::MethodNotGet,
            ),
            (
                get.replacen("GET", "get", 1).into_bytes(),
                HandshakeError::MethodNotGet,
            ),
            // 405 outranks the 400 for the old HTTP version.
            (
                get.replacen("GET", "HEAD", 1)
                    .replacen("HTTP/1.1", "HTTP/1.0", 1)
                    .into_bytes(),
                HandshakeError::MethodNotGet,
            ),
            (
                get.replacen("HTTP/1.1", "HTTP/1.0", 1).into_bytes(),
                HandshakeError::HttpVersion,
            ),
            (
                get.replacen("HTTP/1.1", "HTTP/2.0", 1).into_bytes(),
                HandshakeError::MalformedRequest("invalid HTTP version".into()),
            ),
            (with_header("Host", b""), HandshakeError::MissingHost),
            (
                with_header("Host", b"Host: \r\n"),
                HandshakeError::MissingHost,
            ),
            (
                with_header("Host", b"Host: a\r\nHost: b\r\n"),
                HandshakeError::MissingHost,
            ),
            (with_header("Upgrade", b""), HandshakeError::MissingUpgrade),
            (
                with_header("Upgrade", b"Upgrade: h2c\r\n"),
                HandshakeError::MissingUpgrade,
            ),
            (
                with_header("Connection", b""),
                HandshakeError::MissingConnectionUpgrade,
            ),
            (
                with_header("Connection", b"Connection: keep-alive\r\n"),
                HandshakeError::MissingConnectionUpgrade,
            ),
            (
                with_header("Sec-WebSocket-Version", b""),
                HandshakeError::UnsupportedVersion,
            ),
            (
                with_header("Sec-WebSocket-Version", b"Sec-WebSocket-Version: 8\r\n"),
                HandshakeError::UnsupportedVersion,
            ),
            (
                with_header("Sec-WebSocket-Version", b"Sec-WebSocket-Version: 13, 8\r\n"),
                HandshakeError::UnsupportedVersion,
            ),
            (
                with_header(
                    "Sec-WebSocket-Version",
                    b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Version: 13\r\n",
                ),
                HandshakeError::UnsupportedVersion,
            ),
            // 426 outranks the 400 for a missing key: drafts before RFC 6455 send no key.
            (
                replace_header(
                    &with_header("Sec-WebSocket-Key", b""),
                    "Sec-WebSocket-Version",
                    b"",
                ),
                HandshakeError::UnsupportedVersion,
            ),
            (
                with_header("Sec-WebSocket-Key", b""),
                HandshakeError::MissingKey,
            ),
            (
                with_header("Sec-WebSocket-Key", b"Sec-WebSocket-Key: \r\n"),
                HandshakeError::InvalidKey,
            ),
            (
                with_header("Sec-WebSocket-Key", b"Sec-WebSocket-Key: not base64!\r\n"),
                HandshakeError::InvalidKey,
            ),
            // 15 and 17 bytes.
            (
                with_header(
                    "Sec-WebSocket-Key",
                    b"Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA\r\n",
                ),
                HandshakeError::InvalidKey,
            ),
            (
                with_header(
                    "Sec-WebSocket-Key",
                    b"Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAA=\r\n",
                ),
                HandshakeError::InvalidKey,
            ),
            (
                with_header(
                    "Sec-WebSocket-Key",
                    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
                ),
                HandshakeError::InvalidKey,
            ),
            (
                with_header("Origin", b"Origin: a\r\nOrigin: b\r\n"),
                HandshakeError::MalformedRequest("more than one Origin header".into()),
            ),
            (
                with_header("Origin", b"Origin: \xc3\x28\r\n"),
                HandshakeError::MalformedRequest("invalid Origin header".into()),
            ),
            (
                with_header(
                    "Sec-WebSocket-Protocol",
                    b"Sec-WebSocket-Protocol: \xff\r\n",
                ),
                HandshakeError::MalformedRequest("invalid Sec-WebSocket-Protocol header".into()),
            ),
            (
                with_header("Origin", b"Sec-WebSocket-Extensions: a;\r\n"),
                HandshakeError::MalformedExtensions("expected a parameter name"),
            ),
        ];
        for (head, err) in cases {
            let status = err.status();
            assert_eq!(
                parse_request(&head, 16).map(drop),
                Err(err),
                "{}",
                String::from_utf8_lossy(&head)
            );
            assert!(matches!(status, Some(400 | 405 | 426)));
        }
        assert_eq!(
            parse_request(SEC_1_2_REQUEST, 6).map(drop),
            Err(HandshakeError::TooManyHeaders)
        );
        assert_eq!(HandshakeError::TooManyHeaders.status(), Some(431));
    }

    #[test]
    fn sec_4_2_2_error_response_405() {
        let mut out = Vec::new();
        write_error_response(&mut out, &HandshakeError::MethodNotGet);
        assert_eq!(
            text(&out),
            "HTTP/1.1 405 Method Not Allowed\r\n\
             Allow: GET\r\n\
             Connection: close\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 33\r\n\
             \r\n\
             method not allowed: expected GET\n"
        );
    }

    #[test]
    fn sec_4_2_2_error_response_426() {
        let mut out = Vec::new();
        write_error_response(&mut out, &HandshakeError::UnsupportedVersion);
        assert_eq!(
            text(&out),
            "HTTP/1.1 426 Upgrade Required\r\n\
             Upgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\n\
             Connection: Upgrade, close\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 47\r\n\
             \r\n\
             unsupported Sec-WebSocket-Version: expected 13\n"
        );
    }

    #[test]
    fn sec_4_2_2_error_response_431() {
        let mut out = Vec::new();
        write_error_response(&mut out, &HandshakeError::HeadTooLarge);
        assert_eq!(
            text(&out),
            "HTTP/1.1 431 Request Header Fields Too Large\r\n\
             Connection: close\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 23\r\n\
             \r\n\
             request head too large\n"
        );
    }

    #[test]
    fn sec_4_2_2_error_response_400() {
        let mut out = Vec::new();
        write_error_response(&mut out, &HandshakeError::MissingKey);
        assert_eq!(
            text(&out),
            "HTTP/1.1 400 Bad Request\r\n\
             Connection: close\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 33\r\n\
             \r\n\
             missing Sec-WebSocket-Key header\n"
        );
    }

    #[test]
    fn sec_4_2_2_error_response_other_statuses() {
        let cases = [
            (
                HandshakeError::OriginNotAllowed,
                "HTTP/1.1 403 Forbidden\r\n",
            ),
            (HandshakeError::Timeout, "HTTP/1.1 408 Request Timeout\r\n"),
            (
                HandshakeError::Rejected { status: 503 },
                "HTTP/1.1 503 Service Unavailable\r\n",
            ),
        ];
        for (err, status_line) in cases {
            let mut out = Vec::new();
            write_error_response(&mut out, &err);
            assert!(text(&out).starts_with(status_line), "{}", text(&out));
        }
        // A client-side error has no status and writes nothing.
        let mut out = Vec::new();
        write_error_response(&mut out, &HandshakeError::WrongAccept);
        assert_eq!(out, b"");
    }

    #[test]
    fn sec_4_2_2_rejection_written() {
        let headers = [("WWW-Authenticate", "Basic realm=\"ws\"")];
        assert_eq!(check_rejection(401, &headers), Ok(()));
        let mut out = Vec::new();
        write_rejection(&mut out, 401, &headers, b"who are you?");
        assert_eq!(
            text(&out),
            "HTTP/1.1 401 Unauthorized\r\n\
             WWW-Authenticate: Basic realm=\"ws\"\r\n\
             Connection: close\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 12\r\n\
             \r\n\
             who are you?"
        );
        // The application's Content-Type replaces the default; unknown statuses get no phrase.
        let headers = [("Content-Type", "text/html")];
        let mut out = Vec::new();
        write_rejection(&mut out, 499, &headers, b"");
        assert_eq!(
            text(&out),
            "HTTP/1.1 499 \r\n\
             Content-Type: text/html\r\n\
             Connection: close\r\n\
             Content-Length: 0\r\n\
             \r\n"
        );
    }

    #[test]
    fn sec_4_2_2_rejection_check() {
        for status in [101, 200, 204, 299, 304, 600, 0] {
            assert_eq!(
                check_rejection(status, &[]),
                Err(BuildError::InvalidStatus(status))
            );
        }
        for status in [301, 400, 403, 404, 500, 599] {
            assert_eq!(check_rejection(status, &[]), Ok(()));
        }
        assert_eq!(
            check_rejection(302, &[("Location", "/x\r\n\r\n<html>")]),
            Err(BuildError::InvalidHeaderValue("Location".into()))
        );
        assert_eq!(
            check_rejection(400, &[("connection", "keep-alive")]),
            Err(BuildError::ReservedHeader("connection".into()))
        );
    }
}
