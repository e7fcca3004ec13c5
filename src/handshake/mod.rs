//! The RFC 6455 §4 opening handshake: HTTP/1.1 request and response parsing and writing.

// Everything here is pure: the caller buffers the bytes, finds the end of the head with
// `HeadScanner`, hands the complete head to `parse_request` or `parse_response`, and writes the
// answer with `write_accept`, `write_rejection`, `write_error_response` or
// `ClientRequest::write`. Nonces (`Sec-WebSocket-Key`) are inputs, never drawn here.

mod client;
mod error;
mod extensions;
#[cfg(feature = "http")]
pub mod http;
// The client over HTTP/2 is only used by the tokio driver's hyper client.
#[cfg(feature = "http2")]
pub(crate) mod http_client;
mod server;

pub use client::{ClientRequest, Response};
pub use error::{BuildError, HandshakeError, UrlError};
pub use extensions::ExtensionOffer;
pub use server::{Accept, Request};

#[cfg(feature = "http2")]
pub(crate) use client::check_extended_connect_response;
pub(crate) use client::parse_response;
pub(crate) use extensions::parse_extensions;
#[cfg(feature = "tokio")]
pub(crate) use server::reason_phrase;
pub(crate) use server::{
    check_origin, check_rejection, parse_request, write_accept, write_error_response,
    write_rejection,
};

use alloc::string::String;
use alloc::vec::Vec;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use core::fmt;
use sha1::{Digest as _, Sha1};

/// RFC 6455 §1.3: the GUID appended to `Sec-WebSocket-Key` before hashing.
pub(crate) const WEBSOCKET_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Computes `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` value.
///
/// RFC 6455 §4.2.2 item 5.4: base64 of the SHA-1 of the key (as sent, without surrounding
/// whitespace) concatenated with [`WEBSOCKET_GUID`].
#[must_use]
pub(crate) fn accept_key(key: &[u8]) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(key);
    sha1.update(WEBSOCKET_GUID);
    STANDARD.encode(sha1.finalize())
}

/// A fresh `Sec-WebSocket-Key` (RFC 6455 §4.1 item 7): the base64 of 16 random bytes.
#[must_use]
pub(crate) fn client_key(nonce: [u8; 16]) -> String {
    STANDARD.encode(nonce)
}

/// Finds the end of an HTTP head (the first `\r\n\r\n`) in a buffer that grows between calls.
///
/// Each byte is examined once across all calls (a line feed's three bytes before it are
/// looked at again): the scanner remembers how far it got, so a peer that trickles the head in
/// one byte at a time costs O(n) in total rather than O(n²) (tungstenite's CVE-2023-43669
/// re-scanned from the start on every read).
///
/// The scanner does not enforce a size limit. To enforce one, pass at most `limit` bytes of the
/// buffer; if it returns `None` once the buffer holds `limit` bytes, the head is too large.
#[derive(Debug, Clone, Default)]
pub(crate) struct HeadScanner {
    /// How many bytes of the buffer have been examined.
    pos: usize,
    /// The end of the head once found; later calls return it without scanning.
    end: Option<usize>,
    /// Total bytes examined, so tests can prove the scan is linear.
    #[cfg(test)]
    examined: usize,
}

impl HeadScanner {
    /// Creates a scanner that has seen nothing yet.
    #[must_use]
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Scans the bytes of `buf` not seen by earlier calls for the blank line ending the head.
    ///
    /// `buf` must be everything received so far: each call passes the previous buffer with
    /// zero or more bytes appended. Returns the index just past the `\r\n\r\n`, that is the
    /// length of the head, or `None` if the head is not complete yet.
    #[must_use]
    pub(crate) fn scan(&mut self, buf: &[u8]) -> Option<usize> {
        if let Some(end) = self.end {
            return Some(end);
        }
        debug_assert!(
            buf.len() >= self.pos,
            "HeadScanner::scan: the buffer shrank"
        );
        let start = self.pos.min(buf.len());
        let mut at = start;
        // Only line feeds can end the head: jump from one to the next a word at a time, and
        // look back at the three bytes before each (seen in this call or an earlier one, as
        // `buf` keeps everything received). A byte-at-a-time state machine took a sixth of
        // a server handshake.
        while let Some(i) = find_line_feed(&buf[at..]) {
            let lf = at + i;
            at = lf + 1;
            if lf >= 3 && buf[lf - 3..lf] == *b"\r\n\r" {
                #[cfg(test)]
                {
                    self.examined += at - start;
                }
                self.pos = at;
                self.end = Some(at);
                return Some(at);
            }
        }
        #[cfg(test)]
        {
            self.examined += buf.len() - start;
        }
        self.pos = buf.len();
        None
    }
}

/// The index of the first `\n` in `bytes`, eight bytes at a time.
fn find_line_feed(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const LINE_FEEDS: u64 = u64::from_ne_bytes([b'\n'; 8]);
    let mut words = bytes.chunks_exact(8);
    let mut at = 0;
    for word in &mut words {
        let word = u64::from_le_bytes(word.try_into().expect("8 bytes"));
        let zeroed = word ^ LINE_FEEDS;
        // The lowest high bit set marks the first zero byte, the first line feed (bits above
        // it may be false alarms, which the lowest one never is).
        let found = zeroed.wrapping_sub(ONES) & !zeroed & HIGHS;
        if found != 0 {
            return Some(at + found.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| at + i)
}

/// RFC 7230 §3.2.6: `tchar`, the bytes allowed in a `token`.
#[must_use]
pub(crate) fn is_tchar(byte: u8) -> bool {
    TCHARS[usize::from(byte)]
}

/// [`is_tchar`] of every byte, looked up rather than tested: extension offers and header
/// names are scanned a byte at a time.
static TCHARS: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        byte += 1;
    }
    table
};

/// RFC 7230 §3.2.6: `token = 1*tchar`.
#[must_use]
pub(crate) fn is_token(bytes: &[u8]) -> bool {
    !bytes.is_empty() && bytes.iter().all(|&b| is_tchar(b))
}

/// Strips RFC 7230 §3.2.3 optional whitespace (SP and HTAB) from both ends.
#[must_use]
pub(crate) fn trim_ows(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

/// Whether `value` may be sent as a header field value.
///
/// RFC 7230 §3.2: `field-value` is visible characters, SP, HTAB and obs-text. Rejecting CR, LF
/// and the other controls is what stops header injection through application-supplied values.
#[must_use]
pub(crate) fn is_header_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80)
}

/// A received header list: names as sent, values as raw bytes, in order.
///
/// Everything sits in one buffer: first the field table, then every name and value, so that
/// a browser's dozen headers cost one allocation rather than two each (allocation was a
/// third of a server handshake), and a server keeps one for as long as a connection
/// lasts. The buffer may also hold text that is not a header
/// ([`push_text`](Self::push_text)), which a parsed request keeps beside them.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Headers {
    /// `count` entries of [`ENTRY`] bytes, each a field's name and value as two spans of
    /// this buffer (four native-endian `u32`s: start and end of each); then the text.
    buf: Vec<u8>,
    count: u32,
}

/// The bytes of one entry of the field table.
const ENTRY: usize = 16;

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(
                self.iter()
                    .map(|(name, value)| (name, String::from_utf8_lossy(value))),
            )
            .finish()
    }
}

/// Where a piece of text sits in a [`Headers`] buffer: its start and end. Four bytes each
/// rather than eight, as a server keeps a request's spans for as long as its connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Span {
    start: u32,
    end: u32,
}

impl Span {
    /// `start..end`. A head is at most `Config::max_head_size`, far below 4 GiB: a longer
    /// buffer would give empty spans, never wrong ones.
    pub(crate) fn new(start: usize, end: usize) -> Self {
        match (u32::try_from(start), u32::try_from(end)) {
            (Ok(start), Ok(end)) => Self { start, end },
            _ => Self::default(),
        }
    }

    pub(crate) fn range(self) -> core::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

impl Headers {
    /// Copies httparse's borrowed headers, which all lie in `head`, with room for `spare`
    /// bytes of [`push_text`](Self::push_text) after them.
    ///
    /// The headers are copied as the one block of `head` they span, separators and all: one
    /// copy rather than two per header.
    #[must_use]
    pub(crate) fn from_httparse(
        head: &[u8],
        headers: &[httparse::Header<'_>],
        spare: usize,
    ) -> Self {
        let offset = |part: &[u8]| (part.as_ptr() as usize).wrapping_sub(head.as_ptr() as usize);
        let block = match (headers.first(), headers.last()) {
            (Some(first), Some(last)) => offset(last.value)
                .checked_add(last.value.len())
                .and_then(|end| head.get(offset(first.name.as_bytes())..end)),
            _ => None,
        };
        let Some(block) = block else {
            // No headers (or headers from elsewhere, which httparse never gives): one at a
            // time.
            let fields = headers.iter().map(|h| (h.name, h.value));
            return Self::from_fields(fields, headers.len(), spare);
        };
        let mut owned = Self::with_table(headers.len(), block.len() + spare);
        let base = offset(block).wrapping_sub(owned.buf.len());
        let span = |part: &[u8]| {
            let start = offset(part).wrapping_sub(base);
            Span::new(start, start + part.len())
        };
        for (i, h) in headers.iter().enumerate() {
            owned.set_field(i, span(h.name.as_bytes()), span(h.value));
        }
        owned.buf.extend_from_slice(block);
        owned
    }

    /// `count` fields, copied one after the other, with room for `spare` more bytes.
    fn from_fields<'a>(
        fields: impl Iterator<Item = (&'a str, &'a [u8])> + Clone,
        count: usize,
        spare: usize,
    ) -> Self {
        let text: usize = fields.clone().map(|(n, v)| n.len() + v.len()).sum();
        let mut owned = Self::with_table(count, text + spare);
        for (i, (name, value)) in fields.enumerate().take(count) {
            let name = owned.push_text_bytes(name.as_bytes());
            let value = owned.push_text_bytes(value);
            owned.set_field(i, name, value);
        }
        owned
    }

    /// A buffer whose table has room for `count` fields (all empty until set), and with
    /// capacity for `text` bytes after it.
    fn with_table(count: usize, text: usize) -> Self {
        let table = count * ENTRY;
        let mut buf = Vec::with_capacity(table + text);
        buf.resize(table, 0);
        Self {
            buf,
            // A head holds at most `Config::max_headers` fields; a count past `u32` would
            // only hide the fields beyond it.
            count: u32::try_from(count).unwrap_or(u32::MAX),
        }
    }

    fn set_field(&mut self, index: usize, name: Span, value: Span) {
        let (entries, _) = self.buf.as_chunks_mut::<ENTRY>();
        let (slots, _) = entries[index].as_chunks_mut::<4>();
        let words = [name.start, name.end, value.start, value.end];
        for (slot, word) in slots.iter_mut().zip(words) {
            *slot = word.to_ne_bytes();
        }
    }

    /// Appends text that is not a header, to be read back with [`text`](Self::text).
    pub(crate) fn push_text(&mut self, text: &str) -> Span {
        self.push_text_bytes(text.as_bytes())
    }

    fn push_text_bytes(&mut self, bytes: &[u8]) -> Span {
        let start = self.buf.len();
        self.buf.extend_from_slice(bytes);
        Span::new(start, self.buf.len())
    }

    /// Where `part`, a slice of this buffer (as [`header_values`] lends), sits in it.
    pub(crate) fn span_of(&self, part: &[u8]) -> Span {
        let start = (part.as_ptr() as usize).wrapping_sub(self.buf.as_ptr() as usize);
        debug_assert!(
            start + part.len() <= self.buf.len(),
            "not a slice of the buffer"
        );
        Span::new(start, start + part.len())
    }

    /// The text at `span`, which was checked to be UTF-8 when it was taken (empty if not).
    pub(crate) fn text(&self, span: Span) -> &str {
        self.buf
            .get(span.range())
            .and_then(|bytes| core::str::from_utf8(bytes).ok())
            .unwrap_or_default()
    }

    /// The fields in order, names as bytes (they came in as `&str`).
    fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let (entries, _) = self.buf.as_chunks::<ENTRY>();
        let entries = entries.get(..self.count as usize).unwrap_or_default();
        entries.iter().map(|entry| {
            let (words, _) = entry.as_chunks::<4>();
            let part = |start: [u8; 4], end: [u8; 4]| {
                let range = u32::from_ne_bytes(start) as usize..u32::from_ne_bytes(end) as usize;
                self.buf.get(range).unwrap_or_default()
            };
            (part(words[0], words[1]), part(words[2], words[3]))
        })
    }

    /// The fields in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        // Names are only ever pushed as `&str`, so this never finds invalid UTF-8.
        self.fields()
            .map(|(name, value)| (core::str::from_utf8(name).unwrap_or_default(), value))
    }

    /// An owned copy, for errors that hand the headers to the application.
    pub(crate) fn to_vec(&self) -> Vec<(String, Vec<u8>)> {
        self.iter()
            .map(|(name, value)| (String::from(name), value.to_vec()))
            .collect()
    }
}

impl<'a> FromIterator<(&'a str, &'a [u8])> for Headers {
    fn from_iter<I: IntoIterator<Item = (&'a str, &'a [u8])>>(fields: I) -> Self {
        // Gathered first: the table, at the front, is sized by their number.
        let fields: Vec<_> = fields.into_iter().collect();
        Self::from_fields(fields.iter().copied(), fields.len(), 0)
    }
}

/// The values of every header called `name` (ASCII case-insensitive), in order.
pub(crate) fn header_values<'a>(
    headers: &'a Headers,
    name: &str,
) -> impl Iterator<Item = &'a [u8]> {
    headers
        .fields()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, v)| v)
}

/// The non-empty, trimmed elements of the comma-separated lists in every header called `name`.
///
/// RFC 7230 §3.2.2 and §7: repeated headers are one list; empty elements are skipped.
pub(crate) fn list_elements<'a>(
    headers: &'a Headers,
    name: &str,
) -> impl Iterator<Item = &'a [u8]> {
    elements_of(header_values(headers, name))
}

/// The non-empty, trimmed elements of the comma-separated lists `values`, in order.
pub(crate) fn elements_of<'a>(
    values: impl Iterator<Item = &'a [u8]>,
) -> impl Iterator<Item = &'a [u8]> {
    values
        .flat_map(|v| v.split(|&b| b == b','))
        .map(trim_ows)
        .filter(|e| !e.is_empty())
}

/// Whether any header called `name` lists `token` (both compared ASCII case-insensitively).
#[must_use]
pub(crate) fn has_token(headers: &Headers, name: &str, token: &str) -> bool {
    lists_token(list_elements(headers, name), token)
}

/// Whether `elements` hold `token` (ASCII case-insensitive).
pub(crate) fn lists_token<'a>(mut elements: impl Iterator<Item = &'a [u8]>, token: &str) -> bool {
    elements.any(|e| e.eq_ignore_ascii_case(token.as_bytes()))
}

/// Checks an application-supplied header before it is written.
///
/// # Errors
///
/// [`BuildError::InvalidHeaderName`] unless `name` is a token, [`BuildError::ReservedHeader`]
/// if `name` is in `reserved` (ASCII case-insensitive), and [`BuildError::InvalidHeaderValue`]
/// if `value` holds CR, LF or another control character (header injection).
pub(crate) fn check_header(name: &str, value: &str, reserved: &[&str]) -> Result<(), BuildError> {
    if !is_token(name.as_bytes()) {
        return Err(BuildError::InvalidHeaderName(name.into()));
    }
    if reserved.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return Err(BuildError::ReservedHeader(name.into()));
    }
    if !is_header_value(value) {
        return Err(BuildError::InvalidHeaderValue(name.into()));
    }
    Ok(())
}

/// Appends `name: value\r\n`; the caller has validated both.
pub(crate) fn write_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use proptest::prelude::*;

    const SEC_1_2_REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\n\
        Host: server.example.com\r\n\
        Upgrade: websocket\r\n\
        Connection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Origin: http://example.com\r\n\
        Sec-WebSocket-Protocol: chat, superchat\r\n\
        Sec-WebSocket-Version: 13\r\n\r\n";

    #[test]
    fn sec_1_3_accept_key_vector() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn sec_4_2_1_scanner_all_at_once() {
        let mut scanner = HeadScanner::new();
        let mut buf = SEC_1_2_REQUEST.to_vec();
        buf.extend_from_slice(b"\x81\x85trailing frame bytes");
        assert_eq!(scanner.scan(&buf), Some(SEC_1_2_REQUEST.len()));
        // Later calls keep answering without scanning again.
        assert_eq!(scanner.scan(&buf), Some(SEC_1_2_REQUEST.len()));
    }

    #[test]
    fn sec_4_2_1_scanner_byte_at_a_time_equals_all_at_once() {
        let mut scanner = HeadScanner::new();
        let mut found = None;
        for n in 0..=SEC_1_2_REQUEST.len() {
            if let Some(end) = scanner.scan(&SEC_1_2_REQUEST[..n]) {
                found = Some((n, end));
                break;
            }
        }
        assert_eq!(
            found,
            Some((SEC_1_2_REQUEST.len(), SEC_1_2_REQUEST.len())),
            "found exactly when the last byte arrived"
        );
    }

    #[test]
    fn sec_4_2_1_scanner_needs_crlf_crlf() {
        let cases: &[(&[u8], Option<usize>)] = &[
            (b"", None),
            (b"\r\n\r", None),
            (b"\r\n\r\n", Some(4)),
            (b"a\n\nb", None),
            (b"a\r\n\nb", None),
            (b"a\r\r\n\r\n", Some(6)),
            (b"a\r\n\r\r\n\r\n", Some(8)),
            (b"a\r\n\r\nb\r\n\r\n", Some(5)),
        ];
        for &(input, want) in cases {
            assert_eq!(HeadScanner::new().scan(input), want, "{input:?}");
            let mut scanner = HeadScanner::new();
            let byte_wise = (0..=input.len()).find_map(|n| scanner.scan(&input[..n]));
            assert_eq!(byte_wise, want, "byte at a time: {input:?}");
        }
    }

    #[test]
    fn sec_4_2_1_scanner_is_linear_byte_at_a_time() {
        // A slow peer sends a large head one byte per read; the work must stay proportional
        // to the bytes received, not to the square of them.
        let mut head = vec![b'a'; 64 * 1024];
        head.extend_from_slice(b"\r\n\r\n");
        let mut scanner = HeadScanner::new();
        let mut end = None;
        for n in 1..=head.len() {
            end = scanner.scan(&head[..n]);
        }
        assert_eq!(end, Some(head.len()));
        assert_eq!(scanner.examined, head.len());
    }

    /// A parsed head's fields and a built list's come out as they went in, with text
    /// pushed after them read back by its span; one buffer holds them all.
    #[test]
    fn headers_keep_their_fields_and_pushed_text_in_one_buffer() {
        let head = b"GET / HTTP/1.1\r\nHost: a.example\r\nX-Empty:\r\nX-Pad:  v  w \t\r\n\r\n";
        let mut slots = [httparse::EMPTY_HEADER; 4];
        let mut request = httparse::Request::new(&mut slots);
        assert!(request.parse(head).expect("a valid head").is_complete());
        let mut parsed = Headers::from_httparse(head, request.headers, 8);
        let fields = [
            ("Host", &b"a.example"[..]),
            ("X-Empty", b""),
            ("X-Pad", b"v  w"),
        ];
        assert_eq!(parsed.iter().collect::<Vec<_>>(), fields);
        let built: Headers = fields.into_iter().collect();
        assert_eq!(built.iter().collect::<Vec<_>>(), fields);
        // The table sits before the text: 3 fields of 16 bytes, then the lines from the
        // first name to the last value, copied as they came.
        let block = head.len() - b"GET / HTTP/1.1\r\n".len() - b" \t\r\n\r\n".len();
        assert_eq!(parsed.buf.len(), 3 * ENTRY + block);
        assert_eq!(&parsed.buf[3 * ENTRY..][..6], b"Host: ");
        assert_eq!(parsed.buf.capacity(), parsed.buf.len() + 8);
        let span = parsed.push_text("GET /x");
        assert_eq!(parsed.text(span), "GET /x");
        assert_eq!(parsed.iter().collect::<Vec<_>>(), fields);
        assert_eq!(
            alloc::format!("{parsed:?}"),
            r#"[("Host", "a.example"), ("X-Empty", ""), ("X-Pad", "v  w")]"#
        );
        let none: Headers = core::iter::empty().collect();
        assert_eq!(none.iter().count(), 0);
    }

    /// RFC 7230 §3.2.6: the 15 symbols, digits and letters, and no other byte.
    #[test]
    fn rfc_7230_tchars_are_exactly_the_grammar_s() {
        let tchars: Vec<u8> = (0..=255u8).filter(|&b| is_tchar(b)).collect();
        let mut expected: Vec<u8> = b"!#$%&'*+-.^_`|~".to_vec();
        expected.extend(b'0'..=b'9');
        expected.extend(b'A'..=b'Z');
        expected.extend(b'a'..=b'z');
        expected.sort_unstable();
        assert_eq!(tchars, expected);
    }

    #[test]
    fn sec_4_2_1_token_helpers() {
        assert!(is_token(b"permessage-deflate"));
        assert!(!is_token(b""));
        assert!(!is_token(b"a b"));
        assert!(!is_token(b"a\"b"));
        assert_eq!(trim_ows(b" \t x y \t"), b"x y");
        assert_eq!(trim_ows(b" \t "), b"");
        assert!(is_header_value("text/plain; charset=utf-8"));
        assert!(!is_header_value("a\r\nSet-Cookie: x"));
        assert!(!is_header_value("a\0"));
        let headers: Headers = [
            ("Connection", &b"keep-alive, ,Upgrade"[..]),
            ("connection", b"close"),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            headers.to_vec(),
            [
                ("Connection".into(), b"keep-alive, ,Upgrade".to_vec()),
                ("connection".into(), b"close".to_vec())
            ]
        );
        assert!(has_token(&headers, "CONNECTION", "upgrade"));
        assert!(has_token(&headers, "connection", "close"));
        assert!(!has_token(&headers, "connection", "keep"));
        assert_eq!(list_elements(&headers, "connection").count(), 3);
    }

    proptest! {
        /// The word-at-a-time search finds the first line feed, as a plain search does.
        #[test]
        fn line_feeds_are_found_where_a_plain_search_finds_them(
            bytes in proptest::collection::vec(
                prop_oneof![Just(b'\n'), Just(b'\r'), Just(0x8a), any::<u8>()],
                0..40,
            )
        ) {
            prop_assert_eq!(find_line_feed(&bytes), bytes.iter().position(|&b| b == b'\n'));
        }

        #[test]
        fn sec_4_2_1_any_chunking_finds_the_same_end(
            cuts in proptest::collection::vec(0..=SEC_1_2_REQUEST.len(), 0..40)
        ) {
            let mut cuts = cuts;
            cuts.push(SEC_1_2_REQUEST.len());
            cuts.sort_unstable();
            let mut scanner = HeadScanner::new();
            let mut found = None;
            for &n in &cuts {
                if let Some(end) = scanner.scan(&SEC_1_2_REQUEST[..n]) {
                    found = Some(end);
                    break;
                }
            }
            prop_assert_eq!(found, Some(SEC_1_2_REQUEST.len()));
            prop_assert_eq!(scanner.examined, SEC_1_2_REQUEST.len());
        }

        #[test]
        fn sec_4_2_1_arbitrary_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..600),
            step in 1usize..64,
        ) {
            check_arbitrary(&bytes, step)?;
        }

        #[test]
        fn sec_4_2_1_mutated_requests_never_panic(
            edits in proptest::collection::vec((0..SEC_1_2_REQUEST.len(), any::<u8>()), 0..8),
            step in 1usize..64,
        ) {
            let mut bytes = SEC_1_2_REQUEST.to_vec();
            for (at, byte) in edits {
                bytes[at] = byte;
            }
            check_arbitrary(&bytes, step)?;
        }
    }

    /// Feeds `bytes` `step` at a time; a found head must parse or fail with a 4xx.
    fn check_arbitrary(bytes: &[u8], step: usize) -> Result<(), TestCaseError> {
        let mut scanner = HeadScanner::new();
        let mut n = 0;
        let end = loop {
            n = (n + step).min(bytes.len());
            if let Some(end) = scanner.scan(&bytes[..n]) {
                break Some(end);
            }
            if n == bytes.len() {
                break None;
            }
        };
        prop_assert_eq!(end, HeadScanner::new().scan(bytes));
        if let Some(end) = end {
            match parse_request(&bytes[..end], 16) {
                Ok(request) => prop_assert_eq!(request.method(), "GET"),
                Err(err) => {
                    let status = err.status();
                    prop_assert!(
                        matches!(status, Some(400..=499)),
                        "{err} mapped to {status:?}"
                    );
                }
            }
        }
        Ok(())
    }
}
