//! The drivers' vectored writes of lent payloads, over in-memory streams that take a few
//! bytes at a time, fail midway, do not write vectored, or are cancelled: whatever happens,
//! the peer ends up with exactly the frames that were sent, in order.

mod common;

use common::quiet_config;
use std::io::{self, IoSlice, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use wsproto::drivers::Error;
use wsproto::drivers::blocking::{Transport, WebSocket};
use wsproto::drivers::tokio::WebSocketStream;
use wsproto::{Connection, UsageError};

/// A server's unmasked binary frame of `payload`, with the 16-bit length form.
fn binary_frame(payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(payload.len()).unwrap().to_be_bytes();
    let mut frame = vec![0x82, 0x7e, len[0], len[1]];
    frame.extend_from_slice(payload);
    frame
}

/// A client's masked binary frame of `payload`, with the shortest length form (RFC 6455
/// §5.2), up to 64 KiB.
fn masked_binary_frame(payload: &[u8]) -> Vec<u8> {
    let key = [0x37, 0xfa, 0x21, 0x3d];
    let mut frame = match payload.len() {
        len @ 0..=125 => vec![0x82, 0x80 | len as u8],
        len => {
            let len = u16::try_from(len).unwrap().to_be_bytes();
            vec![0x82, 0x80 | 126, len[0], len[1]]
        }
    };
    frame.extend_from_slice(&key);
    frame.extend(payload.iter().zip(key.iter().cycle()).map(|(b, k)| b ^ k));
    frame
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len as u32).map(|i| (i * 11 + 5) as u8).collect()
}

/// A blocking stream that reads `input` in pieces of 100 bytes and whose writes take at most
/// `per_write` bytes and fail: `Interrupted` on every fifth call, and with `error` once
/// `budget` bytes were taken.
struct Trickle {
    input: Vec<u8>,
    read: usize,
    written: Vec<u8>,
    per_write: usize,
    vectored: bool,
    calls: usize,
    budget: usize,
    error: Option<io::ErrorKind>,
}

impl Trickle {
    fn new(per_write: usize, vectored: bool) -> Self {
        Self {
            input: Vec::new(),
            read: 0,
            written: Vec::new(),
            per_write,
            vectored,
            calls: 0,
            budget: usize::MAX,
            error: None,
        }
    }

    /// How much of `wanted` this call takes, or its error.
    fn take(&mut self, wanted: usize) -> io::Result<usize> {
        self.calls += 1;
        if self.calls.is_multiple_of(5) {
            return Err(io::ErrorKind::Interrupted.into());
        }
        if self.budget == 0
            && let Some(kind) = self.error.take()
        {
            return Err(kind.into());
        }
        let n = wanted.min(self.per_write).min(self.budget);
        self.budget -= n;
        Ok(n)
    }
}

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(100).min(self.input.len() - self.read);
        buf[..n].copy_from_slice(&self.input[self.read..self.read + n]);
        self.read += n;
        Ok(n)
    }
}

impl Write for Trickle {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.take(buf.len())?;
        self.written.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        assert!(
            self.vectored,
            "a vectored write on a stream that does not write vectored"
        );
        let wanted = bufs.iter().map(|b| b.len()).sum();
        let mut n = self.take(wanted)?;
        let taken = n;
        for buf in bufs {
            let part = n.min(buf.len());
            self.written.extend_from_slice(&buf[..part]);
            n -= part;
        }
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for Trickle {
    fn writes_vectored(&self) -> bool {
        self.vectored
    }
}

fn blocking_server(stream: Trickle) -> WebSocket<Trickle> {
    WebSocket::from_connection(stream, Connection::upgraded_server(quiet_config()))
}

/// Writes of 7 bytes with an `Interrupted` every fifth call: two lent payloads and a short
/// one arrive whole and in order.
#[test]
fn blocking_send_binary_in_seven_byte_writes() {
    let (a, b) = (pattern(5_000), pattern(3_000));
    let mut ws = blocking_server(Trickle::new(7, true));
    ws.send_binary(&a).unwrap();
    ws.send_binary(b"short").unwrap();
    ws.send_binary(&b).unwrap();
    let mut expected = binary_frame(&a);
    expected.extend_from_slice(b"\x82\x05short");
    expected.extend(binary_frame(&b));
    assert_eq!(ws.get_ref().written, expected);
}

/// An echo through `recv_with_sender`, payloads lent from the receive buffer and written in
/// 7-byte pieces: the replies are the client's messages unmasked, byte for byte.
#[test]
fn blocking_recv_with_sender_echoes_in_seven_byte_writes() {
    let (a, b) = (pattern(4_000), pattern(1_500));
    let mut stream = Trickle::new(7, true);
    for payload in [&a[..], b"hi", &b[..]] {
        stream.input.extend(masked_binary_frame(payload));
    }
    let mut ws = blocking_server(stream);
    for _ in 0..3 {
        let sent = ws
            .recv_with_sender(|event, sender| match event {
                wsproto::Event::Binary(data) => sender.send_binary_borrowed(data),
                _ => panic!("only binary messages were sent"),
            })
            .unwrap();
        assert_eq!(sent, Some(()), "one event");
    }
    let mut expected = binary_frame(&a);
    expected.extend_from_slice(b"\x82\x02hi");
    expected.extend(binary_frame(&b));
    assert_eq!(ws.get_ref().written, expected);
}

/// A reply and a lent echo, then an error from the closure: both frames are on the wire,
/// whole and in order, before the error comes back.
fn reply_then_fail<'e>(
    event: wsproto::Event<'e>,
    sender: &mut wsproto::Sender<'e>,
) -> Result<(), UsageError> {
    let wsproto::Event::Binary(data) = event else {
        panic!("only a binary message was sent");
    };
    sender.send_text("echo:")?;
    sender.send_binary_borrowed(data)?;
    Err(UsageError::MessageInProgress)
}

fn reply_then_fail_frames(payload: &[u8]) -> Vec<u8> {
    let mut expected = b"\x81\x05echo:".to_vec();
    expected.extend(binary_frame(payload));
    expected
}

#[test]
fn blocking_recv_with_sender_writes_replies_before_the_closure_error() {
    for vectored in [true, false] {
        let a = pattern(4_000);
        let mut stream = Trickle::new(7, vectored);
        stream.input = masked_binary_frame(&a);
        let mut ws = blocking_server(stream);
        let result = ws.recv_with_sender(reply_then_fail);
        assert!(
            matches!(result, Err(Error::Usage(UsageError::MessageInProgress))),
            "vectored {vectored}: got {result:?}"
        );
        assert_eq!(
            ws.get_ref().written,
            reply_then_fail_frames(&a),
            "vectored {vectored}"
        );
        assert!(ws.connection().pending_output().is_empty());
    }
}

/// A stream that does not write vectored gets the header and the payload in one `write`.
#[test]
fn blocking_send_binary_without_vectored_writes_copies() {
    let a = pattern(5_000);
    let mut ws = blocking_server(Trickle::new(usize::MAX, false));
    ws.send_binary(&a).unwrap();
    assert_eq!(ws.get_ref().written, binary_frame(&a));
    assert_eq!(ws.get_ref().calls, 1, "one write for header and payload");
}

/// A write that fails midway returns the error; the unwritten rest is queued behind what
/// was written, and the next flush completes the frame.
#[test]
fn blocking_send_binary_failing_midway_keeps_the_rest_queued() {
    let a = pattern(5_000);
    let mut stream = Trickle::new(1_000, true);
    stream.budget = 2_500;
    stream.error = Some(io::ErrorKind::BrokenPipe);
    let mut ws = blocking_server(stream);
    let Err(Error::Io(e)) = ws.send_binary(&a) else {
        panic!("expected the write error");
    };
    assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
    let frame = binary_frame(&a);
    assert_eq!(ws.get_ref().written, frame[..2_500]);
    assert_eq!(ws.connection().pending_output(), &frame[2_500..]);
    // The stream takes bytes again: the flush completes the frame, and the next goes behind.
    ws.get_mut().budget = usize::MAX;
    ws.flush().unwrap();
    ws.send_binary(b"next").unwrap();
    let mut expected = frame;
    expected.extend_from_slice(b"\x82\x04next");
    assert_eq!(ws.get_ref().written, expected);
}

/// An async stream that takes at most 64 bytes per write, vectored or not as it says, and
/// stays pending (registering no wake-up) once `budget` bytes were taken.
struct Narrow<S> {
    inner: S,
    vectored: bool,
    budget: usize,
}

impl<S: AsyncRead + Unpin> AsyncRead for Narrow<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Narrow<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.budget == 0 {
            return Poll::Pending;
        }
        let mut gathered = Vec::new();
        for buf in bufs {
            gathered.extend_from_slice(buf);
            if !self.vectored {
                break;
            }
        }
        gathered.truncate(64.min(self.budget));
        let n = std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, &gathered))?;
        self.budget -= n;
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.vectored
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// `send_binary` cancelled midway (the stream stops taking bytes after 1,000): the unwritten
/// rest is queued, the next send goes behind it, and the peer receives both frames exactly.
#[tokio::test]
async fn tokio_send_binary_cancelled_midway_loses_nothing() {
    for vectored in [true, false] {
        let (ours, mut peer) = tokio::io::duplex(1 << 20);
        let stream = Narrow {
            inner: ours,
            vectored,
            budget: 1_000,
        };
        let mut ws =
            WebSocketStream::from_connection(stream, Connection::upgraded_server(quiet_config()));
        let a = pattern(5_000);
        let cancelled = tokio::time::timeout(Duration::from_millis(50), ws.send_binary(&a)).await;
        assert!(cancelled.is_err(), "the send should still be waiting");
        let frame = binary_frame(&a);
        assert_eq!(
            ws.connection().pending_output(),
            &frame[1_000..],
            "vectored {vectored}: the unwritten rest"
        );
        // The stream takes bytes again; the next send goes out behind the rest.
        ws.get_mut().budget = usize::MAX;
        let b = pattern(2_000);
        let mut expected = frame;
        expected.extend(binary_frame(&b));
        tokio::time::timeout(Duration::from_secs(10), ws.send_binary(&b))
            .await
            .expect("the send finishes")
            .unwrap();
        let mut got = vec![0; expected.len()];
        tokio::time::timeout(Duration::from_secs(10), peer.read_exact(&mut got))
            .await
            .expect("the peer reads everything")
            .unwrap();
        assert_eq!(got, expected, "vectored {vectored}");
    }
}

#[tokio::test]
async fn tokio_recv_with_sender_writes_replies_before_the_closure_error() {
    for vectored in [true, false] {
        let (ours, mut peer) = tokio::io::duplex(1 << 20);
        let stream = Narrow {
            inner: ours,
            vectored,
            budget: usize::MAX,
        };
        let mut ws =
            WebSocketStream::from_connection(stream, Connection::upgraded_server(quiet_config()));
        let a = pattern(4_000);
        peer.write_all(&masked_binary_frame(&a)).await.unwrap();
        let result = tokio::time::timeout(
            Duration::from_secs(10),
            ws.recv_with_sender(reply_then_fail),
        )
        .await
        .expect("the call finishes");
        assert!(
            matches!(result, Err(Error::Usage(UsageError::MessageInProgress))),
            "vectored {vectored}: got {result:?}"
        );
        assert!(ws.connection().pending_output().is_empty());
        let expected = reply_then_fail_frames(&a);
        let mut got = vec![0; expected.len()];
        tokio::time::timeout(Duration::from_secs(10), peer.read_exact(&mut got))
            .await
            .expect("the peer reads everything")
            .unwrap();
        assert_eq!(got, expected, "vectored {vectored}");
    }
}
