//! Fixed work on the core's hot paths, for counting instructions instead of timing them: on a
//! shared machine one timing run of a row can land 1.5x from the next, while callgrind's count
//! for the same binary and arguments is the same every time.
//!
//! ```text
//! hot_loops decode COUNT SIZE server|client text|binary REPS
//! hot_loops encode COUNT SIZE server|client REPS
//! ```
//!
//! `decode` builds a stream of COUNT messages of SIZE bytes (masked when a client sent them)
//! and decodes it REPS times through `receive_buffer`/`commit`/`next_event`, 64 KiB per read;
//! `encode` queues and consumes COUNT messages REPS times. Building the stream costs the same
//! on both sides of an A/B, so take the difference of two REPS values:
//!
//! ```text
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/hot_loops decode 20000 1024 server binary 3
//! # minus the same with REPS 1, halved: the instructions of one decode of the stream
//! ```

use std::hint::black_box;
use wsproto::{Config, Connection, Event};

/// The masking key of every client frame in the stream.
const KEY: [u8; 4] = [0x5a, 0x3c, 0x96, 0x0f];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: hot_loops decode COUNT SIZE server|client text|binary REPS\n       \
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
            let text = match args.get(4).map(String::as_str) {
                Some("text") => true,
                Some("binary") => false,
                _ => panic!("{usage}"),
            };
            let stream = stream(count, size, server, text);
            (0..number(5)).map(|_| decode(&stream, count, server)).sum()
        }
        Some("encode") => (0..number(4)).map(|_| encode(count, size, server)).sum(),
        _ => panic!("{usage}"),
    };
    println!("{total}");
}

fn connection(server: bool) -> Connection {
    let config = Config::default().max_message_size(1 << 30);
    if server {
        Connection::upgraded_server(config)
    } else {
        Connection::upgraded_client(config, |dest| dest.fill(0x5a))
    }
}

/// COUNT single-frame messages as a peer sends them to a server (masked) or a client.
fn stream(count: usize, size: usize, to_server: bool, text: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(count * (size + 14));
    let mut seed = 12_345u32;
    for _ in 0..count {
        out.push(if text { 0x81 } else { 0x82 });
        let mask_bit = if to_server { 0x80 } else { 0 };
        match size {
            0..=125 => out.push(mask_bit | size as u8),
            126..=0xFFFF => {
                out.push(mask_bit | 126);
                out.extend_from_slice(&(size as u16).to_be_bytes());
            }
            _ => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&(size as u64).to_be_bytes());
            }
        }
        if to_server {
            out.extend_from_slice(&KEY);
        }
        for i in 0..size {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let byte = (seed >> 16) as u8;
            let byte = if text { b'a' + byte % 26 } else { byte };
            out.push(if to_server { byte ^ KEY[i % 4] } else { byte });
        }
    }
    out
}

/// Decodes the stream once; returns the payload bytes handed over.
fn decode(stream: &[u8], count: usize, server: bool) -> usize {
    let mut conn = connection(server);
    let (mut pos, mut got, mut bytes) = (0, 0, 0);
    loop {
        while let Some(event) = conn.next_event().expect("a valid stream") {
            match event {
                Event::Text(text) => bytes += black_box(text).len(),
                Event::Binary(data) => bytes += black_box(data).len(),
                _ => continue,
            }
            got += 1;
        }
        if got == count {
            return bytes;
        }
        let room = conn.receive_buffer();
        let n = room.len().min(64 << 10).min(stream.len() - pos);
        assert!(n > 0, "the stream ended early");
        room[..n].copy_from_slice(&stream[pos..pos + n]);
        pos += n;
        conn.commit(n);
    }
}

/// Queues and consumes COUNT binary messages; returns the bytes queued.
fn encode(count: usize, size: usize, server: bool) -> usize {
    let mut conn = connection(server);
    let payload = vec![7u8; size];
    let mut bytes = 0;
    for _ in 0..count {
        conn.send_binary(black_box(&payload)).expect("open");
        bytes += conn.pending_output().len();
        conn.consume_output(conn.pending_output().len());
    }
    bytes
}
