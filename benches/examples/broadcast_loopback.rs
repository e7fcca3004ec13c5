//! Broadcast over loopback (issue 17, benches (b) and (c)): one publisher and many subscribers
//! on 127.0.0.1, each implementation's idiomatic broadcast in a server process of its own.
//! Prints, per shape and implementation, deliveries per second, the server's CPU time per
//! delivery and the p99 publish-to-receive latency, medians over interleaved rounds, and each
//! peer's ratio to wsproto.
//!
//! - (b) plain: 1,000 subscribers × 16 B, 1,000 × 1 KiB and 100 × 64 KiB binary messages.
//! - (c) permessage-deflate, the subscribers asking for `server_no_context_takeover`:
//!   1,000 × 1 KiB and 100 × 64 KiB JSON-like text. Also prints deflate runs per message:
//!   wsproto's server counts them (`PreparedMessage::shared_deflates` and
//!   `connection_deflates`, asserted to be exactly 1); sockudo-ws compresses on every
//!   connection, so its runs are the compressed deliveries the load side counted. Only
//!   sockudo-ws of the peers negotiates permessage-deflate.
//!
//! `cargo run --release -p wsproto-benches --example broadcast_loopback [-- --rounds 5 --seconds 2]`
//!
//! How a run goes. This example starts itself again as the server (`--serve NAME`), a child
//! process with one current-thread tokio runtime (one server thread), which listens on a free
//! port. The load side, this process on one thread, is the same client for every server:
//! plain sockets and a minimal frame parser (and zlib-rs to inflate), so that no
//! implementation reads its own frames. It opens the subscribers, then one publisher
//! connection (path `/publish`). The server forwards each message the publisher sends to
//! every subscriber:
//!
//! - wsproto: a `Hub` topic; the publisher's message becomes one `PreparedMessage`
//!   (`recv_with`, no copy out first), `Hub::publish` hands it to each subscriber's queue,
//!   and `Subscriber::forward` sends it from the shared frame (`send_prepared`).
//! - tokio-tungstenite and tokio-websockets: a tokio broadcast channel of their `Message`;
//!   each subscriber's task receives a clone (a shared `Bytes`) and sends it.
//! - fastwebsockets (behind hyper's upgrade, as its docs show): a broadcast channel of the
//!   opcode and a shared `Bytes`; each task writes a frame borrowing the payload.
//! - sockudo-ws: its `PubSub` (a `Message` clone into each subscriber's channel), each
//!   subscriber's task sending it; with deflate, its `CompressedWebSocketStream`. It has no
//!   pre-framed or pre-compressed message.
//!
//! One task per subscriber, writing only: the subscribers send nothing, and each server
//! exits when its publisher closes, so there is nothing to read. The peers write through
//! their whole stream, their cheapest path; wsproto's `forward` goes through its split
//! writer, the read half kept but not polled.
//!
//! The publisher keeps at most `--window` messages in flight: it publishes message n once
//! every subscriber has message n - window, so no queue overflows and the servers run at
//! their pace. Each message carries its sequence number and send time; every subscriber
//! checks that it gets every message, in order, at the right size (a failure panics). A run
//! warms up, then measures between two such "all delivered" points: deliveries over the wall
//! time, the server's CPU time (every thread's `/proc/PID/task/*/schedstat`, in ns) over the
//! deliveries, and the 99th percentile of the latencies of the measured messages. The
//! latency is that of a saturated server with `window` messages queued, so it mostly follows
//! the throughput. Before the first message the publisher sends sync messages until every
//! subscriber got one, since a server may subscribe a connection only after its handshake.
//!
//! The two processes share the machine's cores: on two cores, the load side's thread and the
//! server's thread each have one, and the deliveries per second of a cheap server may be
//! bounded by the load side (with deflate it inflates each distinct compressed payload once
//! and compares the bytes of the others); the server's CPU per
//! delivery is the figure that is not. That CPU time includes the kernel's: on loopback a
//! write carries the segment into the receiver's socket, so one write per delivery (a few
//! µs) is most of what every implementation spends.

#[path = "../../examples/common/args.rs"]
mod args;

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use std::collections::VecDeque;
use std::io::{self, BufRead as _, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, broadcast};

const USAGE: &str = "broadcast_loopback: one publisher, many subscribers, over loopback

usage: broadcast_loopback [--rounds R] [--seconds S] [--warmup S] [--window K] [--only plain|deflate]

  --rounds R      rounds; each runs every implementation once per shape, in turn (default 5)
  --seconds S     measured time per run (default 2)
  --warmup S      unmeasured time per run, before it (default 0.5)
  --window K      messages in flight, at most 32 (default 8)
  --only WHAT     plain (bench b) or deflate (bench c); both by default

  --serve NAME    (internal) be the server for NAME; --deflate accepts permessage-deflate";

const PUBLISH_PATH: &str = "/publish";
const TOPIC: &str = "room";
/// Sequence numbers of the sync messages sent before the first one, and of the last.
const SYNC: u64 = u64::MAX - 1;
const STOP: u64 = u64::MAX;
/// The peers' broadcast channel: above the largest window plus the syncs in flight, so a
/// subscriber never lags (a lag would end its task, and the load side would fail).
const CHANNEL: usize = 256;
const MAX_WINDOW: u64 = 32;
/// wsproto's server keeps this many recent messages to read their final deflate counts: a
/// message `MAX_WINDOW` back has been sent on every connection.
const RECENT: usize = 2 * MAX_WINDOW as usize;
/// Time without progress after which a run fails.
const STALL: Duration = Duration::from_secs(30);
/// The publisher's masking key: one for the whole run, which a benchmark may do (RFC 6455
/// §5.3 wants a fresh one per frame); it costs every server the same.
const MASK: [u8; 4] = [0x5a, 0x17, 0xc3, 0x8e];
/// RFC 7692 §7.2.2: the receiver appends the empty block the sender stripped.
const SYNC_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lib {
    Wsproto,
    Tungstenite,
    Fastwebsockets,
    TokioWebsockets,
    Sockudo,
}

impl Lib {
    const ALL: [Self; 5] = [
        Self::Wsproto,
        Self::Tungstenite,
        Self::Fastwebsockets,
        Self::TokioWebsockets,
        Self::Sockudo,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Wsproto => "wsproto",
            Self::Tungstenite => "tokio-tungstenite",
            Self::Fastwebsockets => "fastwebsockets",
            Self::TokioWebsockets => "tokio-websockets",
            Self::Sockudo => "sockudo-ws",
        }
    }

    /// Whether it negotiates permessage-deflate: tungstenite 0.30 has no extension support,
    /// fastwebsockets 0.10 says "permessage-deflate is not supported yet", and
    /// tokio-websockets 0.13 has no extensions.
    fn deflates(self) -> bool {
        matches!(self, Self::Wsproto | Self::Sockudo)
    }
}

fn main() -> ExitCode {
    let args = args::Args::parse(
        USAGE,
        &["rounds", "seconds", "warmup", "window", "only", "serve"],
        &["deflate"],
    );
    if let Some(name) = Some(args.get("serve", "")).filter(|n| !n.is_empty()) {
        let Some(lib) = Lib::ALL.into_iter().find(|l| l.name() == name) else {
            eprintln!("broadcast_loopback: unknown --serve {name:?}");
            return ExitCode::from(2);
        };
        serve(lib, args.flag("deflate"));
        return ExitCode::SUCCESS;
    }
    let seconds = |name: &str, default: &str| {
        let value = args.get(name, default);
        let s: f64 = value.parse().unwrap_or_else(|_| {
            eprintln!("broadcast_loopback: --{name} {value:?} is not a number of seconds");
            std::process::exit(2)
        });
        Duration::from_secs_f64(s)
    };
    let settings = Settings {
        warmup: seconds("warmup", "0.5"),
        measure: seconds("seconds", "2"),
        window: (args.number("window", 8) as u64).clamp(1, MAX_WINDOW),
    };
    let rounds = args.number("rounds", 5).max(1);
    let only = args.get("only", "");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    println!(
        "broadcast over loopback: {rounds} rounds, {:?} measured after {:?} of warm-up, \
         {} messages in flight; one server thread, one load thread; medians",
        settings.measure, settings.warmup, settings.window
    );
    if only.is_empty() || only == "plain" {
        println!("\n(b) binary messages\n");
        let shapes = [
            Shape::new("1,000 × 16 B", 1000, 16, false),
            Shape::new("1,000 × 1 KiB", 1000, 1 << 10, false),
            Shape::new("100 × 64 KiB", 100, 64 << 10, false),
        ];
        bench(&runtime, &shapes, &Lib::ALL, rounds, &settings);
    }
    if only.is_empty() || only == "deflate" {
        println!(
            "\n(c) permessage-deflate, server_no_context_takeover, JSON-like text. Without \
             permessage-deflate, not measured: {}\n",
            Lib::ALL
                .iter()
                .filter(|l| !l.deflates())
                .map(|l| l.name())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let shapes = [
            Shape::new("1,000 × 1 KiB", 1000, 1 << 10, true),
            Shape::new("100 × 64 KiB", 100, 64 << 10, true),
        ];
        let libs: Vec<Lib> = Lib::ALL.into_iter().filter(|l| l.deflates()).collect();
        bench(&runtime, &shapes, &libs, rounds, &settings);
    }
    ExitCode::SUCCESS
}

// ---------------------------------------------------------------------------------------
// The servers (the child process)
// ---------------------------------------------------------------------------------------

fn serve(lib: Lib, deflate: bool) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        // The load side reads this line to find the server.
        println!("port {}", listener.local_addr().expect("address").port());
        match lib {
            Lib::Wsproto => serve_wsproto(listener, deflate).await,
            Lib::Tungstenite => serve_tungstenite(listener).await,
            Lib::Fastwebsockets => serve_fastwebsockets(listener).await,
            Lib::TokioWebsockets => serve_tokio_websockets(listener).await,
            Lib::Sockudo => serve_sockudo(listener, deflate).await,
        }
    });
}

/// Ends the server once its publisher is gone, printing what it counted for the load side:
/// messages published, those that reached a subscriber, and (wsproto) compressions made to be
/// shared and made per connection.
fn finish(messages: u64, reached: u64, shared_deflates: u64, connection_deflates: u64) -> ! {
    println!("done {messages} {reached} {shared_deflates} {connection_deflates}");
    std::process::exit(0)
}

async fn accept(listener: &TcpListener) -> TcpStream {
    let (tcp, _) = listener.accept().await.expect("accept");
    tcp.set_nodelay(true).expect("TCP_NODELAY");
    tcp
}

async fn serve_wsproto(listener: TcpListener, deflate: bool) {
    use wsproto::drivers::tokio::{Hub, Server};
    let mut config = wsproto::Config::default();
    if deflate {
        config = config.deflate(Some(wsproto::DeflateConfig::default()));
    }
    let hub = Hub::new();
    Server::from_listener(listener)
        .config(config)
        .serve(move |ws| {
            let hub = hub.clone();
            async move {
                if ws.request().path() == PUBLISH_PATH {
                    publish_wsproto(ws, &hub).await;
                } else {
                    let mut subscriber = hub.subscriber();
                    subscriber.subscribe(TOPIC);
                    let (_reader, writer) = ws.split();
                    let _ = subscriber.forward(&writer).await;
                }
            }
        })
        .await
        .expect("serve");
}

async fn publish_wsproto(
    mut ws: wsproto::drivers::tokio::ServerStream<TcpStream>,
    hub: &wsproto::drivers::tokio::Hub,
) {
    use wsproto::{Event, PreparedMessage};
    let mut recent = VecDeque::with_capacity(RECENT + 1);
    let (mut messages, mut reached, mut shared, mut own) = (0, 0, 0, 0);
    let mut count = |message: PreparedMessage| {
        shared += message.shared_deflates();
        own += message.connection_deflates();
    };
    while let Ok(Some(message)) = ws
        .recv_with(|event| match event {
            Event::Text(text) => Some(PreparedMessage::text(text)),
            Event::Binary(data) => Some(PreparedMessage::binary(data)),
            _ => None,
        })
        .await
    {
        let Some(message) = message else { continue };
        messages += 1;
        // A sync sent before anyone subscribed is framed, and compressed, nowhere.
        if hub.publish(TOPIC, &message) > 0 {
            reached += 1;
        }
        // Compression happens as each subscriber sends: the counts are final once every
        // subscriber has it, which the publisher's window guarantees `RECENT` messages on.
        recent.push_back(message);
        if recent.len() > RECENT {
            count(recent.pop_front().expect("not empty"));
        }
    }
    recent.into_iter().for_each(&mut count);
    finish(messages, reached, shared, own)
}

async fn serve_tungstenite(listener: TcpListener) {
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
    let (room, _) = broadcast::channel::<Message>(CHANNEL);
    loop {
        let tcp = accept(&listener).await;
        let room = room.clone();
        tokio::spawn(async move {
            let mut publisher = false;
            #[expect(
                clippy::result_large_err,
                reason = "the type is tungstenite's `Callback`"
            )]
            let callback = |request: &Request, response: Response| {
                publisher = request.uri().path() == PUBLISH_PATH;
                Ok(response)
            };
            let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
                return;
            };
            if publisher {
                let mut messages = 0;
                while let Some(Ok(message)) = ws.next().await {
                    if message.is_text() || message.is_binary() {
                        messages += 1;
                        let _ = room.send(message);
                    }
                }
                finish(messages, messages, 0, 0);
            }
            let mut queue = room.subscribe();
            while let Ok(message) = queue.recv().await {
                if ws.send(message).await.is_err() {
                    break;
                }
            }
        });
    }
}

async fn serve_tokio_websockets(listener: TcpListener) {
    use tokio_websockets::Message;
    let (room, _) = broadcast::channel::<Message>(CHANNEL);
    loop {
        let tcp = accept(&listener).await;
        let room = room.clone();
        tokio::spawn(async move {
            let Ok((request, mut ws)) = tokio_websockets::ServerBuilder::new().accept(tcp).await
            else {
                return;
            };
            if request.uri().path() == PUBLISH_PATH {
                let mut messages = 0;
                while let Some(Ok(message)) = ws.next().await {
                    if message.is_text() || message.is_binary() {
                        messages += 1;
                        let _ = room.send(message);
                    }
                }
                finish(messages, messages, 0, 0);
            }
            let mut queue = room.subscribe();
            while let Ok(message) = queue.recv().await {
                if ws.send(message).await.is_err() {
                    break;
                }
            }
        });
    }
}

async fn serve_fastwebsockets(listener: TcpListener) {
    use fastwebsockets::{Frame, OpCode, Payload, WebSocketError, upgrade};
    use http_body_util::Empty;
    use hyper::body::Incoming;
    use hyper::{Request, Response};

    let (room, _) = broadcast::channel::<(OpCode, Bytes)>(CHANNEL);
    loop {
        let tcp = accept(&listener).await;
        let room = room.clone();
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            let room = room.clone();
            async move {
                let publisher = request.uri().path() == PUBLISH_PATH;
                let (response, upgrade) = upgrade::upgrade(&mut request)?;
                tokio::spawn(async move {
                    let Ok(mut ws) = upgrade.await else { return };
                    if publisher {
                        let mut messages = 0;
                        while let Ok(frame) = ws.read_frame().await {
                            match frame.opcode {
                                OpCode::Text | OpCode::Binary => {
                                    messages += 1;
                                    let payload = Bytes::copy_from_slice(&frame.payload);
                                    let _ = room.send((frame.opcode, payload));
                                }
                                OpCode::Close => break,
                                _ => {}
                            }
                        }
                        finish(messages, messages, 0, 0);
                    }
                    let mut queue = room.subscribe();
                    while let Ok((opcode, payload)) = queue.recv().await {
                        let frame = Frame::new(true, opcode, None, Payload::Borrowed(&payload));
                        if ws.write_frame(frame).await.is_err() {
                            break;
                        }
                    }
                });
                Ok::<Response<Empty<Bytes>>, WebSocketError>(response)
            }
        });
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                .with_upgrades()
                .await;
        });
    }
}

async fn serve_sockudo(listener: TcpListener, deflate: bool) {
    let pubsub = Arc::new(sockudo_ws::PubSub::new());
    loop {
        let tcp = accept(&listener).await;
        let pubsub = Arc::clone(&pubsub);
        tokio::spawn(async move {
            let _ = sockudo_connection(tcp, &pubsub, deflate).await;
        });
    }
}

/// sockudo-ws's handshake as its own examples do it (`parse_request`, then the response),
/// with its permessage-deflate negotiation when the server takes it.
async fn sockudo_connection(
    mut tcp: TcpStream,
    pubsub: &sockudo_ws::PubSub,
    deflate: bool,
) -> sockudo_ws::Result<()> {
    use sockudo_ws::deflate::{DeflateConfig, negotiate_server_deflate};
    use sockudo_ws::handshake::{build_response, generate_accept_key, parse_request};
    use sockudo_ws::{CompressedWebSocketStream, Config, WebSocketStream};

    let mut head = bytes::BytesMut::with_capacity(4096);
    let (publisher, negotiated) = loop {
        if tcp.read_buf(&mut head).await? == 0 {
            return Ok(());
        }
        let Some((request, consumed)) = parse_request(&head)? else {
            continue;
        };
        // Nothing follows the request: the load side waits for the response.
        assert_eq!(consumed, head.len(), "bytes after the handshake request");
        let negotiated = request
            .extensions
            .filter(|_| deflate)
            .and_then(|offer| negotiate_server_deflate(offer, &DeflateConfig::default()));
        let extensions = negotiated.as_ref().map(|n| n.to_response_header());
        let response = build_response(
            &generate_accept_key(request.key),
            None,
            extensions.as_deref(),
        );
        let publisher = request.path == PUBLISH_PATH;
        tcp.write_all(&response).await?;
        break (publisher, negotiated);
    };
    match negotiated {
        Some(negotiation) => {
            let ws = CompressedWebSocketStream::server(tcp, Config::default(), negotiation.config);
            run_sockudo(ws, publisher, pubsub).await;
        }
        None => {
            run_sockudo(
                WebSocketStream::server(tcp, Config::default()),
                publisher,
                pubsub,
            )
            .await
        }
    }
    Ok(())
}

async fn run_sockudo<W>(mut ws: W, publisher: bool, pubsub: &sockudo_ws::PubSub)
where
    W: futures_util::Stream<Item = sockudo_ws::Result<sockudo_ws::Message>>
        + futures_util::Sink<sockudo_ws::Message>
        + Unpin,
{
    use sockudo_ws::Message;
    if publisher {
        let mut messages = 0;
        while let Some(Ok(message)) = ws.next().await {
            if matches!(message, Message::Text(_) | Message::Binary(_)) {
                messages += 1;
                pubsub.publish(TOPIC, message);
            }
        }
        finish(messages, messages, 0, 0);
    }
    let (queue, mut received) = tokio::sync::mpsc::unbounded_channel();
    let id = pubsub.create_subscriber(queue);
    pubsub.subscribe(id, TOPIC);
    while let Some(message) = received.recv().await {
        if ws.send(message).await.is_err() {
            break;
        }
    }
    pubsub.remove_subscriber(id);
}

// ---------------------------------------------------------------------------------------
// The load side
// ---------------------------------------------------------------------------------------

struct Settings {
    warmup: Duration,
    measure: Duration,
    window: u64,
}

struct Shape {
    label: &'static str,
    subscribers: usize,
    size: usize,
    /// permessage-deflate and JSON-like text, or binary without.
    deflate: bool,
    /// What follows the sequence number and send time in every message.
    filler: Vec<u8>,
}

impl Shape {
    fn new(label: &'static str, subscribers: usize, size: usize, deflate: bool) -> Self {
        let filler = if deflate {
            // Quotes as a feed sends them: repetitive keys, varying digits, so it compresses
            // as JSON does (several times), not to nothing.
            let mut rows = String::new();
            let mut i = 0u32;
            while rows.len() < size {
                let price = 10_000 + (i * 7_919) % 9_000;
                rows.push_str(&format!(
                    "{{\"id\":{i},\"sym\":\"S{:03}\",\"bid\":{}.{:02},\"ask\":{}.{:02},\"qty\":{}}},",
                    i % 500,
                    price / 100,
                    price % 100,
                    price / 100 + 1,
                    (price * 3) % 100,
                    (i * 37) % 1_000
                ));
                i += 1;
            }
            let mut filler = rows.into_bytes();
            filler.truncate(size.saturating_sub(JSON_HEAD + 2));
            filler.extend_from_slice(b"]}");
            filler
        } else {
            (0..size.saturating_sub(16))
                .map(|i| (i * 7 + 3) as u8)
                .collect()
        };
        Self {
            label,
            subscribers,
            size,
            deflate,
            filler,
        }
    }

    /// Message `seq`, sent at `sent_ns` (since the run's epoch): binary, the two numbers
    /// little-endian; or text, `{"seq":N,"ts":N,"rows":[...]}` with 20-digit numbers.
    fn message(&self, seq: u64, sent_ns: u64) -> Vec<u8> {
        let mut message = Vec::with_capacity(self.size);
        if self.deflate {
            message.extend_from_slice(
                format!("{{\"seq\":{seq:020},\"ts\":{sent_ns:020},\"rows\":[").as_bytes(),
            );
        } else {
            message.extend_from_slice(&seq.to_le_bytes());
            message.extend_from_slice(&sent_ns.to_le_bytes());
        }
        message.extend_from_slice(&self.filler);
        debug_assert_eq!(message.len(), self.size);
        message
    }
}

/// The sequence number and send time of a received message of a shape of `size` bytes,
/// JSON-like text or binary.
fn read_message(message: &[u8], size: usize, json: bool) -> io::Result<(u64, u64)> {
    if message.len() != size {
        return Err(io::Error::other(format!(
            "a message of {} bytes, not {size}",
            message.len()
        )));
    }
    Ok(if json {
        (digits(&message[7..27])?, digits(&message[33..53])?)
    } else {
        let number = |at: usize| u64::from_le_bytes(message[at..at + 8].try_into().expect("8"));
        (number(0), number(8))
    })
}

/// Length of `{"seq":N,"ts":N,"rows":[` with 20-digit numbers.
const JSON_HEAD: usize = 62;

fn digits(text: &[u8]) -> io::Result<u64> {
    text.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit()
            .then(|| n.wrapping_mul(10).wrapping_add(u64::from(d - b'0')))
            .ok_or_else(|| io::Error::other("a garbled sequence number"))
    })
}

/// A client frame: FIN, text or binary, masked with [`MASK`] (RFC 6455 §5.2).
fn client_frame(payload: &[u8], text: bool) -> Vec<u8> {
    let mut frame = vec![if text { 0x81 } else { 0x82 }];
    match payload.len() {
        n @ 0..=125 => frame.push(0x80 | n as u8),
        n @ 126..=0xffff => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&MASK);
    frame.extend(payload.iter().zip(MASK.iter().cycle()).map(|(b, m)| b ^ m));
    frame
}

/// What every task of a run shares.
struct Shared {
    subscribers: usize,
    /// Subscribers still missing message n, at `n % window`: the publisher reuses a slot
    /// once it is 0, which is the window.
    pending: Box<[AtomicUsize]>,
    /// Subscribers that got a sync message.
    synced: AtomicUsize,
    /// Wakes the publisher when a slot reaches 0 or a subscriber synced.
    progress: Notify,
    epoch: Instant,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Waits until `done` holds, re-checking at each sign of progress.
    async fn wait(&self, what: &str, mut done: impl FnMut() -> bool) -> io::Result<()> {
        while !done() {
            tokio::time::timeout(STALL, self.progress.notified())
                .await
                .map_err(|_| io::Error::other(format!("stalled: {what}")))?;
        }
        Ok(())
    }
}

/// One run's figures.
struct Sample {
    deliveries_per_sec: f64,
    cpu_us_per_delivery: f64,
    p99_us: f64,
    /// Deflate runs per message: wsproto's server counts them; sockudo-ws's are its
    /// compressed deliveries (one per connection).
    deflates_per_message: Option<f64>,
}

/// A point of a run where every subscriber had every message up to `delivered`.
#[derive(Clone, Copy)]
struct Mark {
    delivered: u64,
    at: Instant,
    cpu_ns: u64,
}

/// One run: a fresh server process for `lib`, the shape's subscribers and the publisher.
fn run(
    runtime: &tokio::runtime::Runtime,
    lib: Lib,
    shape: &Shape,
    settings: &Settings,
) -> io::Result<Sample> {
    let mut command = Command::new(std::env::current_exe()?);
    command.args(["--serve", lib.name()]);
    if shape.deflate {
        command.arg("--deflate");
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()?;
    let result = run_with(runtime, &mut child, lib, shape, settings);
    // Gone already when it went well; a failed run's server goes here.
    let _ = child.kill();
    let _ = child.wait();
    result
}

fn run_with(
    runtime: &tokio::runtime::Runtime,
    child: &mut Child,
    lib: Lib,
    shape: &Shape,
    settings: &Settings,
) -> io::Result<Sample> {
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let mut line = || {
        lines
            .next()
            .unwrap_or_else(|| Err(io::Error::other("the server exited")))
    };
    let port: u16 = line()?
        .strip_prefix("port ")
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| io::Error::other("no port from the server"))?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let (sample, published, compressed) =
        runtime.block_on(drive(addr, child.id(), shape, settings))?;
    // The server prints its counts and exits once the publisher has closed.
    let done = line()?;
    let counts: Vec<u64> = done
        .strip_prefix("done ")
        .map(|rest| rest.split(' ').filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_default();
    let [messages, reached, shared_deflates, connection_deflates] = counts[..] else {
        return Err(io::Error::other(format!("the server said {done:?}")));
    };
    assert_eq!(messages, published, "{}: messages published", lib.name());
    let deflates_per_message = match (shape.deflate, lib) {
        (false, _) => None,
        (true, Lib::Wsproto) => {
            assert_eq!(
                (shared_deflates, connection_deflates),
                (reached, 0),
                "wsproto: one shared deflate run per message, none per connection"
            );
            Some((shared_deflates + connection_deflates) as f64 / reached as f64)
        }
        // Its connections compress for themselves: one run per compressed delivery.
        (true, _) => Some(compressed),
    };
    Ok(Sample {
        deflates_per_message,
        ..sample
    })
}

/// Connects, runs the publisher to the end, and returns the run's figures, the messages
/// published (syncs and the last one included) and the compressed deliveries per message
/// (syncs not counted).
async fn drive(
    addr: SocketAddr,
    server: u32,
    shape: &Shape,
    settings: &Settings,
) -> io::Result<(Sample, u64, f64)> {
    let n = shape.subscribers;
    let mut streams = Vec::with_capacity(n);
    for _ in 0..n {
        streams.push(connect(addr, "/", shape.deflate).await?);
    }
    let mut publisher = connect(addr, PUBLISH_PATH, false).await?;
    let shared = Arc::new(Shared {
        subscribers: n,
        pending: (0..settings.window).map(|_| AtomicUsize::new(0)).collect(),
        synced: AtomicUsize::new(0),
        progress: Notify::new(),
        epoch: Instant::now(),
    });
    let mut tasks = tokio::task::JoinSet::new();
    for stream in streams {
        let receiver = Receiver::new(shape, Arc::clone(&shared));
        tasks.spawn(receiver.run(stream));
    }
    let Published {
        start,
        end,
        data,
        total,
    } = publish(&mut publisher, &shared, shape, settings, server).await?;
    let mut latencies = Vec::new();
    let mut compressed = 0;
    let measured = start.delivered as usize + 1..end.delivered as usize + 1;
    while let Some(report) = tasks.join_next().await {
        let report = report.map_err(io::Error::other)??;
        // Every message, in order: the receiver checked the order, this the count.
        assert_eq!(
            report.latencies.len() as u64,
            data,
            "every message reached every subscriber"
        );
        latencies.extend_from_slice(&report.latencies[measured.clone()]);
        compressed += report.compressed;
    }
    // A Close (1000), then the server sees its publisher go.
    publisher.write_all(&client_frame_close()).await?;
    drop(publisher);
    let deliveries = (end.delivered - start.delivered) as f64 * n as f64;
    let p99 = {
        let at = (latencies.len() - 1) * 99 / 100;
        *latencies.select_nth_unstable(at).1 as f64 / 1e3
    };
    let sample = Sample {
        deliveries_per_sec: deliveries / (end.at - start.at).as_secs_f64(),
        cpu_us_per_delivery: (end.cpu_ns - start.cpu_ns) as f64 / 1e3 / deliveries,
        p99_us: p99,
        deflates_per_message: None,
    };
    Ok((sample, total, compressed as f64 / (data + 1) as f64))
}

/// Sends a Close with 1000, masked.
fn client_frame_close() -> Vec<u8> {
    let mut frame = client_frame(&1000u16.to_be_bytes(), false);
    frame[0] = 0x88;
    frame
}

/// What the publisher did.
struct Published {
    start: Mark,
    end: Mark,
    /// Messages numbered from 0, the measured ones among them.
    data: u64,
    /// Everything published: syncs, data and the last message.
    total: u64,
}

/// The publisher: syncs until every subscriber is in, then messages within the window until
/// the measured time is over, then the last message once everything else arrived.
async fn publish(
    stream: &mut TcpStream,
    shared: &Shared,
    shape: &Shape,
    settings: &Settings,
    server: u32,
) -> io::Result<Published> {
    let text = shape.deflate;
    let mut total = 0;
    let sync = client_frame(&shape.message(SYNC, 0), text);
    let synced_by = Instant::now() + STALL;
    while shared.synced.load(Relaxed) < shared.subscribers {
        if Instant::now() > synced_by {
            return Err(io::Error::other("stalled: subscribers never synced"));
        }
        stream.write_all(&sync).await?;
        total += 1;
        let _ = tokio::time::timeout(Duration::from_millis(20), async {
            while shared.synced.load(Relaxed) < shared.subscribers {
                shared.progress.notified().await;
            }
        })
        .await;
    }

    let window = settings.window;
    let warm_until = Instant::now() + settings.warmup;
    let mut start: Option<Mark> = None;
    let mut seq = 0u64;
    let end = loop {
        let slot = &shared.pending[(seq % window) as usize];
        if seq >= window {
            shared
                .wait("a message did not reach every subscriber", || {
                    slot.load(Relaxed) == 0
                })
                .await?;
            let mark = Mark {
                delivered: seq - window,
                at: Instant::now(),
                cpu_ns: cpu_ns(server),
            };
            match start {
                None if mark.at >= warm_until => start = Some(mark),
                Some(start) if mark.at >= start.at + settings.measure => break mark,
                _ => {}
            }
        }
        slot.store(shared.subscribers, Relaxed);
        let frame = client_frame(&shape.message(seq, shared.now_ns()), text);
        stream.write_all(&frame).await?;
        seq += 1;
        total += 1;
    };
    for slot in &shared.pending {
        shared
            .wait("the last messages did not arrive", || {
                slot.load(Relaxed) == 0
            })
            .await?;
    }
    stream
        .write_all(&client_frame(&shape.message(STOP, 0), text))
        .await?;
    Ok(Published {
        start: start.expect("started before it ended"),
        end,
        data: seq,
        total: total + 1,
    })
}

/// Opens a connection to `path` and runs the opening handshake (RFC 6455 §4.1), offering
/// permessage-deflate with `server_no_context_takeover` (RFC 7692 §7.1.1.1) when asked.
async fn connect(addr: SocketAddr, path: &str, deflate: bool) -> io::Result<TcpStream> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let extensions = if deflate {
        "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; \
         client_no_context_takeover\r\n"
    } else {
        ""
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         {extensions}\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::new();
    let mut chunk = [0; 1024];
    // Nothing is published before every connection is open, so the head comes alone.
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(STALL, stream.read(&mut chunk))
            .await
            .map_err(|_| io::Error::other("stalled: no handshake response"))??;
        if n == 0 {
            return Err(io::Error::other("the server closed during the handshake"));
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    if !head.starts_with("http/1.1 101") {
        return Err(io::Error::other(format!("handshake refused: {head}")));
    }
    if deflate
        && !head.lines().any(|line| {
            line.starts_with("sec-websocket-extensions:")
                && line.contains("permessage-deflate")
                && line.contains("server_no_context_takeover")
        })
    {
        return Err(io::Error::other(format!(
            "permessage-deflate without server_no_context_takeover refused: {head}"
        )));
    }
    Ok(stream)
}

/// Compressed payloads [`INFLATED`] keeps: more than the messages in flight (`--window`
/// is at most 32), as subscribers take them in no fixed order.
const INFLATED_KEPT: usize = 64;

thread_local! {
    /// Compressed payloads the load side inflated lately, and what each inflated to. A
    /// message reaches every subscriber in the same compressed bytes wherever each
    /// compression starts afresh (no server context takeover, the same settings), whether
    /// the server deflated it once or once per connection, so the load side inflates each
    /// message once and compares the bytes for the other subscribers. Inflating it for
    /// every subscriber made the load side, not the server, the bound on deliveries/s.
    static INFLATED: std::cell::RefCell<std::collections::VecDeque<(Vec<u8>, Vec<u8>)>> =
        const { std::cell::RefCell::new(std::collections::VecDeque::new()) };
}

/// What a subscriber reports at the end.
struct Report {
    /// The latency (ns) of each message, by sequence number.
    latencies: Vec<u32>,
    /// Messages that came compressed, syncs not counted.
    compressed: u64,
}

/// One subscriber: reads its frames, checks every message arrives in order, and records the
/// latencies.
struct Receiver {
    shared: Arc<Shared>,
    size: usize,
    json: bool,
    /// Raw inflate (RFC 7692 §7.2.2), kept across messages: with no server context
    /// takeover nothing refers back, so keeping the window is correct and costs nothing.
    inflater: Option<flate2::Decompress>,
    inflated: Vec<u8>,
    /// A fragmented message so far, and whether it was compressed.
    fragments: Vec<u8>,
    fragments_compressed: bool,
    next: u64,
    synced: bool,
    report: Report,
}

impl Receiver {
    fn new(shape: &Shape, shared: Arc<Shared>) -> Self {
        Self {
            shared,
            size: shape.size,
            json: shape.deflate,
            inflater: shape.deflate.then(|| flate2::Decompress::new(false)),
            inflated: Vec::with_capacity(shape.size + 64),
            fragments: Vec::new(),
            fragments_compressed: false,
            next: 0,
            synced: false,
            report: Report {
                latencies: Vec::new(),
                compressed: 0,
            },
        }
    }

    async fn run(mut self, mut stream: TcpStream) -> io::Result<Report> {
        let mut buf = vec![0; (4 * (self.size + 14)).max(16 << 10)];
        let (mut start, mut end) = (0, 0);
        loop {
            // Every whole frame in the buffer, then what the next one needs.
            let needed = loop {
                let Some(header) = FrameHead::parse(&buf[start..end]) else {
                    break 14;
                };
                let frame = header.len + header.payload;
                if end - start < frame {
                    break frame;
                }
                let payload = &buf[start + header.len..start + frame];
                start += frame;
                if self.frame(&header, payload)? {
                    return Ok(self.report);
                }
            };
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
            if buf.len() < needed {
                buf.resize(needed, 0);
            }
            let n = tokio::time::timeout(STALL, stream.read(&mut buf[end..]))
                .await
                .map_err(|_| io::Error::other("stalled: a subscriber waits for data"))??;
            if n == 0 {
                return Err(io::Error::other("the server closed a subscriber"));
            }
            end += n;
        }
    }

    /// Handles one frame; true once the last message came.
    fn frame(&mut self, header: &FrameHead, payload: &[u8]) -> io::Result<bool> {
        match header.opcode {
            0x1 | 0x2 if header.fin => self.message(payload, header.rsv1),
            0x1 | 0x2 => {
                self.fragments.clear();
                self.fragments.extend_from_slice(payload);
                self.fragments_compressed = header.rsv1;
                Ok(false)
            }
            0x0 => {
                self.fragments.extend_from_slice(payload);
                if !header.fin {
                    return Ok(false);
                }
                let message = std::mem::take(&mut self.fragments);
                let last = self.message(&message, self.fragments_compressed);
                self.fragments = message;
                last
            }
            0x8 => Err(io::Error::other("the server closed a subscriber")),
            // Pings and Pongs: none are expected, and none matter.
            _ => Ok(false),
        }
    }

    /// Checks one message; true once the last message came.
    fn message(&mut self, payload: &[u8], compressed: bool) -> io::Result<bool> {
        let message = if compressed {
            let inflater = self
                .inflater
                .as_mut()
                .ok_or_else(|| io::Error::other("a compressed message without deflate"))?;
            self.inflated.clear();
            // Bytes a subscriber inflated lately: copied, not inflated again.
            let known = INFLATED.with_borrow(|recent| {
                match recent.iter().find(|(compressed, _)| compressed == payload) {
                    Some((_, inflated)) => {
                        self.inflated.extend_from_slice(inflated);
                        true
                    }
                    None => false,
                }
            });
            for input in [payload, &SYNC_TAIL].into_iter().filter(|_| !known) {
                let before = inflater.total_in();
                inflater
                    .decompress_vec(input, &mut self.inflated, flate2::FlushDecompress::Sync)
                    .map_err(io::Error::other)?;
                if inflater.total_in() - before != input.len() as u64 {
                    return Err(io::Error::other("a message inflates past its size"));
                }
            }
            if !known {
                INFLATED.with_borrow_mut(|recent| {
                    if recent.len() == INFLATED_KEPT {
                        recent.pop_front();
                    }
                    recent.push_back((payload.to_vec(), self.inflated.clone()));
                });
            }
            &self.inflated[..]
        } else {
            if self.json {
                return Err(io::Error::other("a message came uncompressed"));
            }
            payload
        };
        let (seq, sent_ns) = read_message(message, self.size, self.json)?;
        if compressed && seq != SYNC {
            self.report.compressed += 1;
        }
        match seq {
            SYNC if self.next == 0 => {
                if !self.synced {
                    self.synced = true;
                    self.shared.synced.fetch_add(1, Relaxed);
                    self.shared.progress.notify_one();
                }
            }
            STOP if self.next > 0 => return Ok(true),
            seq if seq == self.next => {
                let latency = self.shared.now_ns().saturating_sub(sent_ns);
                self.report
                    .latencies
                    .push(u32::try_from(latency).unwrap_or(u32::MAX));
                self.next += 1;
                let slot = &self.shared.pending[(seq % self.shared.pending.len() as u64) as usize];
                if slot.fetch_sub(1, Relaxed) == 1 {
                    self.shared.progress.notify_one();
                }
            }
            seq => {
                return Err(io::Error::other(format!(
                    "message {seq} came when {} was next",
                    self.next
                )));
            }
        }
        Ok(false)
    }
}

/// A server frame's header (RFC 6455 §5.2).
struct FrameHead {
    fin: bool,
    rsv1: bool,
    opcode: u8,
    len: usize,
    payload: usize,
}

impl FrameHead {
    /// `None` until the header is whole.
    fn parse(b: &[u8]) -> Option<Self> {
        let (&first, &second) = (b.first()?, b.get(1)?);
        // RFC 6455 §5.1: a server does not mask.
        assert_eq!(second & 0x80, 0, "a masked server frame");
        let (len, payload) = match second & 0x7f {
            126 => (
                4,
                usize::from(u16::from_be_bytes(b.get(2..4)?.try_into().ok()?)),
            ),
            127 => (
                10,
                u64::from_be_bytes(b.get(2..10)?.try_into().ok()?) as usize,
            ),
            n => (2, usize::from(n)),
        };
        Some(Self {
            fin: first & 0x80 != 0,
            rsv1: first & 0x40 != 0,
            opcode: first & 0x0f,
            len,
            payload,
        })
    }
}

/// On-CPU time of every thread of process `pid`, in ns (`/proc/PID/task/*/schedstat`).
fn cpu_ns(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("the server's /proc entry")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Runs every shape for every implementation, `rounds` times, in turns (each round starts
/// with the next implementation, so none always runs first after a slow spell), and prints
/// the medians.
fn bench(
    runtime: &tokio::runtime::Runtime,
    shapes: &[Shape],
    libs: &[Lib],
    rounds: usize,
    settings: &Settings,
) {
    let deflate = shapes.iter().any(|s| s.deflate);
    print!("| shape | implementation | deliveries/s | server CPU µs/delivery | p99 latency ms |");
    if deflate {
        print!(" deflate runs/message |");
    }
    println!(" deliveries/s: wsproto ÷ this | CPU/delivery: this ÷ wsproto |");
    println!(
        "|---|---|---:|---:|---:|{}---:|---:|",
        if deflate { "---:|" } else { "" }
    );
    for shape in shapes {
        let mut samples: Vec<Vec<Sample>> = libs.iter().map(|_| Vec::new()).collect();
        for round in 0..rounds {
            for turn in 0..libs.len() {
                let i = (round + turn) % libs.len();
                let sample = run(runtime, libs[i], shape, settings)
                    .unwrap_or_else(|e| panic!("{} at {}: {e}", libs[i].name(), shape.label));
                samples[i].push(sample);
            }
        }
        let medians: Vec<[f64; 4]> = samples
            .iter()
            .map(|runs| {
                let of =
                    |f: fn(&Sample) -> f64| median(&mut runs.iter().map(f).collect::<Vec<_>>());
                [
                    of(|s| s.deliveries_per_sec),
                    of(|s| s.cpu_us_per_delivery),
                    of(|s| s.p99_us),
                    of(|s| s.deflates_per_message.unwrap_or(f64::NAN)),
                ]
            })
            .collect();
        let ours = medians[libs
            .iter()
            .position(|&l| l == Lib::Wsproto)
            .expect("wsproto")];
        for (lib, [rate, cpu, p99, deflates]) in libs.iter().zip(&medians) {
            print!(
                "| {} | {} | {rate:.0} | {cpu:.2} | {:.2} |",
                shape.label,
                lib.name(),
                p99 / 1e3
            );
            if deflate {
                print!(" {deflates:.0} |");
            }
            println!(" {:.2}x | {:.2}x |", ours[0] / rate, cpu / ours[1]);
        }
    }
}
