//! [`Server`]: a blocking WebSocket server, a thread per connection, that survives accept
//! errors under overload and caps its connections.
//!
//! It has no graceful shutdown, no signal handling and no plain HTTP routes, which the tokio
//! driver's `Server` has: a blocked thread cannot be told to stop without a handle on its
//! socket, and those belong with an async server.

use super::{Transport, WebSocket};
use crate::config::Config;
use crate::drivers::serve::{Backoff, busy_response, is_overload, log_accept_error};
use crate::drivers::{Answer, Error};
use crate::handshake::{Accept, Request};
use core::sync::atomic::{AtomicUsize, Ordering};
use core::time::Duration;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::thread;

type Decide = dyn Fn(&Request) -> Answer + Send + Sync;
type AcceptErrorHook = dyn Fn(&io::Error, Duration) + Send + Sync;
type ErrorHook = dyn Fn(&Error) + Send + Sync;

/// Counts the open connections of a [`Server`]; cheap to clone.
#[derive(Debug, Clone)]
pub struct ServerHandle {
    open: Arc<AtomicUsize>,
}

impl ServerHandle {
    /// How many connections are open (those still in their handshake included); the number
    /// `max_connections` caps.
    #[must_use]
    pub fn connections(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

/// One connection's place under the cap, given back on drop.
struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A blocking WebSocket server: accepts on a listener, runs each connection's handshake
/// with a [`Config`] and an accept/reject decision, and hands the [`WebSocket`] to the
/// handler on a thread of its own.
///
/// - **Overload:** when `accept` fails with EMFILE, ENFILE, ENOMEM, ENOBUFS or ECONNABORTED,
///   or no thread can be started for a connection (which is then closed), the error is
///   logged ([`on_accept_error`](Self::on_accept_error)), the server sleeps 10 ms, doubling
///   up to 100 ms while the errors go on, and accepts again. Open connections carry on. Any
///   other accept error ends [`serve`](Self::serve) with it.
/// - **Connection cap:** past [`max_connections`](Self::max_connections), a new connection is
///   answered `503 Service Unavailable` with `Retry-After` and closed, from a short-lived
///   thread; the handler never sees it.
///
/// ```no_run
/// use wsproto::drivers::blocking::Server;
///
/// Server::bind("127.0.0.1:9002")?
///     .max_connections(1000)
///     .serve(|mut ws| {
///         while let Ok(Some(message)) = ws.recv() {
///             println!("{message:?}");
///         }
///     })
/// # ; Ok::<(), std::io::Error>(())
/// ```
pub struct Server {
    listener: TcpListener,
    config: Config,
    max_connections: Option<usize>,
    retry_after: u32,
    decide: Arc<Decide>,
    on_accept_error: Arc<AcceptErrorHook>,
    on_error: Option<Arc<ErrorHook>>,
    open: Arc<AtomicUsize>,
}

impl core::fmt::Debug for Server {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Server")
            .field("listener", &self.listener)
            .field("config", &self.config)
            .field("max_connections", &self.max_connections)
            .field("retry_after", &self.retry_after)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Binds a listener to `addr`.
    ///
    /// # Errors
    /// As `TcpListener::bind`.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<Self> {
        Ok(Self::from_listener(TcpListener::bind(addr)?))
    }

    /// Serves on a listener bound elsewhere.
    #[must_use]
    pub fn from_listener(listener: TcpListener) -> Self {
        Self {
            listener,
            config: Config::default(),
            max_connections: None,
            retry_after: 5,
            decide: Arc::new(|_| Answer::Accept(Accept::new())),
            on_accept_error: Arc::new(log_accept_error),
            on_error: None,
            open: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The address the listener is bound to.
    ///
    /// # Errors
    /// As `TcpListener::local_addr`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// A handle that counts the open connections.
    #[must_use]
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            open: Arc::clone(&self.open),
        }
    }

    /// The configuration of every connection (default: `Config::default()`).
    #[must_use]
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// The most connections open at once (default: no cap). Past it new connections get
    /// `503 Service Unavailable` with [`retry_after`](Self::retry_after).
    #[must_use]
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = Some(max);
        self
    }

    /// The `Retry-After` seconds of the 503 past `max_connections` (default 5).
    #[must_use]
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = seconds;
        self
    }

    /// Accepts or rejects each valid WebSocket request (default: accept, no subprotocol),
    /// as `WebSocket::accept_with`.
    #[must_use]
    pub fn decide(mut self, decide: impl Fn(&Request) -> Answer + Send + Sync + 'static) -> Self {
        self.decide = Arc::new(decide);
        self
    }

    /// Called with each overload error and the wait before the next accept (default: a
    /// line on stderr).
    #[must_use]
    pub fn on_accept_error(
        mut self,
        hook: impl Fn(&io::Error, Duration) + Send + Sync + 'static,
    ) -> Self {
        self.on_accept_error = Arc::new(hook);
        self
    }

    /// Called when a connection fails before it reaches the handler: the stream hook, an
    /// invalid or rejected request (already answered), a handshake timeout (default:
    /// nothing).
    #[must_use]
    pub fn on_error(mut self, hook: impl Fn(&Error) + Send + Sync + 'static) -> Self {
        self.on_error = Some(Arc::new(hook));
        self
    }

    /// Serves plain TCP connections; see [`serve_with`](Self::serve_with).
    ///
    /// # Errors
    /// As [`serve_with`](Self::serve_with).
    pub fn serve<H>(self, handler: H) -> io::Result<()>
    where
        H: Fn(WebSocket<TcpStream>) + Send + Sync + 'static,
    {
        self.serve_with(Ok, handler)
    }

    /// Serves until an accept error that is not overload: each accepted TCP stream goes
    /// through `wrap` (a `rustls::StreamOwned`, say, whose TLS handshake then runs in the
    /// WebSocket handshake's first read, under its timeout), then the WebSocket handshake,
    /// then `handler`, on a thread per connection.
    ///
    /// # Errors
    /// The accept error that ended it.
    pub fn serve_with<S, W, H>(self, wrap: W, handler: H) -> io::Result<()>
    where
        W: Fn(TcpStream) -> io::Result<S> + Send + Sync + 'static,
        S: Transport + Send + 'static,
        H: Fn(WebSocket<S>) + Send + Sync + 'static,
    {
        let wrap = Arc::new(wrap);
        let handler = Arc::new(handler);
        // One copy for every connection.
        let config = Arc::new(self.config.clone());
        let mut backoff = Backoff::default();
        loop {
            let tcp = match self.listener.accept() {
                Ok((tcp, _)) => tcp,
                Err(e) if is_overload(&e) => {
                    let wait = backoff.next();
                    (self.on_accept_error)(&e, wait);
                    thread::sleep(wait);
                    continue;
                }
                Err(e) => return Err(e),
            };
            backoff.reset();
            // Only a latency setting; a socket that refuses it still works.
            let _ = tcp.set_nodelay(true);
            let spawned = if self
                .max_connections
                .is_some_and(|max| self.open.load(Ordering::Acquire) >= max)
            {
                let retry_after = self.retry_after;
                thread::Builder::new().spawn(move || busy(tcp, retry_after))
            } else {
                self.open.fetch_add(1, Ordering::AcqRel);
                let open = Open(Arc::clone(&self.open));
                let (wrap, handler) = (Arc::clone(&wrap), Arc::clone(&handler));
                let (decide, on_error) = (Arc::clone(&self.decide), self.on_error.clone());
                let config = Arc::clone(&config);
                thread::Builder::new().spawn(move || {
                    let _open = open;
                    let opened = wrap(tcp)
                        .map_err(Error::from)
                        .and_then(|stream| WebSocket::accept_with(stream, config, |r| decide(r)));
                    match opened {
                        Ok(ws) => handler(ws),
                        Err(e) => {
                            if let Some(hook) = on_error {
                                hook(&e);
                            }
                        }
                    }
                })
            };
            // No thread (EAGAIN, ENOMEM): the connection is dropped, and it is overload too.
            if let Err(e) = spawned {
                let wait = backoff.next();
                (self.on_accept_error)(&e, wait);
                thread::sleep(wait);
            }
        }
    }
}

/// Answers a connection past the cap with 503 and closes it.
fn busy(mut tcp: TcpStream, retry_after: u32) {
    if tcp.write_all(&busy_response(retry_after)).is_err() {
        return;
    }
    let _ = tcp.shutdown(Shutdown::Write);
    // Read the request before closing (for at most a second): closing with unread bytes
    // resets the connection, and the reset can reach the client before it reads the 503.
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(1)));
    let mut sink = [0; 1024];
    while let Ok(1..) = tcp.read(&mut sink) {}
}
