//! Measures what idle WebSocket connections cost a server: opens N connections, leaves them
//! idle, and prints the growth of the server process's resident set size (from `/proc`).
//!
//! `cargo run --release --example idle_connections -- --url ws://127.0.0.1:9001/ --pid PID`
//! (Linux only; `.ci/idle-memory` starts the echo servers and runs this against each.)

#[path = "common/args.rs"]
mod args;

use std::process::ExitCode;
use std::thread::sleep;
use std::time::Duration;
use wsproto::drivers::blocking::{ClientStream, WebSocket};

const USAGE: &str = "idle_connections: RSS growth of a server per idle WebSocket connection

usage: idle_connections --pid PID [--url URL] [--connections N] [--wait SECONDS]

  --pid PID          the server process to measure (its /proc/PID/status VmRSS)
  --url URL          the server (default ws://127.0.0.1:9001/)
  --connections N    how many idle connections to open (default 1000)
  --wait SECONDS     how long to let the server settle before each reading (default 2)

Warms the server up with a few connections first, then reads RSS, opens N connections,
waits, reads RSS again and prints the difference divided by N.";

fn main() -> ExitCode {
    let args = args::Args::parse(USAGE, &["pid", "url", "connections", "wait"], &[]);
    let pid = args.number("pid", 0);
    if pid == 0 {
        eprintln!("idle_connections: --pid is required\n\n{USAGE}");
        return ExitCode::from(2);
    }
    let url = args.get("url", "ws://127.0.0.1:9001/");
    let n = args.number("connections", 1000).max(1);
    let wait = Duration::from_secs(args.number("wait", 2) as u64);
    match measure(pid, &url, n, wait) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("idle_connections: {e}");
            ExitCode::FAILURE
        }
    }
}

fn measure(
    pid: usize,
    url: &str,
    n: usize,
    wait: Duration,
) -> Result<(), Box<dyn std::error::Error>> {
    // Threads, allocator arenas and the runtime grow on the first connections: not per
    // connection costs, so they are paid before the baseline.
    let warm_up = open(url, 16)?;
    sleep(wait);
    drop(warm_up);
    sleep(wait);
    let before = rss_kib(pid)?;
    let connections = open(url, n)?;
    sleep(wait);
    let after = rss_kib(pid)?;
    let per_connection = (after as f64 - before as f64) * 1024.0 / n as f64;
    println!(
        "idle_connections: server pid {pid} RSS {before} KiB before, {after} KiB with {n} idle \
         connections: {:.0} bytes ({:.1} KiB) per connection",
        per_connection,
        per_connection / 1024.0
    );
    drop(connections);
    Ok(())
}

/// Opens `n` connections and completes each handshake; they then stay idle.
fn open(url: &str, n: usize) -> Result<Vec<WebSocket<ClientStream>>, wsproto::drivers::Error> {
    (0..n).map(|_| WebSocket::connect(url)).collect()
}

/// The `VmRSS` line of `/proc/PID/status`, in KiB.
fn rss_kib(pid: usize) -> Result<u64, Box<dyn std::error::Error>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .ok_or("no VmRSS line")?;
    Ok(line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?)
}
