//! `PreparedMessage`: the exact frame bytes, one compression shared by every connection
//! without server context takeover, per-connection compression counted where context is
//! kept, a client's masked copy, and the drivers' `send_prepared`. The broadcast test sends
//! one message to 10,000 in-memory server connections, half of them deflating, and counts
//! the allocations the sends make (a counting allocator, armed per thread).
mod common;

use common::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use wsproto::{Accept, ClientRequest, Config, Connection, DeflateConfig, PreparedMessage};

/// Counts the allocations of the threads that armed it.
struct Counting;

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
}
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static ALLOCATED_BYTES: AtomicUsize = AtomicUsize::new(0);

fn note(size: usize) {
    if ARMED.with(Cell::get) {
        ALLOCATIONS.fetch_add(1, Relaxed);
        ALLOCATED_BYTES.fetch_add(size, Relaxed);
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract holds as it does for `System`; the counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: forwarded as received.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: forwarded as received.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as received.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: forwarded as received.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` with this thread's allocations counted; returns (allocations, bytes).
fn count_allocations(f: impl FnOnce()) -> (usize, usize) {
    let (before, before_bytes) = (ALLOCATIONS.load(Relaxed), ALLOCATED_BYTES.load(Relaxed));
    ARMED.with(|armed| armed.set(true));
    f();
    ARMED.with(|armed| armed.set(false));
    (
        ALLOCATIONS.load(Relaxed) - before,
        ALLOCATED_BYTES.load(Relaxed) - before_bytes,
    )
}

/// 16 KiB of text that deflate shrinks only to about two thirds, so that the compressed
/// frame too is large enough to be lent rather than copied.
fn news(len: usize) -> String {
    let mut state = 0x2545_f491_u32;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            char::from(b'a' + (state % 26) as u8)
        })
        .collect()
}

fn deflate_client(server_no_context_takeover: bool) -> Config {
    quiet_config().deflate(Some(
        DeflateConfig::default().server_no_context_takeover(server_no_context_takeover),
    ))
}

fn server_config() -> Config {
    quiet_config().deflate(Some(DeflateConfig::default()))
}

/// An open client-server pair; the client offers permessage-deflate when `deflate` is set.
fn pair(deflate: Option<Config>) -> Pair {
    let request = ClientRequest::new("ws://example.com/feed").unwrap();
    let client = deflate.unwrap_or_else(quiet_config);
    Pair::handshake(request, Accept::new(), client, server_config())
}

#[test]
fn the_frame_is_the_unmasked_frame_of_the_payload() {
    let text = PreparedMessage::text("hello");
    assert_eq!(text.frame(), b"\x81\x05hello");
    assert_eq!(text.payload(), b"hello");
    assert_eq!(text.kind(), wsproto::MessageKind::Text);
    let data: Vec<u8> = (0..200u8).collect();
    let binary = PreparedMessage::binary(&data);
    assert_eq!(&binary.frame()[..4], &[0x82, 126, 0, 200]);
    assert_eq!(&binary.frame()[4..], &data[..]);
    let empty = PreparedMessage::binary(&[]);
    assert_eq!(empty.frame(), &[0x82, 0]);

    // A server connection queues exactly those bytes, whole, as send_binary would.
    let mut conn = Connection::upgraded_server(quiet_config());
    conn.send_prepared(&binary).unwrap();
    let mut expected = Connection::upgraded_server(quiet_config());
    expected.send_binary(&data).unwrap();
    assert_eq!(conn.pending_output(), expected.pending_output());
}

/// A client masks every frame with its own key: the payload is framed and masked as
/// `send_text` does, and the server reads the message.
#[test]
fn a_client_frames_and_masks_the_payload_itself() {
    let message = PreparedMessage::text("from a client");
    let mut p = pair(None);
    p.client.send_prepared(&message).unwrap();
    let sent = p.client.pending_output().to_vec();
    assert_eq!(sent[0], 0x81);
    assert_eq!(sent[1], 0x80 | 13, "masked");
    assert_eq!(p.deliver_to_server(), [Ev::Text("from a client".into())]);
}

/// Connections that agreed server_no_context_takeover send one compressed frame, made once,
/// byte for byte what each would have compressed itself; connections that keep their context
/// compress for themselves, counted; both decode to the message.
#[test]
fn one_compression_serves_every_connection_without_context_takeover() {
    let text = news(4096);
    let message = PreparedMessage::text(&text);
    let mut fresh: Vec<Pair> = (0..3).map(|_| pair(Some(deflate_client(true)))).collect();
    let mut keeping: Vec<Pair> = (0..2).map(|_| pair(Some(deflate_client(false)))).collect();
    for p in fresh.iter_mut().chain(&mut keeping) {
        assert!(p.server.is_deflate_negotiated());
        p.server.send_prepared(&message).unwrap();
    }
    assert_eq!(message.shared_deflates(), 1);
    assert_eq!(message.connection_deflates(), 2);

    // The shared frame is what a fresh-context connection makes of the message itself.
    let mut own = pair(Some(deflate_client(true)));
    own.server.send_text(&text).unwrap();
    let own_frame = own.server.pending_output().to_vec();
    assert_eq!(own_frame[0], 0xc1, "FIN, RSV1, text");
    assert!(own_frame.len() < text.len(), "compressed");
    for p in &mut fresh {
        assert_eq!(p.server.pending_output(), own_frame);
    }
    for p in fresh.iter_mut().chain(&mut keeping) {
        assert_eq!(p.deliver_to_client(), [Ev::Text(text.clone())]);
    }

    // A second message on a connection that keeps its context still decodes: its compressor
    // history is its own.
    let second = PreparedMessage::text(&text);
    keeping[0].server.send_prepared(&second).unwrap();
    assert_eq!(keeping[0].deliver_to_client(), [Ev::Text(text.clone())]);

    // Small messages (under the deflate threshold) go out plain, from the plain frame.
    let small = PreparedMessage::text("hi");
    fresh[0].server.send_prepared(&small).unwrap();
    assert_eq!(fresh[0].server.pending_output(), b"\x81\x02hi");
    assert_eq!(small.shared_deflates() + small.connection_deflates(), 0);
}

/// Issue 17: one prepared message to 10,000 server connections, half of them deflating
/// without server context takeover. Every connection lends the same shared bytes (no copy,
/// no allocation per connection), the compression runs once, and every client decodes the
/// message.
#[test]
fn one_message_to_ten_thousand_connections_half_deflated() {
    const CONNECTIONS: usize = 10_000;
    let text = news(16 << 10);
    let mut pairs: Vec<Pair> = (0..CONNECTIONS)
        .map(|i| pair((i % 2 == 0).then(|| deflate_client(true))))
        .collect();
    let message = PreparedMessage::text(&text);

    let mut lent = Vec::with_capacity(CONNECTIONS);
    let (allocations, bytes) = count_allocations(|| {
        for p in &mut pairs {
            let mut sender = p.server.sender();
            sender.send_prepared(&message).unwrap();
            let [queued, frame] = sender.pending_output();
            assert!(queued.is_empty());
            lent.push((frame.as_ptr(), frame.len()));
            // As a vectored write that took it all: nothing is left to copy.
            let written = frame.len();
            sender.consume_output(written);
        }
    });
    assert_eq!(message.shared_deflates(), 1, "deflate ran once");
    assert_eq!(message.connection_deflates(), 0);
    // Every plain connection lent the prepared frame itself, every deflating one the one
    // compressed frame.
    let plain = (message.frame().as_ptr(), message.frame().len());
    let deflated = lent[0];
    assert_ne!(deflated, plain);
    assert!(deflated.1 > 1024 && deflated.1 < plain.1, "{deflated:?}");
    for (i, frame) in lent.iter().enumerate() {
        assert_eq!(*frame, if i % 2 == 0 { deflated } else { plain }, "{i}");
    }
    // The one compression's buffers and nothing per connection: what 10,000 sends
    // allocated is a few blocks, whatever the number of connections (`lent` was reserved
    // before counting).
    assert!(allocations < 20, "{allocations} allocations, {bytes} bytes");

    // What each connection sends decodes, at its client, to the message.
    for (i, p) in pairs.iter_mut().enumerate() {
        let mut sender = p.server.sender();
        sender.send_prepared(&message).unwrap();
        let [queued, frame] = sender.pending_output();
        let wire = [queued, frame].concat();
        sender.consume_output(wire.len());
        drop(sender);
        assert_eq!(feed(&mut p.client, &wire), [Ev::Text(text.clone())], "{i}");
    }
    assert_eq!(message.shared_deflates(), 1);
    eprintln!(
        "{CONNECTIONS} connections: {allocations} allocations ({bytes} bytes) for all sends; \
         frame {} bytes plain, {} deflated",
        plain.1, deflated.1
    );
}

/// The drivers send a prepared message over a real socket: the tokio stream, the tokio
/// writer half (both from the message's own memory on a vectored stream) and the blocking
/// socket; the client gets each message exactly, one of them deflated.
#[test]
fn drivers_send_prepared_messages() {
    use wsproto::drivers::Message;
    use wsproto::drivers::tokio::WebSocketStream;

    let text = news(64 << 10);
    let message = PreparedMessage::text(&text);
    let small = PreparedMessage::binary(&[1, 2, 3]);
    let (message_ref, text_ref, small_ref) = (&message, &text, &small);
    on_loopback(|listener, url| async move {
        let (message, text, small) = (message_ref, text_ref, small_ref);
        let server = {
            let (message, small) = (message.clone(), small.clone());
            tokio::spawn(async move {
                let (tcp, _) = listener.accept().await.unwrap();
                let mut ws = WebSocketStream::accept(tcp, server_config()).await.unwrap();
                ws.send_prepared(&message).await.unwrap();
                ws.send_prepared(&small).await.unwrap();
                let (mut reader, writer) = ws.split();
                writer.send_prepared(&message).await.unwrap();
                writer.send_prepared(&small).await.unwrap();
                while reader.recv().await.unwrap().is_some() {}
            })
        };
        let request = ClientRequest::new(&url).unwrap();
        let mut client = WebSocketStream::connect_with(request, deflate_client(true))
            .await
            .unwrap();
        assert!(client.connection().is_deflate_negotiated());
        for _ in 0..2 {
            assert_eq!(
                client.recv().await.unwrap(),
                Some(Message::Text(text.clone()))
            );
            assert_eq!(
                client.recv().await.unwrap(),
                Some(Message::Binary(vec![1, 2, 3]))
            );
        }
        client.close(wsproto::CloseCode::NORMAL, "").await.unwrap();
        while client.recv().await.unwrap().is_some() {}
        server.await.unwrap();
    });
    assert_eq!(message.shared_deflates(), 1);

    // The blocking driver, without deflate.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let server = {
        let message = message.clone();
        std::thread::spawn(move || {
            let (tcp, _) = listener.accept().unwrap();
            let mut ws =
                wsproto::drivers::blocking::WebSocket::accept(tcp, quiet_config()).unwrap();
            ws.send_prepared(&message).unwrap();
            while ws.recv().unwrap().is_some() {}
        })
    };
    let mut client = wsproto::drivers::blocking::WebSocket::connect(&url).unwrap();
    assert_eq!(client.recv().unwrap(), Some(Message::Text(text.clone())));
    client.close(wsproto::CloseCode::NORMAL, "").unwrap();
    while client.recv().unwrap().is_some() {}
    server.join().unwrap();
}

/// The tokio writer half's by-reference send when the socket takes only part at once: the
/// rest is copied into the output and flushed, and the client gets both messages byte for
/// byte, in order.
#[test]
fn writer_half_completes_a_partly_written_lent_payload() {
    use wsproto::drivers::Message;
    use wsproto::drivers::tokio::WebSocketStream;

    let big: Vec<u8> = (0..8 << 20).map(|i: u32| (i % 251) as u8).collect();
    let prepared = PreparedMessage::binary(&big[..4 << 20]);
    let (big_ref, prepared_ref) = (&big, &prepared);
    on_loopback(|listener, url| async move {
        let (big, prepared) = (big_ref, prepared_ref);
        let server = {
            let (big, prepared) = (big.clone(), prepared.clone());
            tokio::spawn(async move {
                let (tcp, _) = listener.accept().await.unwrap();
                let config = quiet_config().max_message_size(16 << 20);
                let ws = WebSocketStream::accept(tcp, config).await.unwrap();
                let (mut reader, writer) = ws.split();
                writer.send_binary(&big).await.unwrap();
                writer.send_prepared(&prepared).await.unwrap();
                while reader.recv().await.unwrap().is_some() {}
            })
        };
        let request = ClientRequest::new(&url).unwrap();
        let config = quiet_config().max_message_size(16 << 20);
        let mut client = WebSocketStream::connect_with(request, config)
            .await
            .unwrap();
        // Let the server fill the socket before reading.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(client.recv().await.unwrap() == Some(Message::Binary(big.clone())));
        let second = client.recv().await.unwrap();
        assert!(second == Some(Message::Binary(big[..4 << 20].to_vec())));
        client.close(wsproto::CloseCode::NORMAL, "").await.unwrap();
        while client.recv().await.unwrap().is_some() {}
        server.await.unwrap();
    });
}

/// Runs `test` on a current-thread runtime with a loopback listener and its `ws://` URL.
fn on_loopback<F: std::future::Future<Output = ()>>(
    test: impl FnOnce(tokio::net::TcpListener, String) -> F,
) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/", listener.local_addr().unwrap());
        test(listener, url).await;
    });
}

/// A small frame is lent when nothing else is queued (one slice to write either way), and
/// copied behind queued bytes (so the write stays one slice).
#[test]
fn a_small_frame_is_lent_alone_and_copied_behind_queued_bytes() {
    let message = PreparedMessage::text("tick");
    let mut conn = Connection::upgraded_server(quiet_config());
    let mut sender = conn.sender();
    sender.send_prepared(&message).unwrap();
    let [queued, lent] = sender.pending_output();
    assert!(queued.is_empty());
    assert_eq!(lent.as_ptr(), message.frame().as_ptr(), "lent, not copied");
    // Dropped unwritten, the frame is copied into the output whole.
    drop(sender);
    assert_eq!(conn.pending_output(), b"\x81\x04tick");

    let mut sender = conn.sender();
    sender.send_prepared(&message).unwrap();
    assert_eq!(
        sender.pending_output(),
        [&b"\x81\x04tick\x81\x04tick"[..], &[][..]]
    );
}
