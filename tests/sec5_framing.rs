//! RFC 6455 §5.7 examples byte for byte.
mod common;
use common::*;
use wsproto::Connection;

#[test]
fn sec_5_7_unmasked_hello_to_client() {
    let mut client = Connection::upgraded_client(quiet_config(), counting_entropy());
    assert_eq!(
        feed(&mut client, b"\x81\x05Hello"),
        [Ev::Text("Hello".into())]
    );
}

#[test]
fn sec_5_7_masked_hello_to_server() {
    let mut server = Connection::upgraded_server(quiet_config());
    let frame = [
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    assert_eq!(feed(&mut server, &frame), [Ev::Text("Hello".into())]);
}

#[test]
fn sec_5_7_client_masks_hello_with_its_key() {
    let mut client =
        Connection::upgraded_client(quiet_config(), fixed_key([0x37, 0xfa, 0x21, 0x3d]));
    client.send_text("Hello").unwrap();
    assert_eq!(
        take_output(&mut client),
        [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58
        ]
    );
}

#[test]
fn sec_5_7_server_sends_unmasked_hello() {
    let mut server = Connection::upgraded_server(quiet_config());
    server.send_text("Hello").unwrap();
    assert_eq!(take_output(&mut server), b"\x81\x05Hello");
}

#[test]
fn sec_5_7_fragmented_hel_lo() {
    let mut client = Connection::upgraded_client(quiet_config(), counting_entropy());
    assert_eq!(
        feed(&mut client, b"\x01\x03Hel\x80\x02lo"),
        [Ev::Text("Hello".into())]
    );
}

#[test]
fn sec_5_7_ping_and_pong() {
    let mut client =
        Connection::upgraded_client(quiet_config(), fixed_key([0x37, 0xfa, 0x21, 0x3d]));
    // Unmasked Ping "Hello" from the server; the automatic Pong is the §5.7 masked Pong.
    assert_eq!(
        feed(&mut client, b"\x89\x05Hello"),
        [Ev::Ping(b"Hello".to_vec())]
    );
    assert_eq!(
        take_output(&mut client),
        [
            0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58
        ]
    );
    let mut server = Connection::upgraded_server(quiet_config());
    let pong = [
        0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    assert_eq!(feed(&mut server, &pong), [Ev::Pong(b"Hello".to_vec())]);
}

#[test]
fn sec_5_7_256_bytes_and_64_kib_binary() {
    let mut server = Connection::upgraded_server(quiet_config());
    server.send_binary(&[0xAB; 256]).unwrap();
    let out = take_output(&mut server);
    assert_eq!(&out[..4], [0x82, 0x7E, 0x01, 0x00]);
    assert_eq!(out.len(), 4 + 256);
    let mut client = Connection::upgraded_client(quiet_config(), counting_entropy());
    assert_eq!(feed(&mut client, &out), [Ev::Binary(vec![0xAB; 256])]);

    server.send_binary(&[0xCD; 65536]).unwrap();
    let out = take_output(&mut server);
    assert_eq!(&out[..10], [0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]);
    assert_eq!(out.len(), 10 + 65536);
    assert_eq!(feed(&mut client, &out), [Ev::Binary(vec![0xCD; 65536])]);
}
