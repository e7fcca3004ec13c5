//! Fixed work on the core's hot paths, for counting instructions instead of timing them: on a
//! shared machine one timing run of a row can land 1.5x from the next, while callgrind's count
//! for the same binary and arguments is the same every time.
//!
//! ```text
//! hot_loops decode COUNT SIZE server|client text|multibyte|binary REPS [streamed]
//! hot_loops encode COUNT SIZE server|client REPS
//! ```
//!
//! `decode` builds a stream of COUNT messages of SIZE bytes (masked when a client sent them)
//! and decodes it REPS times with the decode bench's own loop (`common::decode_wsproto`),
//! as whole messages or, with `streamed`, in chunks (`Config::stream_messages`);
//! `encode` queues and consumes COUNT messages REPS times. Building the stream costs the same
//! on both sides of an A/B, so take the difference of two REPS values:
//!
//! ```text
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/hot_loops decode 20000 1024 server binary 3
//! # minus the same with REPS 1, halved: the instructions of one decode of the stream
//! ```

#[path = "../common/mod.rs"]
mod common;

use common::{OP_BINARY, OP_TEXT, Rng, Sender};
use std::hint::black_box;
use wsproto::Connection;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: hot_loops decode COUNT SIZE server|client text|multibyte|binary REPS [streamed]\n       \
                 hot_loops encode COUNT SIZE server|client REPS";
    let number = |i: usize| -> usize {
        let arg = args.get(i).unwrap_or_else(|| panic!("{usage}"));
        arg.parse()
            .unwrap_or_else(|_| panic!("{arg}: not a number\n{usage}"))
    };
    let (count, size) = (number(1), number(2));
    let server = match args.get(3).map(String::as_str) {
        Some("server") => true,
        Some("client") => false,
        _ => panic!("{usage}"),
    };
    let total: usize = match args.first().map(String::as_str) {
        Some("decode") => {
            // `text` is ASCII, `multibyte` text of 1- to 4-byte code points.
            let (text, multibyte) = match args.get(4).map(String::as_str) {
                Some("text") => (true, false),
                Some("multibyte") => (true, true),
                Some("binary") => (false, false),
                _ => panic!("{usage}"),
            };
            // The peer of a decoding server is a client, whose frames are masked.
            let sender = if server {
                Sender::Client
            } else {
                Sender::Server
            };
            let mut rng = Rng::new(12_345);
            let messages: Vec<Vec<u8>> = (0..count)
                .map(|_| match (text, multibyte) {
                    (true, true) => common::multibyte_text(&mut rng, size),
                    (true, false) => common::ascii_text(&mut rng, size),
                    (false, _) => rng.bytes(size),
                })
                .collect();
            let opcode = if text { OP_TEXT } else { OP_BINARY };
            let stream = common::encode_stream(&mut rng, sender, opcode, &messages, None);
            let streamed = match args.get(6).map(String::as_str) {
                Some("streamed") => true,
                None => false,
                _ => panic!("{usage}"),
            };
            (0..number(5))
                .map(|_| common::decode_wsproto(&stream, sender, count, streamed))
                .sum()
        }
        Some("encode") => (0..number(4)).map(|_| encode(count, size, server)).sum(),
        _ => panic!("{usage}"),
    };
    println!("{total}");
}

/// Queues and consumes COUNT binary messages; returns the bytes queued.
fn encode(count: usize, size: usize, server: bool) -> usize {
    let mut conn = if server {
        Connection::upgraded_server(wsproto::Config::default())
    } else {
        Connection::upgraded_client(wsproto::Config::default(), |dest| dest.fill(0x5a))
    };
    let payload = vec![7u8; size];
    let mut bytes = 0;
    for _ in 0..count {
        conn.send_binary(black_box(&payload)).expect("open");
        bytes += conn.pending_output().len();
        conn.consume_output(conn.pending_output().len());
    }
    bytes
}
