//! What every bench binary shares: the in-memory socket, the frame streams, the payloads and
//! the criterion settings.
//!
//! The streams are encoded here, byte by byte from RFC 6455 §5.2, so that no implementation
//! under test encodes the input the others decode.
#![allow(dead_code, reason = "each bench binary uses a subset")]

use criterion::Criterion;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The most a read returns, like a socket with a 64 KiB receive window.
pub const MAX_READ: usize = 64 << 10;

/// The implementations, in the order of every group.
pub const OURS: &str = "wsproto";
pub const TUNGSTENITE: &str = "tungstenite";
pub const FASTWEBSOCKETS: &str = "fastwebsockets";
pub const TOKIO_WEBSOCKETS: &str = "tokio-websockets";
pub const SOCKUDO_WS: &str = "sockudo-ws";

/// Short measurements: the machine is shared, so the table compares medians of one run.
pub fn criterion() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
        .configure_from_args()
}

/// A current-thread runtime, like one worker of a server.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime")
}

/// An in-memory socket: reads hand out `input` at most [`MAX_READ`] bytes at a time; writes
/// (vectored too, as on a `TcpStream`) are copied once, as the kernel copies them into the
/// socket buffer, then dropped, or kept when asked.
#[derive(Debug)]
pub struct MemSocket<'a> {
    input: &'a [u8],
    pos: usize,
    pub written: usize,
    /// Everything written, when made with [`MemSocket::capturing`].
    pub captured: Option<Vec<u8>>,
    /// At the end of the input, async reads wait forever instead of returning EOF, like an
    /// open socket.
    pub endless: bool,
    /// Where written bytes are copied to.
    kernel: Vec<u8>,
}

impl<'a> MemSocket<'a> {
    pub fn new(input: &'a [u8]) -> Self {
        Self {
            input,
            pos: 0,
            written: 0,
            captured: None,
            endless: false,
            kernel: Vec::new(),
        }
    }

    /// A socket that keeps what is written to it.
    pub fn capturing(input: &'a [u8]) -> Self {
        Self {
            captured: Some(Vec::new()),
            ..Self::new(input)
        }
    }

    /// Takes written bytes: copies them like a socket write would.
    pub fn take<'b>(&mut self, bufs: impl IntoIterator<Item = &'b [u8]>) -> usize {
        let mut n = 0;
        self.kernel.clear();
        for buf in bufs {
            n += buf.len();
            self.kernel.extend_from_slice(buf);
            if let Some(captured) = &mut self.captured {
                captured.extend_from_slice(buf);
            }
        }
        std::hint::black_box(&mut self.kernel);
        self.written += n;
        n
    }

    /// Copies the next piece of input into `buf`; 0 at the end.
    pub fn read_into(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(MAX_READ).min(self.input.len() - self.pos);
        buf[..n].copy_from_slice(&self.input[self.pos..self.pos + n]);
        self.pos += n;
        n
    }
}

impl io::Read for MemSocket<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(self.read_into(buf))
    }
}

impl io::Write for MemSocket<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(self.take([buf]))
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        Ok(self.take(bufs.iter().map(|b| &b[..])))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsyncRead for MemSocket<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.endless && this.pos == this.input.len() {
            return Poll::Pending;
        }
        let n = buf
            .remaining()
            .min(MAX_READ)
            .min(this.input.len() - this.pos);
        buf.put_slice(&this.input[this.pos..this.pos + n]);
        this.pos += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for MemSocket<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(self.get_mut().take([buf])))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(self.get_mut().take(bufs.iter().map(|b| &b[..]))))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// xorshift64*: reproducible payloads and masking keys.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn fill(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = vec![0; len];
        self.fill(&mut v);
        v
    }
}

/// Printable ASCII text of `len` bytes.
pub fn ascii_text(rng: &mut Rng, len: usize) -> Vec<u8> {
    (0..len).map(|_| b' ' + rng.below(95) as u8).collect()
}

/// Exactly `len` bytes of UTF-8 made of random characters, each 1, 2, 3 or 4 bytes long with
/// equal odds (ASCII pads the end).
pub fn multibyte_text(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut buf = [0; 4];
    while out.len() < len {
        let c = match rng.below(4) {
            0 => Some(char::from(b' ' + rng.below(95) as u8)),
            1 => char::from_u32(0x80 + rng.below(0x800 - 0x80) as u32),
            // U+0800 to U+FFFF without the surrogates, which are not characters.
            2 => {
                let c = 0x800 + rng.below(0x1_0000 - 0x800 - 0x800) as u32;
                char::from_u32(if c >= 0xD800 { c + 0x800 } else { c })
            }
            _ => char::from_u32(0x1_0000 + rng.below(0x11_0000 - 0x1_0000) as u32),
        }
        .expect("in range");
        let encoded = c.encode_utf8(&mut buf).as_bytes();
        if out.len() + encoded.len() > len {
            out.push(b'.');
        } else {
            out.extend_from_slice(encoded);
        }
    }
    assert!(std::str::from_utf8(&out).is_ok());
    out
}

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;

/// Appends one frame (RFC 6455 §5.2), masked with `mask` when given (§5.3).
pub fn encode_frame(
    out: &mut Vec<u8>,
    fin: bool,
    opcode: u8,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) {
    out.push(u8::from(fin) << 7 | opcode);
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        len @ 0..=125 => out.push(mask_bit | len as u8),
        len @ 126..=0xFFFF => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
}

/// Who sent the stream: a client masks every frame with a fresh key, a server never masks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    Client,
    Server,
}

/// A stream of `messages`, each sent as frames of at most `fragment` bytes.
pub fn encode_stream(
    rng: &mut Rng,
    sender: Sender,
    opcode: u8,
    messages: &[Vec<u8>],
    fragment: Option<usize>,
) -> Vec<u8> {
    let mut out = Vec::new();
    for message in messages {
        let piece = fragment.unwrap_or(message.len()).max(1);
        let pieces: Vec<&[u8]> = if message.is_empty() {
            vec![&[]]
        } else {
            message.chunks(piece).collect()
        };
        for (i, payload) in pieces.iter().enumerate() {
            let op = if i == 0 { opcode } else { OP_CONTINUATION };
            let mask = (sender == Sender::Client).then(|| (rng.next_u64() as u32).to_ne_bytes());
            encode_frame(&mut out, i + 1 == pieces.len(), op, payload, mask);
        }
    }
    out
}

/// The largest message any decode case sends (64 MiB), with room: limits are raised to this
/// for every implementation (fastwebsockets refuses a frame as long as its limit).
pub const LIMIT: usize = 65 << 20;

/// Our decode of `stream`, as the decode bench times it (and `examples/hot_loops.rs` counts
/// it): reads of at most [`MAX_READ`] straight into the connection's buffer, every event
/// taken. Complete messages, or with `streaming` (`Config::stream_messages`) each message's
/// chunks as their bytes arrive, from a receive buffer that stays one read long. Returns
/// the payload bytes handed over.
pub fn decode_wsproto(stream: &[u8], sender: Sender, count: usize, streaming: bool) -> usize {
    use std::hint::black_box;
    use wsproto::Event;
    let config = wsproto::Config::default()
        .max_message_size(LIMIT)
        .stream_messages(streaming);
    let mut conn = match sender {
        Sender::Client => wsproto::Connection::upgraded_server(config),
        Sender::Server => wsproto::Connection::upgraded_client(config, |d| d.fill(0x5a)),
    };
    let mut socket = MemSocket::new(stream);
    let (mut got, mut bytes) = (0, 0);
    loop {
        while let Some(event) = conn.next_event().expect("a valid stream") {
            let (len, fin) = match event {
                Event::Text(text) => (black_box(text).len(), true),
                Event::Binary(data) => (black_box(data).len(), true),
                Event::TextChunk { text, fin } => (black_box(text).len(), fin),
                Event::BinaryChunk { data, fin } => (black_box(data).len(), fin),
                _ => continue,
            };
            bytes += len;
            got += usize::from(fin);
        }
        if got == count {
            return bytes;
        }
        let n = socket.read_into(conn.receive_buffer());
        assert!(n > 0, "the stream ended early");
        conn.commit(n);
    }
}

/// Where the benches leave files for `benches/table.py` besides criterion's own: beside
/// criterion's, in `CARGO_TARGET_DIR` (`run.sh` makes it absolute: a bench runs in `benches/`)
/// or else the workspace's `target/`.
pub fn results_dir() -> std::path::PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        std::path::PathBuf::from,
    );
    let dir = target.join("wsproto-bench");
    std::fs::create_dir_all(&dir).expect("create the results directory");
    dir
}
