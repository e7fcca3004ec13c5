//! Test harness: owned event transcripts, deterministic entropy and a client-server `Pair`.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;
use wsproto::{
    Accept, ClientRequest, CloseCode, Config, Connection, Error, Event, Request, Response,
};

/// An owned copy of an [`Event`], so transcripts can be collected and compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ev {
    Text(String),
    Binary(Vec<u8>),
    /// A streamed message's chunk, and whether it ends the message.
    TextChunk(String, bool),
    BinaryChunk(Vec<u8>, bool),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(u16, String),
    Closed(u16),
    Error(Error),
    /// Server: the handshake request, owned (boxed to keep `Ev` small).
    Request(Box<Request>),
    /// Client: the server's 101 response, owned.
    Accepted(Box<Response>),
}

impl Ev {
    pub fn from_event(event: &Event<'_>) -> Self {
        match event {
            Event::Text(t) => Ev::Text(t.to_string()),
            Event::Binary(b) => Ev::Binary(b.to_vec()),
            Event::TextChunk { text, fin } => Ev::TextChunk(text.to_string(), *fin),
            Event::BinaryChunk { data, fin } => Ev::BinaryChunk(data.to_vec(), *fin),
            Event::Ping(p) => Ev::Ping(p.to_vec()),
            Event::Pong(p) => Ev::Pong(p.to_vec()),
            Event::Close { code, reason } => Ev::Close(code.0, reason.to_string()),
            Event::Closed(code) => Ev::Closed(code.0),
            Event::Request(request) => Ev::Request(Box::new((*request).clone())),
            Event::Accepted(response) => Ev::Accepted(Box::new((*response).clone())),
            other => panic!("unexpected event {other:?}"),
        }
    }
}

/// Pulls every event until `None` or an error (recorded as the last entry).
pub fn drain(conn: &mut Connection) -> Vec<Ev> {
    let mut events = Vec::new();
    loop {
        match conn.next_event() {
            Ok(Some(event)) => events.push(Ev::from_event(&event)),
            Ok(None) => return events,
            Err(e) => {
                events.push(Ev::Error(e));
                return events;
            }
        }
    }
}

/// Feeds `bytes` in one call and returns the transcript.
pub fn feed(conn: &mut Connection, bytes: &[u8]) -> Vec<Ev> {
    conn.receive(bytes);
    drain(conn)
}

/// Feeds `bytes` in chunks of `chunk` bytes, draining after each, and returns the transcript.
pub fn feed_chunked(conn: &mut Connection, bytes: &[u8], chunk: usize) -> Vec<Ev> {
    let mut events = Vec::new();
    for piece in bytes.chunks(chunk.max(1)) {
        conn.receive(piece);
        events.extend(drain(conn));
        if matches!(events.last(), Some(Ev::Error(_))) {
            break;
        }
    }
    events
}

/// Takes all pending output.
pub fn take_output(conn: &mut Connection) -> Vec<u8> {
    let out = conn.pending_output().to_vec();
    conn.consume_output(out.len());
    out
}

/// Deterministic "entropy": 0x01, 0x02, 0x03, ... so masking keys are predictable in tests.
pub fn counting_entropy() -> impl FnMut(&mut [u8]) + Send + 'static {
    let mut next = 0u8;
    move |dest: &mut [u8]| {
        for b in dest {
            next = next.wrapping_add(1);
            *b = next;
        }
    }
}

/// Constant entropy: every masking key is `key`.
pub fn fixed_key(key: [u8; 4]) -> impl FnMut(&mut [u8]) + Send + 'static {
    move |dest: &mut [u8]| {
        for (i, b) in dest.iter_mut().enumerate() {
            *b = key[i % 4];
        }
    }
}

/// A config with no timers, so tests that don't exercise them see no keepalive Pings.
pub fn quiet_config() -> Config {
    let mut config = Config::default();
    config.keepalive_interval = None;
    config.keepalive_timeout = None;
    config.close_timeout = None;
    config.handshake_timeout = None;
    // Emptied buffers are freed at once: no deadline for them either.
    config.buffer_linger = None;
    config
}

/// A client and a server wired together in memory, already upgraded.
pub struct Pair {
    pub client: Connection,
    pub server: Connection,
}

impl Pair {
    pub fn new() -> Self {
        Self::with_configs(quiet_config(), quiet_config())
    }

    pub fn with_configs(client: Config, server: Config) -> Self {
        Self {
            client: Connection::upgraded_client(client, counting_entropy()),
            server: Connection::upgraded_server(server),
        }
    }

    /// A client (`Connection::client` with `counting_entropy`) and a server
    /// (`Connection::server`) that ran the opening handshake in memory: the client's request
    /// gives the server exactly one `Event::Request`, the server answers with `accept`, and
    /// the 101 gives the client exactly one `Event::Accepted`. Both are open on return.
    pub fn handshake(
        request: ClientRequest,
        accept: Accept,
        client: Config,
        server: Config,
    ) -> Self {
        let mut pair = Self {
            client: Connection::client(request, client, counting_entropy()),
            server: Connection::server(server),
        };
        let events = pair.deliver_to_server();
        assert!(
            matches!(events.as_slice(), [Ev::Request(_)]),
            "server events: {events:?}"
        );
        pair.server.accept(accept).expect("accept");
        let events = pair.deliver_to_client();
        assert!(
            matches!(events.as_slice(), [Ev::Accepted(_)]),
            "client events: {events:?}"
        );
        assert_eq!(pair.client.state(), wsproto::ConnectionState::Open);
        assert_eq!(pair.server.state(), wsproto::ConnectionState::Open);
        pair
    }

    /// Moves the client's output to the server and returns the server's events.
    pub fn deliver_to_server(&mut self) -> Vec<Ev> {
        let bytes = take_output(&mut self.client);
        feed(&mut self.server, &bytes)
    }

    /// Moves the server's output to the client and returns the client's events.
    pub fn deliver_to_client(&mut self) -> Vec<Ev> {
        let bytes = take_output(&mut self.server);
        feed(&mut self.client, &bytes)
    }
}

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub fn close(code: u16, reason: &str) -> Ev {
    Ev::Close(code, reason.to_string())
}

pub const NORMAL: CloseCode = CloseCode::NORMAL;
