//! The `differential` target: our client encodes a program of messages and fragmentations;
//! our server and tungstenite (server role, limits raised) must both decode exactly the
//! messages the program sent, in the same order.

use crate::targets::{Msg, differential_ours};
use std::io::{self, Read, Write};
use tungstenite::protocol::frame::coding::CloseCode as TCloseCode;
use tungstenite::protocol::{Message, Role, WebSocket, WebSocketConfig};

/// An in-memory stream: reads hand out at most `chunk` bytes, then `WouldBlock` once
/// everything was read; writes (tungstenite's Pongs and Close echo) are kept.
struct Pipe {
    input: Vec<u8>,
    pos: usize,
    chunk: usize,
    output: Vec<u8>,
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let rest = &self.input[self.pos..];
        if rest.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = rest.len().min(buf.len()).min(self.chunk);
        buf[..n].copy_from_slice(&rest[..n]);
        self.pos += n;
        Ok(n)
    }
}

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What tungstenite reports for a message, in our terms.
fn theirs(message: Message) -> Msg {
    match message {
        Message::Text(t) => Msg::Text(t.as_str().into()),
        Message::Binary(b) => Msg::Binary(b.to_vec()),
        Message::Ping(p) => Msg::Ping(p.to_vec()),
        Message::Pong(p) => Msg::Pong(p.to_vec()),
        Message::Close(None) => Msg::Close(1005, String::new()),
        Message::Close(Some(frame)) => {
            Msg::Close(u16::from(frame.code), frame.reason.as_str().into())
        }
        Message::Frame(_) => unreachable!("read never returns raw frames"),
    }
}

/// tungstenite treats 1014 (Bad Gateway, registered by IANA after RFC 6455) as an invalid
/// code and reports the Close as a protocol violation; we accept it. Known and deliberate.
fn as_tungstenite_reports(msg: &Msg) -> Msg {
    match msg {
        // 1005 is a Close without a body, reported as `Close(None)`.
        Msg::Close(code, _) if *code != 1005 && !TCloseCode::from(*code).is_allowed() => {
            Msg::Close(1002, "Protocol violation".into())
        }
        other => other.clone(),
    }
}

pub fn differential(data: &[u8]) {
    let program = differential_ours(data);
    // Limits raised as for ours; a small read buffer, since tungstenite allocates it eagerly.
    let config = WebSocketConfig::default()
        .max_message_size(None)
        .max_frame_size(None)
        .read_buffer_size(4096);
    let pipe = Pipe {
        input: program.wire,
        pos: 0,
        chunk: program.chunk,
        output: Vec::new(),
    };
    let mut ws = WebSocket::from_raw_socket(pipe, Role::Server, Some(config));
    let mut got = Vec::new();
    loop {
        match ws.read() {
            Ok(message) => got.push(theirs(message)),
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => break,
            Err(e) => panic!("tungstenite rejected our client's bytes: {e}; got so far {got:?}"),
        }
    }
    let want: Vec<Msg> = program
        .expected
        .iter()
        .map(as_tungstenite_reports)
        .collect();
    assert_eq!(got, want, "tungstenite disagrees with what our client sent");
}
