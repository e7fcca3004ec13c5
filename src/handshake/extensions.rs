//! `Sec-WebSocket-Extensions` (RFC 6455 §9.1): parsing offers and responses, and rendering them.

use alloc::string::String;
use alloc::vec::Vec;

use super::{HandshakeError, is_tchar, is_token};

/// One element of a `Sec-WebSocket-Extensions` list: an extension name and its parameters.
///
/// RFC 6455 §9.1: `extension = extension-token *( ";" extension-param )`. Parameters keep the
/// order they were sent in; quoted values are stored unquoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionOffer {
    name: String,
    params: Vec<(String, Option<String>)>,
}

impl ExtensionOffer {
    /// Creates an offer with no parameters.
    #[must_use]
    pub(crate) fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            params: Vec::new(),
        }
    }

    /// Appends a parameter, with or without a value.
    #[must_use]
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "permessage-deflate builds offers")
    )]
    pub(crate) fn with_param(mut self, name: impl Into<String>, value: Option<&str>) -> Self {
        self.params.push((name.into(), value.map(String::from)));
        self
    }

    /// The extension's name, such as `permessage-deflate`.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The parameters in the order sent: name, and value if one was given.
    pub fn params(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.params
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_deref()))
    }

    /// The first parameter called `name` (ASCII case-insensitive).
    ///
    /// `None` if absent, `Some(None)` if present without a value, `Some(Some(value))` otherwise.
    #[must_use]
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    }
}

/// Parses every `Sec-WebSocket-Extensions` header value, in order, into one list.
///
/// RFC 6455 §9.1 grammar, with RFC 7230 list rules: elements are separated by commas, empty
/// elements are skipped, and optional whitespace may surround `,`, `;` and `=`. Repeated headers
/// continue the same list (RFC 6455 §9.1: the header may occur multiple times).
///
/// # Errors
///
/// [`HandshakeError::MalformedExtensions`] if a name or parameter is not a token, a quoted
/// string is unterminated or does not unquote to a token, or an unexpected byte appears.
pub(crate) fn parse_extensions<'a>(
    values: impl Iterator<Item = &'a [u8]>,
) -> Result<Vec<ExtensionOffer>, HandshakeError> {
    let mut offers = Vec::new();
    for value in values {
        let mut cursor = Cursor { rest: value };
        loop {
            cursor.skip_ows();
            match cursor.peek() {
                None => break,
                // RFC 7230 §7: recipients accept empty list elements.
                Some(b',') => {
                    cursor.bump();
                    continue;
                }
                Some(_) => {}
            }
            let mut offer = ExtensionOffer::new(cursor.token("expected an extension name")?);
            cursor.skip_ows();
            while cursor.eat(b';') {
                cursor.skip_ows();
                let name = cursor.token("expected a parameter name")?;
                cursor.skip_ows();
                let value = if cursor.eat(b'=') {
                    cursor.skip_ows();
                    Some(if cursor.peek() == Some(b'"') {
                        cursor.quoted()?
                    } else {
                        cursor.token("expected a parameter value")?
                    })
                } else {
                    None
                };
                offer.params.push((name, value));
                cursor.skip_ows();
            }
            offers.push(offer);
            match cursor.peek() {
                None => break,
                Some(b',') => cursor.bump(),
                Some(_) => return Err(malformed("unexpected character after an extension")),
            }
        }
    }
    Ok(offers)
}

/// Renders one extension as it appears in a `Sec-WebSocket-Extensions` list element.
///
/// Values that are tokens are written bare; any other value is written as an RFC 7230 quoted
/// string so the result always parses back to the same offer.
#[must_use]
#[cfg_attr(
    not(test),
    expect(dead_code, reason = "permessage-deflate renders offers")
)]
pub(crate) fn format_extension(offer: &ExtensionOffer) -> String {
    let mut out = String::from(offer.name());
    for (name, value) in offer.params() {
        out.push_str("; ");
        out.push_str(name);
        if let Some(value) = value {
            out.push('=');
            if is_token(value.as_bytes()) {
                out.push_str(value);
            } else {
                out.push('"');
                for c in value.chars() {
                    if c == '"' || c == '\\' {
                        out.push('\\');
                    }
                    out.push(c);
                }
                out.push('"');
            }
        }
    }
    out
}

fn malformed(reason: &'static str) -> HandshakeError {
    HandshakeError::MalformedExtensions(reason)
}

/// A read position in one header value.
struct Cursor<'a> {
    rest: &'a [u8],
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    fn bump(&mut self) {
        self.rest = self.rest.get(1..).unwrap_or_default();
    }

    fn eat(&mut self, byte: u8) -> bool {
        let hit = self.peek() == Some(byte);
        if hit {
            self.bump();
        }
        hit
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.bump();
        }
    }

    /// Takes a non-empty run of `tchar`s.
    fn token(&mut self, reason: &'static str) -> Result<String, HandshakeError> {
        let len = self.rest.iter().take_while(|&&b| is_tchar(b)).count();
        if len == 0 {
            return Err(malformed(reason));
        }
        let (token, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(ascii_string(token))
    }

    /// Takes an RFC 7230 §3.2.6 quoted-string and returns it unquoted.
    fn quoted(&mut self) -> Result<String, HandshakeError> {
        debug_assert_eq!(self.peek(), Some(b'"'));
        self.bump();
        let mut value = Vec::new();
        loop {
            let byte = self.peek().ok_or(malformed("unterminated quoted string"))?;
            self.bump();
            match byte {
                b'"' => break,
                b'\\' => {
                    // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
                    let escaped = self.peek().ok_or(malformed("unterminated quoted string"))?;
                    if !is_qdtext(escaped) && escaped != b'"' && escaped != b'\\' {
                        return Err(malformed("invalid escape in quoted string"));
                    }
                    self.bump();
                    value.push(escaped);
                }
                b if is_qdtext(b) => value.push(b),
                _ => return Err(malformed("invalid character in quoted string")),
            }
        }
        // RFC 6455 §9.1: a quoted value MUST conform to the token ABNF once unescaped.
        if !is_token(&value) {
            return Err(malformed("quoted parameter value is not a token"));
        }
        Ok(ascii_string(&value))
    }
}

/// A run of `tchar`s as a string: they are ASCII, so the bytes are already UTF-8 (copied
/// whole, not a char at a time).
fn ascii_string(token: &[u8]) -> String {
    debug_assert!(token.is_ascii());
    String::from(core::str::from_utf8(token).unwrap_or_default())
}

/// RFC 7230 §3.2.6: `qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text`.
fn is_qdtext(byte: u8) -> bool {
    matches!(byte, b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use proptest::prelude::*;

    fn parse(values: &[&str]) -> Result<Vec<ExtensionOffer>, HandshakeError> {
        parse_extensions(values.iter().map(|v| v.as_bytes()))
    }

    #[test]
    fn sec_9_1_names_and_params() {
        let offers =
            parse(&["permessage-deflate; client_max_window_bits; server_max_window_bits=10, foo"])
                .unwrap();
        assert_eq!(
            offers,
            vec![
                ExtensionOffer::new("permessage-deflate")
                    .with_param("client_max_window_bits", None)
                    .with_param("server_max_window_bits", Some("10")),
                ExtensionOffer::new("foo"),
            ]
        );
        let deflate = &offers[0];
        assert_eq!(deflate.name(), "permessage-deflate");
        assert_eq!(
            deflate.params().collect::<Vec<_>>(),
            vec![
                ("client_max_window_bits", None),
                ("server_max_window_bits", Some("10"))
            ]
        );
        assert_eq!(deflate.param("CLIENT_max_window_bits"), Some(None));
        assert_eq!(deflate.param("server_max_window_bits"), Some(Some("10")));
        assert_eq!(deflate.param("server_no_context_takeover"), None);
    }

    #[test]
    fn sec_9_1_quoted_values_are_unquoted() {
        let offers = parse(&[r#"x; a="10"; b = "p\q" ; c="tok-en""#]).unwrap();
        assert_eq!(
            offers,
            vec![
                ExtensionOffer::new("x")
                    .with_param("a", Some("10"))
                    .with_param("b", Some("pq"))
                    .with_param("c", Some("tok-en"))
            ]
        );
    }

    #[test]
    fn sec_9_1_several_header_values_form_one_list() {
        let offers = parse(&["a; x=1", "b, c", " ", "a"]).unwrap();
        let names: Vec<_> = offers.iter().map(ExtensionOffer::name).collect();
        assert_eq!(names, vec!["a", "b", "c", "a"]);
    }

    #[test]
    fn sec_9_1_empty_list_elements_are_tolerated() {
        let offers = parse(&[", a , ,\tb ,", ""]).unwrap();
        let names: Vec<_> = offers.iter().map(ExtensionOffer::name).collect();
        assert_eq!(names, vec!["a", "b"]);
        assert_eq!(parse(&[]).unwrap(), vec![]);
    }

    #[test]
    fn sec_9_1_malformed_inputs_are_rejected() {
        let cases: &[(&str, &str)] = &[
            ("a b", "unexpected character after an extension"),
            ("; x", "expected an extension name"),
            ("a;", "expected a parameter name"),
            ("a; =1", "expected a parameter name"),
            ("a; x=", "expected a parameter value"),
            ("a; x=1 2", "unexpected character after an extension"),
            ("a; x=\"1", "unterminated quoted string"),
            ("a; x=\"1\\", "unterminated quoted string"),
            ("a; x=\"\"", "quoted parameter value is not a token"),
            ("a; x=\"1 2\"", "quoted parameter value is not a token"),
            ("a; x=\"a,b\"", "quoted parameter value is not a token"),
            ("a; x=\"\x01\"", "invalid character in quoted string"),
            ("a; x=\"1\"2", "unexpected character after an extension"),
            ("a/b", "unexpected character after an extension"),
            ("\"a\"", "expected an extension name"),
            ("a; x=1;", "expected a parameter name"),
        ];
        for &(input, reason) in cases {
            assert_eq!(
                parse(&[input]),
                Err(HandshakeError::MalformedExtensions(reason)),
                "{input:?}"
            );
        }
        // Bytes outside ASCII are never part of a token.
        assert_eq!(
            parse_extensions([&b"a\xff"[..]].into_iter()),
            Err(HandshakeError::MalformedExtensions(
                "unexpected character after an extension"
            ))
        );
    }

    #[test]
    fn sec_9_1_format_round_trips() {
        let offer = ExtensionOffer::new("permessage-deflate")
            .with_param("client_max_window_bits", None)
            .with_param("server_max_window_bits", Some("10"));
        let text = format_extension(&offer);
        assert_eq!(
            text,
            "permessage-deflate; client_max_window_bits; server_max_window_bits=10"
        );
        assert_eq!(parse(&[&text]).unwrap(), vec![offer]);
        assert_eq!(format_extension(&ExtensionOffer::new("x")), "x");
        // A value that is not a token is quoted and escaped rather than written raw.
        let odd = ExtensionOffer::new("x").with_param("p", Some("a \"b\""));
        assert_eq!(format_extension(&odd), r#"x; p="a \"b\"""#);
    }

    proptest! {
        #[test]
        fn sec_9_1_arbitrary_bytes_never_panic(
            values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..4)
        ) {
            match parse_extensions(values.iter().map(Vec::as_slice)) {
                Ok(offers) => prop_assert!(offers.iter().all(|o| is_token(o.name().as_bytes()))),
                Err(err) => prop_assert_eq!(err.status(), Some(400)),
            }
        }

        #[test]
        fn sec_9_1_format_then_parse_round_trips(
            name in "[a-z][a-z0-9_-]{0,12}",
            params in proptest::collection::vec(
                ("[a-zA-Z0-9_]{1,8}", proptest::option::of("[!#$%&'*+.^_`|~0-9A-Za-z-]{1,8}")),
                0..4,
            ),
        ) {
            let mut offer = ExtensionOffer::new(name);
            for (param, value) in &params {
                offer = offer.with_param(param.as_str(), value.as_deref());
            }
            let text = format_extension(&offer);
            prop_assert_eq!(parse_extensions([text.as_bytes()].into_iter()), Ok(vec![offer]));
        }
    }
}
