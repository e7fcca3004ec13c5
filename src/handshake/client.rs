//! Client side of the opening handshake: the request from a URL and response checks (§4.1).

use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::net::{Ipv4Addr, Ipv6Addr};

use super::{
    BuildError, ExtensionOffer, HandshakeError, Headers, UrlError, accept_key, check_header,
    has_token, header_values, is_header_value, is_token, list_elements, parse_extensions, trim_ows,
    write_header,
};

/// The opening handshake request a client sends, built from a WebSocket URI (RFC 6455 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRequest {
    /// The host without IPv6 brackets.
    host: String,
    /// Whether `host` is an IPv6 literal, which the `Host` header writes in brackets.
    ipv6: bool,
    port: u16,
    secure: bool,
    /// Path and query, never empty.
    resource: String,
    origin: Option<String>,
    subprotocols: Vec<String>,
    extension_offers: Vec<String>,
    headers: Vec<(String, String)>,
}

/// Headers the request writes itself (RFC 6455 §4.1), or that would give it a body.
const REQUEST_RESERVED: &[&str] = &[
    "Host",
    "Upgrade",
    "Connection",
    "Sec-WebSocket-Key",
    "Sec-WebSocket-Version",
    "Sec-WebSocket-Protocol",
    "Sec-WebSocket-Extensions",
    "Origin",
    "Content-Length",
    "Transfer-Encoding",
];

impl ClientRequest {
    /// Parses a `ws://` or `wss://` URL into a request for its resource.
    ///
    /// RFC 6455 §3: `ws://host[:port][/path][?query]`, scheme case-insensitive, port 80 for
    /// `ws` and 443 for `wss` unless given. The host is a DNS name, a dotted IPv4 address or a
    /// bracketed IPv6 address (`[::1]`). An empty port (`ws://host:/`) means the default
    /// (RFC 3986 §3.2.3); an empty path means `/`.
    ///
    /// # Errors
    ///
    /// [`HandshakeError::InvalidUrl`] with the [`UrlError`] saying what is wrong: another
    /// scheme, a missing or invalid host, a port that is not 1 to 65535, user information, a
    /// fragment, whitespace, control or non-ASCII characters, or an invalid path character.
    pub fn new(url: &str) -> Result<Self, HandshakeError> {
        parse_url(url).map_err(HandshakeError::InvalidUrl)
    }

    /// Offers a subprotocol; call once per subprotocol, most preferred first.
    ///
    /// # Errors
    ///
    /// [`BuildError::InvalidSubprotocol`] if `name` is not a token or was already offered
    /// (RFC 6455 §4.1 item 10: the elements MUST be unique tokens).
    pub fn subprotocol(mut self, name: &str) -> Result<Self, BuildError> {
        if !is_token(name.as_bytes()) || self.subprotocols.iter().any(|p| p == name) {
            return Err(BuildError::InvalidSubprotocol(name.into()));
        }
        self.subprotocols.push(name.into());
        Ok(self)
    }

    /// Sends an `Origin` header (RFC 6455 §4.1 item 8; RFC 6454 serialization).
    ///
    /// # Errors
    ///
    /// [`BuildError::InvalidOrigin`] if `origin` is empty or holds CR, LF or other controls.
    pub fn origin(mut self, origin: &str) -> Result<Self, BuildError> {
        if origin.is_empty() || !is_header_value(origin) {
            return Err(BuildError::InvalidOrigin);
        }
        self.origin = Some(origin.into());
        Ok(self)
    }

    /// Adds a header, such as `Authorization` or `Cookie`.
    ///
    /// # Errors
    ///
    /// [`BuildError::InvalidHeaderName`] unless `name` is a token, [`BuildError::ReservedHeader`]
    /// for headers the handshake writes itself (use [`subprotocol`](Self::subprotocol) and
    /// [`origin`](Self::origin) for those), and [`BuildError::InvalidHeaderValue`] if `value`
    /// holds CR, LF or other controls, which would inject headers.
    pub fn header(mut self, name: &str, value: &str) -> Result<Self, BuildError> {
        check_header(name, value, REQUEST_RESERVED)?;
        self.headers.push((name.into(), value.into()));
        Ok(self)
    }

    /// The host to connect to, without the brackets of an IPv6 literal.
    #[must_use]
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port to connect to: the URL's, else 80 for `ws` and 443 for `wss`.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the URL was `wss://`, so the connection must run over TLS.
    #[must_use]
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// The resource name requested: path and query, at least `/` (RFC 6455 §3).
    #[must_use]
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The subprotocols offered, in order.
    #[must_use]
    pub fn subprotocols(&self) -> &[String] {
        &self.subprotocols
    }

    /// Sets the `Sec-WebSocket-Extensions` elements to offer, already rendered.
    pub(crate) fn extension_offers(&mut self, offers: Vec<String>) {
        debug_assert!(
            offers
                .iter()
                .all(|o| is_header_value(o) && !o.contains(','))
        );
        self.extension_offers = offers;
    }

    /// The names of the extensions offered, for [`parse_response`].
    #[must_use]
    pub(crate) fn offered_extension_names(&self) -> Vec<&str> {
        self.extension_offers
            .iter()
            .map(|o| o.split(';').next().unwrap_or_default().trim())
            .collect()
    }

    /// Writes the request head (RFC 6455 §4.1) with `key_b64` as `Sec-WebSocket-Key`.
    ///
    /// `key_b64` is the base64 of 16 random bytes the caller drew for this handshake; the same
    /// value goes to [`parse_response`].
    pub(crate) fn write(&self, out: &mut Vec<u8>, key_b64: &str) {
        debug_assert!(key_b64.len() == 24 && is_header_value(key_b64));
        // RFC 6455 §4.1 items 2 and 4: the resource name and the authority.
        out.extend_from_slice(b"GET ");
        out.extend_from_slice(self.resource.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        write_header(out, "Host", self.authority().as_bytes());
        write_header(out, "Upgrade", b"websocket");
        write_header(out, "Connection", b"Upgrade");
        write_header(out, "Sec-WebSocket-Key", key_b64.as_bytes());
        write_header(out, "Sec-WebSocket-Version", b"13");
        if let Some(origin) = &self.origin {
            write_header(out, "Origin", origin.as_bytes());
        }
        if !self.subprotocols.is_empty() {
            write_header(
                out,
                "Sec-WebSocket-Protocol",
                self.subprotocols.join(", ").as_bytes(),
            );
        }
        if !self.extension_offers.is_empty() {
            write_header(
                out,
                "Sec-WebSocket-Extensions",
                self.extension_offers.join(", ").as_bytes(),
            );
        }
        for (name, value) in &self.headers {
            write_header(out, name, value.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }
}

impl ClientRequest {
    /// The authority the request names: the `Host` header of HTTP/1.1, the `:authority` of
    /// HTTP/2 (RFC 6455 §4.1 item 4; RFC 8441 §4). IPv6 literals in brackets; the port only
    /// when it is not the scheme's default.
    pub(crate) fn authority(&self) -> String {
        let mut authority = if self.ipv6 {
            let mut bracketed = String::from("[");
            bracketed.push_str(&self.host);
            bracketed.push(']');
            bracketed
        } else {
            self.host.clone()
        };
        if self.port != default_port(self.secure) {
            authority.push(':');
            authority.push_str(&self.port.to_string());
        }
        authority
    }

    /// The `Origin` to send, if any.
    #[cfg(feature = "http2")]
    pub(crate) fn origin_value(&self) -> Option<&str> {
        self.origin.as_deref()
    }

    /// The `Sec-WebSocket-Extensions` elements offered, rendered.
    #[cfg(feature = "http2")]
    pub(crate) fn extension_offer_values(&self) -> &[String] {
        &self.extension_offers
    }

    /// The application's own headers, in order.
    #[cfg(feature = "http2")]
    pub(crate) fn extra_headers(&self) -> &[(String, String)] {
        &self.headers
    }
}

fn default_port(secure: bool) -> u16 {
    if secure { 443 } else { 80 }
}

fn parse_url(url: &str) -> Result<ClientRequest, UrlError> {
    // URIs are ASCII; whitespace would also split the request line.
    if url.bytes().any(|b| !b.is_ascii_graphic()) {
        return Err(UrlError::InvalidCharacter);
    }
    // RFC 6455 §3: fragment identifiers MUST NOT be used; `#` MUST be escaped.
    if url.contains('#') {
        return Err(UrlError::Fragment);
    }
    let (scheme, rest) = url.split_once("://").ok_or(UrlError::UnsupportedScheme)?;
    let secure = if scheme.eq_ignore_ascii_case("ws") {
        false
    } else if scheme.eq_ignore_ascii_case("wss") {
        true
    } else {
        return Err(UrlError::UnsupportedScheme);
    };
    let (authority, resource) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    if authority.contains('@') {
        return Err(UrlError::UserInfo);
    }
    let (host, port, ipv6) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (literal, tail) = bracketed.split_once(']').ok_or(UrlError::InvalidHost)?;
        // Zone identifiers (`%25eth0`) and IPvFuture fail here too: neither is usable remotely.
        literal
            .parse::<Ipv6Addr>()
            .map_err(|_| UrlError::InvalidHost)?;
        let port = match tail {
            "" => None,
            tail => Some(tail.strip_prefix(':').ok_or(UrlError::InvalidHost)?),
        };
        (literal, port, true)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        if host.is_empty() {
            return Err(UrlError::MissingHost);
        }
        check_reg_name(host)?;
        (host, port, false)
    };
    let port = match port {
        None | Some("") => default_port(secure),
        Some(digits) => parse_port(digits)?,
    };
    check_resource(resource)?;
    let resource = if resource.starts_with('/') {
        String::from(resource)
    } else {
        // Only empty or `?query`: RFC 6455 §3 makes an empty path `/`.
        let mut with_slash = String::from("/");
        with_slash.push_str(resource);
        with_slash
    };
    Ok(ClientRequest {
        host: host.into(),
        ipv6,
        port,
        secure,
        resource,
        origin: None,
        subprotocols: Vec::new(),
        extension_offers: Vec::new(),
        headers: Vec::new(),
    })
}

/// A DNS name (letters, digits, `-`, `.`, `_`, `~`) or, if all digits and dots, an IPv4 address.
fn check_reg_name(host: &str) -> Result<(), UrlError> {
    let name_byte = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
    if !host.bytes().all(name_byte) {
        return Err(UrlError::InvalidHost);
    }
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') && host.parse::<Ipv4Addr>().is_err() {
        return Err(UrlError::InvalidHost);
    }
    Ok(())
}

fn parse_port(digits: &str) -> Result<u16, UrlError> {
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(UrlError::InvalidPort);
    }
    // Leading zeros are allowed by RFC 3986; the value is what must fit.
    let trimmed = digits.trim_start_matches('0');
    match trimmed.parse::<u16>() {
        Ok(0) | Err(_) => Err(UrlError::InvalidPort),
        Ok(port) => Ok(port),
    }
}

/// RFC 3986 §3.3 and §3.4: path and query are `pchar`s, `/` and `?`, with `%XX` escapes.
fn check_resource(resource: &str) -> Result<(), UrlError> {
    let bytes = resource.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let ok = match b {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).unwrap_or_default();
                if hex.len() != 2 || !hex.iter().all(u8::is_ascii_hexdigit) {
                    return Err(UrlError::InvalidPath);
                }
                i += 2;
                true
            }
            b if b.is_ascii_alphanumeric() => true,
            b => b"-._~!$&'()*+,;=:@/?".contains(&b),
        };
        if !ok {
            return Err(UrlError::InvalidPath);
        }
        i += 1;
    }
    Ok(())
}

/// The server's `101 Switching Protocols` response, validated against what the client sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    status: u16,
    subprotocol: Option<String>,
    extensions: Vec<ExtensionOffer>,
    headers: Headers,
}

impl Response {
    /// The status code: 101 once validated, or the 2xx that answered an HTTP/2 extended
    /// CONNECT (RFC 8441 §5).
    #[must_use]
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The subprotocol the server selected, one of those offered (RFC 6455 §4.1).
    #[must_use]
    pub fn subprotocol(&self) -> Option<&str> {
        self.subprotocol.as_deref()
    }

    /// The extensions the server accepted, in order, each one the client offered.
    #[must_use]
    pub fn extensions(&self) -> &[ExtensionOffer] {
        &self.extensions
    }

    /// Every header in the order received: name as sent, raw value.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.headers.iter()
    }

    /// The value of the first header called `name` (ASCII case-insensitive).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        header_values(&self.headers, name).next()
    }
}

/// Parses and validates a complete response head (ending in `\r\n\r\n`) per RFC 6455 §4.1.
///
/// `key_b64` is the `Sec-WebSocket-Key` that was sent; `offered_subprotocols` and
/// `offered_extension_names` are what the request offered.
///
/// # Errors
///
/// [`HandshakeError::MalformedResponse`] for invalid HTTP (including more than `max_headers`
/// headers, an HTTP version other than 1.1, a malformed `Sec-WebSocket-Extensions` or more
/// than one subprotocol), [`HandshakeError::UnexpectedStatus`] for any status but 101, and the
/// specific error for a missing `Upgrade` or `Connection` token, a missing or wrong
/// `Sec-WebSocket-Accept`, or a subprotocol or extension that was not offered.
pub(crate) fn parse_response(
    head: &[u8],
    max_headers: usize,
    key_b64: &str,
    offered_subprotocols: &[String],
    offered_extension_names: &[&str],
) -> Result<Response, HandshakeError> {
    let malformed = |reason: &str| HandshakeError::MalformedResponse(reason.into());
    let mut slots = vec![httparse::EMPTY_HEADER; max_headers];
    let mut parsed = httparse::Response::new(&mut slots);
    let len = match parsed.parse(head) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Err(malformed("incomplete response head")),
        Err(err) => return Err(HandshakeError::MalformedResponse(err.to_string())),
    };
    // httparse also ends a head at a bare `\n\n`; the scanner only at `\r\n\r\n`.
    if len != head.len() {
        return Err(malformed("bare LF line ending"));
    }
    let (Some(version), Some(status)) = (parsed.version, parsed.code) else {
        return Err(malformed("incomplete status line"));
    };
    let headers = Headers::from_httparse(head, parsed.headers, 0);

    // RFC 6455 §4.1: any status other than 101 is handled per HTTP; redirects keep Location.
    if status != 101 {
        return Err(unexpected_status(status, headers));
    }
    if version != 1 {
        return Err(malformed("expected HTTP/1.1"));
    }

    // RFC 6455 §4.1 items 2 and 3 of the response checks.
    if !has_token(&headers, "Upgrade", "websocket") {
        return Err(HandshakeError::ResponseMissingUpgrade);
    }
    if !has_token(&headers, "Connection", "upgrade") {
        return Err(HandshakeError::ResponseMissingConnection);
    }

    // RFC 6455 §4.1 item 4: the accept value must be derived from our key.
    check_accept(&headers, key_b64)?;

    selected(
        status,
        headers,
        offered_subprotocols,
        offered_extension_names,
    )
}

/// Validates the response to an HTTP/2 extended CONNECT (RFC 8441 §5) from its status and
/// headers, as an HTTP/2 library hands them over: any 2xx opens the WebSocket, and the
/// extensions and subprotocol are checked as [`parse_response`] checks a 101's. There is no
/// `Sec-WebSocket-Accept` (RFC 8441 §5: the key and accept are not used over HTTP/2).
///
/// # Errors
///
/// [`HandshakeError::UnexpectedStatus`] for a status outside 200-299 (with `Location` for a
/// redirect), and the errors of [`parse_response`] for the extensions and subprotocol.
#[cfg(feature = "http2")]
pub(crate) fn check_extended_connect_response(
    status: u16,
    headers: Headers,
    offered_subprotocols: &[String],
    offered_extension_names: &[&str],
) -> Result<Response, HandshakeError> {
    // RFC 8441 §5: a 2xx status means the stream now carries the WebSocket; anything else is
    // an ordinary HTTP answer.
    if !(200..300).contains(&status) {
        return Err(unexpected_status(status, headers));
    }
    selected(
        status,
        headers,
        offered_subprotocols,
        offered_extension_names,
    )
}

/// A refusal: the status, the headers, and for a redirect where it points.
fn unexpected_status(status: u16, headers: Headers) -> HandshakeError {
    let location = if (300..400).contains(&status) {
        header_values(&headers, "Location")
            .next()
            .and_then(|v| core::str::from_utf8(trim_ows(v)).ok())
            .map(String::from)
    } else {
        None
    };
    HandshakeError::UnexpectedStatus {
        status,
        headers: headers.to_vec(),
        location,
    }
}

/// The checks an accepting response passes over HTTP/1.1 and HTTP/2 alike: the extensions and
/// the subprotocol the server selected.
fn selected(
    status: u16,
    headers: Headers,
    offered_subprotocols: &[String],
    offered_extension_names: &[&str],
) -> Result<Response, HandshakeError> {
    // RFC 6455 §4.1 item 5: only extensions the client offered.
    let extensions = parse_extensions(header_values(&headers, "Sec-WebSocket-Extensions"))
        .map_err(|err| HandshakeError::MalformedResponse(err.to_string()))?;
    if let Some(unknown) = extensions.iter().find(|e| {
        !offered_extension_names
            .iter()
            .any(|o| o.eq_ignore_ascii_case(e.name()))
    }) {
        return Err(HandshakeError::ExtensionNotOffered(unknown.name().into()));
    }

    // RFC 6455 §4.1 item 6: at most one subprotocol, and only one that was offered.
    let subprotocol = selected_subprotocol(&headers, offered_subprotocols)?;

    Ok(Response {
        status,
        subprotocol,
        extensions,
        headers,
    })
}

/// RFC 6455 §4.1: exactly one `Sec-WebSocket-Accept`, equal to the value derived from the key.
fn check_accept(headers: &Headers, key_b64: &str) -> Result<(), HandshakeError> {
    let expected = accept_key(key_b64.as_bytes());
    let mut accepts = header_values(headers, "Sec-WebSocket-Accept");
    match (accepts.next(), accepts.next()) {
        (None, _) => Err(HandshakeError::MissingAccept),
        (Some(value), None) if trim_ows(value) == expected.as_bytes() => Ok(()),
        _ => Err(HandshakeError::WrongAccept),
    }
}

/// RFC 6455 §4.1: the server selects at most one subprotocol, compared exactly with the offer.
fn selected_subprotocol(
    headers: &Headers,
    offered: &[String],
) -> Result<Option<String>, HandshakeError> {
    let mut selected = list_elements(headers, "Sec-WebSocket-Protocol");
    match (selected.next(), selected.next()) {
        (None, _) => Ok(None),
        (Some(one), None) => {
            let one = core::str::from_utf8(one).map_err(|_| {
                HandshakeError::MalformedResponse("invalid Sec-WebSocket-Protocol header".into())
            })?;
            if !offered.iter().any(|p| p == one) {
                return Err(HandshakeError::SubprotocolNotOffered(one.into()));
            }
            Ok(Some(one.into()))
        }
        (Some(_), Some(_)) => Err(HandshakeError::MalformedResponse(
            "more than one subprotocol selected".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    const SEC_1_2_RESPONSE: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\n\
        Upgrade: websocket\r\n\
        Connection: Upgrade\r\n\
        Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
        Sec-WebSocket-Protocol: chat\r\n\r\n";

    fn text(bytes: &[u8]) -> &str {
        core::str::from_utf8(bytes).unwrap()
    }

    fn offered() -> Vec<String> {
        vec!["chat".into(), "superchat".into()]
    }

    fn parse(head: &[u8]) -> Result<Response, HandshakeError> {
        parse_response(head, 16, KEY, &offered(), &["permessage-deflate"])
    }

    #[test]
    fn sec_1_2_example_request_written() {
        let request = ClientRequest::new("ws://server.example.com/chat")
            .unwrap()
            .subprotocol("chat")
            .unwrap()
            .subprotocol("superchat")
            .unwrap()
            .origin("http://example.com")
            .unwrap();
        let mut out = Vec::new();
        request.write(&mut out, KEY);
        assert_eq!(
            text(&out),
            "GET /chat HTTP/1.1\r\n\
             Host: server.example.com\r\n\
             Upgrade: websocket\r\n\
             Connection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\
             Origin: http://example.com\r\n\
             Sec-WebSocket-Protocol: chat, superchat\r\n\r\n"
        );
    }

    #[test]
    fn sec_4_1_request_with_port_extensions_and_headers() {
        let mut request = ClientRequest::new("wss://[::1]:8443?x=1")
            .unwrap()
            .header("Authorization", "Bearer t")
            .unwrap();
        request.extension_offers(vec![
            "permessage-deflate; client_max_window_bits".into(),
            "x-foo".into(),
        ]);
        assert_eq!(
            request.offered_extension_names(),
            ["permessage-deflate", "x-foo"]
        );
        let mut out = Vec::new();
        request.write(&mut out, KEY);
        assert_eq!(
            text(&out),
            "GET /?x=1 HTTP/1.1\r\n\
             Host: [::1]:8443\r\n\
             Upgrade: websocket\r\n\
             Connection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, x-foo\r\n\
             Authorization: Bearer t\r\n\r\n"
        );
        // A non-default port on ws and a default one spelled out on wss.
        for (url, host_line) in [
            ("ws://example.com:443/", "Host: example.com:443\r\n"),
            ("wss://example.com:443/", "Host: example.com\r\n"),
            ("ws://10.0.0.1:80", "Host: 10.0.0.1\r\n"),
        ] {
            let mut out = Vec::new();
            ClientRequest::new(url).unwrap().write(&mut out, KEY);
            assert!(text(&out).contains(host_line), "{url}");
        }
    }

    #[test]
    fn sec_3_url_table() {
        // url, host, port, secure, resource
        #[rustfmt::skip]
        let good: &[(&str, &str, u16, bool, &str)] = &[
            ("ws://example.com", "example.com", 80, false, "/"),
            ("wss://example.com", "example.com", 443, true, "/"),
            ("WS://Example.COM/", "Example.COM", 80, false, "/"),
            ("WsS://example.com/a/b", "example.com", 443, true, "/a/b"),
            ("ws://example.com:8080/chat", "example.com", 8080, false, "/chat"),
            ("ws://example.com:/x", "example.com", 80, false, "/x"),
            ("wss://example.com:00443", "example.com", 443, true, "/"),
            ("ws://example.com?a=b&c", "example.com", 80, false, "/?a=b&c"),
            ("ws://example.com/p?q=%20/?", "example.com", 80, false, "/p?q=%20/?"),
            ("ws://127.0.0.1:9001", "127.0.0.1", 9001, false, "/"),
            ("ws://[::1]", "::1", 80, false, "/"),
            ("wss://[2001:db8::7]:65535/x", "2001:db8::7", 65535, true, "/x"),
            ("ws://[::ffff:192.0.2.1]/", "::ffff:192.0.2.1", 80, false, "/"),
            ("ws://my_host.local.", "my_host.local.", 80, false, "/"),
        ];
        for &(url, host, port, secure, resource) in good {
            let request = ClientRequest::new(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(request.host(), host, "{url}");
            assert_eq!(request.port(), port, "{url}");
            assert_eq!(request.is_secure(), secure, "{url}");
            assert_eq!(request.resource(), resource, "{url}");
        }
        let bad: &[(&str, UrlError)] = &[
            ("http://example.com/", UrlError::UnsupportedScheme),
            ("example.com", UrlError::UnsupportedScheme),
            ("ws:/example.com", UrlError::UnsupportedScheme),
            ("wss:example.com", UrlError::UnsupportedScheme),
            ("ws://", UrlError::MissingHost),
            ("ws:///chat", UrlError::MissingHost),
            ("ws://:80/", UrlError::MissingHost),
            ("ws://[]/", UrlError::InvalidHost),
            ("ws://[::1/", UrlError::InvalidHost),
            ("ws://[::g]/", UrlError::InvalidHost),
            ("ws://[fe80::1%25eth0]/", UrlError::InvalidHost),
            ("ws://[::1]x/", UrlError::InvalidHost),
            ("ws://::1/", UrlError::MissingHost),
            ("ws://exa%41mple.com/", UrlError::InvalidHost),
            ("ws://exa!mple.com/", UrlError::InvalidHost),
            ("ws://256.0.0.1/", UrlError::InvalidHost),
            ("ws://1.2.3/", UrlError::InvalidHost),
            ("ws://example.com:0/", UrlError::InvalidPort),
            ("ws://example.com:000/", UrlError::InvalidPort),
            ("ws://example.com:65536/", UrlError::InvalidPort),
            (
                "ws://example.com:99999999999999999999/",
                UrlError::InvalidPort,
            ),
            ("ws://example.com:8o/", UrlError::InvalidPort),
            ("ws://example.com:-1/", UrlError::InvalidPort),
            ("ws://[::1]:0/", UrlError::InvalidPort),
            ("ws://user:pw@example.com/", UrlError::UserInfo),
            ("ws://@example.com/", UrlError::UserInfo),
            ("ws://example.com/#frag", UrlError::Fragment),
            ("ws://example.com/a b", UrlError::InvalidCharacter),
            ("ws://example.com/\r\nX: y", UrlError::InvalidCharacter),
            (" ws://example.com/", UrlError::InvalidCharacter),
            ("ws://example.com/\u{e9}", UrlError::InvalidCharacter),
            ("ws://example.com/a\"b", UrlError::InvalidPath),
            ("ws://example.com/a%2", UrlError::InvalidPath),
            ("ws://example.com/a%zz", UrlError::InvalidPath),
            ("ws://example.com/{x}", UrlError::InvalidPath),
        ];
        for &(url, reason) in bad {
            assert_eq!(
                ClientRequest::new(url),
                Err(HandshakeError::InvalidUrl(reason)),
                "{url}"
            );
        }
    }

    #[test]
    fn sec_4_1_builder_rejects_misuse() {
        let request = || ClientRequest::new("ws://h/").unwrap();
        assert_eq!(
            request().subprotocol("a b").map(drop),
            Err(BuildError::InvalidSubprotocol("a b".into()))
        );
        assert_eq!(
            request().subprotocol("").map(drop),
            Err(BuildError::InvalidSubprotocol("".into()))
        );
        assert_eq!(
            request()
                .subprotocol("chat")
                .unwrap()
                .subprotocol("chat")
                .map(drop),
            Err(BuildError::InvalidSubprotocol("chat".into()))
        );
        assert_eq!(
            request().origin("http://a\r\nX: y").map(drop),
            Err(BuildError::InvalidOrigin)
        );
        assert_eq!(
            request().origin("").map(drop),
            Err(BuildError::InvalidOrigin)
        );
        assert_eq!(
            request().header("Cookie", "a=b\r\n\r\nGET /").map(drop),
            Err(BuildError::InvalidHeaderValue("Cookie".into()))
        );
        assert_eq!(
            request().header("Cookie", "a=b\n").map(drop),
            Err(BuildError::InvalidHeaderValue("Cookie".into()))
        );
        assert_eq!(
            request().header("X:Y", "1").map(drop),
            Err(BuildError::InvalidHeaderName("X:Y".into()))
        );
        for reserved in [
            "host",
            "Sec-WebSocket-Key",
            "ORIGIN",
            "sec-websocket-protocol",
        ] {
            assert_eq!(
                request().header(reserved, "x").map(drop),
                Err(BuildError::ReservedHeader(reserved.into()))
            );
        }
    }

    #[test]
    fn sec_1_2_example_response_parses() {
        let response = parse(SEC_1_2_RESPONSE).unwrap();
        assert_eq!(response.status(), 101);
        assert_eq!(response.subprotocol(), Some("chat"));
        assert_eq!(response.extensions(), []);
        assert_eq!(response.headers().count(), 4);
        assert_eq!(
            response.header("sec-websocket-accept"),
            Some(b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".as_slice())
        );
    }

    #[test]
    fn sec_4_1_response_lenient_where_http_allows() {
        let head = b"HTTP/1.1 101 whatever\r\n\
            upgrade: WebSocket\r\n\
            connection: keep-alive, upgrade\r\n\
            sec-websocket-accept:  s3pPLMBiTxaQ9kYGzzhZRbK+xOo= \r\n\
            Sec-WebSocket-Extensions: PerMessage-Deflate; server_max_window_bits=\"10\"\r\n\r\n";
        let response = parse(head).unwrap();
        assert_eq!(response.subprotocol(), None);
        assert_eq!(
            response.extensions(),
            [ExtensionOffer::new("PerMessage-Deflate")
                .with_param("server_max_window_bits", Some("10"))]
        );
    }

    #[test]
    fn sec_4_1_unexpected_status_keeps_headers_and_location() {
        let head = b"HTTP/1.1 302 Found\r\nLocation: wss://other.example/\r\nX-A: \xff\r\n\r\n";
        assert_eq!(
            parse(head).map(drop),
            Err(HandshakeError::UnexpectedStatus {
                status: 302,
                headers: vec![
                    ("Location".into(), b"wss://other.example/".to_vec()),
                    ("X-A".into(), b"\xff".to_vec()),
                ],
                location: Some("wss://other.example/".into()),
            })
        );
        // Only redirects carry a location; an HTTP/1.0 answer still reports its status.
        let head = b"HTTP/1.0 404 Not Found\r\nLocation: /x\r\n\r\n";
        assert_eq!(
            parse(head).map(drop),
            Err(HandshakeError::UnexpectedStatus {
                status: 404,
                headers: vec![("Location".into(), b"/x".to_vec())],
                location: None,
            })
        );
        let head = b"HTTP/1.1 200 OK\r\n\r\n";
        assert!(matches!(
            parse(head),
            Err(HandshakeError::UnexpectedStatus { status: 200, .. })
        ));
    }

    #[test]
    fn sec_4_1_response_failures() {
        let good = text(SEC_1_2_RESPONSE);
        let malformed = |s: &str| HandshakeError::MalformedResponse(s.into());
        let cases: Vec<(String, HandshakeError)> =
            vec![
            (
                "HTTP/1.1 101\r\nUp grade: x\r\n\r\n".into(),
                malformed("invalid header name"),
            ),
            (
                "HTTP/1.1 101 Switching Protocols\r\n".into(),
                malformed("incomplete response head"),
            ),
            (
                "HTTP/1.1 101 OK\nUpgrade: websocket\n\n\r\n\r\n".into(),
                malformed("bare LF line ending"),
            ),
            (
                good.replacen("HTTP/1.1", "HTTP/1.0", 1),
                malformed("expected HTTP/1.1"),
            ),
            (
                good.replacen("Upgrade: websocket\r\n", "", 1),
                HandshakeError::ResponseMissingUpgrade,
            ),
            (
                good.replacen("Upgrade: websocket", "Upgrade: h2c", 1),
                HandshakeError::ResponseMissingUpgrade,
            ),
            (
                good.replacen("Connection: Upgrade\r\n", "", 1),
                HandshakeError::ResponseMissingConnection,
            ),
            (
                good.replacen("Connection: Upgrade", "Connection: close", 1),
                HandshakeError::ResponseMissingConnection,
            ),
            (
                good.replacen("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n", "", 1),
                HandshakeError::MissingAccept,
            ),
            (
                good.replacen("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "s3pPLMBiTxaQ9kYGzzhZRbK+xOp=", 1),
                HandshakeError::WrongAccept,
            ),
            (
                good.replacen(
                    "Sec-WebSocket-Protocol",
                    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol",
                    1,
                ),
                HandshakeError::WrongAccept,
            ),
            (
                good.replacen("Protocol: chat", "Protocol: mqtt", 1),
                HandshakeError::SubprotocolNotOffered("mqtt".into()),
            ),
            (
                good.replacen("Protocol: chat", "Protocol: Chat", 1),
                HandshakeError::SubprotocolNotOffered("Chat".into()),
            ),
            (
                good.replacen("Protocol: chat", "Protocol: chat, superchat", 1),
                malformed("more than one subprotocol selected"),
            ),
            (
                good.replacen(
                    "Protocol: chat",
                    "Protocol: chat\r\nSec-WebSocket-Protocol: chat",
                    1,
                ),
                malformed("more than one subprotocol selected"),
            ),
            (
                good.replacen("Protocol: chat", "Extensions: x-foo", 1),
                HandshakeError::ExtensionNotOffered("x-foo".into()),
            ),
            (
                good.replacen("Protocol: chat", "Extensions: permessage-deflate;", 1),
                malformed("malformed Sec-WebSocket-Extensions header: expected a parameter name"),
            ),
        ];
        for (head, err) in cases {
            assert_eq!(err.status(), None);
            assert_eq!(parse(head.as_bytes()).map(drop), Err(err), "{head}");
        }
        // With nothing offered, any subprotocol is refused.
        assert_eq!(
            parse_response(SEC_1_2_RESPONSE, 16, KEY, &[], &[]).map(drop),
            Err(HandshakeError::SubprotocolNotOffered("chat".into()))
        );
        // A different key gives a different accept value.
        assert_eq!(
            parse_response(
                SEC_1_2_RESPONSE,
                16,
                "AAAAAAAAAAAAAAAAAAAAAA==",
                &offered(),
                &[]
            )
            .map(drop),
            Err(HandshakeError::WrongAccept)
        );
        assert_eq!(
            parse_response(SEC_1_2_RESPONSE, 3, KEY, &offered(), &[]).map(drop),
            Err(malformed("too many headers"))
        );
    }
}
