//! Broadcast in process (issue 17, bench (a)): one message to 10,000 server connections, for
//! each implementation's idiomatic broadcast, 16 B, 1 KiB and 64 KiB. Prints the nanoseconds
//! of CPU per delivery (one thread, so wall time is CPU time) and the bytes allocated per
//! delivery (a counting global allocator), medians over interleaved rounds, and each peer's
//! ratio to ours.
//!
//! Every connection writes its frame into an in-memory socket that copies the bytes once, as
//! a `write` to a real socket copies them into the kernel, into one scratch buffer shared by
//! all (a kernel's socket buffers are not the application's heap).
//!
//! - wsproto: one `PreparedMessage` per round; each connection lends its frame
//!   (`Sender::send_prepared`) and the socket takes it.
//! - tungstenite: one `Bytes` per round, `Message::Binary(bytes.clone())` per connection.
//! - fastwebsockets: `Frame::binary(Payload::Borrowed(..))` per connection.
//! - tokio-websockets: one `Bytes` per round, `Message::binary(bytes.clone())` per connection.
//! - sockudo-ws: one `Bytes` per round, `Message::Binary(bytes.clone())` per connection, sent
//!   through its `Sink`. It has no pre-framed message: its `PubSub` hands each subscriber a
//!   `Message` clone (a shared `Bytes`) and each connection frames it, which is this loop
//!   without the channel.
//!
//! - floor: no library, each socket takes one frame framed beforehand: the least any
//!   implementation can spend per delivery here.
//!
//! `cargo run --release -p wsproto-benches --example broadcast [-- --connections N --rounds R]`

use bytes::Bytes;
use futures_util::SinkExt as _;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use wsproto::{Config, Connection, PreparedMessage};

struct Counting;

static ALLOCATED: AtomicU64 = AtomicU64::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract holds as it does for `System`; the counter only observes sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size() as u64, Relaxed);
        // SAFETY: forwarded as received.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as received.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATED.fetch_add(new_size.saturating_sub(layout.size()) as u64, Relaxed);
        // SAFETY: forwarded as received.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

thread_local! {
    /// Where every socket's writes are copied: the kernel's side of a `write`.
    static KERNEL: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(1 << 20));
    /// Bytes all sockets took, to check that every connection got every frame.
    static WRITTEN: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// A server connection's socket: writes are copied once into [`KERNEL`] and counted.
#[derive(Debug, Default)]
struct Socket;

impl Socket {
    fn take<'b>(&self, bufs: impl IntoIterator<Item = &'b [u8]>) -> usize {
        KERNEL.with(|kernel| {
            let mut kernel = kernel.borrow_mut();
            kernel.clear();
            for buf in bufs {
                kernel.extend_from_slice(buf);
            }
            std::hint::black_box(&mut *kernel);
            WRITTEN.with(|w| w.set(w.get() + kernel.len() as u64));
            kernel.len()
        })
    }
}

impl io::Read for Socket {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::ErrorKind::WouldBlock.into())
    }
}

impl io::Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(self.take([buf]))
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        Ok(self.take(bufs.iter().map(|b| &b[..])))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        _: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Poll::Pending
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(self.get_mut().take([buf])))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(self.get_mut().take(bufs.iter().map(|b| &b[..]))))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// One implementation's 10,000 connections, and how it broadcasts one message to them.
enum Fleet {
    Ours(Vec<(Connection, Socket)>),
    Tungstenite(Vec<tungstenite::WebSocket<Socket>>),
    Fastwebsockets(Vec<fastwebsockets::WebSocket<Socket>>),
    TokioWebsockets(Vec<tokio_websockets::WebSocketStream<Socket>>),
    Sockudo(Vec<sockudo_ws::WebSocketStream<Socket>>),
    /// No library: each socket takes the frame framed once beforehand. What every
    /// implementation pays at least: the per-connection loop and the socket's copy.
    Floor(Vec<Socket>),
}

impl Fleet {
    fn name(&self) -> &'static str {
        match self {
            Self::Ours(_) => "wsproto",
            Self::Tungstenite(_) => "tungstenite",
            Self::Fastwebsockets(_) => "fastwebsockets",
            Self::TokioWebsockets(_) => "tokio-websockets",
            Self::Sockudo(_) => "sockudo-ws",
            Self::Floor(_) => "floor (sockets alone)",
        }
    }

    /// Bytes each connection takes inline in the fleet's vector (what it points to on the
    /// heap not counted): the stride a broadcast walks through memory.
    fn connection_size(&self) -> usize {
        match self {
            Self::Ours(_) => size_of::<(Connection, Socket)>(),
            Self::Tungstenite(_) => size_of::<tungstenite::WebSocket<Socket>>(),
            Self::Fastwebsockets(_) => size_of::<fastwebsockets::WebSocket<Socket>>(),
            Self::TokioWebsockets(_) => size_of::<tokio_websockets::WebSocketStream<Socket>>(),
            Self::Sockudo(_) => size_of::<sockudo_ws::WebSocketStream<Socket>>(),
            Self::Floor(_) => size_of::<Socket>(),
        }
    }

    fn new(which: usize, n: usize) -> Self {
        match which {
            0 => Self::Ours(
                (0..n)
                    .map(|_| (Connection::upgraded_server(Config::default()), Socket))
                    .collect(),
            ),
            1 => Self::Tungstenite(
                (0..n)
                    .map(|_| {
                        tungstenite::WebSocket::from_raw_socket(
                            Socket,
                            tungstenite::protocol::Role::Server,
                            None,
                        )
                    })
                    .collect(),
            ),
            2 => Self::Fastwebsockets(
                (0..n)
                    .map(|_| {
                        fastwebsockets::WebSocket::after_handshake(
                            Socket,
                            fastwebsockets::Role::Server,
                        )
                    })
                    .collect(),
            ),
            3 => Self::TokioWebsockets(
                (0..n)
                    .map(|_| tokio_websockets::ServerBuilder::new().serve(Socket))
                    .collect(),
            ),
            5 => Self::Floor((0..n).map(|_| Socket).collect()),
            _ => Self::Sockudo(
                (0..n)
                    .map(|_| {
                        sockudo_ws::WebSocketStream::server(Socket, sockudo_ws::Config::default())
                    })
                    .collect(),
            ),
        }
    }

    /// Sends `payload` as one binary message to every connection, as the implementation's
    /// broadcast does (the shared message made once, inside the measurement).
    fn broadcast(&mut self, rt: &tokio::runtime::Runtime, payload: &[u8]) {
        match self {
            Self::Ours(fleet) => {
                let message = PreparedMessage::binary(payload);
                for (conn, socket) in fleet {
                    let mut sender = conn.sender();
                    sender.send_prepared(&message).expect("open");
                    let n = socket.take(sender.pending_output());
                    sender.consume_output(n);
                }
            }
            Self::Tungstenite(fleet) => {
                let shared = Bytes::copy_from_slice(payload);
                for ws in fleet {
                    ws.send(tungstenite::Message::Binary(shared.clone()))
                        .expect("sent");
                }
            }
            Self::Fastwebsockets(fleet) => rt.block_on(async {
                for ws in fleet {
                    let frame =
                        fastwebsockets::Frame::binary(fastwebsockets::Payload::Borrowed(payload));
                    ws.write_frame(frame).await.expect("sent");
                }
            }),
            Self::TokioWebsockets(fleet) => rt.block_on(async {
                let shared = Bytes::copy_from_slice(payload);
                for ws in fleet {
                    ws.send(tokio_websockets::Message::binary(shared.clone()))
                        .await
                        .expect("sent");
                }
            }),
            Self::Floor(sockets) => {
                let message = PreparedMessage::binary(payload);
                for socket in sockets {
                    socket.take([message.frame()]);
                }
            }
            Self::Sockudo(fleet) => rt.block_on(async {
                let shared = Bytes::copy_from_slice(payload);
                for ws in fleet {
                    ws.send(sockudo_ws::Message::Binary(shared.clone()))
                        .await
                        .expect("sent");
                }
            }),
        }
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut connections, mut rounds) = (10_000usize, 15usize);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .and_then(|v| v.parse().ok())
            .expect("a number after each flag");
        match flag.as_str() {
            "--connections" => connections = value,
            "--rounds" => rounds = value,
            other => panic!("unknown flag {other}"),
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    println!("broadcast in process: {connections} connections, {rounds} rounds, medians");
    println!(
        "| size | implementation | ns per delivery | bytes allocated per delivery | ns vs wsproto | connection bytes |"
    );
    println!("|---|---|---:|---:|---:|---:|");
    for (label, size) in [("16 B", 16), ("1 KiB", 1 << 10), ("64 KiB", 64 << 10)] {
        let mut fleets: Vec<Fleet> = (0..6).map(|i| Fleet::new(i, connections)).collect();
        let payload: Vec<u8> = (0..size).map(|i| (i * 7 + 3) as u8).collect();
        let frame = (size
            + if size < 126 {
                2
            } else if size < 65536 {
                4
            } else {
                10
            }) as u64;
        // One round each to warm up (buffers grow to the frame size), not measured.
        for fleet in &mut fleets {
            fleet.broadcast(&rt, &payload);
        }
        let mut ns = vec![Vec::new(); fleets.len()];
        let mut bytes = vec![Vec::new(); fleets.len()];
        for _ in 0..rounds {
            // Interleaved: a slow spell of the shared machine hits every implementation.
            for (i, fleet) in fleets.iter_mut().enumerate() {
                let allocated = ALLOCATED.load(Relaxed);
                let written = WRITTEN.with(std::cell::Cell::get);
                let start = Instant::now();
                fleet.broadcast(&rt, &payload);
                let elapsed = start.elapsed();
                assert_eq!(
                    WRITTEN.with(std::cell::Cell::get) - written,
                    frame * connections as u64,
                    "{}: every connection got the frame",
                    fleet.name()
                );
                ns[i].push(elapsed.as_nanos() as f64 / connections as f64);
                bytes[i].push((ALLOCATED.load(Relaxed) - allocated) as f64 / connections as f64);
            }
        }
        let ours = median(&mut ns[0].clone());
        for (i, fleet) in fleets.iter().enumerate() {
            let n = median(&mut ns[i]);
            let b = median(&mut bytes[i]);
            println!(
                "| {label} | {} | {n:.1} | {b:.1} | {:.2}x | {} |",
                fleet.name(),
                n / ours,
                fleet.connection_size()
            );
        }
    }
}
