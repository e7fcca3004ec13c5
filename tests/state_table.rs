//! Walks the state table of the connection module's docs (`src/connection/mod.rs`): every row,
//! read from the docs themselves, is run from each state it names, and the next state and the
//! exact bytes queued are checked. A row added to the docs without a scenario here fails the
//! test, as does a state missing from the table, so the table cannot drift from the code.
mod common;
use common::*;
use std::collections::BTreeSet;
use wsproto::internals::state_name;
use wsproto::{Accept, ClientRequest, CloseCode, Config, Connection};

const MODULE: &str = include_str!("../src/connection/mod.rs");

/// One row of the docs' table.
#[derive(Debug)]
struct Row {
    states: Vec<String>,
    input: String,
    next: String,
    wire: String,
}

fn doc_rows() -> Vec<Row> {
    MODULE
        .lines()
        .filter_map(|line| line.strip_prefix("//! |"))
        .map(|line| {
            line.trim_end_matches('|')
                .split('|')
                .map(str::trim)
                .collect::<Vec<_>>()
        })
        .filter(|cells| cells.len() == 4 && cells[0] != "state" && !cells[0].starts_with("---"))
        .map(|cells| Row {
            states: cells[0].split(", ").map(String::from).collect(),
            input: cells[1].to_string(),
            next: cells[2].to_string(),
            wire: cells[3].to_string(),
        })
        .collect()
}

const REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\n\
    Host: server.example.com\r\n\
    Upgrade: websocket\r\n\
    Connection: Upgrade\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

/// A masked frame from a client, with the key 0 (payload unchanged).
fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mut frame = vec![first, 0x80 | payload.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(payload);
    frame
}

/// A server's Close frame, encoded here from RFC 6455 §5.2 and §5.5.1.
fn server_close(code: u16, reason: &str) -> Vec<u8> {
    let mut frame = vec![0x88, (2 + reason.len()) as u8];
    frame.extend_from_slice(&code.to_be_bytes());
    frame.extend_from_slice(reason.as_bytes());
    frame
}

fn timed_config() -> Config {
    quiet_config()
        .handshake_timeout(Some(secs(10)))
        .keepalive_interval(Some(secs(10)))
        .keepalive_timeout(Some(secs(5)))
        .close_timeout(Some(secs(3)))
}

/// A connection in `state`, its output so far taken.
fn connection_in(state: &str) -> Connection {
    let mut conn = match state {
        "ReadingRequest" => Connection::server(timed_config()),
        "AwaitingAnswer" => {
            let mut conn = Connection::server(timed_config());
            assert_eq!(feed(&mut conn, REQUEST).len(), 1);
            conn
        }
        "ReadingResponse" => {
            let request = ClientRequest::new("ws://server.example.com/chat").unwrap();
            Connection::client(request, timed_config(), counting_entropy())
        }
        "Open" => Connection::upgraded_server(timed_config()),
        "CloseSent" => {
            let mut conn = Connection::upgraded_server(timed_config());
            conn.close(CloseCode::NORMAL, "").unwrap();
            conn
        }
        "Closed" => {
            let mut conn = Connection::upgraded_server(timed_config());
            feed(&mut conn, &client_frame(0x88, &[0x03, 0xE8]));
            conn
        }
        "Failed" => {
            let mut conn = Connection::upgraded_server(timed_config());
            feed(&mut conn, &[0x81, 0x00]);
            conn
        }
        other => panic!("no way to reach state {other}"),
    };
    take_output(&mut conn);
    // Timers that a state runs are armed at 0 s.
    conn.handle_timeout(secs(0));
    assert_eq!(state_name(&conn), state, "setup");
    conn
}

/// Applies a row's input; returns what it queued.
fn apply(conn: &mut Connection, state: &str, input: &str) -> Vec<u8> {
    match input {
        "valid request head" => {
            let events = feed(conn, REQUEST);
            assert!(matches!(events.as_slice(), [Ev::Request(_)]), "{events:?}");
        }
        "invalid request head" => {
            let events = feed(conn, b"GET /chat HTTP/1.1\r\nHost: x\r\n\r\n");
            assert_eq!(events.len(), 1, "{events:?}");
        }
        "EOF" => {
            conn.receive_eof();
            drain(conn);
        }
        "`accept(..)`" => conn.accept(Accept::new()).unwrap(),
        "`reject(..)`" => conn.reject(403, &[], b"no").unwrap(),
        "valid 101 response" => {
            // The accept key (RFC 6455 §4.2.2) of the key "AQIDBAUGBwgJCgsMDQ4PEA==", the
            // base64 of the nonce 1..=16 that `counting_entropy` gives.
            let events = feed(
                conn,
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                  Connection: Upgrade\r\nSec-WebSocket-Accept: C/0nmHhBztSRGR1CwL6Tf4ZjwpY=\r\n\r\n",
            );
            assert!(matches!(events.as_slice(), [Ev::Accepted(_)]), "{events:?}");
        }
        "invalid response" => {
            feed(conn, b"HTTP/1.1 200 OK\r\n\r\n");
        }
        "handshake timeout" => conn.handle_timeout(secs(10)),
        "data, Ping or Pong frame" => {
            let events = feed(conn, &client_frame(0x82, b"data"));
            assert_eq!(events, [Ev::Binary(b"data".to_vec())]);
            assert_eq!(take_output(conn), []);
            let events = feed(conn, &client_frame(0x8A, b"pong"));
            assert_eq!(events, [Ev::Pong(b"pong".to_vec())]);
            assert_eq!(take_output(conn), []);
            let events = feed(conn, &client_frame(0x89, b"ping"));
            assert_eq!(events, [Ev::Ping(b"ping".to_vec())]);
        }
        "peer's Close" => {
            let events = feed(conn, &client_frame(0x88, &[0x03, 0xE9, b'b', b'y', b'e']));
            assert_eq!(events, [close(1001, "bye"), Ev::Closed(1001)]);
        }
        "`close(code, reason)`" => conn.close(CloseCode::NORMAL, "done").unwrap(),
        "protocol error" => {
            let events = feed(conn, &[0x81, 0x00]);
            assert_eq!(events.len(), 1, "{events:?}");
        }
        "keepalive Pong overdue" => {
            conn.handle_timeout(secs(10));
            assert_eq!(take_output(conn), [0x89, 0x04, 0, 0, 0, 1], "the Ping");
            conn.handle_timeout(secs(15));
            drain(conn);
        }
        "data frame" => {
            let events = feed(conn, &client_frame(0x81, b"late"));
            assert_eq!(events, [Ev::Text("late".into())]);
        }
        "close timeout" => {
            conn.handle_timeout(secs(3));
            assert_eq!(drain(conn), [Ev::Closed(1006)]);
        }
        "`fail(code, reason)`" => conn.fail(CloseCode::POLICY_VIOLATION, "policy").unwrap(),
        other => panic!("no scenario for input {other:?} (state {state})"),
    }
    take_output(conn)
}

/// The exact bytes a row queues from `state`.
fn expected_wire(state: &str, input: &str) -> Vec<u8> {
    match (state, input) {
        (_, "invalid request head") => b"HTTP/1.1 400 Bad Request\r\n\
            Connection: close\r\n\
            Content-Type: text/plain; charset=utf-8\r\n\
            Content-Length: 34\r\n\r\n\
            missing Upgrade: websocket header\n"
            .to_vec(),
        (_, "`accept(..)`") => b"HTTP/1.1 101 Switching Protocols\r\n\
            Upgrade: websocket\r\n\
            Connection: Upgrade\r\n\
            Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
            .to_vec(),
        (_, "`reject(..)`") => b"HTTP/1.1 403 Forbidden\r\n\
            Connection: close\r\n\
            Content-Type: text/plain; charset=utf-8\r\n\
            Content-Length: 2\r\n\r\n\
            no"
        .to_vec(),
        ("ReadingRequest" | "AwaitingAnswer", "handshake timeout") => {
            b"HTTP/1.1 408 Request Timeout\r\n\
            Connection: close\r\n\
            Content-Type: text/plain; charset=utf-8\r\n\
            Content-Length: 20\r\n\r\n\
            handshake timed out\n"
                .to_vec()
        }
        (_, "data, Ping or Pong frame") => vec![0x8A, 0x04, b'p', b'i', b'n', b'g'],
        ("Open", "peer's Close") => server_close(1001, "bye"),
        (_, "`close(code, reason)`") => server_close(1000, "done"),
        (_, "protocol error") => server_close(1002, "received an unmasked frame from the client"),
        (_, "keepalive Pong overdue") => {
            server_close(1011, "no pong arrived within the keepalive timeout")
        }
        ("Open", "`fail(code, reason)`") => server_close(1008, "policy"),
        _ => Vec::new(),
    }
}

/// What the docs' last column promises, checked against the exact bytes.
fn check_wire_column(row: &Row, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let ok = match row.wire.as_str() {
        w if w.starts_with("nothing") => bytes.is_empty(),
        "HTTP 4xx response" => text.starts_with("HTTP/1.1 4"),
        "HTTP 101 response" => text.starts_with("HTTP/1.1 101 "),
        "HTTP 408" => text.starts_with("HTTP/1.1 408 "),
        "the application's response" => text.starts_with("HTTP/1.1 403 ") && text.ends_with("no"),
        "a Pong for a Ping" => bytes.first() == Some(&0x8A),
        "Close echo (same code)" | "Close" | "Close with the error's code" | "Close 1011" => {
            bytes.first() == Some(&0x88)
        }
        other => panic!("unknown wire column {other:?}"),
    };
    assert!(ok, "{row:?}: {text:?}");
}

#[test]
fn every_row_of_the_documented_state_table_holds() {
    let rows = doc_rows();
    assert!(rows.len() >= 20, "the table was not found: {rows:?}");
    let mut walked = BTreeSet::new();
    for row in &rows {
        for state in &row.states {
            assert!(
                walked.insert((state.clone(), row.input.clone())),
                "({state}, {}) appears twice",
                row.input
            );
            let mut conn = connection_in(state);
            let queued = apply(&mut conn, state, &row.input);
            let next = if row.next == "unchanged" {
                state
            } else {
                &row.next
            };
            assert_eq!(state_name(&conn), next, "{state} + {}", row.input);
            assert_eq!(
                String::from_utf8_lossy(&queued),
                String::from_utf8_lossy(&expected_wire(state, &row.input)),
                "{state} + {}",
                row.input
            );
            assert_eq!(queued, expected_wire(state, &row.input));
            check_wire_column(row, &queued);
        }
    }
    // Every state appears in the table.
    let states: BTreeSet<&str> = walked.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        states,
        BTreeSet::from([
            "AwaitingAnswer",
            "CloseSent",
            "Closed",
            "Failed",
            "Open",
            "ReadingRequest",
            "ReadingResponse"
        ])
    );
}
