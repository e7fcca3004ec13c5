//! A client `Connection` driven by hand over a std socket ([`RawPeer`]), and the bursty peer
//! of the drivers' cancel-safety tests: messages cut into odd TCP writes, which a receive
//! call interrupted by `tokio::select!` must still deliver once each, in order. Shared by
//! `tests/drivers.rs` (`recv()`) and `tests/stream_sink.rs` (`Stream::next`).
#![allow(dead_code, reason = "each test file uses a subset")]

use crate::common::{Ev, counting_entropy, quiet_config};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::Duration;
use wsproto::drivers::Message;
use wsproto::{ClientRequest, CloseCode, Config, Connection};

/// The owned Close message the drivers hand out.
pub fn close_message(code: u16, reason: &str) -> Message {
    Message::Close {
        code: CloseCode(code),
        reason: reason.to_string(),
    }
}

/// How long a raw peer's read may block.
const LIMIT: Duration = Duration::from_secs(30);

/// A client `Connection` driven by hand over a std socket, for peers the drivers would not
/// be: one that never answers pings, one that writes frames in odd pieces.
pub struct RawPeer {
    pub stream: TcpStream,
    pub conn: Connection,
    eof: bool,
}

impl RawPeer {
    pub fn connect(url: &str, config: Config) -> Self {
        let request = ClientRequest::new(url).unwrap();
        let stream = TcpStream::connect((request.host(), request.port())).unwrap();
        stream.set_nodelay(true).unwrap();
        stream.set_read_timeout(Some(LIMIT)).unwrap();
        let conn = Connection::client(request, config, counting_entropy());
        let mut peer = Self {
            stream,
            conn,
            eof: false,
        };
        match peer.next() {
            Some(Ev::Accepted(_)) => peer,
            other => panic!("handshake failed: {other:?}"),
        }
    }

    pub fn flush(&mut self) {
        self.stream.write_all(self.conn.pending_output()).unwrap();
        self.conn.consume_output(self.conn.pending_output().len());
    }

    /// The next event, owned, reading as needed; `None` once the stream ended and every
    /// event was taken. Output the connection queued (a Close echo, say) is sent first.
    pub fn next(&mut self) -> Option<Ev> {
        loop {
            self.flush();
            match self.conn.next_event() {
                Ok(Some(event)) => return Some(Ev::from_event(&event)),
                Ok(None) if self.eof => return None,
                Ok(None) => {}
                Err(e) => return Some(Ev::Error(e)),
            }
            self.flush();
            let n = match self.stream.read(self.conn.receive_buffer()) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => 0,
                Err(e) => panic!("raw peer read failed: {e}"),
            };
            if n == 0 {
                self.eof = true;
                self.conn.receive_eof();
            } else {
                self.conn.commit(n);
            }
        }
    }
}

pub const MESSAGES: usize = 2_000;
pub const BURST: usize = 50;

/// Message `i` of the cancel-safety stream: text with multibyte characters (so reads split
/// UTF-8 sequences) or, every seventh, binary; sizes from 0 to a few KiB.
pub fn nth_message(i: usize) -> Message {
    if i % 7 == 3 {
        Message::Binary((0..(i * 131) % 5_000).map(|j| (i + j) as u8).collect())
    } else {
        let mut text = format!("m{i}:");
        for j in 0..(i * 37) % 400 {
            text.push(['a', '\u{e9}', '\u{2713}', '\u{1f600}'][(i + j) % 4]);
        }
        Message::Text(text)
    }
}

/// A tiny deterministic generator for chunk sizes and pauses.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

/// Connects, then writes [`MESSAGES`] messages in bursts, each burst cut into TCP writes of
/// 1 to 700 bytes (most frames span several writes) with short pauses; then closes.
pub fn bursty_peer(url: String) -> Option<Ev> {
    let mut peer = RawPeer::connect(&url, quiet_config());
    let mut rng = Lcg(7);
    for burst in 0..MESSAGES / BURST {
        for i in burst * BURST..(burst + 1) * BURST {
            match nth_message(i) {
                Message::Text(text) => peer.conn.send_text(&text).unwrap(),
                Message::Binary(data) => peer.conn.send_binary(&data).unwrap(),
                _ => unreachable!(),
            }
        }
        while peer.conn.wants_write() {
            let out = peer.conn.pending_output();
            let n = (rng.next(700) as usize + 1).min(out.len());
            peer.stream.write_all(&out[..n]).unwrap();
            peer.conn.consume_output(n);
            if rng.next(4) == 0 {
                thread::sleep(Duration::from_micros(300));
            }
        }
        thread::sleep(Duration::from_millis(2));
    }
    peer.conn.close(CloseCode::NORMAL, "all sent").unwrap();
    peer.flush();
    peer.next()
}

/// Every message exactly once, in order, then the Close; and the competing branch really
/// did interrupt the receive call (`recv()` or `next()`).
pub fn check_stream(received: &[Message], ticks: usize, peer_saw: Option<Ev>) {
    assert_eq!(received.len(), MESSAGES + 1, "message count");
    for (i, message) in received[..MESSAGES].iter().enumerate() {
        assert!(*message == nth_message(i), "message {i} differs");
    }
    assert_eq!(received[MESSAGES], close_message(1000, "all sent"));
    assert_eq!(peer_saw, Some(Ev::Close(1000, "all sent".into())));
    assert!(ticks >= 20, "the competing branch fired only {ticks} times");
}
