//! An idle connection holds no payload buffers; buffers grow with traffic and are released.
mod common;
use common::*;
use wsproto::Connection;

#[test]
fn idle_connection_holds_no_buffers() {
    let mut p = Pair::new();
    assert_eq!(p.client.heap_size(), 0);
    assert_eq!(p.server.heap_size(), 0);
    let big = vec![7u8; 200_000];
    p.client.send_binary(&big).unwrap();
    assert!(p.client.heap_size() >= 200_000);
    assert_eq!(p.deliver_to_server(), [Ev::Binary(big.clone())]);
    assert_eq!(p.client.heap_size(), 0, "output released once written");
    // The event was drained: the next call releases the receive buffer.
    assert_eq!(drain(&mut p.server), []);
    assert_eq!(
        p.server.heap_size(),
        0,
        "receive buffer released once processed"
    );
}

#[test]
fn partial_frame_keeps_only_what_it_needs() {
    let mut server = Connection::upgraded_server(quiet_config());
    // A partial header is kept until the rest arrives.
    server.receive(&[0x82, 0xFE, 0x01]);
    assert_eq!(drain(&mut server), []);
    assert!(server.heap_size() > 0);
    // Once the header is parsed, its bytes are no longer needed.
    server.receive(&[0x00, 1, 2, 3, 4]);
    assert_eq!(drain(&mut server), []);
    assert_eq!(server.heap_size(), 0);
    // Payload of a message in progress is kept, and released when the message is taken.
    server.receive(&[0xAA; 100]);
    assert_eq!(drain(&mut server), []);
    assert!(server.heap_size() >= 100);
    server.receive(&[0xAA; 156]);
    assert_eq!(drain(&mut server).len(), 1);
    assert_eq!(drain(&mut server), []);
    assert_eq!(server.heap_size(), 0);
}

#[test]
fn report_sizes() {
    let size = std::mem::size_of::<Connection>();
    println!("size_of::<Connection>() = {size} bytes");
    // A guard against accidental growth (inline arrays, boxed state) of the struct itself.
    assert!(size <= 600, "Connection grew to {size} bytes");
}

#[test]
fn pings_between_fragments_do_not_grow_the_buffer() {
    let mut server = Connection::upgraded_server(quiet_config());
    // A first text fragment, then many masked Pings with 125-byte payloads, a byte at a time
    // as a slow peer would send them.
    server.receive(&[0x01, 0x81, 0, 0, 0, 0, b'a']);
    assert_eq!(drain(&mut server), []);
    let mut ping = vec![0x89, 0xFD, 0, 0, 0, 0];
    ping.extend_from_slice(&[b'p'; 125]);
    let mut peak = 0;
    for _ in 0..200 {
        for byte in &ping {
            server.receive(std::slice::from_ref(byte));
            peak = peak.max(server.heap_size());
        }
        assert_eq!(drain(&mut server), [Ev::Ping(vec![b'p'; 125])]);
        take_output(&mut server);
    }
    // The message (1 byte), one Ping and its header: not 200 Pings' worth.
    assert!(peak < 1024, "receive buffer grew to {peak} bytes");
    server.receive(&[0x80, 0x81, 0, 0, 0, 0, b'b']);
    assert_eq!(drain(&mut server), [Ev::Text("ab".into())]);
}
