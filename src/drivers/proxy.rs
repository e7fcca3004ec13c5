//! Client proxies: HTTP `CONNECT` (with Basic auth) and SOCKS5, from a URL or the environment.
//!
//! A [`Proxy`] says where the proxy is and how to talk to it. [`ProxyHandshake`] is the
//! sans-IO part: it queues the bytes to send (an HTTP `CONNECT` request, or the SOCKS5
//! greeting, RFC 1929 username/password and `CONNECT` request), takes the proxy's answers
//! and says when the tunnel is open or why it is not ([`ProxyError`]). The helpers
//! `Proxy::connect_blocking` (feature `blocking`) and `Proxy::connect_tokio` (feature
//! `tokio`) drive it over a TCP stream and return that stream, tunnelled to the target;
//! hand it to `WebSocket::client_on` or `WebSocketStream::client_on` (after TLS for
//! `wss://`).
//!
//! ```text
//! Proxy::parse / from_env ──► ProxyHandshake::new(&proxy, host, port)
//!                                 │  next_step() == Write: send pending_output(), consume_output(n)
//!                                 │  next_step() == Read:  receive(bytes) or receive_eof()
//!                                 ▼  next_step() == Done:  the stream is a tunnel to host:port
//! ```
//!
//! Through a proxy from the environment, or a fixed one, with the tokio driver:
//!
//! ```no_run
//! # async fn run() -> Result<(), wsproto::drivers::Error> {
//! use wsproto::drivers::proxy::Proxy;
//! use wsproto::drivers::tokio::WebSocketStream;
//! use wsproto::{ClientRequest, Config};
//!
//! let request = ClientRequest::new("ws://echo.example/")?;
//! let proxy = match Proxy::from_env(request.is_secure(), request.host()) {
//!     Some(proxy) => proxy,
//!     None => Proxy::parse("socks5://user:secret@127.0.0.1:1080")?,
//! };
//! let stream = proxy.connect_tokio(request.host(), request.port()).await?;
//! let mut ws = WebSocketStream::client_on(stream, request, Config::default()).await?;
//! ws.send_text("hello").await?;
//! # Ok(()) }
//! ```
//!
//! The client speaks first in both WebSocket and TLS, so any byte the proxy sends past its
//! answer is an error ([`ProxyError::UnexpectedData`]), never silently dropped.
//!
//! References: RFC 9110 §9.3.6 (`CONNECT`), RFC 9110 §11.7.1 (`Proxy-Authorization`),
//! RFC 7617 (Basic), RFC 1928 (SOCKS5), RFC 1929 (SOCKS5 username/password).

use super::Error;
use base64::Engine as _;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::string::{String, ToString};
use std::vec::Vec;

/// The most bytes of an HTTP proxy's response head we buffer before giving up.
pub const MAX_HTTP_RESPONSE_HEAD: usize = 8 * 1024;

/// The longest SOCKS5 answer: a reply with a 255-byte domain name (RFC 1928 §6).
const MAX_SOCKS_ANSWER: usize = 4 + 1 + 255 + 2;

/// The most headers an HTTP proxy's response head may carry.
const MAX_HTTP_HEADERS: usize = 64;

/// How to talk to a proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProxyKind {
    /// An HTTP proxy, asked for a tunnel with `CONNECT host:port` (RFC 9110 §9.3.6).
    Http,
    /// A SOCKS5 proxy (RFC 1928). The target goes to it as a domain name, so the proxy
    /// resolves it, or as an IPv4/IPv6 address when the host is an IP literal.
    Socks5,
}

/// A proxy for the client: where it is, what it speaks and the credentials to give it.
///
/// `Debug` shows the username but never the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    kind: ProxyKind,
    host: String,
    port: u16,
    credentials: Option<Credentials>,
}

#[derive(Clone, PartialEq, Eq)]
struct Credentials {
    username: String,
    password: String,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Proxy");
        s.field("kind", &self.kind)
            .field("host", &self.host)
            .field("port", &self.port);
        match &self.credentials {
            Some(c) => s
                .field("username", &c.username)
                .field("password", &"<hidden>"),
            None => s.field("username", &None::<&str>),
        };
        s.finish()
    }
}

impl Proxy {
    /// An HTTP `CONNECT` proxy at `host:port`, without credentials. The host is a DNS name or
    /// an IP address (IPv6 with or without brackets).
    #[must_use]
    pub fn http(host: &str, port: u16) -> Self {
        Self::new(ProxyKind::Http, host, port)
    }

    /// A SOCKS5 proxy at `host:port`, without credentials.
    #[must_use]
    pub fn socks5(host: &str, port: u16) -> Self {
        Self::new(ProxyKind::Socks5, host, port)
    }

    fn new(kind: ProxyKind, host: &str, port: u16) -> Self {
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        Self {
            kind,
            host: host.to_string(),
            port,
            credentials: None,
        }
    }

    /// Adds credentials: Basic auth (RFC 7617) for HTTP, username/password (RFC 1929) for
    /// SOCKS5.
    ///
    /// # Errors
    /// [`ProxyError::BadUrl`] for SOCKS5 when the username is empty or either part is longer
    /// than 255 bytes (RFC 1929 §2 gives each a one-byte length); for HTTP when the username
    /// contains `:` (RFC 7617 §2).
    pub fn with_credentials(mut self, username: &str, password: &str) -> Result<Self, ProxyError> {
        match self.kind {
            ProxyKind::Socks5 => {
                if username.is_empty() || username.len() > 255 || password.len() > 255 {
                    return Err(ProxyError::BadUrl(
                        "socks5 username must be 1 to 255 bytes and password at most 255",
                    ));
                }
            }
            ProxyKind::Http => {
                // RFC 7617 §2: the user-id cannot contain a colon.
                if username.contains(':') {
                    return Err(ProxyError::BadUrl("username contains ':'"));
                }
            }
        }
        self.credentials = Some(Credentials {
            username: username.to_string(),
            password: password.to_string(),
        });
        Ok(self)
    }

    /// Parses a proxy URL: `http://[user[:password]@]host[:port][/]`,
    /// `socks5://…` or `socks5h://…` (the same: the target always goes to the proxy by name
    /// unless it is an IP literal). The scheme is case-insensitive; a URL without one is
    /// `http`, as curl assumes. The default port is 80 for `http` and 1080 for SOCKS5.
    /// User and password are percent-decoded; IPv6 hosts are bracketed (`[::1]:3128`).
    ///
    /// # Errors
    /// [`ProxyError::UnsupportedScheme`] for any other scheme (`https`, `socks4`, …),
    /// [`ProxyError::BadUrl`] for a missing host, a bad port, a path, an invalid
    /// percent-escape, or credentials the scheme cannot carry.
    pub fn parse(url: &str) -> Result<Self, ProxyError> {
        let url = url.trim();
        let (scheme, rest) = match url.find("://") {
            Some(i) => (&url[..i], &url[i + 3..]),
            None => ("http", url),
        };
        let (kind, default_port) = match scheme.to_ascii_lowercase().as_str() {
            "http" => (ProxyKind::Http, 80),
            "socks5" | "socks5h" => (ProxyKind::Socks5, 1080),
            _ => return Err(ProxyError::UnsupportedScheme(scheme.to_string())),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        // The last '@' ends the user information, so a password may hold '@' or '/'.
        let (userinfo, hostport) = match rest.rfind('@') {
            Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
            None => (None, rest),
        };
        if hostport.contains(['/', '?', '#']) {
            return Err(ProxyError::BadUrl(
                "a proxy URL has no path, query or fragment",
            ));
        }
        let (host, port) = split_host_port(hostport)?;
        let proxy = Self::new(kind, host, port.unwrap_or(default_port));
        match userinfo {
            None => Ok(proxy),
            Some(info) => {
                let (user, pass) = info.split_once(':').unwrap_or((info, ""));
                let (user, pass) = (percent_decode(user)?, percent_decode(pass)?);
                if user.is_empty() && pass.is_empty() {
                    Ok(proxy)
                } else {
                    proxy.with_credentials(&user, &pass)
                }
            }
        }
    }

    /// The proxy to use for a client connecting to `host`, read from the process
    /// environment as curl reads it; see [`Proxy::from_env_with`].
    #[must_use]
    pub fn from_env(secure: bool, host: &str) -> Option<Self> {
        Self::from_env_with(|name| std::env::var(name).ok(), secure, host)
    }

    /// The proxy to use for a client connecting to `host` (`secure` for `wss://`), with
    /// `lookup` reading variables, as curl does:
    ///
    /// 1. `wss://` reads `https_proxy`, then `HTTPS_PROXY`; `ws://` reads `http_proxy` only,
    ///    in lowercase: curl ignores `HTTP_PROXY` because CGI servers put a request's
    ///    `Proxy:` header there (httpoxy), and a client must not let a peer pick its proxy.
    /// 2. Then `all_proxy`, then `ALL_PROXY`.
    /// 3. `no_proxy`, else `NO_PROXY`, vetoes: a comma-separated list where `*` matches every
    ///    host, a name matches itself and its subdomains (with or without a leading dot:
    ///    `example.com` and `.example.com` both match `example.com` and `a.example.com`),
    ///    an IP address matches itself and `addr/bits` a network. A `:port` on an entry
    ///    is ignored. Names compare case-insensitively.
    ///
    /// Empty variables count as unset. A value that does not parse is skipped; use
    /// [`Proxy::try_from_env_with`] to see the error instead.
    #[must_use]
    pub fn from_env_with(
        lookup: impl Fn(&str) -> Option<String>,
        secure: bool,
        host: &str,
    ) -> Option<Self> {
        Self::try_from_env_with(lookup, secure, host).ok().flatten()
    }

    /// As [`Proxy::from_env_with`], but a proxy variable that does not parse is an error.
    ///
    /// # Errors
    /// What [`Proxy::parse`] says of the first non-empty proxy variable found.
    pub fn try_from_env_with(
        lookup: impl Fn(&str) -> Option<String>,
        secure: bool,
        host: &str,
    ) -> Result<Option<Self>, ProxyError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let names: &[&str] = if secure {
            &["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"]
        } else {
            &["http_proxy", "all_proxy", "ALL_PROXY"]
        };
        let Some(value) = names.iter().find_map(|name| get(name)) else {
            return Ok(None);
        };
        if let Some(list) = get("no_proxy").or_else(|| get("NO_PROXY"))
            && no_proxy_matches(&list, host)
        {
            return Ok(None);
        }
        Self::parse(&value).map(Some)
    }

    /// What the proxy speaks.
    #[must_use]
    pub fn kind(&self) -> ProxyKind {
        self.kind
    }

    /// The proxy's host, without IPv6 brackets.
    #[must_use]
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The proxy's port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The username given to the proxy, if any.
    #[must_use]
    pub fn username(&self) -> Option<&str> {
        self.credentials.as_ref().map(|c| c.username.as_str())
    }

    /// Connects to the proxy, asks it for a tunnel to `host:port` and returns the stream,
    /// with `TCP_NODELAY` on. Neither the connect nor the handshake has a timeout of its own
    /// (the system's connect timeout applies); to bound them, drive the sans-IO
    /// [`ProxyHandshake`] over a stream with read and write timeouts set.
    ///
    /// # Errors
    /// [`Error::Io`] when connecting, reading or writing fails; [`Error::Proxy`] when the
    /// proxy refuses or answers badly.
    #[cfg(feature = "blocking")]
    pub fn connect_blocking(&self, host: &str, port: u16) -> Result<std::net::TcpStream, Error> {
        self.connect_blocking_within(host, port, None)
    }

    /// [`Proxy::connect_blocking`] with each read and write of the handshake bounded by
    /// `limit` (the `Connector` passes `Config::handshake_timeout`); the timeouts are
    /// cleared on the stream returned.
    #[cfg(feature = "blocking")]
    pub(crate) fn connect_blocking_within(
        &self,
        host: &str,
        port: u16,
        limit: Option<std::time::Duration>,
    ) -> Result<std::net::TcpStream, Error> {
        use std::io::{ErrorKind, Read, Write};
        let mut handshake = ProxyHandshake::new(self, host, port)?;
        let mut stream = super::tcp_connect_blocking(&self.host, self.port, limit)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(limit)?;
        stream.set_write_timeout(limit)?;
        let mut buf = [0; 1024];
        loop {
            match handshake.next_step()? {
                Step::Write => {
                    let out = handshake.pending_output();
                    stream.write_all(out)?;
                    let n = out.len();
                    handshake.consume_output(n);
                }
                Step::Read => match stream.read(&mut buf) {
                    Ok(0) => handshake.receive_eof(),
                    Ok(n) => handshake.receive(&buf[..n]),
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(e.into()),
                },
                Step::Done => {
                    stream.set_read_timeout(None)?;
                    stream.set_write_timeout(None)?;
                    return Ok(stream);
                }
            }
        }
    }

    /// Connects to the proxy, asks it for a tunnel to `host:port` and returns the stream,
    /// with `TCP_NODELAY` on. Wrap the call in `tokio::time::timeout` to bound it.
    ///
    /// # Errors
    /// [`Error::Io`] when connecting, reading or writing fails; [`Error::Proxy`] when the
    /// proxy refuses or answers badly.
    #[cfg(feature = "tokio")]
    pub async fn connect_tokio(
        &self,
        host: &str,
        port: u16,
    ) -> Result<::tokio::net::TcpStream, Error> {
        use ::tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut handshake = ProxyHandshake::new(self, host, port)?;
        let mut stream = ::tokio::net::TcpStream::connect((self.host.as_str(), self.port)).await?;
        stream.set_nodelay(true)?;
        let mut buf = [0; 1024];
        loop {
            match handshake.next_step()? {
                Step::Write => {
                    let out = handshake.pending_output();
                    stream.write_all(out).await?;
                    let n = out.len();
                    handshake.consume_output(n);
                }
                Step::Read => match stream.read(&mut buf).await? {
                    0 => handshake.receive_eof(),
                    n => handshake.receive(&buf[..n]),
                },
                Step::Done => return Ok(stream),
            }
        }
    }
}

/// Splits `host[:port]` or `[v6][:port]`; the port is 1 to 65535.
fn split_host_port(hostport: &str) -> Result<(&str, Option<u16>), ProxyError> {
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let (v6, after) = rest
            .split_once(']')
            .ok_or(ProxyError::BadUrl("unclosed '[' in host"))?;
        if v6.parse::<Ipv6Addr>().is_err() {
            return Err(ProxyError::BadUrl("invalid IPv6 address"));
        }
        match after {
            "" => (v6, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (v6, Some(port)),
                None => return Err(ProxyError::BadUrl("junk after the IPv6 address")),
            },
        }
    } else {
        match hostport.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(ProxyError::BadUrl("missing host"));
    }
    if host
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b == b'[' || b == b']')
    {
        return Err(ProxyError::BadUrl("invalid character in host"));
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n != 0 && p.bytes().all(|b| b.is_ascii_digit()) => Some(n),
            _ => return Err(ProxyError::BadUrl("port must be 1 to 65535")),
        },
    };
    Ok((host, port))
}

/// Decodes `%XX` escapes (RFC 3986 §2.1); the result must be UTF-8.
fn percent_decode(s: &str) -> Result<String, ProxyError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| core::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .filter(|_| bytes[i + 1].is_ascii_hexdigit() && bytes[i + 2].is_ascii_hexdigit())
                .ok_or(ProxyError::BadUrl("invalid percent-escape"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ProxyError::BadUrl("credentials are not UTF-8"))
}

/// Whether a `NO_PROXY` list exempts `host` (see [`Proxy::from_env_with`]).
fn no_proxy_matches(list: &str, host: &str) -> bool {
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    let host_ip = host.parse::<IpAddr>().ok();
    list.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            let entry = strip_entry_port(entry);
            if let Some((net, bits)) = entry.split_once('/') {
                return match (host_ip, net.parse::<IpAddr>(), bits.parse::<u8>()) {
                    (Some(ip), Ok(net), Ok(bits)) => in_network(ip, net, bits),
                    _ => false,
                };
            }
            if let Ok(ip) = entry.parse::<IpAddr>() {
                return host_ip == Some(ip);
            }
            if host_ip.is_some() {
                return false;
            }
            let name = entry.strip_prefix('.').unwrap_or(entry);
            let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
            !name.is_empty()
                && (host == name
                    || host
                        .strip_suffix(name.as_str())
                        .is_some_and(|prefix| prefix.ends_with('.')))
        })
}

/// A `NO_PROXY` entry without its `:port`: `[v6]:port`, `[v6]`, `host:port`, `v4:port`; a
/// bare IPv6 address (two colons or more) has none.
fn strip_entry_port(entry: &str) -> &str {
    if let Some(rest) = entry.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(v6, _)| v6);
    }
    match entry.matches(':').count() {
        1 => entry.split_once(':').map_or(entry, |(host, _)| host),
        _ => entry,
    }
}

/// Whether `ip` lies in `net/bits` (both the same family).
fn in_network(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// Why a proxy did not open the tunnel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The proxy URL is invalid; the text says why.
    #[error("bad proxy url: {0}")]
    BadUrl(&'static str),
    /// The proxy URL's scheme is not `http`, `socks5` or `socks5h`.
    #[error("unsupported proxy scheme {0:?} (use http, socks5 or socks5h)")]
    UnsupportedScheme(String),
    /// The target host cannot be sent to the proxy (empty, too long for SOCKS5, or holding
    /// characters that would break the request line).
    #[error("bad target host for the proxy: {0}")]
    BadTarget(&'static str),
    /// The HTTP proxy answered 407 Proxy Authentication Required: the credentials were
    /// refused, or none were given and it wants some.
    #[error("the proxy requires authentication (407): the credentials were refused or missing")]
    AuthenticationRequired,
    /// The HTTP proxy answered `CONNECT` with a status other than 2xx and 407.
    #[error("the proxy refused the tunnel with status {status}")]
    Refused {
        /// The proxy's status code.
        status: u16,
    },
    /// The SOCKS5 proxy's reply to `CONNECT` was a failure (RFC 1928 §6).
    #[error("socks5 proxy: {0}")]
    Socks(SocksReply),
    /// The SOCKS5 proxy rejected the username and password (RFC 1929 §2).
    #[error("the socks5 proxy rejected the username and password")]
    SocksAuthRejected,
    /// The SOCKS5 proxy accepts none of the authentication methods offered (RFC 1928 §3:
    /// `X'FF'`); it may want credentials that were not given.
    #[error("the socks5 proxy accepts none of the offered authentication methods")]
    NoAcceptableAuthMethod,
    /// The proxy's answer is not valid HTTP or SOCKS5, or is too large; the text says why.
    #[error("malformed proxy answer: {0}")]
    Malformed(&'static str),
    /// The proxy sent bytes past its answer, before the client spoke.
    #[error("the proxy sent data past its answer")]
    UnexpectedData,
    /// The proxy closed the connection before finishing its answer.
    #[error("the proxy closed the connection during the handshake")]
    Closed,
}

/// A SOCKS5 reply code other than success (RFC 1928 §6, field `REP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum SocksReply {
    /// `X'01'` general SOCKS server failure.
    #[error("general failure")]
    GeneralFailure,
    /// `X'02'` connection not allowed by ruleset.
    #[error("connection not allowed by ruleset")]
    NotAllowed,
    /// `X'03'` network unreachable.
    #[error("network unreachable")]
    NetworkUnreachable,
    /// `X'04'` host unreachable.
    #[error("host unreachable")]
    HostUnreachable,
    /// `X'05'` connection refused.
    #[error("connection refused")]
    ConnectionRefused,
    /// `X'06'` TTL expired.
    #[error("TTL expired")]
    TtlExpired,
    /// `X'07'` command not supported.
    #[error("command not supported")]
    CommandNotSupported,
    /// `X'08'` address type not supported.
    #[error("address type not supported")]
    AddressTypeNotSupported,
    /// A code RFC 1928 does not assign (`X'09'` to `X'FF'`).
    #[error("unassigned reply code {0:#04x}")]
    Other(u8),
}

impl SocksReply {
    /// The reply for a non-zero `REP` byte.
    #[must_use]
    pub fn from_code(code: u8) -> Self {
        match code {
            1 => Self::GeneralFailure,
            2 => Self::NotAllowed,
            3 => Self::NetworkUnreachable,
            4 => Self::HostUnreachable,
            5 => Self::ConnectionRefused,
            6 => Self::TtlExpired,
            7 => Self::CommandNotSupported,
            8 => Self::AddressTypeNotSupported,
            other => Self::Other(other),
        }
    }

    /// The `REP` byte.
    #[must_use]
    pub fn code(self) -> u8 {
        match self {
            Self::GeneralFailure => 1,
            Self::NotAllowed => 2,
            Self::NetworkUnreachable => 3,
            Self::HostUnreachable => 4,
            Self::ConnectionRefused => 5,
            Self::TtlExpired => 6,
            Self::CommandNotSupported => 7,
            Self::AddressTypeNotSupported => 8,
            Self::Other(code) => code,
        }
    }
}

/// What a [`ProxyHandshake`] needs next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Send [`ProxyHandshake::pending_output`], then [`ProxyHandshake::consume_output`].
    Write,
    /// Read from the proxy and hand the bytes to [`ProxyHandshake::receive`] (or call
    /// [`ProxyHandshake::receive_eof`] at end of stream).
    Read,
    /// The tunnel is open: the stream now carries bytes to and from the target.
    Done,
}

/// Where the handshake is.
#[derive(Debug)]
enum State {
    /// Waiting for the HTTP proxy's response head.
    HttpResponse,
    /// SOCKS5: waiting for the chosen method (RFC 1928 §3).
    SocksMethod,
    /// SOCKS5: waiting for the username/password status (RFC 1929 §2).
    SocksAuth,
    /// SOCKS5: waiting for the reply to `CONNECT` (RFC 1928 §6).
    SocksReply,
    /// The tunnel is open.
    Done,
    /// The handshake failed; every later call says the same.
    Failed(ProxyError),
}

/// The sans-IO proxy handshake: bytes in, bytes out, no IO.
///
/// Call [`ProxyHandshake::next_step`] until it returns [`Step::Done`] or an error, doing what
/// each [`Step`] asks. Errors are sticky.
///
/// ```
/// use wsproto::drivers::proxy::{Proxy, ProxyHandshake, Step};
///
/// let proxy = Proxy::parse("http://proxy.example:3128")?;
/// let mut handshake = ProxyHandshake::new(&proxy, "echo.example", 443)?;
/// assert_eq!(handshake.next_step()?, Step::Write);
/// assert_eq!(
///     handshake.pending_output(),
///     b"CONNECT echo.example:443 HTTP/1.1\r\nHost: echo.example:443\r\n\r\n"
/// );
/// handshake.consume_output(handshake.pending_output().len());
/// assert_eq!(handshake.next_step()?, Step::Read);
/// handshake.receive(b"HTTP/1.1 200 Connection established\r\n\r\n");
/// assert_eq!(handshake.next_step()?, Step::Done);
/// # Ok::<(), wsproto::drivers::proxy::ProxyError>(())
/// ```
pub struct ProxyHandshake {
    state: State,
    output: Vec<u8>,
    input: Vec<u8>,
    /// More bytes arrived than the current answer may hold; they were not buffered.
    overflow: bool,
    eof: bool,
    credentials: Option<Credentials>,
    /// The SOCKS5 `CONNECT` request, queued once authentication is over.
    socks_connect: Vec<u8>,
}

impl fmt::Debug for ProxyHandshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The output may hold credentials; show sizes only.
        f.debug_struct("ProxyHandshake")
            .field("state", &self.state)
            .field("pending_output", &self.output.len())
            .field("buffered_input", &self.input.len())
            .finish_non_exhaustive()
    }
}

impl ProxyHandshake {
    /// Starts a handshake with `proxy` for a tunnel to `host:port` and queues the first
    /// bytes: the whole `CONNECT` request for HTTP, the greeting for SOCKS5. The host is a
    /// DNS name or an IP address (IPv6 with or without brackets).
    ///
    /// # Errors
    /// [`ProxyError::BadTarget`] when the host is empty, holds whitespace or control
    /// characters, or (SOCKS5) is a name longer than 255 bytes.
    pub fn new(proxy: &Proxy, host: &str, port: u16) -> Result<Self, ProxyError> {
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() {
            return Err(ProxyError::BadTarget("empty host"));
        }
        if host
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(ProxyError::BadTarget(
                "whitespace or control character in host",
            ));
        }
        let mut handshake = Self {
            state: State::HttpResponse,
            output: Vec::new(),
            input: Vec::new(),
            overflow: false,
            eof: false,
            credentials: proxy.credentials.clone(),
            socks_connect: Vec::new(),
        };
        match proxy.kind {
            ProxyKind::Http => handshake.queue_http_connect(host, port),
            ProxyKind::Socks5 => {
                handshake.socks_connect = socks_connect_request(host, port)?;
                // RFC 1928 §3: VER, NMETHODS, METHODS; X'00' no authentication, X'02'
                // username/password (offered only with credentials).
                handshake
                    .output
                    .extend_from_slice(match handshake.credentials {
                        Some(_) => &[5, 2, 0, 2],
                        None => &[5, 1, 0],
                    });
                handshake.state = State::SocksMethod;
            }
        }
        Ok(handshake)
    }

    fn queue_http_connect(&mut self, host: &str, port: u16) {
        // RFC 9110 §9.3.6: the request target is authority-form, host:port, IPv6 in brackets;
        // §7.2: Host carries the same authority.
        let authority = if host.contains(':') {
            std::format!("[{host}]:{port}")
        } else {
            std::format!("{host}:{port}")
        };
        let out = &mut self.output;
        out.extend_from_slice(b"CONNECT ");
        out.extend_from_slice(authority.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        out.extend_from_slice(authority.as_bytes());
        out.extend_from_slice(b"\r\n");
        if let Some(c) = &self.credentials {
            // RFC 7617 §2: base64 of user-id ":" password, UTF-8.
            let token = base64::engine::general_purpose::STANDARD
                .encode(std::format!("{}:{}", c.username, c.password));
            out.extend_from_slice(b"Proxy-Authorization: Basic ");
            out.extend_from_slice(token.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        self.state = State::HttpResponse;
    }

    /// The bytes to send to the proxy.
    #[must_use]
    pub fn pending_output(&self) -> &[u8] {
        &self.output
    }

    /// Marks the first `n` bytes of [`ProxyHandshake::pending_output`] as sent.
    pub fn consume_output(&mut self, n: usize) {
        self.output.drain(..n.min(self.output.len()));
    }

    /// Buffers bytes read from the proxy; [`ProxyHandshake::next_step`] looks at them. No more
    /// than the longest valid answer is kept (8 KiB for an HTTP head, 262 bytes for SOCKS5);
    /// bytes beyond it make the answer too large or unexpected.
    pub fn receive(&mut self, data: &[u8]) {
        let limit = match self.state {
            State::HttpResponse => MAX_HTTP_RESPONSE_HEAD,
            State::SocksMethod | State::SocksAuth => 2,
            State::SocksReply => MAX_SOCKS_ANSWER,
            State::Done | State::Failed(_) => 0,
        };
        let room = limit.saturating_sub(self.input.len());
        if data.len() > room {
            self.overflow = true;
        }
        self.input.extend_from_slice(&data[..data.len().min(room)]);
    }

    /// Records that the proxy closed its side of the stream.
    pub fn receive_eof(&mut self) {
        self.eof = true;
    }

    /// Whether the tunnel is open.
    #[must_use]
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Takes in what was received and says what to do next.
    ///
    /// # Errors
    /// The proxy refused ([`ProxyError::AuthenticationRequired`], [`ProxyError::Refused`],
    /// [`ProxyError::Socks`], [`ProxyError::SocksAuthRejected`],
    /// [`ProxyError::NoAcceptableAuthMethod`]), answered badly ([`ProxyError::Malformed`],
    /// [`ProxyError::UnexpectedData`]) or closed early ([`ProxyError::Closed`]). The error is
    /// sticky.
    pub fn next_step(&mut self) -> Result<Step, ProxyError> {
        if let State::Failed(e) = &self.state {
            return Err(e.clone());
        }
        match self.advance() {
            Ok(step) => Ok(step),
            Err(e) => {
                self.output.clear();
                self.state = State::Failed(e.clone());
                Err(e)
            }
        }
    }

    fn advance(&mut self) -> Result<Step, ProxyError> {
        loop {
            if !self.output.is_empty() {
                return Ok(Step::Write);
            }
            let progressed = match self.state {
                State::HttpResponse => self.http_response()?,
                State::SocksMethod => self.socks_method()?,
                State::SocksAuth => self.socks_auth()?,
                State::SocksReply => self.socks_reply()?,
                State::Done => return Ok(Step::Done),
                State::Failed(ref e) => return Err(e.clone()),
            };
            if !progressed {
                if self.overflow {
                    return Err(match self.state {
                        State::HttpResponse => ProxyError::Malformed("response head over 8 KiB"),
                        _ => ProxyError::UnexpectedData,
                    });
                }
                if self.eof {
                    return Err(ProxyError::Closed);
                }
                return Ok(Step::Read);
            }
            // An answer was complete: nothing may follow it, since the proxy waits for us.
            if !self.input.is_empty() || self.overflow {
                return Err(ProxyError::UnexpectedData);
            }
        }
    }

    /// Parses the response head to `CONNECT`; `false` while incomplete.
    fn http_response(&mut self) -> Result<bool, ProxyError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HTTP_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        let len = match response.parse(&self.input) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Ok(false),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(ProxyError::Malformed("too many response headers"));
            }
            Err(_) => return Err(ProxyError::Malformed("invalid HTTP response head")),
        };
        let status = response.code.unwrap_or(0);
        // A refusal may carry a body (an HTML page, say): the status is what matters.
        match status {
            // RFC 9110 §9.3.6: any 2xx means the tunnel is open.
            200..=299 => {}
            407 => return Err(ProxyError::AuthenticationRequired),
            _ => return Err(ProxyError::Refused { status }),
        }
        self.input.drain(..len);
        self.state = State::Done;
        Ok(true)
    }

    /// RFC 1928 §3: VER, METHOD.
    fn socks_method(&mut self) -> Result<bool, ProxyError> {
        let [version, method] = match self.input[..] {
            [v, m, ..] => [v, m],
            _ => return Ok(false),
        };
        if version != 5 {
            return Err(ProxyError::Malformed("not a socks5 answer"));
        }
        self.input.drain(..2);
        match (method, &self.credentials) {
            (0, _) => self.queue_socks_connect(),
            (2, Some(c)) => {
                // RFC 1929 §2: VER=1, ULEN, UNAME, PLEN, PASSWD (lengths checked in
                // `with_credentials`).
                let out = &mut self.output;
                out.push(1);
                out.push(c.username.len() as u8);
                out.extend_from_slice(c.username.as_bytes());
                out.push(c.password.len() as u8);
                out.extend_from_slice(c.password.as_bytes());
                self.state = State::SocksAuth;
            }
            (0xff, _) => return Err(ProxyError::NoAcceptableAuthMethod),
            _ => {
                return Err(ProxyError::Malformed(
                    "socks5 proxy chose a method not offered",
                ));
            }
        }
        Ok(true)
    }

    /// RFC 1929 §2: VER, STATUS; X'00' is success.
    fn socks_auth(&mut self) -> Result<bool, ProxyError> {
        let [version, status] = match self.input[..] {
            [v, s, ..] => [v, s],
            _ => return Ok(false),
        };
        // RFC 1929 says VER is X'01'; some servers echo the SOCKS version, 5, instead.
        if version != 1 && version != 5 {
            return Err(ProxyError::Malformed("not a socks5 authentication answer"));
        }
        if status != 0 {
            return Err(ProxyError::SocksAuthRejected);
        }
        self.input.drain(..2);
        self.queue_socks_connect();
        Ok(true)
    }

    fn queue_socks_connect(&mut self) {
        self.output.append(&mut self.socks_connect);
        self.state = State::SocksReply;
    }

    /// RFC 1928 §6: VER, REP, RSV, ATYP, BND.ADDR, BND.PORT.
    fn socks_reply(&mut self) -> Result<bool, ProxyError> {
        let input = &self.input[..];
        if input.len() < 2 {
            return Ok(false);
        }
        if input[0] != 5 {
            return Err(ProxyError::Malformed("not a socks5 reply"));
        }
        if input[1] != 0 {
            return Err(ProxyError::Socks(SocksReply::from_code(input[1])));
        }
        let len = match input.get(3..5) {
            None => return Ok(false),
            Some([1, _]) => 4 + 4 + 2,
            Some([3, n]) => 4 + 1 + usize::from(*n) + 2,
            Some([4, _]) => 4 + 16 + 2,
            Some(_) => return Err(ProxyError::Malformed("unknown socks5 address type")),
        };
        if input.len() < len {
            return Ok(false);
        }
        self.input.drain(..len);
        self.state = State::Done;
        Ok(true)
    }
}

/// RFC 1928 §4: VER=5, CMD=1 (CONNECT), RSV=0, ATYP, DST.ADDR, DST.PORT (network order).
/// An IP literal goes as X'01' (IPv4) or X'04' (IPv6), any other host as X'03', a name the
/// proxy resolves.
fn socks_connect_request(host: &str, port: u16) -> Result<Vec<u8>, ProxyError> {
    let mut out = std::vec![5, 1, 0];
    if let Ok(v4) = host.parse::<Ipv4Addr>() {
        out.push(1);
        out.extend_from_slice(&v4.octets());
    } else if let Ok(v6) = host.parse::<Ipv6Addr>() {
        out.push(4);
        out.extend_from_slice(&v6.octets());
    } else {
        let len = u8::try_from(host.len())
            .map_err(|_| ProxyError::BadTarget("socks5 host names are at most 255 bytes"))?;
        out.push(3);
        out.push(len);
        out.extend_from_slice(host.as_bytes());
    }
    out.extend_from_slice(&port.to_be_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::format;
    use std::vec;

    /// Runs a handshake against scripted answers: each answer is fed once the handshake asks
    /// to read; returns everything it wrote, and the outcome.
    fn run(
        proxy: &Proxy,
        host: &str,
        port: u16,
        answers: &[&[u8]],
    ) -> (Vec<u8>, Result<(), ProxyError>) {
        let mut hs = ProxyHandshake::new(proxy, host, port).unwrap();
        let mut written = Vec::new();
        let mut answers = answers.iter();
        loop {
            match hs.next_step() {
                Ok(Step::Write) => {
                    written.extend_from_slice(hs.pending_output());
                    let n = hs.pending_output().len();
                    hs.consume_output(n);
                }
                Ok(Step::Read) => match answers.next() {
                    Some(a) => hs.receive(a),
                    None => hs.receive_eof(),
                },
                Ok(Step::Done) => return (written, Ok(())),
                Err(e) => return (written, Err(e)),
            }
        }
    }

    fn http_err(answer: &[u8]) -> ProxyError {
        run(&Proxy::http("p", 8080), "example.com", 443, &[answer])
            .1
            .unwrap_err()
    }

    // ----- URL parsing -------------------------------------------------------------------

    #[test]
    fn parse_http_with_credentials() {
        let p = Proxy::parse("http://alice:s3cret@proxy.example:3128").unwrap();
        assert_eq!(p.kind(), ProxyKind::Http);
        assert_eq!(
            (p.host(), p.port(), p.username()),
            ("proxy.example", 3128, Some("alice"))
        );
    }

    #[test]
    fn parse_default_ports_and_schemes() {
        let cases = [
            ("http://proxy", ProxyKind::Http, 80),
            ("HTTP://proxy/", ProxyKind::Http, 80),
            ("proxy:3128", ProxyKind::Http, 3128),
            ("socks5://proxy", ProxyKind::Socks5, 1080),
            ("socks5h://proxy:9050", ProxyKind::Socks5, 9050),
            ("SOCKS5H://proxy", ProxyKind::Socks5, 1080),
        ];
        for (url, kind, port) in cases {
            let p = Proxy::parse(url).unwrap();
            assert_eq!(
                (p.kind(), p.host(), p.port(), p.username()),
                (kind, "proxy", port, None),
                "{url}"
            );
        }
    }

    #[test]
    fn parse_ipv6_host() {
        let p = Proxy::parse("socks5://[::1]:1081").unwrap();
        assert_eq!((p.host(), p.port()), ("::1", 1081));
        let p = Proxy::parse("http://[2001:db8::7]").unwrap();
        assert_eq!((p.host(), p.port()), ("2001:db8::7", 80));
    }

    #[test]
    fn parse_percent_decodes_credentials() {
        let p = Proxy::parse("http://us%40er:p%3Aa%2Fss%25w%C3%B6rd@proxy:1").unwrap();
        assert_eq!(p.username(), Some("us@er"));
        assert_eq!(p.credentials.as_ref().unwrap().password, "p:a/ss%wörd");
        // An unescaped '@' in the password: the last '@' ends the user information.
        let p = Proxy::parse("http://bob:a@b@proxy:1").unwrap();
        assert_eq!(p.credentials.as_ref().unwrap().password, "a@b");
        // The first ':' ends the user; the password may hold more.
        let p = Proxy::parse("http://a:b:c@proxy").unwrap();
        assert_eq!(
            (
                p.username(),
                p.credentials.as_ref().unwrap().password.as_str()
            ),
            (Some("a"), "b:c")
        );
        // A user without a password.
        let p = Proxy::parse("http://bob@proxy").unwrap();
        assert_eq!(
            (
                p.username(),
                p.credentials.as_ref().unwrap().password.as_str()
            ),
            (Some("bob"), "")
        );
        // Empty user information is no credentials.
        assert_eq!(Proxy::parse("http://@proxy").unwrap().username(), None);
    }

    #[test]
    fn parse_errors() {
        let unsupported = |url: &str| match Proxy::parse(url) {
            Err(ProxyError::UnsupportedScheme(s)) => s,
            other => panic!("{url}: {other:?}"),
        };
        assert_eq!(unsupported("https://proxy"), "https");
        assert_eq!(unsupported("socks4://proxy"), "socks4");
        for url in [
            "http://",
            "http://:80",
            "http://proxy:0",
            "http://proxy:65536",
            "http://proxy:+80",
            "http://proxy:",
            "http://proxy/path",
            "http://proxy?q",
            "http://[::1",
            "http://[nope]:80",
            "http://[::1]x",
            "http://u:%zz@proxy",
            "http://u:%4@proxy",
            "http://u:%ff@proxy",
            "http://a%3Ab:c@proxy",
            "http://pro xy",
            "socks5://:pass@proxy",
        ] {
            assert!(
                matches!(Proxy::parse(url), Err(ProxyError::BadUrl(_))),
                "{url}"
            );
        }
        let long = "u".repeat(256);
        assert!(matches!(
            Proxy::parse(&format!("socks5://{long}:p@proxy")),
            Err(ProxyError::BadUrl(_))
        ));
        // HTTP Basic has no length limit of its own.
        assert!(Proxy::parse(&format!("http://{long}:p@proxy")).is_ok());
    }

    #[test]
    fn debug_hides_password() {
        let p = Proxy::parse("http://alice:hunter2@proxy:3128").unwrap();
        let shown = format!("{p:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(
            shown,
            r#"Proxy { kind: Http, host: "proxy", port: 3128, username: "alice", password: "<hidden>" }"#
        );
        let hs = ProxyHandshake::new(&p, "example.com", 443).unwrap();
        let shown = format!("{hs:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("aHVudGVyMg"),
            "{shown}"
        );
    }

    // ----- HTTP CONNECT --------------------------------------------------------------------

    #[test]
    fn http_connect_request_bytes() {
        let (sent, result) = run(
            &Proxy::http("proxy", 3128),
            "example.com",
            443,
            &[b"HTTP/1.1 200 Connection established\r\n\r\n"],
        );
        assert_eq!(result, Ok(()));
        assert_eq!(
            sent,
            b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
        );
    }

    #[test]
    fn http_connect_with_basic_auth_bytes() {
        // RFC 7617 §2's example: Aladdin / open sesame.
        let proxy = Proxy::parse("http://Aladdin:open%20sesame@proxy").unwrap();
        let (sent, result) = run(&proxy, "127.0.0.1", 80, &[b"HTTP/1.0 200 OK\r\n\r\n"]);
        assert_eq!(result, Ok(()));
        assert_eq!(
            sent,
            b"CONNECT 127.0.0.1:80 HTTP/1.1\r\nHost: 127.0.0.1:80\r\n\
              Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\r\n"
        );
    }

    #[test]
    fn http_connect_ipv6_target_is_bracketed() {
        for host in ["::1", "[::1]"] {
            let (sent, _) = run(
                &Proxy::http("p", 1),
                host,
                8080,
                &[b"HTTP/1.1 200 OK\r\n\r\n"],
            );
            assert_eq!(
                sent,
                b"CONNECT [::1]:8080 HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"
            );
        }
    }

    #[test]
    fn http_answer_in_pieces_with_headers() {
        let answer = b"HTTP/1.1 200 Connection established\r\nVia: test\r\nProxy-Agent: x\r\n\r\n";
        let pieces: Vec<&[u8]> = answer.chunks(1).collect();
        let (_, result) = run(&Proxy::http("p", 1), "h", 1, &pieces);
        assert_eq!(result, Ok(()));
    }

    #[test]
    fn http_status_mapping() {
        assert_eq!(
            http_err(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"x\"\r\nContent-Length: 5\r\n\r\nnope!"),
            ProxyError::AuthenticationRequired
        );
        assert_eq!(
            http_err(b"HTTP/1.1 403 Forbidden\r\n\r\n"),
            ProxyError::Refused { status: 403 }
        );
        assert_eq!(
            http_err(b"HTTP/1.1 502 Bad Gateway\r\n\r\n"),
            ProxyError::Refused { status: 502 }
        );
        assert_eq!(
            http_err(b"HTTP/1.1 301 Moved\r\n\r\n"),
            ProxyError::Refused { status: 301 }
        );
        let (_, result) = run(
            &Proxy::http("p", 1),
            "h",
            1,
            &[b"HTTP/1.1 204 No Content\r\n\r\n"],
        );
        assert_eq!(result, Ok(()));
    }

    #[test]
    fn http_malformed_and_closed() {
        assert!(matches!(
            http_err(b"SSH-2.0-OpenSSH\r\n\r\n"),
            ProxyError::Malformed(_)
        ));
        assert_eq!(http_err(b"HTTP/1.1 200 OK\r\n"), ProxyError::Closed);
        let (_, result) = run(&Proxy::http("p", 1), "h", 1, &[]);
        assert_eq!(result, Err(ProxyError::Closed));
    }

    #[test]
    fn http_bytes_past_the_answer_are_an_error() {
        assert_eq!(
            http_err(b"HTTP/1.1 200 OK\r\n\r\nX"),
            ProxyError::UnexpectedData
        );
    }

    #[test]
    fn http_head_is_bounded() {
        let mut head = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        head.resize(MAX_HTTP_RESPONSE_HEAD + 100, b'a');
        assert_eq!(
            http_err(&head),
            ProxyError::Malformed("response head over 8 KiB")
        );
        // Fed in small pieces, the buffer still stops at the limit.
        let mut hs = ProxyHandshake::new(&Proxy::http("p", 1), "h", 1).unwrap();
        hs.consume_output(usize::MAX);
        for chunk in head.chunks(100) {
            hs.receive(chunk);
        }
        assert_eq!(hs.input.len(), MAX_HTTP_RESPONSE_HEAD);
        assert!(hs.next_step().is_err());
    }

    #[test]
    fn errors_are_sticky() {
        let mut hs = ProxyHandshake::new(&Proxy::http("p", 1), "h", 1).unwrap();
        hs.consume_output(usize::MAX);
        hs.receive(b"HTTP/1.1 403 Forbidden\r\n\r\n");
        assert_eq!(hs.next_step(), Err(ProxyError::Refused { status: 403 }));
        hs.receive(b"HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(hs.next_step(), Err(ProxyError::Refused { status: 403 }));
        assert!(hs.pending_output().is_empty());
        assert!(!hs.is_done());
    }

    #[test]
    fn bad_targets() {
        let http = Proxy::http("p", 1);
        let socks = Proxy::socks5("p", 1);
        assert!(matches!(
            ProxyHandshake::new(&http, "", 1),
            Err(ProxyError::BadTarget(_))
        ));
        assert!(matches!(
            ProxyHandshake::new(&http, "a\r\nX-Evil: 1", 1),
            Err(ProxyError::BadTarget(_))
        ));
        assert!(matches!(
            ProxyHandshake::new(&http, "a b", 1),
            Err(ProxyError::BadTarget(_))
        ));
        assert!(matches!(
            ProxyHandshake::new(&socks, &"a".repeat(256), 1),
            Err(ProxyError::BadTarget(_))
        ));
        assert!(ProxyHandshake::new(&socks, &"a".repeat(255), 1).is_ok());
    }

    // ----- SOCKS5 --------------------------------------------------------------------------

    const SOCKS_OK_V4: &[u8] = &[5, 0, 0, 1, 127, 0, 0, 1, 0x1f, 0x90];

    #[test]
    fn socks5_domain_target_bytes() {
        let (sent, result) = run(
            &Proxy::socks5("p", 1080),
            "example.com",
            443,
            &[&[5, 0], SOCKS_OK_V4],
        );
        assert_eq!(result, Ok(()));
        let mut expected = vec![5, 1, 0];
        expected.extend_from_slice(&[5, 1, 0, 3, 11]);
        expected.extend_from_slice(b"example.com");
        expected.extend_from_slice(&[0x01, 0xbb]);
        assert_eq!(sent, expected);
    }

    #[test]
    fn socks5_ipv4_target_bytes() {
        let (sent, result) = run(
            &Proxy::socks5("p", 1080),
            "10.1.2.3",
            8080,
            &[&[5, 0], SOCKS_OK_V4],
        );
        assert_eq!(result, Ok(()));
        assert_eq!(sent, [5, 1, 0, 5, 1, 0, 1, 10, 1, 2, 3, 0x1f, 0x90]);
    }

    #[test]
    fn socks5_ipv6_target_bytes() {
        // The reply binds an IPv6 address too.
        let mut reply = vec![5, 0, 0, 4];
        reply.extend_from_slice(&[0; 16]);
        reply.extend_from_slice(&[0, 80]);
        for host in ["2001:db8::1", "[2001:db8::1]"] {
            let (sent, result) = run(&Proxy::socks5("p", 1080), host, 80, &[&[5, 0], &reply]);
            assert_eq!(result, Ok(()));
            let mut expected = vec![5, 1, 0, 5, 1, 0, 4, 0x20, 0x01, 0x0d, 0xb8];
            expected.extend_from_slice(&[0; 11]);
            expected.extend_from_slice(&[1, 0, 80]);
            assert_eq!(sent, expected);
        }
    }

    #[test]
    fn socks5_username_password_bytes() {
        let proxy = Proxy::parse("socks5://alice:pw@p").unwrap();
        let (sent, result) = run(&proxy, "1.2.3.4", 443, &[&[5, 2], &[1, 0], SOCKS_OK_V4]);
        assert_eq!(result, Ok(()));
        assert_eq!(
            sent,
            [
                5, 2, 0, 2, // greeting: no auth, username/password
                1, 5, b'a', b'l', b'i', b'c', b'e', 2, b'p', b'w', // RFC 1929 request
                5, 1, 0, 1, 1, 2, 3, 4, 0x01, 0xbb, // CONNECT
            ]
        );
        // With credentials offered, the proxy may still choose no authentication.
        let (sent, result) = run(&proxy, "1.2.3.4", 443, &[&[5, 0], SOCKS_OK_V4]);
        assert_eq!(result, Ok(()));
        assert_eq!(sent, [5, 2, 0, 2, 5, 1, 0, 1, 1, 2, 3, 4, 0x01, 0xbb]);
    }

    #[test]
    fn socks5_reply_with_domain_in_pieces() {
        let mut reply = vec![5, 0, 0, 3, 9];
        reply.extend_from_slice(b"localhost");
        reply.extend_from_slice(&[0, 80]);
        let mut answers: Vec<&[u8]> = vec![&[5], &[0]];
        answers.extend(reply.chunks(1));
        let (_, result) = run(&Proxy::socks5("p", 1), "h", 1, &answers);
        assert_eq!(result, Ok(()));
    }

    #[test]
    fn socks5_reply_codes_are_named() {
        let names = [
            (1, SocksReply::GeneralFailure, "general failure"),
            (
                2,
                SocksReply::NotAllowed,
                "connection not allowed by ruleset",
            ),
            (3, SocksReply::NetworkUnreachable, "network unreachable"),
            (4, SocksReply::HostUnreachable, "host unreachable"),
            (5, SocksReply::ConnectionRefused, "connection refused"),
            (6, SocksReply::TtlExpired, "TTL expired"),
            (7, SocksReply::CommandNotSupported, "command not supported"),
            (
                8,
                SocksReply::AddressTypeNotSupported,
                "address type not supported",
            ),
            (9, SocksReply::Other(9), "unassigned reply code 0x09"),
        ];
        for (code, reply, text) in names {
            let answer = [5, code, 0, 1, 0, 0, 0, 0, 0, 0];
            let (_, result) = run(&Proxy::socks5("p", 1), "h", 1, &[&[5, 0], &answer]);
            assert_eq!(result, Err(ProxyError::Socks(reply)));
            assert_eq!(reply.code(), code);
            assert_eq!(
                format!("{}", ProxyError::Socks(reply)),
                format!("socks5 proxy: {text}")
            );
        }
    }

    #[test]
    fn socks5_auth_failures() {
        let proxy = Proxy::parse("socks5://alice:wrong@p").unwrap();
        let (_, result) = run(&proxy, "h", 1, &[&[5, 2], &[1, 1]]);
        assert_eq!(result, Err(ProxyError::SocksAuthRejected));
        let (_, result) = run(&Proxy::socks5("p", 1), "h", 1, &[&[5, 0xff]]);
        assert_eq!(result, Err(ProxyError::NoAcceptableAuthMethod));
        // Username/password chosen, though not offered.
        let (_, result) = run(&Proxy::socks5("p", 1), "h", 1, &[&[5, 2]]);
        assert!(matches!(result, Err(ProxyError::Malformed(_))));
    }

    #[test]
    fn socks5_malformed_answers() {
        let socks = Proxy::socks5("p", 1);
        for answers in [
            &[&[4u8, 0][..]][..],                        // SOCKS4 version
            &[&[5, 0], &[4, 0, 0, 1, 0, 0, 0, 0, 0, 0]], // reply version
            &[&[5, 0], &[5, 0, 0, 7, 0, 0, 0, 0, 0, 0]], // address type
        ] {
            let (_, result) = run(&socks, "h", 1, answers);
            assert!(
                matches!(result, Err(ProxyError::Malformed(_))),
                "{answers:?}"
            );
        }
        let (_, result) = run(&socks, "h", 1, &[&[5, 0], &[5, 0, 0, 1, 0]]);
        assert_eq!(result, Err(ProxyError::Closed));
    }

    #[test]
    fn socks5_bytes_past_an_answer_are_an_error() {
        let socks = Proxy::socks5("p", 1);
        let (_, result) = run(&socks, "h", 1, &[&[5, 0, 5]]);
        assert_eq!(result, Err(ProxyError::UnexpectedData));
        let mut reply = SOCKS_OK_V4.to_vec();
        reply.push(b'x');
        let (_, result) = run(&socks, "h", 1, &[&[5, 0], &reply]);
        assert_eq!(result, Err(ProxyError::UnexpectedData));
    }

    // ----- environment ---------------------------------------------------------------------

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn env_proxy(vars: &[(&str, &str)], secure: bool, host: &str) -> Option<String> {
        Proxy::from_env_with(env(vars), secure, host)
            .map(|p| format!("{:?}:{}:{}", p.kind(), p.host(), p.port()))
    }

    #[test]
    fn env_variable_precedence() {
        let all = [
            ("https_proxy", "http://lower-https:1"),
            ("HTTPS_PROXY", "http://upper-https:2"),
            ("http_proxy", "http://lower-http:3"),
            ("HTTP_PROXY", "http://upper-http:4"),
            ("all_proxy", "socks5://lower-all:5"),
            ("ALL_PROXY", "socks5://upper-all:6"),
        ];
        assert_eq!(
            env_proxy(&all, true, "h").as_deref(),
            Some("Http:lower-https:1")
        );
        assert_eq!(
            env_proxy(&all[1..], true, "h").as_deref(),
            Some("Http:upper-https:2")
        );
        assert_eq!(
            env_proxy(&all, false, "h").as_deref(),
            Some("Http:lower-http:3")
        );
        // HTTP_PROXY is never read (httpoxy): ws:// falls through to all_proxy.
        assert_eq!(
            env_proxy(&all[3..], false, "h").as_deref(),
            Some("Socks5:lower-all:5")
        );
        assert_eq!(
            env_proxy(&all[5..], false, "h").as_deref(),
            Some("Socks5:upper-all:6")
        );
        assert_eq!(
            env_proxy(&all[2..], true, "h").as_deref(),
            Some("Socks5:lower-all:5")
        );
        assert_eq!(env_proxy(&[("HTTP_PROXY", "http://x:1")], false, "h"), None);
        assert_eq!(env_proxy(&[], true, "h"), None);
        // Empty counts as unset.
        assert_eq!(
            env_proxy(
                &[("https_proxy", ""), ("ALL_PROXY", "http://a:7")],
                true,
                "h"
            )
            .as_deref(),
            Some("Http:a:7")
        );
        // No scheme means http.
        assert_eq!(
            env_proxy(&[("http_proxy", "corp:8080")], false, "h").as_deref(),
            Some("Http:corp:8080")
        );
    }

    #[test]
    fn env_bad_value() {
        let vars = [("https_proxy", "ftp://nope")];
        assert_eq!(Proxy::from_env_with(env(&vars), true, "h"), None);
        assert_eq!(
            Proxy::try_from_env_with(env(&vars), true, "h"),
            Err(ProxyError::UnsupportedScheme("ftp".into()))
        );
        assert_eq!(Proxy::try_from_env_with(env(&[]), true, "h"), Ok(None));
    }

    fn exempt(no_proxy: &str, host: &str) -> bool {
        let vars = [("https_proxy", "http://p:1"), ("NO_PROXY", no_proxy)];
        Proxy::from_env_with(env(&vars), true, host).is_none()
    }

    #[test]
    fn no_proxy_rules() {
        assert!(exempt("*", "anything.example"));
        assert!(exempt("*", "10.0.0.1"));
        // A name matches itself and its subdomains, with or without a leading dot.
        for list in [
            "example.com",
            ".example.com",
            "other.org, example.com",
            " x ,.EXAMPLE.com ",
        ] {
            assert!(exempt(list, "example.com"), "{list}");
            assert!(exempt(list, "a.b.Example.com"), "{list}");
            assert!(!exempt(list, "badexample.com"), "{list}");
            assert!(!exempt(list, "example.com.evil"), "{list}");
        }
        assert!(exempt("example.com", "example.com."));
        assert!(exempt("example.com.", "example.com"));
        // Exact IP addresses, and networks.
        assert!(exempt("127.0.0.1", "127.0.0.1"));
        assert!(!exempt("127.0.0.1", "127.0.0.2"));
        assert!(exempt("::1", "[::1]"));
        assert!(exempt("0:0::1", "::1"));
        assert!(exempt("10.0.0.0/8", "10.200.3.4"));
        assert!(!exempt("10.0.0.0/8", "11.0.0.1"));
        assert!(exempt("fd00::/8", "fd12::1"));
        assert!(exempt("0.0.0.0/0", "1.2.3.4"));
        assert!(!exempt("10.0.0.0/8", "ten.example"));
        // A name entry does not match an IP host, nor an IP entry a name host.
        assert!(!exempt("0.1", "10.0.0.1"));
        assert!(!exempt("127.0.0.1", "localhost"));
        // Ports on entries are ignored.
        assert!(exempt("localhost:8080", "localhost"));
        assert!(exempt("127.0.0.1:9", "127.0.0.1"));
        assert!(exempt("[::1]:9", "::1"));
        // Lowercase first.
        let vars = [
            ("https_proxy", "http://p:1"),
            ("no_proxy", "a.com"),
            ("NO_PROXY", "*"),
        ];
        assert!(Proxy::from_env_with(env(&vars), true, "a.com").is_none());
        assert!(Proxy::from_env_with(env(&vars), true, "b.com").is_some());
        // Empty entries and an empty list exempt nothing.
        assert!(!exempt(",,", "a.com"));
        assert!(!exempt("", "a.com"));
        assert!(!exempt(".", "a.com"));
    }

    #[test]
    fn from_env_reads_the_process_environment() {
        // Whatever the test process has; only checks that the lookup is wired.
        let expected = Proxy::from_env_with(|n| std::env::var(n).ok(), true, "example.com");
        assert_eq!(Proxy::from_env(true, "example.com"), expected);
    }
}
