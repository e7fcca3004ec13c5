//! Streaming receive (`Config::stream_messages`): chunks lent as they arrive, code points
//! carried across chunks, fail-fast UTF-8, bounded inflation, the message limit on the
//! whole, and the chunk limit of `next_event_up_to`.
mod common;
use common::*;
use wsproto::{
    Accept, ClientRequest, CloseCode, Config, Connection, DeflateConfig, Error, MessageKind,
    ProtocolError,
};

fn streaming() -> Config {
    quiet_config().stream_messages(true)
}

/// A masked frame header (key 0, so the payload goes out as it is) for `len` bytes.
fn masked_header(first_byte: u8, len: usize) -> Vec<u8> {
    let mut head = vec![first_byte];
    match len {
        0..=125 => head.push(0x80 | len as u8),
        126..=0xffff => {
            head.push(0x80 | 126);
            head.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            head.push(0x80 | 127);
            head.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    head.extend_from_slice(&[0, 0, 0, 0]);
    head
}

/// The unmasked Close frame a server queues for `error`: its code, and its text as reason.
fn close_frame(code: u16, error: ProtocolError) -> Vec<u8> {
    let reason = Error::Protocol(error).to_string();
    let mut frame = vec![0x88, 2 + reason.len() as u8];
    frame.extend_from_slice(&code.to_be_bytes());
    frame.extend_from_slice(reason.as_bytes());
    frame
}

#[test]
fn sec_5_2_binary_arrives_a_chunk_per_read() {
    let mut server = Connection::upgraded_server(streaming());
    let mut frame = masked_header(0x82, 10);
    frame.extend_from_slice(b"0123456789");
    assert_eq!(
        feed(&mut server, &frame[..6]),
        [] as [Ev; 0],
        "the header alone"
    );
    assert_eq!(
        feed(&mut server, &frame[6..13]),
        [Ev::BinaryChunk(b"0123456".to_vec(), false)]
    );
    assert_eq!(
        feed(&mut server, &frame[13..]),
        [Ev::BinaryChunk(b"789".to_vec(), true)]
    );
}

#[test]
fn a_whole_message_in_one_read_is_one_chunk() {
    let mut server = Connection::upgraded_server(streaming());
    let mut bytes = masked_header(0x81, 5);
    bytes.extend_from_slice(b"hello");
    bytes.extend(masked_header(0x82, 0));
    assert_eq!(
        feed(&mut server, &bytes),
        [
            Ev::TextChunk("hello".into(), true),
            Ev::BinaryChunk(Vec::new(), true)
        ]
    );
}

#[test]
fn sec_5_4_fragments_stream_and_a_ping_between_them_is_reported_in_order() {
    let mut server = Connection::upgraded_server(streaming());
    let mut bytes = masked_header(0x02, 3);
    bytes.extend_from_slice(b"abc");
    bytes.extend(masked_header(0x89, 2));
    bytes.extend_from_slice(b"hi");
    bytes.extend(masked_header(0x00, 0));
    bytes.extend(masked_header(0x80, 2));
    bytes.extend_from_slice(b"de");
    assert_eq!(
        feed(&mut server, &bytes),
        [
            Ev::BinaryChunk(b"abc".to_vec(), false),
            Ev::Ping(b"hi".to_vec()),
            Ev::BinaryChunk(b"de".to_vec(), true),
        ]
    );
    assert_eq!(take_output(&mut server), b"\x8a\x02hi", "the Pong");
}

#[test]
fn sec_8_1_a_code_point_split_across_reads_comes_whole_in_the_next_chunk() {
    // "añb€": ñ is C3 B1, € is E2 82 AC.
    let text = "añb€";
    let mut server = Connection::upgraded_server(streaming());
    let mut frame = masked_header(0x81, text.len());
    frame.extend_from_slice(text.as_bytes());
    let header = frame.len() - text.len();
    // Reads end inside ñ, then inside €.
    assert_eq!(
        feed(&mut server, &frame[..header + 2]),
        [Ev::TextChunk("a".into(), false)]
    );
    assert_eq!(
        feed(&mut server, &frame[header + 2..header + 5]),
        [Ev::TextChunk("ñb".into(), false)]
    );
    assert_eq!(
        feed(&mut server, &frame[header + 5..header + 6]),
        [] as [Ev; 0],
        "the second byte of € alone makes no chunk"
    );
    assert_eq!(
        feed(&mut server, &frame[header + 6..]),
        [Ev::TextChunk("€".into(), true)]
    );
}

#[test]
fn sec_8_1_a_code_point_split_across_frames_moves_up_to_the_next_fragment() {
    // € split after its first byte, with a Ping between the two fragments.
    let mut server = Connection::upgraded_server(streaming());
    let mut bytes = masked_header(0x01, 2);
    bytes.extend_from_slice(b"x\xe2");
    bytes.extend(masked_header(0x89, 1));
    bytes.extend_from_slice(b"p");
    bytes.extend(masked_header(0x80, 3));
    bytes.extend_from_slice(b"\x82\xacy");
    assert_eq!(
        feed(&mut server, &bytes),
        [
            Ev::TextChunk("x".into(), false),
            Ev::Ping(b"p".to_vec()),
            Ev::TextChunk("€y".into(), true),
        ]
    );
    // The same bytes a byte at a time give the same text.
    let mut server = Connection::upgraded_server(streaming());
    let events = feed_chunked(&mut server, &bytes, 1);
    assert_eq!(
        events,
        [
            Ev::TextChunk("x".into(), false),
            Ev::Ping(b"p".to_vec()),
            Ev::TextChunk("€".into(), false),
            Ev::TextChunk("y".into(), true),
        ]
    );
}

#[test]
fn sec_8_1_invalid_text_fails_in_the_chunk_it_arrives_in() {
    let mut server = Connection::upgraded_server(streaming());
    // A 100-byte text frame: "ok" and the first byte of €, then a byte that cannot follow.
    let mut frame = masked_header(0x81, 100);
    let header = frame.len();
    frame.extend_from_slice(b"ok\xe2");
    frame.extend_from_slice(b"(");
    frame.resize(header + 100, b'z');
    assert_eq!(
        feed(&mut server, &frame[..header + 3]),
        [Ev::TextChunk("ok".into(), false)]
    );
    // 96 bytes of the frame are still to come: the error does not wait for them.
    assert_eq!(
        feed(&mut server, &frame[header + 3..header + 4]),
        [Ev::Error(Error::Protocol(ProtocolError::InvalidUtf8))]
    );
    assert_eq!(
        take_output(&mut server),
        close_frame(1007, ProtocolError::InvalidUtf8)
    );
}

#[test]
fn sec_8_1_text_that_ends_inside_a_code_point_fails_at_the_end() {
    let mut server = Connection::upgraded_server(streaming());
    let mut frame = masked_header(0x81, 3);
    frame.extend_from_slice(b"ab\xc3");
    assert_eq!(
        feed(&mut server, &frame),
        [Ev::Error(Error::Protocol(ProtocolError::InvalidUtf8))]
    );
}

#[test]
fn the_message_limit_applies_to_the_whole_streamed_message() {
    let mut server = Connection::upgraded_server(streaming().max_message_size(10));
    let mut bytes = masked_header(0x02, 6);
    bytes.extend_from_slice(b"123456");
    bytes.extend(masked_header(0x80, 5));
    assert_eq!(
        feed(&mut server, &bytes),
        [
            Ev::BinaryChunk(b"123456".to_vec(), false),
            Ev::Error(Error::Protocol(ProtocolError::MessageTooLarge {
                len: 11,
                max: 10
            }))
        ]
    );
    assert_eq!(
        take_output(&mut server),
        close_frame(1009, ProtocolError::MessageTooLarge { len: 11, max: 10 })
    );
}

#[test]
fn next_event_up_to_lends_at_most_that_much_and_keeps_code_points_whole() {
    let text = "ab€€€cd";
    let mut server = Connection::upgraded_server(streaming());
    let mut frame = masked_header(0x81, text.len());
    frame.extend_from_slice(text.as_bytes());
    server.receive(&frame);
    let mut chunks = Vec::new();
    while let Some(event) = server.next_event_up_to(8).unwrap() {
        chunks.push(Ev::from_event(&event));
    }
    // 8 bytes would end inside the third €: it waits for the next chunk.
    assert_eq!(
        chunks,
        [
            Ev::TextChunk("ab€€".into(), false),
            Ev::TextChunk("€cd".into(), true)
        ]
    );
    // A limit under 8 is taken as 8.
    let mut server = Connection::upgraded_server(streaming());
    let mut frame = masked_header(0x82, 10);
    frame.extend_from_slice(b"0123456789");
    server.receive(&frame);
    let first = Ev::from_event(&server.next_event_up_to(1).unwrap().unwrap());
    assert_eq!(first, Ev::BinaryChunk(b"01234567".to_vec(), false));
    // And a plain next_event lends the rest at once.
    let rest = Ev::from_event(&server.next_event().unwrap().unwrap());
    assert_eq!(rest, Ev::BinaryChunk(b"89".to_vec(), true));
}

#[test]
fn without_the_setting_messages_come_whole() {
    let mut server = Connection::upgraded_server(quiet_config());
    let mut frame = masked_header(0x82, 10);
    frame.extend_from_slice(b"0123456789");
    assert_eq!(
        feed_chunked(&mut server, &frame, 3),
        [Ev::Binary(b"0123456789".to_vec())]
    );
}

fn deflate_pair(client_streams: bool) -> Pair {
    let deflate = DeflateConfig::default().threshold(0);
    let config = quiet_config().deflate(Some(deflate));
    Pair::handshake(
        ClientRequest::new("ws://example.com/").unwrap(),
        Accept::new(),
        config.clone().stream_messages(client_streams),
        config.stream_messages(!client_streams),
    )
}

#[test]
fn rfc_7692_compressed_messages_stream_in_chunks_of_at_most_a_read() {
    let mut p = deflate_pair(false);
    let text: String = "streamed, compressed, ünïcödé ".repeat(10_000);
    p.client.send_text(&text).unwrap();
    let bytes = take_output(&mut p.client);
    assert!(
        bytes.len() < text.len() / 20,
        "it was compressed: {}",
        bytes.len()
    );
    let events = feed(&mut p.server, &bytes);
    let read = Config::default().read_buffer_size;
    let mut joined = String::new();
    for (i, event) in events.iter().enumerate() {
        let Ev::TextChunk(chunk, fin) = event else {
            panic!("event {i}: {event:?}");
        };
        assert_eq!(*fin, i + 1 == events.len());
        assert!(
            !chunk.is_empty() && chunk.len() <= read,
            "chunk {i}: {}",
            chunk.len()
        );
        joined.push_str(chunk);
    }
    assert_eq!(joined, text);
    assert!(events.len() >= text.len() / read, "{} chunks", events.len());
    // The next message inflates with the context the first left (context takeover).
    p.client.send_text("again").unwrap();
    assert_eq!(p.deliver_to_server(), [Ev::TextChunk("again".into(), true)]);
}

#[test]
fn rfc_7692_compressed_limit_applies_to_the_inflated_total() {
    let deflate = DeflateConfig::default().threshold(0);
    let config = quiet_config().deflate(Some(deflate));
    let mut p = Pair::handshake(
        ClientRequest::new("ws://example.com/").unwrap(),
        Accept::new(),
        config.clone(),
        config.stream_messages(true).max_message_size(100_000),
    );
    p.client.send_binary(&vec![7; 100_001]).unwrap();
    let events = p.deliver_to_server();
    let (last, chunks) = events.split_last().unwrap();
    assert_eq!(
        *last,
        Ev::Error(Error::Protocol(ProtocolError::MessageTooLarge {
            len: 100_001,
            max: 100_000
        }))
    );
    let lent: usize = chunks
        .iter()
        .map(|event| match event {
            Ev::BinaryChunk(data, false) => data.len(),
            other => panic!("{other:?}"),
        })
        .sum();
    assert!(lent <= 100_000, "{lent} bytes lent before the error");
    assert_eq!(p.server.state(), wsproto::ConnectionState::Closed);
    assert_eq!(
        Error::Protocol(ProtocolError::MessageTooLarge { len: 0, max: 0 }).close_code(),
        Some(CloseCode::MESSAGE_TOO_BIG)
    );
}

#[test]
fn rfc_7692_a_fragmented_compressed_message_streams_from_the_client_side_too() {
    let mut p = deflate_pair(true);
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    p.server
        .send_fragment(MessageKind::Binary, &data[..70_000], false)
        .unwrap();
    p.server
        .send_fragment(MessageKind::Binary, &data[70_000..], true)
        .unwrap();
    let events = p.deliver_to_client();
    let mut joined = Vec::new();
    for (i, event) in events.iter().enumerate() {
        let Ev::BinaryChunk(chunk, fin) = event else {
            panic!("event {i}: {event:?}");
        };
        assert_eq!(*fin, i + 1 == events.len());
        joined.extend_from_slice(chunk);
    }
    assert_eq!(joined, data);
}

// ----- the drivers' message readers, over loopback TCP ---------------------------------------

/// 8 MiB that is not all one byte.
fn large_binary() -> Vec<u8> {
    (0..8u32 << 20).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// A server config that streams, reading 16 KiB at a time.
fn streaming_server() -> Config {
    streaming()
        .read_buffer_size(16 << 10)
        .max_message_size(16 << 20)
}

#[tokio::test]
async fn tokio_read_message_copies_a_streamed_message_within_two_reads_of_memory() {
    use tokio::io::AsyncReadExt;
    use wsproto::drivers::tokio::WebSocketStream;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let data = large_binary();
    let sent = data.clone();
    // The client keeps its socket until the server has read everything: closed earlier,
    // it would answer the server's Pong with a reset, which drops unread bytes.
    let (done, server_done) = tokio::sync::oneshot::channel::<()>();
    let client = tokio::spawn(async move {
        let mut ws = WebSocketStream::connect(&url).await.unwrap();
        // Fragments with a Ping between them, then a text, then one message cut short.
        ws.send_fragment(MessageKind::Binary, &sent[..3 << 20], false)
            .await
            .unwrap();
        ws.send_ping(b"between").await.unwrap();
        ws.send_fragment(MessageKind::Binary, &sent[3 << 20..], true)
            .await
            .unwrap();
        ws.send_text("héllo wörld").await.unwrap();
        ws.send_fragment(MessageKind::Text, b"cut ", false)
            .await
            .unwrap();
        // A peer may give up in the middle of a message: its Close cuts it short.
        ws.connection_mut()
            .fail(CloseCode::GOING_AWAY, "bye")
            .unwrap();
        ws.flush().await.unwrap();
        server_done.await.unwrap();
    });
    let (stream, _) = listener.accept().await.unwrap();
    let mut ws = WebSocketStream::accept(stream, streaming_server())
        .await
        .unwrap();

    let mut message = ws.read_message();
    let mut got = Vec::new();
    let n = tokio::io::copy(&mut message, &mut got).await.unwrap();
    assert_eq!(n, data.len() as u64);
    assert_eq!(message.kind(), Some(MessageKind::Binary));
    assert!(got == data, "the 8 MiB came through unchanged");
    // Buffers only grow while they linger: this is the most they held.
    let heap = ws.connection().heap_size();
    assert!(heap <= 2 * (16 << 10), "heap_size {heap}");

    let mut message = ws.read_message();
    let mut text = String::new();
    message.read_to_string(&mut text).await.unwrap();
    assert_eq!(
        (text.as_str(), message.kind()),
        ("héllo wörld", Some(MessageKind::Text))
    );

    let mut message = ws.read_message();
    let mut rest = Vec::new();
    let error = message.read_to_end(&mut rest).await.unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof);
    assert_eq!(rest, b"cut ");
    done.send(()).unwrap();
    client.await.unwrap();
}

#[test]
fn blocking_read_message_in_reads_shorter_than_a_code_point() {
    use std::io::Read;
    use wsproto::drivers::blocking::WebSocket;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let client = std::thread::spawn(move || {
        let mut ws = WebSocket::connect(&url).unwrap();
        ws.send_text("ünïcödé, €€€ and 𝄞").unwrap();
        ws.send_binary(&[1, 2, 3]).unwrap();
        ws.close(CloseCode::NORMAL, "done").unwrap();
        while let Ok(Some(_)) = ws.recv() {}
    });
    let (stream, _) = listener.accept().unwrap();
    let mut ws = WebSocket::accept(stream, streaming_server()).unwrap();

    // 3-byte reads: chunks are at least 8 bytes, so what does not fit is kept for the next.
    let mut message = ws.read_message();
    let mut text = Vec::new();
    let mut buf = [0; 3];
    loop {
        let n = message.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        text.extend_from_slice(&buf[..n]);
    }
    assert_eq!(message.kind(), Some(MessageKind::Text));
    assert_eq!(String::from_utf8(text).unwrap(), "ünïcödé, €€€ and 𝄞");

    let mut message = ws.read_message();
    let mut data = Vec::new();
    message.read_to_end(&mut data).unwrap();
    assert_eq!(
        (data, message.kind()),
        (vec![1, 2, 3], Some(MessageKind::Binary))
    );

    // The client's Close before any message: the reader ends empty.
    let mut message = ws.read_message();
    assert_eq!(message.read(&mut buf).unwrap(), 0);
    assert_eq!(message.kind(), None);
    assert_eq!(ws.recv().unwrap(), None);
    client.join().unwrap();
}

/// Found in review: an unlimited message size (`usize::MAX`) overflowed the inflation cap's
/// "one byte past the limit", which panicked in debug builds and, wrapped to 0, left a
/// release build waiting forever on a compressed message it never inflated.
#[test]
fn rfc_7692_an_unlimited_message_size_still_inflates_streamed_messages() {
    let deflate = DeflateConfig::default().threshold(0);
    let config = quiet_config().deflate(Some(deflate));
    let mut p = Pair::handshake(
        ClientRequest::new("ws://example.com/").unwrap(),
        Accept::new(),
        config.clone(),
        config.stream_messages(true).max_message_size(usize::MAX),
    );
    p.client.send_text("Hello").unwrap();
    assert_eq!(p.deliver_to_server(), [Ev::TextChunk("Hello".into(), true)]);
}
