//! Encoding (tungstenite, fastwebsockets, tokio-websockets, sockudo-ws and ours): one binary
//! message queued and handed to an in-memory socket, as a client (masked,
//! RFC 6455 §5.3) and as a server, 16 B to 1 MiB. Each iteration sends a batch of messages so
//! that runtime overhead does not dominate small ones. Every implementation's output is copied
//! once into the in-memory socket, as a `write` to a real one copies it into the kernel (so
//! writing the payload with `writev` from the caller's buffer still counts one copy).
//!
//! `cargo bench -p wsproto-benches --bench encode`

mod common;

use bytes::Bytes;
use common::{FASTWEBSOCKETS, MemSocket, OURS, Rng, SOCKUDO_WS, TOKIO_WEBSOCKETS, TUNGSTENITE};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures_util::SinkExt as _;
use wsproto::{Config, Connection};

const SIZES: &[(&str, usize)] = &[
    ("16B", 16),
    ("1KiB", 1 << 10),
    ("64KiB", 64 << 10),
    ("1MiB", 1 << 20),
];

/// Messages per iteration.
fn batch(size: usize) -> usize {
    ((1 << 20) / size).clamp(1, 4096)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Client,
    Server,
}

fn wsproto(conn: &mut Connection, socket: &mut MemSocket<'_>, payload: &[u8], k: usize) -> usize {
    for _ in 0..k {
        // A server's payload is written from `payload` itself after the queued header (a
        // vectored write on a socket); a client's is masked into the output.
        let mut sender = conn.sender();
        sender.send_binary_borrowed(payload).expect("open");
        let n = socket.take(sender.pending_output());
        sender.consume_output(n);
    }
    socket.written
}

fn bench_encode(c: &mut Criterion) {
    let rt = common::runtime();
    let mut rng = Rng::new(7);
    for role in [Role::Client, Role::Server] {
        for &(label, size) in SIZES {
            let payload = rng.bytes(size);
            let shared = Bytes::from(payload.clone());
            let k = batch(size);
            let name = match role {
                Role::Client => "client_masked",
                Role::Server => "server",
            };
            let mut group = c.benchmark_group(format!("encode_{name}_{label}"));
            group.throughput(Throughput::Bytes((size * k) as u64));

            // Ours, with the OS generator for masking keys, as the drivers use.
            let mut conn = match role {
                Role::Client => Connection::upgraded_client(Config::default(), |d: &mut [u8]| {
                    getrandom::fill(d).expect("OS entropy")
                }),
                Role::Server => Connection::upgraded_server(Config::default()),
            };
            let mut socket = MemSocket::new(&[]);
            group.bench_function(OURS, |b| {
                b.iter(|| wsproto(&mut conn, &mut socket, &payload, k))
            });

            {
                use tungstenite::protocol::{Message, Role as R, WebSocket};
                let r = if role == Role::Client {
                    R::Client
                } else {
                    R::Server
                };
                let mut ws = WebSocket::from_raw_socket(MemSocket::new(&[]), r, None);
                group.bench_function(TUNGSTENITE, |b| {
                    b.iter(|| {
                        for _ in 0..k {
                            ws.send(Message::Binary(shared.clone())).expect("sent");
                        }
                        ws.get_ref().written
                    })
                });
            }
            {
                use fastwebsockets::{Frame, Payload, Role as R, WebSocket};
                let r = if role == Role::Client {
                    R::Client
                } else {
                    R::Server
                };
                let mut ws = WebSocket::after_handshake(MemSocket::new(&[]), r);
                group.bench_function(FASTWEBSOCKETS, |b| {
                    b.iter(|| {
                        rt.block_on(async {
                            for _ in 0..k {
                                let frame = Frame::binary(Payload::Borrowed(&payload));
                                ws.write_frame(frame).await.expect("sent");
                            }
                        })
                    })
                });
            }
            {
                use tokio_websockets::{ClientBuilder, Message, ServerBuilder};
                let mut ws = match role {
                    Role::Client => ClientBuilder::new().take_over(MemSocket::new(&[])),
                    Role::Server => ServerBuilder::new().serve(MemSocket::new(&[])),
                };
                group.bench_function(TOKIO_WEBSOCKETS, |b| {
                    b.iter(|| {
                        rt.block_on(async {
                            for _ in 0..k {
                                ws.send(Message::binary(shared.clone()))
                                    .await
                                    .expect("sent");
                            }
                        })
                    })
                });
            }
            {
                use sockudo_ws::{Config, Message, WebSocketStream};
                // Its timers off, as the others have none running here.
                let config = Config::builder().idle_timeout(0).auto_ping(false).build();
                let mut ws = match role {
                    Role::Client => WebSocketStream::client(MemSocket::new(&[]), config),
                    Role::Server => WebSocketStream::server(MemSocket::new(&[]), config),
                };
                group.bench_function(SOCKUDO_WS, |b| {
                    b.iter(|| {
                        rt.block_on(async {
                            for _ in 0..k {
                                ws.send(Message::Binary(shared.clone()))
                                    .await
                                    .expect("sent");
                            }
                        })
                    })
                });
            }
            group.finish();
        }
    }
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = bench_encode
}
criterion_main!(benches);
