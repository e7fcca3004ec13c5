//! What the `serve` helpers of both drivers share: which accept errors mean overload, the
//! backoff after them, the 503 answer past the connection cap, and plain HTTP requests and
//! responses served next to the WebSocket endpoint.

use core::time::Duration;
use std::io;
#[cfg(feature = "tokio")]
use std::string::String;
use std::vec::Vec;

/// The first wait after an accept error that means overload.
pub(crate) const BACKOFF_MIN: Duration = Duration::from_millis(10);
/// The longest wait while overload errors repeat.
pub(crate) const BACKOFF_MAX: Duration = Duration::from_millis(100);

/// Whether an `accept` error means the process or the system is short of a resource, or that
/// one connection went away before it was accepted: the listener is fine and accepting again
/// later works. EMFILE and ENFILE (out of file descriptors), ENOMEM and ENOBUFS (out of
/// memory), ECONNABORTED (the peer reset the connection while it waited in the backlog).
///
/// Every other error (EBADF, EINVAL, ...) means the listener itself is broken.
#[must_use]
pub fn is_overload(error: &io::Error) -> bool {
    if matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::OutOfMemory
    ) {
        return true;
    }
    // std has no `ErrorKind` for these yet; the numbers are the platforms' errno values.
    #[cfg(unix)]
    const EMFILE_ENFILE: [i32; 2] = [24, 23];
    #[cfg(any(target_os = "linux", target_os = "android"))]
    const ENOBUFS: i32 = 105;
    #[cfg(all(unix, not(any(target_os = "linux", target_os = "android"))))]
    const ENOBUFS: i32 = 55;
    // WSAEMFILE and WSAENOBUFS.
    #[cfg(windows)]
    const EMFILE_ENFILE: [i32; 2] = [10024, 10024];
    #[cfg(windows)]
    const ENOBUFS: i32 = 10055;
    #[cfg(any(unix, windows))]
    if let Some(code) = error.raw_os_error() {
        return EMFILE_ENFILE.contains(&code) || code == ENOBUFS;
    }
    false
}

/// The waits between accepts while overload errors repeat: 10 ms, doubling up to 100 ms;
/// back to 10 ms after an accept that worked.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    last: Option<Duration>,
}

impl Backoff {
    /// The wait after one more overload error.
    pub(crate) fn next(&mut self) -> Duration {
        let wait = self
            .last
            .map_or(BACKOFF_MIN, |last| (last * 2).min(BACKOFF_MAX));
        self.last = Some(wait);
        wait
    }

    /// An accept worked.
    pub(crate) fn reset(&mut self) {
        self.last = None;
    }
}

/// The default overload log line (the servers' `on_accept_error` hook replaces it).
pub(crate) fn log_accept_error(error: &io::Error, wait: Duration) {
    std::eprintln!(
        "serve: accept failed ({error}); accepting again in {} ms",
        wait.as_millis()
    );
}

/// The answer past `max_connections`: 503 with `Retry-After` in seconds (RFC 9110 §10.2.3,
/// §15.6.4); the connection closes after it.
pub(crate) fn busy_response(retry_after: u32) -> Vec<u8> {
    let body = "too many connections, retry later\n";
    std::format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: {retry_after}\r\n\
         Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(feature = "tokio")]
/// A plain HTTP request (one without `Upgrade: websocket`) that reached a server's `serve`:
/// what its HTTP callback sees to pick a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    method: String,
    target: String,
    headers: Vec<(String, Vec<u8>)>,
}

#[cfg(feature = "tokio")]
impl HttpRequest {
    /// The method, as sent (`GET`, `HEAD`, ...).
    #[must_use]
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The request target exactly as sent: `/path?query`, or an absolute URI.
    #[must_use]
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The path of the target without the query (`/` for an absolute URI without one).
    #[must_use]
    pub fn path(&self) -> &str {
        let target = self.target.split('?').next().unwrap_or_default();
        let path = match target.split_once("://") {
            Some((_, rest)) => rest.find('/').map_or("", |at| &rest[at..]),
            None => target,
        };
        if path.is_empty() { "/" } else { path }
    }

    /// Every header in the order sent: name as sent, raw value.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.headers.iter().map(|(n, v)| (n.as_str(), v.as_slice()))
    }

    /// The value of the first header called `name` (ASCII case-insensitive).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

#[cfg(feature = "tokio")]
/// The answer to a plain [`HttpRequest`]: status, headers, body. `serve` adds
/// `Content-Length` and `Connection: close`, writes it and closes the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Headers, in order. A name or value holding CR or LF is left out when written.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

#[cfg(feature = "tokio")]
impl HttpResponse {
    /// A response with `status` and `body`, and no headers yet.
    #[must_use]
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The response on the wire.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        use crate::handshake::reason_phrase;
        use std::fmt::Write as _;
        let mut head = std::format!(
            "HTTP/1.1 {} {}\r\n",
            self.status,
            reason_phrase(self.status)
        );
        let clean = |s: &str| !s.contains(['\r', '\n']);
        for (name, value) in &self.headers {
            if clean(name) && clean(value) {
                let _ = write!(head, "{name}: {value}\r\n");
            }
        }
        let _ = write!(
            head,
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.body.len()
        );
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

#[cfg(feature = "tokio")]
/// Whether `received` holds a complete request head (ends with or contains `\r\n\r\n`).
pub(crate) fn has_head(received: &[u8]) -> bool {
    received.windows(4).any(|w| w == b"\r\n\r\n")
}

#[cfg(feature = "tokio")]
/// The plain HTTP request in `received`, a complete head; `None` when it asks for an upgrade
/// to WebSocket or does not parse (the WebSocket handshake then answers it: 101, or the 4xx
/// the core sends for a bad request).
pub(crate) fn plain_request(received: &[u8], max_headers: usize) -> Option<HttpRequest> {
    let mut slots = std::vec![httparse::EMPTY_HEADER; max_headers];
    let mut parsed = httparse::Request::new(&mut slots);
    let Ok(httparse::Status::Complete(_)) = parsed.parse(received) else {
        return None;
    };
    let upgrade = parsed.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("upgrade")
            && h.value
                .split(|&b| b == b',')
                .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"websocket"))
    });
    if upgrade {
        return None;
    }
    Some(HttpRequest {
        method: parsed.method?.into(),
        target: parsed.path?.into(),
        headers: parsed
            .headers
            .iter()
            .map(|h| (h.name.into(), h.value.to_vec()))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_within_10_to_100_ms_and_resets() {
        let mut backoff = Backoff::default();
        let waits: Vec<u128> = (0..6).map(|_| backoff.next().as_millis()).collect();
        assert_eq!(waits, [10, 20, 40, 80, 100, 100]);
        backoff.reset();
        assert_eq!(backoff.next(), BACKOFF_MIN);
    }

    #[test]
    fn overload_errors() {
        for code in [24, 23, 105] {
            assert!(is_overload(&io::Error::from_raw_os_error(code)), "{code}");
        }
        assert!(is_overload(&io::ErrorKind::ConnectionAborted.into()));
        assert!(is_overload(&io::ErrorKind::OutOfMemory.into()));
        // EBADF, EINVAL: the listener is broken.
        assert!(!is_overload(&io::Error::from_raw_os_error(9)));
        assert!(!is_overload(&io::Error::from_raw_os_error(22)));
    }

    #[cfg(feature = "tokio")]
    #[test]
    fn plain_requests_and_upgrades() {
        let get = b"GET /health?x=1 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n";
        let request = plain_request(get, 32).expect("plain");
        assert_eq!(request.method(), "GET");
        assert_eq!(request.target(), "/health?x=1");
        assert_eq!(request.path(), "/health");
        assert_eq!(request.header("accept"), Some(&b"*/*"[..]));
        let upgrade = b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: h2c, WebSocket\r\n\r\n";
        assert_eq!(plain_request(upgrade, 32), None);
        let absolute = b"GET http://a HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(plain_request(absolute, 32).expect("plain").path(), "/");
    }

    #[cfg(feature = "tokio")]
    #[test]
    fn responses_on_the_wire() {
        let response = HttpResponse::new(404, "no\n")
            .header("Content-Type", "text/plain")
            .header("X-Bad", "a\r\nSet-Cookie: b");
        assert_eq!(
            response.to_bytes(),
            b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\
              Connection: close\r\n\r\nno\n"
        );
        assert!(
            busy_response(7).starts_with(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\n")
        );
    }
}
