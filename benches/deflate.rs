//! permessage-deflate (RFC 7692): echo throughput of compressible text through a client and
//! server `Connection` pair in memory, without compression, with context takeover and without
//! it; then the heap each connection holds after a message in each mode.
//!
//! None of the peers (tungstenite 0.30, fastwebsockets 0.10, tokio-websockets 0.13) implements
//! permessage-deflate, so this bench has no peer column.
//!
//! `cargo bench -p wsproto-benches --bench deflate`

mod common;

use common::Rng;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use wsproto::{Accept, ClientRequest, Config, Connection, DeflateConfig, Event};

/// Counts the bytes allocated and not yet freed, so that the codec state, which
/// `Connection::heap_size` leaves out, is measured too.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to `System` unchanged; the counter only observes sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` shares.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout`, per the caller's contract.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`, and `new_size` is valid per the caller's contract.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(new_size, Ordering::Relaxed);
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[derive(Clone, Copy)]
enum Mode {
    Off,
    ContextTakeover,
    NoContextTakeover,
}

impl Mode {
    const ALL: [Mode; 3] = [Mode::Off, Mode::ContextTakeover, Mode::NoContextTakeover];

    fn name(self) -> &'static str {
        match self {
            Mode::Off => "uncompressed",
            Mode::ContextTakeover => "deflate-context-takeover",
            Mode::NoContextTakeover => "deflate-no-context-takeover",
        }
    }

    fn config(self) -> Config {
        let mut config = Config::default();
        config.max_message_size = 16 << 20;
        config.deflate = match self {
            Mode::Off => None,
            Mode::ContextTakeover => Some(DeflateConfig::default()),
            Mode::NoContextTakeover => {
                let mut deflate = DeflateConfig::default();
                deflate.server_no_context_takeover = true;
                deflate.client_no_context_takeover = true;
                Some(deflate)
            }
        };
        config
    }
}

/// Moves everything `from` queued into `to`; returns the byte count.
fn transfer(from: &mut Connection, to: &mut Connection) -> usize {
    let out = from.pending_output();
    let n = out.len();
    to.receive(out);
    from.consume_output(n);
    n
}

/// A client and a server, handshake done.
fn pair(mode: Mode) -> (Box<Connection>, Box<Connection>) {
    let request = ClientRequest::new("ws://localhost/").expect("a valid URL");
    let mut seed = Rng::new(11);
    let mut client = Box::new(Connection::client(
        request,
        mode.config(),
        move |d: &mut [u8]| seed.fill(d),
    ));
    let mut server = Box::new(Connection::server(mode.config()));
    transfer(&mut client, &mut server);
    assert!(matches!(server.next_event(), Ok(Some(Event::Request(_)))));
    server.accept(Accept::new()).expect("a valid request");
    transfer(&mut server, &mut client);
    match client.next_event() {
        Ok(Some(Event::Accepted(response))) => {
            let agreed = !response.extensions().is_empty();
            assert_eq!(agreed, !matches!(mode, Mode::Off), "{}", mode.name());
        }
        other => panic!("expected the 101, got {other:?}"),
    }
    (client, server)
}

/// Client sends `text`, the server echoes it, the client reads it. Returns the bytes that
/// crossed the wire.
fn echo(client: &mut Connection, server: &mut Connection, text: &str) -> usize {
    client.send_text(text).expect("open");
    let mut wire = transfer(client, server);
    let reply = match server.next_event() {
        Ok(Some(Event::Text(t))) => t.to_owned(),
        other => panic!("expected text, got {other:?}"),
    };
    server.send_text(&reply).expect("open");
    wire += transfer(server, client);
    match client.next_event() {
        Ok(Some(Event::Text(t))) => assert_eq!(t.len(), text.len()),
        other => panic!("expected the echo, got {other:?}"),
    }
    wire
}

/// Chat-like JSON: compressible, but not a repeated string.
fn json_text(rng: &mut Rng, len: usize) -> String {
    const WORDS: &[&str] = &[
        "hello",
        "world",
        "the",
        "quick",
        "brown",
        "fox",
        "jumps",
        "over",
        "lazy",
        "dog",
        "message",
        "update",
        "price",
        "order",
        "status",
        "pending",
        "filled",
        "cancelled",
    ];
    let mut out = String::from("[");
    while out.len() < len {
        let id = rng.below(1_000_000);
        let user = rng.below(5_000);
        let price = rng.below(100_000);
        let word = |rng: &mut Rng| WORDS[rng.below(WORDS.len() as u64) as usize];
        let (a, b, c) = (word(rng), word(rng), word(rng));
        write!(
            out,
            r#"{{"id":{id},"user":"user{user}","price":{}.{:02},"text":"{a} {b} {c}"}},"#,
            price / 100,
            price % 100
        )
        .expect("write to a String");
    }
    out.truncate(len - 1);
    out.push(']');
    out
}

fn bench_deflate(c: &mut Criterion) {
    let mut rng = Rng::new(5);
    let mut memory = String::from(
        "# mode\tmessage\twire_bytes_per_echo_of_the_2nd_message\tserver_heap_size\tserver_held\tclient_heap_size\tclient_held\n",
    );
    for (label, size) in [("1KiB", 1 << 10), ("64KiB", 64 << 10)] {
        // Distinct messages, so that context takeover cannot just point at the last one.
        let texts: Vec<String> = (0..32).map(|_| json_text(&mut rng, size)).collect();
        let mut group = c.benchmark_group(format!("deflate_echo_json_{label}"));
        group.throughput(Throughput::Bytes(size as u64));
        for mode in Mode::ALL {
            let (mut client, mut server) = pair(mode);
            // The second message shows what context takeover saves.
            echo(&mut client, &mut server, &texts[0]);
            let wire = echo(&mut client, &mut server, &texts[1]);
            // Settle: the next call releases what the last event lent.
            assert!(matches!(server.next_event(), Ok(None)));
            assert!(matches!(client.next_event(), Ok(None)));
            let (server_heap, client_heap) = (server.heap_size(), client.heap_size());
            let before = LIVE.load(Ordering::Relaxed);
            drop(server);
            let server_held = before - LIVE.load(Ordering::Relaxed);
            let before = LIVE.load(Ordering::Relaxed);
            drop(client);
            let client_held = before - LIVE.load(Ordering::Relaxed);
            writeln!(
                memory,
                "{}\t{label}\t{wire}\t{server_heap}\t{server_held}\t{client_heap}\t{client_held}",
                mode.name()
            )
            .expect("write to a String");

            let (mut client, mut server) = pair(mode);
            let mut next = texts.iter().cycle();
            group.bench_function(mode.name(), |b| {
                b.iter(|| echo(&mut client, &mut server, next.next().expect("endless")))
            });
        }
        group.finish();
    }
    print!("{memory}");
    let path = common::results_dir().join("deflate_memory.tsv");
    std::fs::write(&path, memory).expect("write the memory table");
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = bench_deflate
}
criterion_main!(benches);
