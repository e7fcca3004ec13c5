//! `futures_core::Stream` and `futures_sink::Sink` for [`WebSocketStream`] and its halves.
//!
//!
//! The behaviour is documented on [`WebSocketStream`], with an example.

use super::{WebSocketReader, WebSocketStream, WebSocketWriter};
use crate::close::CloseCode;
use crate::connection::{Connection, ConnectionState};
use crate::drivers::{Error, Message};
use crate::error::UsageError;
use crate::event::MessageKind;
use ::tokio::io::{AsyncRead, AsyncWrite};
use core::pin::Pin;
use core::task::{Context, Poll, ready};
use futures_core::{FusedStream, Stream};
use futures_sink::Sink;

/// Queues `message` in the connection.
fn queue(conn: &mut Connection, message: Message) -> Result<(), UsageError> {
    match message {
        Message::Text(text) => conn.send_text(&text),
        Message::Binary(data) => conn.send_binary(&data),
        Message::TextChunk { text, fin } => {
            conn.send_fragment(MessageKind::Text, text.as_bytes(), fin)
        }
        Message::BinaryChunk { data, fin } => conn.send_fragment(MessageKind::Binary, &data, fin),
        Message::Ping(payload) => conn.send_ping(&payload),
        Message::Pong(payload) => conn.send_pong(&payload),
        Message::Close { code, reason } => conn.close(code, &reason),
    }
}

/// What `poll_next` yields for what `poll_recv` returned, and whether the stream ends.
fn next_item(
    received: Result<Option<Message>, Error>,
    terminated: &mut bool,
) -> Option<Result<Message, Error>> {
    let item = received.transpose();
    *terminated = !matches!(item, Some(Ok(_)));
    item
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for WebSocketStream<S> {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.terminated {
            return Poll::Ready(None);
        }
        let received = ready!(this.poll_recv(cx));
        Poll::Ready(next_item(received, &mut this.terminated))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> FusedStream for WebSocketStream<S> {
    fn is_terminated(&self) -> bool {
        self.terminated
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WebSocketStream<S> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        if this.conn.wants_write() {
            ready!(this.poll_write(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, message: Message) -> Result<(), Error> {
        Ok(queue(&mut self.get_mut().conn, message)?)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(ready!(self.get_mut().poll_write(cx))?))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        if this.conn.state() == ConnectionState::Open {
            this.conn.close(CloseCode::NORMAL, "")?;
        }
        Poll::Ready(Ok(ready!(this.poll_write(cx))?))
    }
}

impl<S: AsyncRead + AsyncWrite> Stream for WebSocketReader<S> {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.terminated {
            return Poll::Ready(None);
        }
        let received = ready!(this.poll_recv(cx));
        Poll::Ready(next_item(received, &mut this.terminated))
    }
}

impl<S: AsyncRead + AsyncWrite> FusedStream for WebSocketReader<S> {
    fn is_terminated(&self) -> bool {
        self.terminated
    }
}

impl<S: AsyncRead + AsyncWrite> Sink<Message> for WebSocketWriter<S> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let shared = &self.shared;
        if shared.conn().wants_write() {
            ready!(shared.poll_flush(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, message: Message) -> Result<(), Error> {
        // `poll_ready` waited for room, but a clone may have queued since: accepted anyway,
        // as the Sink contract wants.
        let mut conn = self.shared.conn();
        Ok(conn.past_the_mark(|conn| queue(conn, message))?)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(ready!(self.shared.poll_flush(cx))?))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        {
            let mut conn = self.shared.conn();
            if conn.state() == ConnectionState::Open {
                conn.close(CloseCode::NORMAL, "")?;
            }
        }
        Poll::Ready(Ok(ready!(self.shared.poll_flush(cx))?))
    }
}
