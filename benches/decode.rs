//! Decoding: every implementation (tungstenite, fastwebsockets, tokio-websockets, sockudo-ws
//! and ours) reads the same pre-encoded stream from an in-memory socket that returns at most
//! 64 KiB per read, through its complete-message API, text validated.
//!
//! `cargo bench -p wsproto-benches --bench decode`

mod common;

use common::{
    FASTWEBSOCKETS, LIMIT, MAX_READ, MemSocket, OP_BINARY, OP_TEXT, OURS, Rng, SOCKUDO_WS, Sender,
    TOKIO_WEBSOCKETS, TUNGSTENITE,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures_util::StreamExt as _;
use std::hint::black_box;

/// Our streaming receive's name in the results.
const STREAMING: &str = "wsproto-streaming";

/// One decode case: `count` messages of `size` bytes, as the peer `sender` frames them.
struct Case {
    name: &'static str,
    sender: Sender,
    opcode: u8,
    count: usize,
    size: usize,
    multibyte: bool,
    fragment: Option<usize>,
    /// Also time a memcpy of the stream through a 64 KiB buffer.
    memcpy: bool,
    /// Also time our streaming receive (`Config::stream_messages`).
    streaming: bool,
}

const CASES: &[Case] = &[
    Case {
        name: "server_text_16B_x100000",
        sender: Sender::Client,
        opcode: OP_TEXT,
        count: 100_000,
        size: 16,
        multibyte: false,
        fragment: None,
        memcpy: false,
        streaming: false,
    },
    Case {
        name: "server_binary_1KiB_x20000",
        sender: Sender::Client,
        opcode: OP_BINARY,
        count: 20_000,
        size: 1 << 10,
        multibyte: false,
        fragment: None,
        memcpy: false,
        streaming: false,
    },
    Case {
        name: "server_binary_64KiB_x1000",
        sender: Sender::Client,
        opcode: OP_BINARY,
        count: 1_000,
        size: 64 << 10,
        multibyte: false,
        fragment: None,
        memcpy: true,
        streaming: false,
    },
    Case {
        name: "server_binary_1MiB_x64",
        sender: Sender::Client,
        opcode: OP_BINARY,
        count: 64,
        size: 1 << 20,
        multibyte: false,
        fragment: None,
        memcpy: true,
        streaming: true,
    },
    Case {
        name: "server_binary_64MiB_x2",
        sender: Sender::Client,
        opcode: OP_BINARY,
        count: 2,
        size: 64 << 20,
        multibyte: false,
        fragment: None,
        memcpy: true,
        streaming: true,
    },
    Case {
        name: "server_text_1MiB_multibyte_x64",
        sender: Sender::Client,
        opcode: OP_TEXT,
        count: 64,
        size: 1 << 20,
        multibyte: true,
        fragment: None,
        memcpy: false,
        streaming: true,
    },
    Case {
        name: "server_binary_1MiB_in_1KiB_fragments_x64",
        sender: Sender::Client,
        opcode: OP_BINARY,
        count: 64,
        size: 1 << 20,
        multibyte: false,
        fragment: Some(1 << 10),
        memcpy: false,
        streaming: false,
    },
    Case {
        name: "client_binary_1KiB_x20000",
        sender: Sender::Server,
        opcode: OP_BINARY,
        count: 20_000,
        size: 1 << 10,
        multibyte: false,
        fragment: None,
        memcpy: false,
        streaming: false,
    },
    Case {
        name: "client_binary_1MiB_x64",
        sender: Sender::Server,
        opcode: OP_BINARY,
        count: 64,
        size: 1 << 20,
        multibyte: false,
        fragment: None,
        memcpy: true,
        streaming: true,
    },
];

fn messages(case: &Case, rng: &mut Rng) -> Vec<Vec<u8>> {
    (0..case.count)
        .map(|_| match (case.opcode, case.multibyte) {
            (OP_TEXT, true) => common::multibyte_text(rng, case.size),
            (OP_TEXT, false) => common::ascii_text(rng, case.size),
            _ => rng.bytes(case.size),
        })
        .collect()
}

// ----- the implementations: each returns the payload bytes it was handed ---------------------

fn tungstenite(stream: &[u8], sender: Sender, count: usize) -> usize {
    use tungstenite::protocol::{Message, Role, WebSocket, WebSocketConfig};
    let role = match sender {
        Sender::Client => Role::Server,
        Sender::Server => Role::Client,
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(LIMIT))
        .max_frame_size(Some(LIMIT));
    let mut ws = WebSocket::from_raw_socket(MemSocket::new(stream), role, Some(config));
    let mut bytes = 0;
    for _ in 0..count {
        bytes += match ws.read().expect("a valid stream") {
            Message::Text(text) => black_box(text).len(),
            Message::Binary(data) => black_box(data).len(),
            other => panic!("unexpected {other:?}"),
        };
    }
    bytes
}

fn fastwebsockets(
    rt: &tokio::runtime::Runtime,
    stream: &[u8],
    sender: Sender,
    count: usize,
) -> usize {
    use fastwebsockets::{FragmentCollector, OpCode, Role, WebSocket};
    let role = match sender {
        Sender::Client => Role::Server,
        Sender::Server => Role::Client,
    };
    rt.block_on(async {
        let mut ws = WebSocket::after_handshake(MemSocket::new(stream), role);
        ws.set_max_message_size(LIMIT);
        let mut ws = FragmentCollector::new(ws);
        let mut bytes = 0;
        for _ in 0..count {
            let frame = ws.read_frame().await.expect("a valid stream");
            assert!(matches!(frame.opcode, OpCode::Text | OpCode::Binary));
            bytes += black_box(&frame.payload[..]).len();
        }
        bytes
    })
}

fn tokio_websockets(
    rt: &tokio::runtime::Runtime,
    stream: &[u8],
    sender: Sender,
    count: usize,
) -> usize {
    use tokio_websockets::{ClientBuilder, Limits, ServerBuilder};
    rt.block_on(async {
        let limits = Limits::default().max_payload_len(Some(LIMIT));
        let socket = MemSocket::new(stream);
        let mut ws = match sender {
            Sender::Client => ServerBuilder::new().limits(limits).serve(socket),
            Sender::Server => ClientBuilder::new().limits(limits).take_over(socket),
        };
        let mut bytes = 0;
        for _ in 0..count {
            let message = ws.next().await.expect("more").expect("a valid stream");
            bytes += match message.as_text() {
                Some(text) => black_box(text).len(),
                None => black_box(&message.as_payload()[..]).len(),
            };
        }
        bytes
    })
}

fn sockudo_ws(rt: &tokio::runtime::Runtime, stream: &[u8], sender: Sender, count: usize) -> usize {
    use sockudo_ws::{Config, Message, WebSocketStream};
    // Its timers (idle timeout, keepalive Ping, Pong deadline) off, as the others have none
    // running here; UTF-8 validation on, as for everyone.
    let config = Config::builder()
        .max_message_size(LIMIT)
        .max_frame_size(LIMIT)
        .idle_timeout(0)
        .auto_ping(false)
        .build();
    rt.block_on(async {
        let socket = MemSocket::new(stream);
        let mut ws = match sender {
            Sender::Client => WebSocketStream::server(socket, config),
            Sender::Server => WebSocketStream::client(socket, config),
        };
        let mut bytes = 0;
        for _ in 0..count {
            bytes += match ws.next().await.expect("more").expect("a valid stream") {
                Message::Text(text) => black_box(&text[..]).len(),
                Message::Binary(data) => black_box(&data[..]).len(),
                other => panic!("unexpected {other:?}"),
            };
        }
        bytes
    })
}

/// The reference: the stream copied through a 64 KiB buffer, as a proxy that only forwards.
fn memcpy(stream: &[u8], buf: &mut [u8]) -> usize {
    let mut socket = MemSocket::new(stream);
    let mut total = 0;
    loop {
        let n = socket.read_into(buf);
        if n == 0 {
            return total;
        }
        total += black_box(&buf[..n]).len();
    }
}

/// The least any decoder that hands over whole messages can do: each read copied into a
/// buffer the size of a message (which, at 1 MiB, no longer fits in L2 as the 64 KiB
/// buffer of `memcpy` does) and, for masked frames, unmasked there. Frame headers are
/// treated as payload; the stream's length is what counts.
fn copy_into_messages(stream: &[u8], message: &mut [u8], masked: bool) -> usize {
    let mut socket = MemSocket::new(stream);
    let (mut total, mut at) = (0, 0);
    loop {
        if message.len() - at < MAX_READ {
            at = 0;
        }
        let n = socket.read_into(&mut message[at..]);
        if n == 0 {
            return total;
        }
        if masked {
            wsproto::internals::apply_mask(&mut message[at..at + n], [0x5a, 0x3c, 0x96, 0x0f], 0);
        }
        total += black_box(&message[at..at + n]).len();
        at += n;
    }
}

/// A cross-check of criterion's ratios on a noisy machine: the implementations take turns,
/// one run each per round, so a slow spell of the machine hits all of them alike; prints the
/// median time of each and its ratio to ours, and writes them to
/// `wsproto-bench/interleaved/CASE.tsv` (name, median seconds, payload bytes) for
/// `benches/table.py`.
/// `DECODE_INTERLEAVED=1 cargo bench -p wsproto-benches --bench decode`
fn interleaved(case: &Case, runs: &[(&str, &dyn Fn() -> usize)], expected: usize) {
    const ROUNDS: usize = 41;
    let mut times = vec![Vec::with_capacity(ROUNDS); runs.len()];
    for _ in 0..ROUNDS {
        for (i, (_, run)) in runs.iter().enumerate() {
            let start = std::time::Instant::now();
            black_box(run());
            times[i].push(start.elapsed().as_secs_f64());
        }
    }
    let medians: Vec<f64> = times
        .iter_mut()
        .map(|t| {
            t.sort_by(f64::total_cmp);
            t[ROUNDS / 2]
        })
        .collect();
    println!("interleaved {}", case.name);
    let mut tsv = String::new();
    for ((name, _), median) in runs.iter().zip(&medians) {
        let gib_s = expected as f64 / median / f64::from(1 << 30);
        let ours_vs = median / medians[0];
        println!("  {name:<20} {gib_s:>8.2} GiB/s  ours is {ours_vs:.2}x");
        tsv.push_str(&format!("{name}\t{median:e}\t{expected}\n"));
    }
    let dir = common::results_dir().join("interleaved");
    std::fs::create_dir_all(&dir).expect("create the interleaved results directory");
    std::fs::write(dir.join(format!("{}.tsv", case.name)), tsv)
        .expect("write the interleaved medians");
}

fn bench_decode(c: &mut Criterion) {
    let rt = common::runtime();
    let filter: Option<String> = std::env::var("DECODE_CASE").ok();
    for case in CASES {
        if filter.as_deref().is_some_and(|f| !case.name.contains(f)) {
            continue;
        }
        let mut rng = Rng::new(0x5eed ^ case.size as u64);
        let payloads = messages(case, &mut rng);
        let expected: usize = payloads.iter().map(Vec::len).sum();
        let stream = common::encode_stream(
            &mut rng.clone(),
            case.sender,
            case.opcode,
            &payloads,
            case.fragment,
        );
        // Text validation costs what decoding the same bytes as binary does not.
        let as_binary = (case.opcode == OP_TEXT && case.multibyte).then(|| {
            common::encode_stream(
                &mut rng.clone(),
                case.sender,
                OP_BINARY,
                &payloads,
                case.fragment,
            )
        });
        drop(payloads);

        // Everyone must hand over every byte before being timed.
        let (s, n) = (&stream[..], case.count);
        assert_eq!(
            common::decode_wsproto(s, case.sender, n, false),
            expected,
            "{OURS}"
        );
        assert_eq!(tungstenite(s, case.sender, n), expected, "{TUNGSTENITE}");
        assert_eq!(
            fastwebsockets(&rt, s, case.sender, n),
            expected,
            "{FASTWEBSOCKETS}"
        );
        assert_eq!(
            tokio_websockets(&rt, s, case.sender, n),
            expected,
            "{TOKIO_WEBSOCKETS}"
        );
        assert_eq!(sockudo_ws(&rt, s, case.sender, n), expected, "{SOCKUDO_WS}");
        if case.streaming {
            assert_eq!(
                common::decode_wsproto(s, case.sender, n, true),
                expected,
                "{STREAMING}"
            );
        }

        if std::env::var_os("DECODE_INTERLEAVED").is_some() {
            let masked = case.sender == Sender::Client;
            let ours = || common::decode_wsproto(s, case.sender, n, false);
            let tungstenite = || tungstenite(s, case.sender, n);
            let fastwebsockets = || fastwebsockets(&rt, s, case.sender, n);
            let tokio_websockets = || tokio_websockets(&rt, s, case.sender, n);
            let sockudo_ws = || sockudo_ws(&rt, s, case.sender, n);
            let memcpy = || memcpy(s, &mut vec![0; MAX_READ]);
            let copy = || copy_into_messages(s, &mut vec![0; case.size + MAX_READ], masked);
            let streaming = || common::decode_wsproto(s, case.sender, n, true);
            let mut runs: Vec<(&str, &dyn Fn() -> usize)> = vec![
                (OURS, &ours),
                (TUNGSTENITE, &tungstenite),
                (FASTWEBSOCKETS, &fastwebsockets),
                (TOKIO_WEBSOCKETS, &tokio_websockets),
                (SOCKUDO_WS, &sockudo_ws),
                ("memcpy-64KiB-reads", &memcpy),
                ("copy-into-messages", &copy),
            ];
            if case.streaming {
                runs.push((STREAMING, &streaming));
            }
            interleaved(case, &runs, expected);
            continue;
        }

        let mut group = c.benchmark_group(format!("decode_{}", case.name));
        group.throughput(Throughput::Bytes(expected as u64));
        group.bench_function(OURS, |b| {
            b.iter(|| common::decode_wsproto(s, case.sender, n, false))
        });
        group.bench_function(TUNGSTENITE, |b| b.iter(|| tungstenite(s, case.sender, n)));
        group.bench_function(FASTWEBSOCKETS, |b| {
            b.iter(|| fastwebsockets(&rt, s, case.sender, n))
        });
        group.bench_function(TOKIO_WEBSOCKETS, |b| {
            b.iter(|| tokio_websockets(&rt, s, case.sender, n))
        });
        group.bench_function(SOCKUDO_WS, |b| {
            b.iter(|| sockudo_ws(&rt, s, case.sender, n))
        });
        if let Some(binary) = &as_binary {
            group.bench_function("wsproto-same-bytes-as-binary", |b| {
                b.iter(|| common::decode_wsproto(binary, case.sender, n, false))
            });
        }
        if case.streaming {
            group.bench_function(STREAMING, |b| {
                b.iter(|| common::decode_wsproto(s, case.sender, n, true))
            });
        }
        if case.memcpy {
            let mut buf = vec![0; MAX_READ];
            group.bench_function("memcpy-64KiB-reads", |b| b.iter(|| memcpy(s, &mut buf)));
            let masked = case.sender == Sender::Client;
            let mut message = vec![0; case.size + MAX_READ];
            group.bench_function("copy-into-messages", |b| {
                b.iter(|| copy_into_messages(s, &mut message, masked))
            });
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = bench_decode
}
criterion_main!(benches);
