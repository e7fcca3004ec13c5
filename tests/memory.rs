//! An idle connection holds no payload buffers; buffers grow with traffic and are released.
mod common;
use common::*;
use std::time::Duration;
use wsproto::{Accept, ClientRequest, Config, Connection};

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

/// The opening handshake's buffers do not linger: the server's receive buffer goes when it
/// accepts (the request head was all it held), its output once the 101 is written, and the
/// client's once the 101 is read, though both keep emptied buffers for a second otherwise.
#[test]
fn the_handshake_s_buffers_are_freed_as_soon_as_drained() {
    let request = ClientRequest::new("ws://example.com/chat").unwrap();
    let mut client = Connection::client(request, lingering_config(), counting_entropy());
    let mut server = Connection::server(lingering_config());
    let head = take_output(&mut client);
    assert!(matches!(
        feed(&mut server, &head).as_slice(),
        [Ev::Request(_)]
    ));
    assert!(server.heap_size() >= head.len(), "the request head is held");
    server.accept(Accept::new()).unwrap();
    let reply = server.pending_output().to_vec();
    assert!(reply.starts_with(b"HTTP/1.1 101 "));
    assert_eq!(
        server.heap_size(),
        reply.len(),
        "the receive buffer freed at accept: only the 101 (reserved exactly) is held"
    );
    let taken = take_output(&mut server);
    assert_eq!(taken, reply);
    assert_eq!(server.heap_size(), 0, "receive buffer and output freed");
    assert!(matches!(
        feed(&mut client, &reply).as_slice(),
        [Ev::Accepted(_)]
    ));
    assert_eq!(
        client.heap_size(),
        0,
        "the request's output and the 101's buffer freed"
    );
    assert_eq!(
        server.poll_timeout(),
        None,
        "nothing kept to be freed later"
    );

    // A message afterwards is kept for the linger as before.
    let big = vec![7u8; 10_000];
    client.send_binary(&big).unwrap();
    let frames = take_output(&mut client);
    assert!(client.heap_size() >= frames.len(), "output kept");
    assert_eq!(feed(&mut server, &frames), [Ev::Binary(big)]);
    assert_eq!(drain(&mut server), []);
    assert!(server.heap_size() >= frames.len(), "receive buffer kept");
}

/// Frames that came behind the request head stay: only a drained buffer is freed.
#[test]
fn frames_behind_the_request_head_are_kept_at_accept() {
    let request = ClientRequest::new("ws://example.com/chat").unwrap();
    let mut client = Connection::client(request, lingering_config(), counting_entropy());
    let mut server = Connection::server(lingering_config());
    let mut bytes = take_output(&mut client);
    bytes.extend(masked_binary(b"early"));
    assert!(matches!(
        feed(&mut server, &bytes).as_slice(),
        [Ev::Request(_)]
    ));
    server.accept(Accept::new()).unwrap();
    assert_eq!(drain(&mut server), [Ev::Binary(b"early".to_vec())]);
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
    assert!(wsproto::internals::has_partial_input(&server));
    server.receive(&[3, 4]);
    assert_eq!(drain(&mut server), [Ev::Binary(vec![1, 2, 3, 4])]);
    server.release_buffers();
    assert!(!wsproto::internals::has_partial_input(&server));
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
    // 584 bytes before the output's high-water mark and the replaceable Pong's place (32);
    // 616 before the `Config` (208) became an `Arc` a server's connections share; 416
    // before the inflated-message buffer (24) moved into the boxed inflater state and a
    // streamed message's running length (8) came; 400 before the timers' deadlines became
    // nanosecond counts (40), the failed state's error a box (24), the subprotocol a thin
    // pointer (8) and the output's high-water mark a plain u32 (8).
    assert!(size <= 320, "Connection grew to {size} bytes");
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

/// A masked binary frame from a client, key 0 (so the wire bytes are the payload).
fn masked_binary(payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x82];
    match payload.len() {
        len @ 0..=125 => frame.push(0x80 | len as u8),
        len @ 126..=0xffff => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&[0; 4]);
    frame.extend_from_slice(payload);
    frame
}

/// Reads into the connection's buffer as a driver does: copies what fits of `bytes`
/// into `receive_buffer` and returns how much that was and how long the room was.
fn read_into(conn: &mut Connection, bytes: &[u8]) -> (usize, usize) {
    let room = conn.receive_buffer();
    let n = room.len().min(bytes.len());
    room[..n].copy_from_slice(&bytes[..n]);
    let room_len = room.len();
    conn.commit(n);
    (n, room_len)
}

/// A read lends room up to the end of a frame at least a read long, so the next frame's
/// first bytes never sit behind it; frames shorter than a read get a full read's room.
#[test]
fn reads_stop_where_a_large_frame_ends() {
    let mut config = quiet_config();
    config.read_buffer_size = 4096;
    let large: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
    let small = vec![9u8; 3_000];
    let mut wire = masked_binary(&large);
    assert_eq!(wire.len(), 10_008);
    wire.extend_from_slice(&masked_binary(&small));
    wire.extend_from_slice(&masked_binary(&large));
    let mut server = Connection::upgraded_server(config);

    // First read: the large frame's header and 4,088 payload bytes.
    assert_eq!(read_into(&mut server, &wire).0, 4096);
    assert_eq!(drain(&mut server), []);
    // The room ends exactly where the large frame does.
    assert_eq!(read_into(&mut server, &wire[4096..]), (5_912, 5_912));
    assert_eq!(drain(&mut server), [Ev::Binary(large.clone())]);

    // The small frame and the next large one's start come in one full read.
    let at = 10_008;
    let (n, room) = read_into(&mut server, &wire[at..at + 4096]);
    assert_eq!(n, 4096);
    assert!(room >= 4096, "room {room}");
    assert_eq!(drain(&mut server), [Ev::Binary(small.clone())]);
    // The large frame's header is parsed now: the room stops at its end again.
    let at = at + 4096;
    let rest = wire.len() - at;
    assert_eq!(read_into(&mut server, &wire[at..]), (rest, rest));
    assert_eq!(drain(&mut server), [Ev::Binary(large)]);

    // A frame shorter than a read, partly here, gets a whole read's room.
    let wire = masked_binary(&small);
    read_into(&mut server, &wire[..1_000]);
    assert_eq!(drain(&mut server), []);
    let (n, room) = read_into(&mut server, &wire[1_000..]);
    assert_eq!(n, wire.len() - 1_000);
    assert!(room >= 4096, "room {room}");
    assert_eq!(drain(&mut server), [Ev::Binary(small)]);
}

/// Streams `wire` into `conn` a read at a time, as a driver does, and checks every chunk
/// against `expected` in order. Returns the most `heap_size` reached and the chunk count.
fn stream_through(conn: &mut Connection, wire: &[u8], expected: &[u8]) -> (usize, usize) {
    let (mut at, mut offset, mut peak, mut chunks, mut done) = (0, 0, 0, 0, false);
    while at < wire.len() {
        at += read_into(conn, &wire[at..]).0;
        peak = peak.max(conn.heap_size());
        while let Some(event) = conn.next_event().unwrap() {
            let (data, fin) = match event {
                wsproto::Event::BinaryChunk { data, fin } => (data, fin),
                wsproto::Event::TextChunk { text, fin } => (text.as_bytes(), fin),
                other => panic!("{other:?}"),
            };
            assert!(!done, "a chunk after the last");
            assert_eq!(data, &expected[offset..offset + data.len()], "at {offset}");
            offset += data.len();
            chunks += 1;
            done = fin;
        }
        peak = peak.max(conn.heap_size());
    }
    assert!(done, "the message ended");
    assert_eq!(offset, expected.len());
    (peak, chunks)
}

const STREAMED_MESSAGE: usize = 64 << 20;

/// A 64 MiB masked message, streamed, never takes the receive buffer past one read and the
/// frames' small change: at most two `read_buffer_size`s.
#[test]
fn a_64_mib_streamed_message_takes_at_most_two_reads_of_memory() {
    let config = quiet_config()
        .stream_messages(true)
        .max_message_size(STREAMED_MESSAGE);
    let mut p = Pair::with_configs(quiet_config(), config.clone());
    let data: Vec<u8> = (0..STREAMED_MESSAGE).map(|i| (i % 253) as u8).collect();
    p.client.send_binary(&data).unwrap();
    let wire = take_output(&mut p.client);
    let (peak, chunks) = stream_through(&mut p.server, &wire, &data);
    assert!(
        peak <= 2 * config.read_buffer_size,
        "heap_size reached {peak} bytes"
    );
    assert!(
        chunks >= STREAMED_MESSAGE / config.read_buffer_size,
        "{chunks} chunks"
    );
}

/// The same for 64 MiB of compressed multibyte text: the inflated chunks and the receive
/// buffer together stay within two reads (the inflater's window is its own).
#[test]
fn a_64_mib_compressed_streamed_text_takes_at_most_two_reads_of_memory() {
    let deflate = Some(wsproto::DeflateConfig::default());
    let plain = quiet_config().deflate(deflate.clone());
    let streaming = plain
        .clone()
        .stream_messages(true)
        .max_message_size(STREAMED_MESSAGE);
    let mut p = Pair::handshake(
        wsproto::ClientRequest::new("ws://example.com/").unwrap(),
        wsproto::Accept::new(),
        plain,
        streaming.clone(),
    );
    let line = "Grüße, 世界: a line of streamed text. ";
    let text = line.repeat(STREAMED_MESSAGE / line.len() + 1);
    let mut end = STREAMED_MESSAGE;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let text = &text[..end];
    p.client.send_text(text).unwrap();
    let wire = take_output(&mut p.client);
    assert!(
        wire.len() < text.len() / 50,
        "compressed to {} bytes",
        wire.len()
    );
    let (peak, _) = stream_through(&mut p.server, &wire, text.as_bytes());
    assert!(
        peak <= 2 * streaming.read_buffer_size,
        "heap_size reached {peak} bytes"
    );
}
