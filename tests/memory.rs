//! An idle connection holds no payload buffers; buffers grow with traffic and are released.
mod common;
use common::*;
use std::time::Duration;
use wsproto::{Config, Connection};

#[test]
fn emptied_buffers_are_freed_at_once_without_linger() {
    let mut p = Pair::with_configs(quiet_config(), quiet_config());
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

fn lingering_config() -> Config {
    let mut config = quiet_config();
    config.buffer_linger = Some(secs(1));
    config
}

#[test]
fn emptied_buffers_are_kept_for_the_next_message_until_the_linger_ends() {
    let mut p = Pair::with_configs(lingering_config(), lingering_config());
    let big = vec![7u8; 200_000];
    p.client.send_binary(&big).unwrap();
    assert_eq!(p.deliver_to_server(), [Ev::Binary(big.clone())]);
    assert_eq!(drain(&mut p.server), []);
    let kept_out = p.client.heap_size();
    let kept_in = p.server.heap_size();
    assert!(kept_out >= 200_000, "output kept: {kept_out}");
    assert!(kept_in >= 200_000, "receive buffer kept: {kept_in}");

    // The next message of that size needs no new memory on either side.
    p.client.send_binary(&big).unwrap();
    assert_eq!(p.client.heap_size(), kept_out);
    assert_eq!(p.deliver_to_server(), [Ev::Binary(big.clone())]);
    assert_eq!(drain(&mut p.server), []);
    assert_eq!(p.server.heap_size(), kept_in);

    // The linger starts when the driver next tells the time, and ends a second later.
    assert_eq!(p.server.poll_timeout(), Some(Duration::ZERO));
    p.server.handle_timeout(secs(50));
    assert_eq!(p.server.poll_timeout(), Some(secs(51)));
    p.server
        .handle_timeout(secs(50) + Duration::from_millis(999));
    assert_eq!(p.server.heap_size(), kept_in);
    p.server.handle_timeout(secs(51));
    assert_eq!(p.server.heap_size(), 0);
    assert_eq!(p.server.poll_timeout(), None, "nothing left to free");

    // `release_buffers` frees them at once.
    p.client.release_buffers();
    assert_eq!(p.client.heap_size(), 0);
    assert_eq!(p.client.poll_timeout(), None);
}

#[test]
fn reads_go_into_a_kept_buffer_only_when_it_has_room_for_one() {
    let mut server = Connection::upgraded_server(lingering_config());
    assert!(!server.prefers_receive_buffer(), "no buffer yet");
    // A small message leaves a small kept buffer: waiting in it would grow it to a read.
    server.receive(&[0x82, 0x82, 0, 0, 0, 0, 1, 2]);
    assert_eq!(drain(&mut server), [Ev::Binary(vec![1, 2])]);
    assert!(server.heap_size() > 0);
    assert!(!server.prefers_receive_buffer());
    // A frame in progress always goes straight in.
    server.receive(&[0x82, 0x82, 0, 0, 0, 0, 1]);
    assert_eq!(drain(&mut server), []);
    assert!(server.prefers_receive_buffer());
    server.receive(&[2]);
    assert_eq!(drain(&mut server), [Ev::Binary(vec![1, 2])]);
    // A large message leaves a buffer with room for whole reads.
    let big = vec![9u8; 100_000];
    let mut client = Connection::upgraded_client(lingering_config(), |d: &mut [u8]| d.fill(0));
    client.send_binary(&big).unwrap();
    let wire = take_output(&mut client);
    assert_eq!(feed(&mut server, &wire), [Ev::Binary(big)]);
    assert_eq!(drain(&mut server), []);
    assert!(server.prefers_receive_buffer());
    server.release_buffers();
    assert!(!server.prefers_receive_buffer());
}

#[test]
fn release_buffers_keeps_input_in_progress() {
    let mut server = Connection::upgraded_server(lingering_config());
    // Half of a masked 4-byte binary frame.
    server.receive(&[0x82, 0x84, 0, 0, 0, 0, 1, 2]);
    assert_eq!(drain(&mut server), []);
    server.release_buffers();
    assert!(server.has_partial_input());
    server.receive(&[3, 4]);
    assert_eq!(drain(&mut server), [Ev::Binary(vec![1, 2, 3, 4])]);
    server.release_buffers();
    assert!(!server.has_partial_input());
    assert_eq!(server.heap_size(), 0);
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
