//! A load generator for echo servers: N connections, each sending one message and waiting for
//! its echo before the next (closed loop), for a fixed time. Prints messages per second, the
//! round-trip p50/p99, and, with `--pid`, the server's CPU time per message.
//!
//! `cargo run --release -p wsproto-benches --example load -- --url ws://127.0.0.1:9001/ --connections 100 --size 16`
//!
//! It is built to cost the server's machine as little as possible: each connection's frame is
//! encoded once (one masking key for the whole run, which is fine for a benchmark and nothing
//! else; RFC 6455 §5.3 wants a fresh key per frame) and each echo is checked by comparing it
//! with the exact bytes an unfragmented server frame has. Loopback only.

#[path = "../../examples/common/args.rs"]
mod args;

use std::io;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const USAGE: &str = "load: closed-loop echo load over loopback

usage: load --url ws://HOST:PORT/ [--connections N] [--size BYTES] [--seconds S] [--warmup S]
            [--threads N] [--pid PID] [--label NAME]

  --url URL          the echo server (ws:// on a loopback address)
  --connections N    concurrent connections (default 1)
  --size BYTES       message size (default 16); text below 1 KiB, binary from 1 KiB
  --seconds S        measured time (default 5)
  --warmup S         unmeasured time first (default 1)
  --threads N        load generator runtime threads (default 1: the server keeps a core)
  --pid PID          the server process, to report its CPU time per message (/proc/PID/stat)
  --label NAME       first column of the output line (default: the URL)

Prints one tab-separated line: label, connections, size, msgs/s, p50 us, p99 us,
round trips measured, server CPU us per message (or -).";

fn main() -> ExitCode {
    let args = args::Args::parse(
        USAGE,
        &[
            "url",
            "connections",
            "size",
            "seconds",
            "warmup",
            "threads",
            "pid",
            "label",
        ],
        &[],
    );
    let url = args.get("url", "ws://127.0.0.1:9001/");
    let Some(addr) = url
        .strip_prefix("ws://")
        .map(|rest| rest.split('/').next().unwrap_or(rest).to_string())
    else {
        eprintln!("load: --url must be ws://HOST:PORT/\n\n{USAGE}");
        return ExitCode::from(2);
    };
    let config = Load {
        addr,
        connections: args.number("connections", 1).max(1),
        size: args.number("size", 16),
        warmup: Duration::from_secs_f64(args.number("warmup", 1) as f64),
        measure: Duration::from_secs_f64(args.number("seconds", 5).max(1) as f64),
    };
    let pid = args.number("pid", 0);
    let label = args.get("label", &url);
    let runtime = match args.number("threads", 1) {
        0 | 1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
    }
    .expect("a tokio runtime");
    match runtime.block_on(run(&config, pid)) {
        Ok(report) => {
            let cpu = report
                .server_cpu_us_per_msg
                .map_or_else(|| "-".to_string(), |us| format!("{us:.2}"));
            println!(
                "{label}\t{}\t{}\t{:.0}\t{:.1}\t{:.1}\t{}\t{cpu}",
                config.connections,
                config.size,
                report.msgs_per_sec,
                report.p50_us,
                report.p99_us,
                report.round_trips
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("load: {label}: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Load {
    addr: String,
    connections: usize,
    size: usize,
    warmup: Duration,
    measure: Duration,
}

struct Report {
    msgs_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
    round_trips: usize,
    server_cpu_us_per_msg: Option<f64>,
}

async fn run(load: &Load, pid: usize) -> io::Result<Report> {
    // Connect everyone before the clock starts.
    let mut streams = Vec::with_capacity(load.connections);
    for _ in 0..load.connections {
        streams.push(connect(&load.addr).await?);
    }
    let text = load.size < 1024;
    let start = Instant::now() + Duration::from_millis(50);
    let measure_from = start + load.warmup;
    let end = measure_from + load.measure;
    let mut tasks = tokio::task::JoinSet::new();
    for (i, stream) in streams.into_iter().enumerate() {
        let (request, expected) = frames(load.size, text, i as u32);
        tasks.spawn(round_trips(
            stream,
            request,
            expected,
            start,
            measure_from,
            end,
        ));
    }
    tokio::time::sleep_until((measure_from).into()).await;
    let cpu_before = cpu_ticks(pid);
    tokio::time::sleep_until(end.into()).await;
    let cpu_after = cpu_ticks(pid);
    let mut rtts = Vec::new();
    while let Some(result) = tasks.join_next().await {
        rtts.extend(result.map_err(io::Error::other)??);
    }
    if rtts.is_empty() {
        return Err(io::Error::other("no round trip completed"));
    }
    rtts.sort_unstable();
    let percentile = |p: f64| rtts[((rtts.len() - 1) as f64 * p) as usize] as f64 / 1000.0;
    let server_cpu_us_per_msg = match (cpu_before, cpu_after) {
        (Some(a), Some(b)) => Some((b - a) as f64 * 1e6 / clock_ticks() / rtts.len() as f64),
        _ => None,
    };
    Ok(Report {
        msgs_per_sec: rtts.len() as f64 / load.measure.as_secs_f64(),
        p50_us: percentile(0.50),
        p99_us: percentile(0.99),
        round_trips: rtts.len(),
        server_cpu_us_per_msg,
    })
}

/// Opens a connection and runs the opening handshake (RFC 6455 §4.1).
async fn connect(addr: &str) -> io::Result<TcpStream> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::new();
    let mut byte = [0];
    // Byte at a time: nothing after the head may be read here, and the head is short.
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await? == 0 {
            return Err(io::Error::other("the server closed during the handshake"));
        }
        head.push(byte[0]);
    }
    if !head.starts_with(b"HTTP/1.1 101") {
        return Err(io::Error::other(format!(
            "handshake refused: {}",
            String::from_utf8_lossy(&head)
        )));
    }
    Ok(stream)
}

/// The client's masked frame and the server's echo of it, byte for byte (RFC 6455 §5.2).
fn frames(size: usize, text: bool, seed: u32) -> (Vec<u8>, Vec<u8>) {
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state
    };
    let payload: Vec<u8> = (0..size)
        .map(|_| {
            let r = next() as u8;
            if text { b'a' + r % 26 } else { r }
        })
        .collect();
    let opcode = if text { 0x1 } else { 0x2 };
    let key = next().to_ne_bytes();
    let head = |masked: bool| {
        let bit = if masked { 0x80 } else { 0 };
        let mut h = vec![0x80 | opcode];
        match size {
            0..=125 => h.push(bit | size as u8),
            126..=0xFFFF => {
                h.push(bit | 126);
                h.extend_from_slice(&(size as u16).to_be_bytes());
            }
            _ => {
                h.push(bit | 127);
                h.extend_from_slice(&(size as u64).to_be_bytes());
            }
        }
        h
    };
    let mut request = head(true);
    request.extend_from_slice(&key);
    request.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    let mut expected = head(false);
    expected.extend_from_slice(&payload);
    (request, expected)
}

/// One connection's closed loop; returns its round-trip times (ns) in the measured window.
async fn round_trips(
    mut stream: TcpStream,
    request: Vec<u8>,
    expected: Vec<u8>,
    start: Instant,
    measure_from: Instant,
    end: Instant,
) -> io::Result<Vec<u64>> {
    tokio::time::sleep_until(start.into()).await;
    let mut reply = vec![0; expected.len()];
    let mut rtts = Vec::new();
    loop {
        let sent = Instant::now();
        if sent >= end {
            break;
        }
        stream.write_all(&request).await?;
        stream.read_exact(&mut reply).await?;
        let done = Instant::now();
        if reply != expected {
            return Err(io::Error::other("the echo differs from the message sent"));
        }
        if sent >= measure_from && done <= end {
            rtts.push((done - sent).as_nanos() as u64);
        }
    }
    // A Close with 1000 (masked, empty key), then go.
    let _ = stream
        .write_all(&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8])
        .await;
    Ok(rtts)
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: usize) -> Option<u64> {
    if pid == 0 {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second (`getconf CLK_TCK`); 100 on every Linux this runs on.
fn clock_ticks() -> f64 {
    100.0
}
