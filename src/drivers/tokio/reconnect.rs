//! A client that reconnects: exponential backoff with jitter, and a stop on answers that say
//! not to come back.
//!
//! [`Reconnect`] says in its docs what each end of a connection leads to.

use super::{ClientStream, WebSocketStream};
use crate::close::CloseCode;
use crate::config::Config;
use crate::connection::ConnectionState;
use crate::drivers::Connector;
use crate::drivers::Error;
use crate::drivers::proxy::{ProxyError, SocksReply};
use crate::error::Error as ConnectionError;
use crate::handshake::{ClientRequest, HandshakeError};
use crate::os_entropy;
use ::tokio::time::Instant;
use core::time::Duration;
use std::string::String;
use std::vec::Vec;

/// The stream the client connects over: TCP, or TLS for `wss://`, possibly through a proxy.
type Stream = ClientStream;

/// Opens one connection: every attempt goes through here.
async fn open(
    request: &ClientRequest,
    config: &Config,
    connector: &Connector,
) -> Result<WebSocketStream<Stream>, Error> {
    WebSocketStream::connect_using(request.clone(), config.clone(), connector).await
}

/// How long [`Reconnect`] waits for the closing handshake of a connection it finishes, when
/// the configuration sets no `close_timeout` (which it uses otherwise).
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// Why [`Reconnect`] stopped for good.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReconnectError {
    /// The server answered the handshake with a 4xx status (RFC 6455 §4.1: anything but 101
    /// fails the connection); the same request would get the same answer.
    #[error("the server refused the handshake with status {status}")]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The handshake error, with the response's headers
        /// ([`HandshakeError::UnexpectedStatus`]).
        #[source]
        error: Error,
    },
    /// The server closed the connection with a code that says not to come back (1003 and
    /// 1008 unless [`Reconnect::stop_on`] added others).
    #[error("the server closed the connection with code {code}: {reason:?}")]
    Closed {
        /// The code of the server's Close frame (RFC 6455 §7.4).
        code: CloseCode,
        /// Its reason, possibly empty.
        reason: String,
    },
    /// Connecting failed in a way retrying cannot fix: an invalid request, a response that
    /// is not a WebSocket handshake (a 1xx, 2xx or 3xx status, a header RFC 6455 §4.1
    /// rejects), a missing TLS stream.
    #[error("cannot connect: {0}")]
    Fatal(#[source] Error),
}

/// What an ended connection or a failed attempt leads to.
enum Next {
    /// Wait, then connect again.
    Retry,
    /// Stop: `next` returns this.
    Stop(Result<(), ReconnectError>),
}

/// A WebSocket client that reconnects with exponential backoff and jitter.
///
/// Build it with [`new`](Self::new) and the builder methods, then call
/// [`next`](Self::next) in a loop.
///
/// [`Reconnect`] owns the current connection and lends it out, one connection per call of
/// [`Reconnect::next`], the way Python websockets' `async for ws in connect(...)` does. When
/// `next` is called again it looks at how the connection it lent ended, then decides:
///
/// | how the connection ended                                  | `next`                               |
/// |-----------------------------------------------------------|--------------------------------------|
/// | the application started the closing handshake (`close`)   | `Ok(None)`: it is done               |
/// | the peer sent a Close with a stop code (1003, 1008)       | `Err(ReconnectError::Closed)`        |
/// | the peer sent any other Close, the stream failed or ended | waits the backoff, reconnects        |
/// | still open (the application stopped reading)              | closes it with 1000, reconnects (unless the peer's Close, read now, has a stop code) |
///
/// and for each attempt to connect:
///
/// | the attempt                                                    | `next`                          |
/// |----------------------------------------------------------------|---------------------------------|
/// | succeeded                                                      | `Ok(Some(ws))`, backoff reset   |
/// | IO error, connection refused, a 5xx answer, handshake timeout  | waits the backoff, tries again  |
/// | a proxy that cannot reach the server (5xx; SOCKS5 failure, unreachable, refused, TTL) or closes during its handshake | waits the backoff, tries again |
/// | a 4xx answer                                                   | `Err(ReconnectError::Rejected)` |
/// | anything else (bad URL, 1xx/2xx/3xx, a response breaking RFC 6455 §4.1, TLS, a proxy refusing this client) | `Err(ReconnectError::Fatal)` |
///
/// **Stop codes.** By default 1003 (unsupported data: this client sends what the server
/// will never take) and 1008 (policy violation: the server refuses this client). The others
/// reconnect: 1000, 1001 (going away), 1011–1014 (server error, restart, try again later,
/// bad gateway) and 1006 (no Close at all) end a connection that a new one may replace; 1002,
/// 1007 and 1009 answer one bad frame or message, not the client. Application codes
/// (4000–4999) reconnect unless added with [`Reconnect::stop_on`]. A 4xx stops even when it
/// is 408 or 429: the same request would get the same answer from a server that says so.
///
/// **Backoff.** The first attempt starts at once. After a failed attempt or an ended
/// connection, the client waits a delay drawn uniformly in `[d·(1−jitter), d]`, whole
/// milliseconds (tokio's timer resolution), with randomness from [`os_entropy`]; `d` starts
/// at the initial delay and is multiplied after each wait, up to the maximum. A connection
/// that opens resets `d` to the initial delay. Defaults: 1 s initial, 60 s maximum, ×2,
/// jitter 0.5 (so the first wait is 0.5–1 s, the sixth 16–32 s, every one from the seventh
/// on 30–60 s). Time is `tokio::time`, so tests run on a paused clock.
///
/// `next` is cancel-safe: a wait dropped midway keeps its deadline for the next call, and a
/// connection attempt dropped midway is made again at once.
///
/// ```no_run
/// use std::time::Duration;
/// use wsproto::drivers::{Message, tokio::Reconnect};
/// use wsproto::{ClientRequest, Config};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let request = ClientRequest::new("ws://127.0.0.1:9001/")?;
/// let mut client = Reconnect::new(request, Config::default())
///     .initial_delay(Duration::from_millis(500))
///     .max_delay(Duration::from_secs(30));
/// // Each pass gets a fresh connection; a 4xx or a Close with 1003/1008 ends the loop with
/// // an error, closing the connection ourselves ends it with `None`.
/// while let Some(ws) = client.next().await? {
///     if ws.send_text("subscribe").await.is_err() {
///         continue; // reconnect
///     }
///     while let Ok(Some(message)) = ws.recv().await {
///         if let Message::Text(text) = message {
///             println!("{text}");
///         }
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Reconnect {
    request: ClientRequest,
    config: Config,
    connector: Connector,
    initial_ms: u64,
    max_ms: u64,
    multiplier: f64,
    jitter: f64,
    stop_codes: Vec<CloseCode>,
    /// The connection lent out by the last `next`.
    current: Option<WebSocketStream<Stream>>,
    /// `next` found `current` still open and closed it itself: the Close on its way is
    /// ours, not the application's. Kept if `next` is dropped while finishing it.
    abandoned: bool,
    /// The upper bound of the next wait, in milliseconds.
    delay_ms: u64,
    /// When the next attempt may start; kept if `next` is dropped while waiting.
    retry_at: Option<Instant>,
    attempts: u64,
    /// `next` returned `None` or an error; it returns `None` from now on.
    finished: bool,
}

impl Reconnect {
    /// A client for `request` with `config`, and the default backoff: 1 s initial delay,
    /// 60 s maximum, multiplier 2, jitter 0.5, stop codes 1003 and 1008. Nothing connects
    /// until [`next`](Self::next).
    #[must_use]
    pub fn new(request: ClientRequest, config: Config) -> Self {
        Self {
            request,
            config,
            connector: Connector::default(),
            initial_ms: 1_000,
            max_ms: 60_000,
            multiplier: 2.0,
            jitter: 0.5,
            stop_codes: Vec::from([CloseCode::UNSUPPORTED_DATA, CloseCode::POLICY_VIOLATION]),
            current: None,
            abandoned: false,
            delay_ms: 1_000,
            retry_at: None,
            attempts: 0,
            finished: false,
        }
    }

    /// How each attempt reaches the server: TLS configuration and proxy (default
    /// `Connector::default()`, as `WebSocketStream::connect_with`).
    #[must_use]
    pub fn connector(mut self, connector: Connector) -> Self {
        self.connector = connector;
        self
    }

    /// The first wait's upper bound (default 1 s), in whole milliseconds.
    #[must_use]
    pub fn initial_delay(mut self, delay: Duration) -> Self {
        self.initial_ms = millis(delay);
        self.delay_ms = self.initial_ms;
        self
    }

    /// The largest wait (default 60 s), in whole milliseconds.
    #[must_use]
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_ms = millis(delay);
        self
    }

    /// What each wait's upper bound is multiplied by for the next (default 2).
    ///
    /// # Panics
    /// If `multiplier` is below 1 or not finite.
    #[must_use]
    pub fn multiplier(mut self, multiplier: f64) -> Self {
        assert!(
            multiplier.is_finite() && multiplier >= 1.0,
            "the backoff multiplier must be finite and at least 1, not {multiplier}"
        );
        self.multiplier = multiplier;
        self
    }

    /// How far below its upper bound `d` a wait may fall, as a fraction: the wait is drawn
    /// in `[d·(1−jitter), d]` (default 0.5; 0 waits exactly `d`). Jitter keeps clients that
    /// lost the same server from coming back all at once.
    ///
    /// # Panics
    /// If `jitter` is not in `[0, 1]`.
    #[must_use]
    pub fn jitter(mut self, jitter: f64) -> Self {
        assert!(
            (0.0..=1.0).contains(&jitter),
            "the jitter must be in [0, 1], not {jitter}"
        );
        self.jitter = jitter;
        self
    }

    /// Also stops on a Close from the server with `code` (an application code, say), besides
    /// 1003 and 1008.
    #[must_use]
    pub fn stop_on(mut self, code: CloseCode) -> Self {
        if !self.stop_codes.contains(&code) {
            self.stop_codes.push(code);
        }
        self
    }

    /// How many connections were attempted so far, successful or not.
    #[must_use]
    pub fn attempts(&self) -> u64 {
        self.attempts
    }

    /// The connection the last [`next`](Self::next) lent, if it has not ended the loop.
    pub fn current(&mut self) -> Option<&mut WebSocketStream<Stream>> {
        self.current.as_mut()
    }

    /// Finishes with the connection lent last (see [`Reconnect`]), waits the
    /// backoff if it has to, and connects: `Ok(Some(ws))` once a connection is open,
    /// `Ok(None)` when the application closed the last one itself (and after the loop has
    /// ended). Cancel-safe.
    ///
    /// # Errors
    /// [`ReconnectError`]: a 4xx answer, a Close with a stop code, or a failure retrying
    /// cannot fix. Later calls return `Ok(None)`.
    pub async fn next(&mut self) -> Result<Option<&mut WebSocketStream<Stream>>, ReconnectError> {
        if self.finished {
            return Ok(None);
        }
        if let Some(ws) = self.current.as_mut() {
            let next = finish(ws, &self.config, &self.stop_codes, &mut self.abandoned).await;
            self.current = None;
            self.abandoned = false;
            self.after(next)?;
            if self.finished {
                return Ok(None);
            }
        }
        loop {
            if let Some(at) = self.retry_at {
                ::tokio::time::sleep_until(at).await;
                self.retry_at = None;
            }
            self.attempts += 1;
            match open(&self.request, &self.config, &self.connector).await {
                Ok(ws) => {
                    self.delay_ms = self.initial_ms;
                    return Ok(Some(self.current.insert(ws)));
                }
                Err(e) => self.after(classify(e))?,
            }
        }
    }

    /// Acts on how a connection or an attempt ended: schedules the next attempt, or
    /// finishes (returning the error, if any).
    fn after(&mut self, next: Next) -> Result<(), ReconnectError> {
        match next {
            Next::Retry => {
                let wait = draw(self.delay_ms, self.jitter, os_entropy);
                self.retry_at = Some(Instant::now() + wait);
                self.delay_ms = grow(self.delay_ms, self.multiplier, self.max_ms);
                Ok(())
            }
            Next::Stop(result) => {
                self.finished = true;
                result
            }
        }
    }
}

/// A duration in whole milliseconds, saturating.
fn millis(delay: Duration) -> u64 {
    u64::try_from(delay.as_millis()).unwrap_or(u64::MAX)
}

/// A wait drawn uniformly in `[d − ⌊d·jitter⌋, d]` milliseconds, which lies in
/// `[d·(1−jitter), d]`.
fn draw(delay_ms: u64, jitter: f64, entropy: impl FnOnce(&mut [u8])) -> Duration {
    // Truncation is the floor here: both factors are non-negative. Past 2^53 the product
    // can round above `delay_ms` (2^53 + 3 becomes 2^53 + 4): cap it, or the wait underflows.
    let spread = ((delay_ms as f64 * jitter) as u64).min(delay_ms);
    let mut bytes = [0; 8];
    entropy(&mut bytes);
    // The modulo's bias is below spread / 2^64: nothing a backoff can notice.
    let below = u64::from_le_bytes(bytes) % (spread.saturating_add(1)).max(1);
    Duration::from_millis(delay_ms - below)
}

/// The next wait's upper bound: `delay_ms × multiplier`, at most `max_ms`.
fn grow(delay_ms: u64, multiplier: f64, max_ms: u64) -> u64 {
    // `as` saturates a float above u64::MAX.
    ((delay_ms as f64 * multiplier) as u64).min(max_ms)
}

/// Which failures to connect are worth another attempt.
fn classify(error: Error) -> Next {
    let stop = |e| Next::Stop(Err(e));
    match &error {
        // Refused, reset, unreachable: the server may come back.
        Error::Io(_) | Error::Closed => Next::Retry,
        Error::Connection(ConnectionError::Handshake(handshake)) => match handshake {
            HandshakeError::UnexpectedStatus { status, .. } => match status {
                500..=599 => Next::Retry,
                400..=499 => stop(ReconnectError::Rejected {
                    status: *status,
                    error,
                }),
                _ => stop(ReconnectError::Fatal(error)),
            },
            HandshakeError::Timeout => Next::Retry,
            _ => stop(ReconnectError::Fatal(error)),
        },
        Error::Connection(ConnectionError::KeepaliveTimeout) => Next::Retry,
        // The proxy could not reach the server (a 5xx such as 502 Bad Gateway, or a SOCKS5
        // failure to connect), or went away itself: the server, or the proxy, may come back.
        // A refusal of this client (407, 403, SOCKS5 ruleset or credentials) is Fatal below.
        Error::Proxy(
            ProxyError::Refused { status: 500..=599 }
            | ProxyError::Closed
            | ProxyError::Socks(
                SocksReply::GeneralFailure
                | SocksReply::NetworkUnreachable
                | SocksReply::HostUnreachable
                | SocksReply::ConnectionRefused
                | SocksReply::TtlExpired,
            ),
        ) => Next::Retry,
        _ => stop(ReconnectError::Fatal(error)),
    }
}

/// Finishes with a connection that was lent out and says what its end leads to.
/// `abandoned` records, across a cancelled call, that the connection was still open when
/// finishing began, so that the Close sent then is not taken for the application's.
async fn finish(
    ws: &mut WebSocketStream<Stream>,
    config: &Config,
    stop_codes: &[CloseCode],
    abandoned: &mut bool,
) -> Next {
    let state = ws.connection().state();
    // Still open: the application stopped reading (after an error, say); close it ourselves.
    let open = matches!(state, ConnectionState::Open | ConnectionState::Connecting);
    *abandoned |= open;
    let abandoned = *abandoned;
    // Bounded as a whole: a peer that stops reading could block the Close's write too.
    let wait = config.close_timeout.unwrap_or(CLOSE_WAIT);
    let closing = async {
        if open {
            let _ = ws.close(CloseCode::NORMAL, "").await;
        }
        // Finish the closing handshake, ours or the application's.
        if ws.connection().state() == ConnectionState::Closing {
            while let Ok(Some(_)) = ws.recv().await {}
        }
    };
    let _ = ::tokio::time::timeout(wait, closing).await;
    // The application started the closing handshake: it is done with the connection.
    if !abandoned && (state == ConnectionState::Closing || ws.sent_close) {
        return Next::Stop(Ok(()));
    }
    // A stop code counts even when the Close was still unread (it crossed ours).
    match &ws.peer_close {
        Some(close) if stop_codes.contains(&close.code) => {
            Next::Stop(Err(ReconnectError::Closed {
                code: close.code,
                reason: close.reason.clone(),
            }))
        }
        // Another Close from the peer, or none: the stream failed or ended.
        _ => Next::Retry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(value: u64) -> impl FnOnce(&mut [u8]) {
        move |dest: &mut [u8]| dest.copy_from_slice(&value.to_le_bytes())
    }

    #[test]
    fn draw_stays_in_the_jitter_bounds() {
        // d = 1000, jitter 0.5: waits 500..=1000 ms; the entropy picks how far below d.
        assert_eq!(draw(1_000, 0.5, fixed(0)), Duration::from_millis(1_000));
        assert_eq!(draw(1_000, 0.5, fixed(500)), Duration::from_millis(500));
        assert_eq!(draw(1_000, 0.5, fixed(501)), Duration::from_millis(1_000));
        // u64::MAX = 501 · 36_819_848_450_518_067 + 48
        assert_eq!(
            draw(1_000, 0.5, fixed(u64::MAX)),
            Duration::from_millis(1_000 - 48)
        );
        assert_eq!(
            draw(1_000, 0.0, fixed(u64::MAX)),
            Duration::from_millis(1_000)
        );
        assert_eq!(draw(1_000, 1.0, fixed(1_000)), Duration::ZERO);
        assert_eq!(draw(0, 0.5, fixed(7)), Duration::ZERO);
    }

    #[test]
    fn draw_stays_in_the_bounds_when_the_delay_is_not_a_float() {
        // 2^53 + 3 rounds up to 2^53 + 4 as an f64: with jitter 1 the spread must still stop
        // at d, or the wait underflows.
        const D: u64 = 9_007_199_254_740_995;
        assert_eq!(draw(D, 1.0, fixed(D)), Duration::ZERO);
        assert_eq!(draw(D, 1.0, fixed(D + 1)), Duration::from_millis(D));
        assert_eq!(draw(D, 1.0, fixed(D + 2)), Duration::from_millis(D - 1));
    }

    #[test]
    fn grow_multiplies_up_to_the_max() {
        let mut d = 1_000;
        let mut seen = Vec::new();
        for _ in 0..8 {
            seen.push(d);
            d = grow(d, 2.0, 60_000);
        }
        assert_eq!(
            seen,
            [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000]
        );
        assert_eq!(grow(u64::MAX, 2.0, u64::MAX), u64::MAX);
        assert_eq!(grow(100, 1.5, 1_000), 150);
    }

    #[test]
    fn handshake_statuses_are_classified() {
        let status = |status| {
            Error::from(HandshakeError::UnexpectedStatus {
                status,
                headers: Vec::new(),
                location: None,
            })
        };
        assert!(matches!(classify(status(503)), Next::Retry));
        assert!(matches!(
            classify(status(403)),
            Next::Stop(Err(ReconnectError::Rejected { status: 403, .. }))
        ));
        assert!(matches!(
            classify(status(301)),
            Next::Stop(Err(ReconnectError::Fatal(_)))
        ));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(matches!(classify(refused.into()), Next::Retry));
        assert!(matches!(
            classify(Error::from(HandshakeError::WrongAccept)),
            Next::Stop(Err(ReconnectError::Fatal(_)))
        ));
    }

    #[test]
    fn proxy_failures_are_classified() {
        let proxy = |e: ProxyError| classify(Error::Proxy(e));
        // The proxy could not reach the server, or went away itself: the server may come back.
        assert!(matches!(
            proxy(ProxyError::Refused { status: 502 }),
            Next::Retry
        ));
        assert!(matches!(
            proxy(ProxyError::Refused { status: 504 }),
            Next::Retry
        ));
        for reply in [1, 3, 4, 5, 6] {
            assert!(
                matches!(
                    proxy(ProxyError::Socks(SocksReply::from_code(reply))),
                    Next::Retry
                ),
                "{reply}"
            );
        }
        assert!(matches!(proxy(ProxyError::Closed), Next::Retry));
        // The proxy refuses this client: the same request gets the same answer.
        for refusal in [
            ProxyError::AuthenticationRequired,
            ProxyError::Refused { status: 403 },
            ProxyError::Socks(SocksReply::NotAllowed),
            ProxyError::SocksAuthRejected,
            ProxyError::NoAcceptableAuthMethod,
            ProxyError::Malformed("x"),
        ] {
            assert!(
                matches!(proxy(refusal.clone()), Next::Stop(Err(ReconnectError::Fatal(Error::Proxy(ref e)))) if *e == refusal),
                "{refusal:?}"
            );
        }
    }
}
