//! [`Server`]: a WebSocket server on a TCP listener, one task per connection, that survives
//! accept errors under overload, caps its connections and shuts down gracefully (as Python
//! websockets' `serve`); and [`Shutdown`], the same graceful shutdown for WebSockets that
//! another server accepted (hyper, axum).

use super::{Error, WebSocketReader, WebSocketStream, WebSocketWriter, lock};
use crate::close::{CloseCode, check_sendable};
use crate::config::Config;
use crate::connection::{Connection, ConnectionState};
use crate::drivers::serve::{
    Backoff, HttpRequest, HttpResponse, busy_response, has_head, is_overload, log_accept_error,
    plain_request,
};
use crate::drivers::{Answer, Message};
use crate::error::UsageError;
use crate::event::Event;
use crate::handshake::{Accept, Request};
use crate::sender::Sender;
use ::tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use ::tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use ::tokio::sync::Notify;
use ::tokio::task::{AbortHandle, JoinSet};
use ::tokio::time::{Instant, sleep, sleep_until, timeout};
use core::future::{Future, pending, poll_fn};
use core::ops::{Deref, DerefMut};
use core::pin::{Pin, pin};
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::{Context, Poll, Waker};
use core::time::Duration;
use slab::Slab;
use std::boxed::Box;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::vec::Vec;

type Decide = dyn Fn(&Request) -> Answer + Send + Sync;
type Route = dyn Fn(&HttpRequest) -> Option<HttpResponse> + Send + Sync;
type AcceptErrorHook = dyn Fn(&io::Error, Duration) + Send + Sync;
type ErrorHook = dyn Fn(&Error) + Send + Sync;
type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Which of two futures finished first.
enum Either<A, B> {
    Left(A),
    Right(B),
}

/// Runs `a` and `b` together until one finishes; `a` is polled first.
async fn race<A: Future, B: Future>(a: A, b: B) -> Either<A::Output, B::Output> {
    let (mut a, mut b) = (pin!(a), pin!(b));
    poll_fn(|cx| {
        if let Poll::Ready(x) = a.as_mut().poll(cx) {
            return Poll::Ready(Either::Left(x));
        }
        if let Poll::Ready(y) = b.as_mut().poll(cx) {
            return Poll::Ready(Either::Right(y));
        }
        Poll::Pending
    })
    .await
}

/// The Close frame sent to every open connection at shutdown.
#[derive(Debug, Clone)]
struct GoingAway {
    code: CloseCode,
    reason: Arc<str>,
}

/// One open connection's shutdown signal: a flag, and the waker of the one task that waits
/// for it (the connection's opening, then its handler); and, under [`Server`], the task, to
/// abort it when the connection outlasts `close_timeout`.
///
/// A waker slot rather than a `Notify`: waiting then takes no future of its own, which a
/// handler holds for as long as its connection idles (a `Notified` is 64 bytes).
#[derive(Debug, Default)]
struct Signal {
    raised: AtomicBool,
    /// The shutdown Close was sent (or is not to be sent): receives stop watching. Kept
    /// here, where it fits beside `raised`, rather than in every `ServerStream`, where it
    /// would take eight bytes.
    answered: AtomicBool,
    slots: Mutex<SignalSlots>,
}

#[derive(Debug, Default)]
struct SignalSlots {
    waiter: Option<Waker>,
    task: Option<AbortHandle>,
}

impl Signal {
    fn raise(&self) {
        self.raised.store(true, Ordering::Release);
        if let Some(waker) = lock(&self.slots).waiter.take() {
            waker.wake();
        }
    }

    fn set_task(&self, task: AbortHandle) {
        lock(&self.slots).task = Some(task);
    }

    fn abort_task(&self) {
        if let Some(task) = &lock(&self.slots).task {
            task.abort();
        }
    }

    fn is_raised(&self) -> bool {
        self.raised.load(Ordering::Acquire)
    }

    /// Whether the shutdown Close was sent, or is not to be sent.
    fn is_answered(&self) -> bool {
        self.answered.load(Ordering::Relaxed)
    }

    fn answer(&self) {
        self.answered.store(true, Ordering::Relaxed);
    }

    /// Ready once raised; until then `cx`'s task is the one woken (replacing the last).
    fn poll_raised(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.is_raised() {
            return Poll::Ready(());
        }
        {
            let waiter = &mut lock(&self.slots).waiter;
            if !waiter.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *waiter = Some(cx.waker().clone());
            }
        }
        // Raised between the first look and the waker's storing: `raise` may have found
        // the slot empty.
        if self.is_raised() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    fn raised(&self) -> impl Future<Output = ()> + '_ {
        poll_fn(|cx| self.poll_raised(cx))
    }
}

/// What the server, its handles and its connections share.
#[derive(Debug)]
struct Shared {
    /// `Some` once shutdown started: the Close frame to send.
    going_away: Mutex<Option<GoingAway>>,
    /// The Close frame [`ServerHandle::shutdown`] and signals send.
    default_close: Mutex<GoingAway>,
    /// Wakes the accept loop when shutdown starts.
    stop: Notify,
    /// Wakes [`Shutdown::close_all`] when the last connection leaves.
    drained: Notify,
    /// The open connections' signals (handshakes in progress included): under [`Server`],
    /// their tasks'; under [`Shutdown::watch`], their streams'.
    ///
    /// A slab, whose keys are reused as connections leave: eight bytes a place (16 with
    /// its vacancy link), where a hash map's buckets, kept under seven eighths full, took 35.
    open: Mutex<Slab<Arc<Signal>>>,
}

impl Shared {
    fn new() -> Self {
        Self {
            going_away: Mutex::new(None),
            default_close: Mutex::new(GoingAway {
                code: CloseCode::GOING_AWAY,
                reason: "going away".into(),
            }),
            stop: Notify::new(),
            drained: Notify::new(),
            open: Mutex::new(Slab::new()),
        }
    }

    /// Chooses the Close frame (the first call wins), wakes the accept loop and raises every
    /// open connection's signal.
    fn start_shutdown(&self, close: Option<GoingAway>) {
        {
            let mut going_away = lock(&self.going_away);
            if going_away.is_none() {
                *going_away = Some(close.unwrap_or_else(|| lock(&self.default_close).clone()));
            }
        }
        self.stop.notify_one();
        self.raise_all();
    }

    fn is_shutting_down(&self) -> bool {
        lock(&self.going_away).is_some()
    }

    fn going_away(&self) -> GoingAway {
        lock(&self.going_away)
            .clone()
            .unwrap_or_else(|| lock(&self.default_close).clone())
    }

    async fn stopped(&self) {
        while !self.is_shutting_down() {
            self.stop.notified().await;
        }
    }

    fn register(self: &Arc<Self>) -> Registered {
        let signal = Arc::new(Signal::default());
        let key = lock(&self.open).insert(Arc::clone(&signal));
        // Registered after `start_shutdown` raised the others (a hyper upgrade that completes
        // during shutdown): raised at once. Each side writes, then reads what the other
        // writes, under the locks, so either this sees the shutdown or `raise_all` sees this
        // signal.
        if self.is_shutting_down() {
            signal.raise();
        }
        Registered {
            shared: Arc::clone(self),
            key,
            signal,
        }
    }

    fn open_connections(&self) -> usize {
        lock(&self.open).len()
    }

    fn raise_all(&self) {
        for (_, signal) in lock(&self.open).iter() {
            signal.raise();
        }
    }

    /// Aborts the task of every open connection that has one.
    fn abort_all(&self) {
        for (_, signal) in lock(&self.open).iter() {
            signal.abort_task();
        }
    }

    /// Returns once no connection is open.
    async fn drained(&self) {
        loop {
            // Listening before looking, so a leave in between still wakes this.
            let notified = self.drained.notified();
            let mut notified = pin!(notified);
            notified.as_mut().enable();
            if self.open_connections() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// A connection's place among the open ones; leaving it (on drop) frees a place under
/// `max_connections`.
///
/// Under [`Server`] the connection's task holds it, and its [`ServerStream`] a copy that
/// only watches ([`watching`](Self::watching)): the place lasts as long as the task, so
/// that shutdown waits for handlers that go on after dropping their stream.
#[derive(Debug)]
struct Registered {
    shared: Arc<Shared>,
    /// The entry in `shared.open`, or [`WATCHING`] for a copy that only watches (not an
    /// `Option`, which would double its size in every `ServerStream`).
    key: usize,
    signal: Arc<Signal>,
}

/// `Registered::key` of a copy that only watches: no slab holds that many entries.
const WATCHING: usize = usize::MAX;

impl Registered {
    /// Queues the server's Close on `conn` and marks the signal answered.
    fn queue_close(&self, conn: &mut Connection) {
        self.signal.answer();
        let GoingAway { code, reason } = self.shared.going_away();
        // Refused only when the closing handshake is already under way, which is no
        // failure here: it finishes all the same.
        let _ = conn.close(code, &reason);
    }

    /// The receives' watch, for `ServerStream`'s (`WebSocketStream::poll_event_watched`,
    /// `recv_with_sender_watched`) and `ServerReader`'s (`WebSocketReader::poll_recv_watched`):
    /// once shutdown is raised, queues the Close on `conn`. Given the task's context (before
    /// a receive waits), the task is woken when shutdown is raised. `true` while the Close is
    /// queued and not all written: no event is handed over before it is out, as if flushed
    /// first.
    fn watch(&self, conn: &mut Connection, cx: Option<&mut Context<'_>>) -> bool {
        let signal = &self.signal;
        if signal.is_answered() {
            // Answered, and the connection closing: the output holds our Close, or what
            // came before it, until written. Stateless, so a receive polled again after
            // the socket was full still writes before handing over an event.
            return conn.state() == ConnectionState::Closing && conn.wants_write();
        }
        let raised = match cx {
            Some(cx) => signal.poll_raised(cx).is_ready(),
            None => signal.is_raised(),
        };
        if raised {
            self.queue_close(conn);
        }
        raised
    }

    /// The same signal and server, without the place.
    fn watching(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            key: WATCHING,
            signal: Arc::clone(&self.signal),
        }
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        if self.key == WATCHING {
            return;
        }
        let mut open = lock(&self.shared.open);
        open.remove(self.key);
        if open.is_empty() {
            self.shared.drained.notify_waiters();
        }
    }
}

/// Starts a [`Server`]'s graceful shutdown from anywhere (another task, a test); cheap to
/// clone.
#[derive(Debug, Clone)]
pub struct ServerHandle {
    shared: Arc<Shared>,
}

impl ServerHandle {
    /// Starts the graceful shutdown with the server's Close frame (1001 "going away" unless
    /// [`Server::going_away`] chose another). Calls after the first change nothing.
    pub fn shutdown(&self) {
        self.shared.start_shutdown(None);
    }

    /// Starts the graceful shutdown, closing every connection with `code` and `reason`.
    ///
    /// # Errors
    /// [`UsageError`] when `code` may not be sent (RFC 6455 §7.4.1) or `reason` is longer
    /// than 123 bytes; nothing starts then.
    pub fn shutdown_with(&self, code: CloseCode, reason: &str) -> Result<(), UsageError> {
        let close = checked_close(code, reason)?;
        self.shared.start_shutdown(Some(close));
        Ok(())
    }

    /// Whether shutdown started.
    #[must_use]
    pub fn is_shutting_down(&self) -> bool {
        self.shared.is_shutting_down()
    }

    /// How many connections are open (those still in their handshake included); the number
    /// `max_connections` caps.
    #[must_use]
    pub fn connections(&self) -> usize {
        self.shared.open_connections()
    }
}

/// Graceful shutdown for WebSockets that another server accepted, such as those of
/// [`drivers::hyper`](crate::drivers::hyper) and [`drivers::axum`](crate::drivers::axum):
/// what [`Server`] does at shutdown, without the accept loop.
///
/// Each WebSocket is handed to [`watch`](Self::watch), which returns a [`ServerStream`];
/// [`close_all`](Self::close_all) (or [`ServerHandle::shutdown`] on its
/// [`handle`](Self::handle)) then sends Close 1001 "going away" to every watched one, through
/// their receive methods as with [`Server`], and `close_all` waits up to its timeout for their
/// closing handshakes to finish and their streams to be dropped. A WebSocket watched once
/// shutdown started is closed at once.
///
/// The accept loop is the caller's: stop accepting first (hyper-util's
/// `GracefulShutdown`, axum's `with_graceful_shutdown`), since an upgraded connection no
/// longer belongs to the HTTP server that answered its handshake.
///
/// ```no_run
/// use std::time::Duration;
/// use wsproto::drivers::hyper::Upgrade;
/// use wsproto::drivers::tokio::Shutdown;
/// use wsproto::Accept;
///
/// # async fn demo(upgrade: Upgrade, shutdown: Shutdown) {
/// // In the hyper service, for each WebSocket request:
/// let request = upgrade.request().clone();
/// let (response, pending) = upgrade.accept(Accept::new()).expect("nothing to refuse");
/// let watching = shutdown.clone();
/// tokio::spawn(async move {
///     let Ok(ws) = pending.await else { return };
///     let mut ws = watching.watch(ws, request);
///     // At shutdown `recv` sends the Close 1001, then returns the peer's Close and `None`.
///     while let Ok(Some(_message)) = ws.recv().await {}
/// });
/// # drop(response);
/// // Once the listener stopped accepting (on SIGTERM, say):
/// let still_open = shutdown.close_all(Duration::from_secs(10)).await;
/// # let _ = still_open;
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Shutdown {
    shared: Arc<Shared>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// Watches no connection yet; closes them with 1001 "going away".
    #[must_use]
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Shared::new()),
        }
    }

    /// The Close frame sent at shutdown (default 1001 "going away").
    ///
    /// # Errors
    /// [`UsageError`] when `code` may not be sent (RFC 6455 §7.4.1) or `reason` is longer
    /// than 123 bytes.
    pub fn going_away(self, code: CloseCode, reason: &str) -> Result<Self, UsageError> {
        *lock(&self.shared.default_close) = checked_close(code, reason)?;
        Ok(self)
    }

    /// Watches `ws`, opened with `request`, until the returned stream (or both halves of its
    /// split) is dropped. Watching counts toward [`ServerHandle::connections`].
    pub fn watch<S>(&self, ws: WebSocketStream<S>, request: Request) -> ServerStream<S> {
        ServerStream {
            ws,
            request: Box::new(request),
            registered: self.shared.register(),
        }
    }

    /// A handle that starts the shutdown from elsewhere and counts the watched connections.
    #[must_use]
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Starts the shutdown (unless a handle did) and waits until every watched connection
    /// is dropped, for at most `close_timeout`. Returns how many are still open then; the
    /// caller drops them (by ending their tasks, or the process).
    pub async fn close_all(&self, close_timeout: Duration) -> usize {
        self.shared.start_shutdown(None);
        let _ = timeout(close_timeout, self.shared.drained()).await;
        self.shared.open_connections()
    }
}

/// Checks a Close frame the way `Connection::close` will, so that shutdown cannot fail on
/// every connection.
fn checked_close(code: CloseCode, reason: &str) -> Result<GoingAway, UsageError> {
    check_sendable(code, reason)?;
    Ok(GoingAway {
        code,
        reason: reason.into(),
    })
}

/// A WebSocket server: binds or takes a listener, runs each connection's handshake with a
/// [`Config`] and an accept/reject decision, answers plain HTTP requests through an optional
/// callback, and hands each accepted connection to the handler in a task of its own.
///
/// - **Overload:** when `accept` fails for lack of file descriptors or memory (EMFILE,
///   ENFILE, ENOMEM, ENOBUFS) or because a connection was aborted in the backlog
///   (ECONNABORTED), the error is logged ([`on_accept_error`](Self::on_accept_error)), the
///   server waits 10 ms, doubling up to 100 ms while the errors go on, and accepts again.
///   Open connections carry on. Any other accept error ends [`serve`](Self::serve) with it,
///   after a graceful shutdown of the open connections.
/// - **Connection cap:** past [`max_connections`](Self::max_connections), a new connection is
///   answered `503 Service Unavailable` with `Retry-After` and closed; the handler never
///   sees it.
/// - **Graceful shutdown:** on [`ServerHandle::shutdown`], a future given to
///   [`shutdown_on`](Self::shutdown_on), or SIGINT/SIGTERM after
///   [`shutdown_on_signals`](Self::shutdown_on_signals): the listener closes, every open
///   connection gets Close 1001 "going away" (see [`ServerStream`] for how it reaches the
///   handlers), the server waits up to [`close_timeout`](Self::close_timeout) for their
///   tasks to end, aborts the rest, and `serve` returns.
///
/// ```no_run
/// use wsproto::Event;
/// use wsproto::drivers::tokio::Server;
/// use wsproto::drivers::HttpResponse;
///
/// # async fn demo() -> std::io::Result<()> {
/// Server::bind("127.0.0.1:9001")
///     .await?
///     .max_connections(10_000)
///     .http(|request| match request.path() {
///         "/health" => Some(HttpResponse::new(200, "ok\n")),
///         _ => None, // the WebSocket handshake answers (400 for a plain GET)
///     })
///     .shutdown_on_signals()
///     .serve(|mut ws| async move {
///         let _ = async {
///             while let Some(()) = ws
///                 .recv_with_sender(|event, sender| match event {
///                     Event::Text(text) => sender.send_text_borrowed(text),
///                     _ => Ok(()),
///                 })
///                 .await?
///             {}
///             Ok::<_, wsproto::drivers::Error>(())
///         }
///         .await;
///     })
///     .await
/// # }
/// ```
pub struct Server {
    listener: TcpListener,
    config: Config,
    max_connections: Option<usize>,
    retry_after: u32,
    close_timeout: Duration,
    signals: bool,
    shutdown_on: Option<BoxFuture>,
    decide: Arc<Decide>,
    http: Option<Arc<Route>>,
    on_accept_error: Arc<AcceptErrorHook>,
    on_error: Option<Arc<ErrorHook>>,
    shared: Arc<Shared>,
}

impl core::fmt::Debug for Server {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Server")
            .field("listener", &self.listener)
            .field("config", &self.config)
            .field("max_connections", &self.max_connections)
            .field("retry_after", &self.retry_after)
            .field("close_timeout", &self.close_timeout)
            .field("signals", &self.signals)
            .field("http", &self.http.is_some())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Binds a listener to `addr`.
    ///
    /// # Errors
    /// As `TcpListener::bind`.
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<Self> {
        Ok(Self::from_listener(TcpListener::bind(addr).await?))
    }

    /// Serves on a listener bound elsewhere.
    #[must_use]
    pub fn from_listener(listener: TcpListener) -> Self {
        Self {
            listener,
            config: Config::default(),
            max_connections: None,
            retry_after: 5,
            close_timeout: Duration::from_secs(10),
            signals: false,
            shutdown_on: None,
            decide: Arc::new(|_| Answer::Accept(Accept::new())),
            http: None,
            on_accept_error: Arc::new(log_accept_error),
            on_error: None,
            shared: Arc::new(Shared::new()),
        }
    }

    /// The address the listener is bound to.
    ///
    /// # Errors
    /// As `TcpListener::local_addr`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// A handle that starts the shutdown.
    #[must_use]
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// The configuration of every connection (default: `Config::default()`). Its
    /// `handshake_timeout` bounds the whole opening: the stream hook of
    /// [`serve_with`](Self::serve_with) (a TLS handshake), reading the request and answering
    /// it. A request still incomplete at the timeout is answered `408 Request Timeout`; the
    /// connection is dropped at the latest 250 ms later.
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

    /// How long shutdown waits for the connections to finish their closing handshakes and
    /// their handlers to return before it aborts them (default 10 s, as Python websockets).
    #[must_use]
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// The Close frame sent at shutdown (default 1001 "going away").
    ///
    /// # Errors
    /// [`UsageError`] when `code` may not be sent (RFC 6455 §7.4.1) or `reason` is longer
    /// than 123 bytes.
    pub fn going_away(self, code: CloseCode, reason: &str) -> Result<Self, UsageError> {
        *lock(&self.shared.default_close) = checked_close(code, reason)?;
        Ok(self)
    }

    /// Shuts down gracefully on SIGINT or SIGTERM (Ctrl-C off Unix). Later signals are
    /// caught too, so the process exits once shutdown is done, within `close_timeout`.
    /// tokio keeps its handlers for the life of the process: after `serve` returns, these
    /// signals no longer end the process by themselves.
    #[must_use]
    pub fn shutdown_on_signals(mut self) -> Self {
        self.signals = true;
        self
    }

    /// Shuts down gracefully when `signal` completes.
    #[must_use]
    pub fn shutdown_on(mut self, signal: impl Future<Output = ()> + Send + 'static) -> Self {
        self.shutdown_on = Some(Box::pin(signal));
        self
    }

    /// Accepts or rejects each valid WebSocket request (default: accept, no subprotocol),
    /// as `WebSocketStream::accept_with`.
    #[must_use]
    pub fn decide(mut self, decide: impl Fn(&Request) -> Answer + Send + Sync + 'static) -> Self {
        self.decide = Arc::new(decide);
        self
    }

    /// Answers plain HTTP requests (those without `Upgrade: websocket`) on the same port:
    /// `route` returns the response, which is written before the connection closes, or
    /// `None` to let the WebSocket handshake answer (400 Bad Request for a request that is not
    /// an upgrade).
    /// Without it every request goes to the handshake.
    #[must_use]
    pub fn http(
        mut self,
        route: impl Fn(&HttpRequest) -> Option<HttpResponse> + Send + Sync + 'static,
    ) -> Self {
        self.http = Some(Arc::new(route));
        self
    }

    /// Called with each accept error that means overload and the wait before the next
    /// accept (default: a line on stderr).
    #[must_use]
    pub fn on_accept_error(
        mut self,
        hook: impl Fn(&io::Error, Duration) + Send + Sync + 'static,
    ) -> Self {
        self.on_accept_error = Arc::new(hook);
        self
    }

    /// Called when a connection fails before it reaches the handler: the stream hook, an
    /// invalid or rejected request (already answered with its 4xx), a handshake timeout
    /// (default: nothing).
    #[must_use]
    pub fn on_error(mut self, hook: impl Fn(&Error) + Send + Sync + 'static) -> Self {
        self.on_error = Some(Arc::new(hook));
        self
    }

    /// Serves plain TCP connections until shutdown; see [`serve_with`](Self::serve_with).
    ///
    /// # Errors
    /// As [`serve_with`](Self::serve_with).
    pub async fn serve<H, HF>(self, handler: H) -> io::Result<()>
    where
        H: Fn(ServerStream<TcpStream>) -> HF + Send + Sync + 'static,
        HF: Future<Output = ()> + Send + 'static,
    {
        self.serve_with(|tcp| async move { Ok(tcp) }, handler).await
    }

    /// Serves until shutdown: each accepted TCP stream goes through `wrap` (a TLS
    /// handshake, say, with tokio-rustls' `TlsAcceptor::accept`), then the WebSocket
    /// handshake, then `handler`, in a task per connection. Returns once the shutdown is
    /// done (see [`Server`]).
    ///
    /// An idle connection costs its handler's future and little else (2.3 KiB in all for
    /// `examples/echo_server.rs`). A handler written as an `async fn` keeps its
    /// [`ServerStream`] argument twice in that future (688 bytes more); a function that
    /// returns an `async move` block over it keeps it once.
    ///
    /// # Errors
    /// An accept error that is not overload (after the graceful shutdown), or setting up
    /// the signal handlers.
    pub async fn serve_with<S, W, WF, H, HF>(self, wrap: W, handler: H) -> io::Result<()>
    where
        W: Fn(TcpStream) -> WF + Send + Sync + 'static,
        WF: Future<Output = io::Result<S>> + Send + 'static,
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        H: Fn(ServerStream<S>) -> HF + Send + Sync + 'static,
        HF: Future<Output = ()> + Send + 'static,
    {
        let Self {
            listener,
            config,
            max_connections,
            retry_after,
            close_timeout,
            signals,
            shutdown_on,
            decide,
            http,
            on_accept_error,
            on_error,
            shared,
        } = self;
        let signals = if signals {
            Some(signals_future()?)
        } else {
            None
        };
        let external = async move {
            let or_pending = |f: Option<BoxFuture>| async move {
                match f {
                    Some(f) => f.await,
                    None => pending().await,
                }
            };
            race(or_pending(shutdown_on), or_pending(signals)).await;
        };
        let mut stop = pin!(async {
            if let Either::Right(()) = race(shared.stopped(), external).await {
                shared.start_shutdown(None);
            }
        });
        let ctx = Arc::new(Ctx {
            wrap,
            handler,
            decide,
            http,
            on_error,
            config: Arc::new(config),
        });
        // The connections' tasks are found through `shared.open`, which each leaves when its
        // task ends (a `JoinSet` entry would cost every connection 64 bytes more); the
        // answers past the cap are few and short, and kept here.
        let mut busy_tasks = JoinSet::new();
        let mut backoff = Backoff::default();
        let result = loop {
            let accepted = poll_fn(|cx| {
                if stop.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(None);
                }
                // Reap finished tasks as they end, so that the set holds only live ones.
                while let Poll::Ready(Some(_)) = busy_tasks.poll_join_next(cx) {}
                listener.poll_accept(cx).map(Some)
            })
            .await;
            let Some(accepted) = accepted else {
                break Ok(());
            };
            match accepted {
                Ok((tcp, _)) => {
                    backoff.reset();
                    // Only a latency setting; a socket that refuses it still works.
                    let _ = tcp.set_nodelay(true);
                    if max_connections.is_some_and(|max| shared.open_connections() >= max) {
                        busy_tasks.spawn(busy(tcp, retry_after));
                    } else {
                        let registered = shared.register();
                        let signal = Arc::clone(&registered.signal);
                        let task = ::tokio::spawn(connection(Arc::clone(&ctx), tcp, registered));
                        signal.set_task(task.abort_handle());
                    }
                }
                Err(e) if is_overload(&e) => {
                    let wait = backoff.next();
                    on_accept_error(&e, wait);
                    if let Either::Left(()) = race(stop.as_mut(), sleep(wait)).await {
                        break Ok(());
                    }
                }
                Err(e) => break Err(e),
            }
        };
        drop(listener);
        shared.start_shutdown(None);
        let deadline = Instant::now() + close_timeout;
        let all_ended = async {
            shared.drained().await;
            while busy_tasks.join_next().await.is_some() {}
        };
        if let Either::Right(()) = race(all_ended, sleep_until(deadline)).await {
            shared.abort_all();
            busy_tasks.abort_all();
            shared.drained().await;
            while busy_tasks.join_next().await.is_some() {}
        }
        result
    }
}

/// SIGINT or SIGTERM, whichever comes first (Ctrl-C off Unix).
fn signals_future() -> io::Result<BoxFuture> {
    #[cfg(unix)]
    {
        use ::tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(Box::pin(async move {
            race(interrupt.recv(), terminate.recv()).await;
        }))
    }
    #[cfg(not(unix))]
    {
        Ok(Box::pin(async {
            let _ = ::tokio::signal::ctrl_c().await;
        }))
    }
}

/// What every connection task needs.
struct Ctx<W, H> {
    wrap: W,
    handler: H,
    decide: Arc<Decide>,
    http: Option<Arc<Route>>,
    on_error: Option<Arc<ErrorHook>>,
    /// One copy for every connection.
    config: Arc<Config>,
}

/// Answers a connection past the cap with 503 and closes it.
async fn busy(mut tcp: TcpStream, retry_after: u32) {
    // A new socket's send buffer takes these few bytes at once.
    if tcp.write_all(&busy_response(retry_after)).await.is_err() {
        return;
    }
    let _ = tcp.shutdown().await;
    // Read the request before closing (for at most a second): closing with unread bytes
    // resets the connection, and the reset can reach the client before it reads the 503.
    let mut sink = [0; 1024];
    let _ = timeout(Duration::from_secs(1), async {
        while let Ok(1..) = tcp.read(&mut sink).await {}
    })
    .await;
}

/// How long past `handshake_timeout` the opening may take before it is dropped. The
/// connection's own timer answers a request that has not arrived by then with 408 at the
/// timeout itself; this lets that answer go out, and still bounds the stream hook (a TLS
/// handshake, which comes before that timer starts) and a peer that does not read the 408.
const HANDSHAKE_GRACE: Duration = Duration::from_millis(250);

/// One connection: the opening (under `handshake_timeout`), then the handler.
///
/// The opening and the handler each run in a box of their own, and the task keeps only the
/// two pointers and the connection's place among the open ones: a future that held either
/// inline (or both, as the compiler lays out values moved from one to the other) made every
/// idle connection's task several kilobytes larger than the handler it runs. A function
/// that returns the future, rather than an `async fn`, so that the task does not keep the
/// arguments it moved into the opening.
fn connection<S, W, WF, H, HF>(
    ctx: Arc<Ctx<W, H>>,
    tcp: TcpStream,
    registered: Registered,
) -> impl Future<Output = ()>
where
    W: Fn(TcpStream) -> WF,
    WF: Future<Output = io::Result<S>>,
    S: AsyncRead + AsyncWrite + Unpin,
    H: Fn(ServerStream<S>) -> HF,
    HF: Future<Output = ()>,
{
    let watching = registered.watching();
    let opening = Box::pin(async move {
        let opened = match ctx.config.handshake_timeout {
            Some(limit) => timeout(limit + HANDSHAKE_GRACE, open(&ctx, tcp))
                .await
                .unwrap_or_else(|_| Err(io::Error::from(io::ErrorKind::TimedOut).into())),
            None => open(&ctx, tcp).await,
        };
        match opened {
            Ok(Some((ws, request))) => Some(Box::pin((ctx.handler)(ServerStream {
                ws,
                request,
                registered: watching,
            }))),
            Ok(None) => None,
            Err(e) => {
                if let Some(hook) = &ctx.on_error {
                    hook(&e);
                }
                None
            }
        }
    });
    async move {
        // A connection still opening at shutdown is dropped: it never was open to the
        // handler. (Boxed as well: the shutdown watch is only needed until then.)
        let opened = Box::pin(race(registered.signal.raised(), opening)).await;
        if let Either::Right(Some(handler)) = opened {
            handler.await;
        }
        // The connection leaves the open ones only now, as its task ends.
        drop(registered);
    }
}

/// Wraps the stream, then serves a plain HTTP request (`Ok(None)`) or runs the WebSocket
/// handshake.
async fn open<S, W, WF, H>(
    ctx: &Ctx<W, H>,
    tcp: TcpStream,
) -> Result<Option<(WebSocketStream<S>, Box<Request>)>, Error>
where
    W: Fn(TcpStream) -> WF,
    WF: Future<Output = io::Result<S>>,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut stream = (ctx.wrap)(tcp).await?;
    let decide = |r: &Request| (ctx.decide)(r);
    let opened = match &ctx.http {
        None => {
            WebSocketStream::from_connection(stream, Connection::server(ctx.config.clone()))
                .finish_accept_keeping_request(decide)
                .await?
        }
        Some(route) => {
            let received = read_head(&mut stream, ctx.config.max_head_size).await?;
            // A head too large goes to the handshake too, which answers 431.
            if has_head(&received)
                && let Some(response) =
                    plain_request(&received, ctx.config.max_headers).and_then(|r| route(&r))
            {
                stream.write_all(&response.to_bytes()).await?;
                stream.shutdown().await?;
                return Ok(None);
            }
            let mut conn = Connection::server(ctx.config.clone());
            conn.receive(&received);
            WebSocketStream::from_connection(stream, conn)
                .finish_accept_keeping_request(decide)
                .await?
        }
    };
    Ok(Some(opened))
}

/// Reads until the blank line that ends an HTTP head or `max` bytes; returns every byte read
/// (frames may follow the head).
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S, max: usize) -> io::Result<Vec<u8>> {
    let mut received = Vec::with_capacity(1024);
    let mut chunk = [0; 2048];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let scan_from = received.len().saturating_sub(3);
        received.extend_from_slice(&chunk[..n]);
        if has_head(&received[scan_from..]) || received.len() >= max {
            return Ok(received);
        }
    }
}

/// A connection accepted by [`Server`] or watched by [`Shutdown`]: a [`WebSocketStream`] (it derefs to one, for sends
/// and queries) whose receive methods also send the server's Close frame when shutdown
/// starts, then carry on receiving, so the handler sees the peer's answering Close and the
/// end of the connection.
///
/// # How shutdown reaches the connections
///
/// The handler owns its connection, so the server cannot write to it. Instead each connection
/// has a shutdown signal (a flag and a waker), registered with the server while the
/// connection is open. The handler receives a [`ServerStream`], a [`WebSocketStream`] whose
/// receive methods (`recv`, `recv_with`, `recv_with_sender`, and `recv` on the reader half
/// after `split`) also wait for that signal: when it is raised they send the Close frame
/// (1001 "going away" unless told otherwise) and go on receiving, so the handler sees the
/// peer's answering Close and then `Ok(None)`, the ordinary end of a connection. Shutdown
/// then waits up to `close_timeout` for the handler tasks to end, and aborts the rest, which
/// drops their sockets.
///
/// A handler that is not receiving when shutdown starts sends the Close the next time it
/// calls one of those methods; [`ServerStream::is_shutting_down`] lets it look before then.
/// Sends go through to the [`WebSocketStream`] unchanged, and so does anything else reached
/// through `Deref`, such as its `Stream` implementation (feature `futures`), which does not
/// watch for shutdown.
#[derive(Debug)]
pub struct ServerStream<S> {
    ws: WebSocketStream<S>,
    /// Boxed as the connection handed it over, for as long as the connection lasts.
    request: Box<Request>,
    registered: Registered,
}

impl<S> Deref for ServerStream<S> {
    type Target = WebSocketStream<S>;

    fn deref(&self) -> &WebSocketStream<S> {
        &self.ws
    }
}

impl<S> DerefMut for ServerStream<S> {
    fn deref_mut(&mut self) -> &mut WebSocketStream<S> {
        &mut self.ws
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> ServerStream<S> {
    /// The handshake request the connection was opened with.
    #[must_use]
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// Whether the server started shutting down; the next receive sends the Close.
    #[must_use]
    pub fn is_shutting_down(&self) -> bool {
        self.registered.signal.is_raised()
    }

    /// As [`WebSocketStream::recv`]; at shutdown it sends the Close first. Cancel-safe.
    ///
    /// # Errors
    /// As [`WebSocketStream::recv`].
    pub fn recv(&mut self) -> impl Future<Output = Result<Option<Message>, Error>> {
        let Self { ws, registered, .. } = self;
        poll_fn(move |cx| {
            ws.poll_event_watched(
                cx,
                usize::MAX,
                |event| Message::from_event(&event),
                |conn, cx| registered.watch(conn, cx),
            )
        })
    }

    /// As [`WebSocketStream::recv_with`]; at shutdown it sends the Close first.
    /// Cancel-safe.
    ///
    /// # Errors
    /// As [`WebSocketStream::recv`].
    pub fn recv_with<R>(
        &mut self,
        f: impl FnOnce(Event<'_>) -> R,
    ) -> impl Future<Output = Result<Option<R>, Error>> {
        let Self { ws, registered, .. } = self;
        let mut f = Some(f);
        // The receive returns at the first event it hands over, so `f` is taken once.
        poll_fn(move |cx| {
            ws.poll_event_watched(
                cx,
                usize::MAX,
                |event| f.take().map(|f| f(event)),
                |conn, cx| registered.watch(conn, cx),
            )
        })
    }

    /// As [`WebSocketStream::recv_with_sender`]; at shutdown it sends the Close first.
    ///
    /// Once `f` has been called, the reply is written before shutdown can interrupt, so
    /// shutdown never drops what `f` returned.
    ///
    /// # Errors
    /// As [`WebSocketStream::recv_with_sender`].
    pub fn recv_with_sender<R>(
        &mut self,
        f: impl for<'e> FnOnce(Event<'e>, &mut Sender<'e>) -> Result<R, UsageError>,
    ) -> impl Future<Output = Result<Option<R>, Error>> {
        // The shutdown Close is queued by the receive itself, when it takes the next event
        // or waits for bytes, and goes out with its next write: no future of this method's
        // own wraps the receive's, which a handler holds while its connection idles.
        let registered = &self.registered;
        self.ws
            .recv_with_sender_watched(f, move |conn, cx| registered.watch(conn, cx))
    }

    /// Splits into a reader, which watches for shutdown as [`recv`](Self::recv) does, and
    /// a writer.
    pub fn split(self) -> (ServerReader<S>, WebSocketWriter<S>) {
        let (reader, writer) = self.ws.split();
        let reader = ServerReader {
            reader,
            registered: self.registered,
        };
        (reader, writer)
    }
}

/// The reading half of a split [`ServerStream`]: at shutdown its `recv` sends the server's
/// Close, then goes on receiving.
#[derive(Debug)]
pub struct ServerReader<S> {
    reader: WebSocketReader<S>,
    registered: Registered,
}

impl<S: AsyncRead + AsyncWrite> ServerReader<S> {
    /// Whether the server started shutting down.
    #[must_use]
    pub fn is_shutting_down(&self) -> bool {
        self.registered.signal.is_raised()
    }

    /// As [`WebSocketReader::recv`]; at shutdown it sends the Close first, before handing
    /// over a message. Cancel-safe.
    ///
    /// # Errors
    /// As [`WebSocketReader::recv`].
    pub fn recv(&mut self) -> impl Future<Output = Result<Option<Message>, Error>> {
        // As `ServerStream::recv`: the receive itself queues the Close and writes it, so
        // nothing is raced against the signal and no message is handed over before it.
        let Self { reader, registered } = self;
        poll_fn(move |cx| reader.poll_recv_watched(cx, |conn, cx| registered.watch(conn, cx)))
    }
}
