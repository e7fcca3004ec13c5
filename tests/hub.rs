//! `drivers::tokio::Hub`: topics, subscribe and unsubscribe, a slow subscriber among 1,000
//! closed (or skipped) while the others receive every message in order, the counters, and
//! `Subscriber::forward` closing a WebSocket that stopped reading with 1013.
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::task::JoinSet;
use wsproto::drivers::Message;
use wsproto::drivers::tokio::{
    Delivery, Hub, HubConfig, HubStats, SlowConsumer, Subscriber, WebSocketStream,
};
use wsproto::{CloseCode, PreparedMessage};

const LIMIT: Duration = Duration::from_secs(20);

/// (published, delivered, dropped, closed)
fn counts(stats: HubStats) -> (u64, u64, u64, u64) {
    (
        stats.published,
        stats.delivered,
        stats.dropped,
        stats.closed,
    )
}

fn text_of(delivery: Option<Delivery>) -> String {
    match delivery {
        Some(Delivery::Message(message)) => String::from_utf8(message.payload().to_vec()).unwrap(),
        other => panic!("expected a message, got {other:?}"),
    }
}

#[tokio::test]
async fn topics_subscribe_and_unsubscribe() {
    let hub = Hub::new();
    let mut both = hub.subscriber();
    both.subscribe("a");
    both.subscribe("b");
    both.subscribe("a");
    assert_eq!(both.topics(), ["a", "b"]);
    let mut only_b = hub.subscriber();
    only_b.subscribe("b");
    assert_eq!((hub.subscribers("a"), hub.subscribers("b")), (1, 2));

    assert_eq!(hub.publish("a", &PreparedMessage::text("a1")), 1);
    assert_eq!(hub.publish("b", &PreparedMessage::text("b1")), 2);
    assert_eq!(hub.publish("nobody", &PreparedMessage::text("x")), 0);
    assert_eq!(text_of(both.recv().await), "a1");
    assert_eq!(text_of(both.recv().await), "b1");
    assert_eq!(text_of(only_b.recv().await), "b1");

    both.unsubscribe("a");
    assert_eq!(hub.publish("a", &PreparedMessage::text("a2")), 0);
    assert_eq!(hub.subscribers("a"), 0);
    drop(only_b);
    assert_eq!(hub.subscribers("b"), 1);
    assert_eq!(hub.publish("b", &PreparedMessage::text("b2")), 1);
    assert_eq!(text_of(both.recv().await), "b2");
    assert_eq!(counts(hub.stats()), (5, 4, 0, 0));
}

/// 999 subscribers that keep up and one that never reads, in one topic; 2,000 messages
/// published as fast as the readers take them. Runs the policy given and returns the slow
/// subscriber and the hub's counters.
async fn topic_of_1000(policy: SlowConsumer) -> (Subscriber, Hub) {
    const FAST: usize = 999;
    const MESSAGES: usize = 2_000;
    const QUEUE: usize = 64;
    let hub = Hub::with_config(HubConfig::default().queue(QUEUE).slow_consumer(policy));
    let received = Arc::new(AtomicUsize::new(0));
    let mut readers = JoinSet::new();
    for _ in 0..FAST {
        let mut subscriber = hub.subscriber();
        subscriber.subscribe("room");
        let received = Arc::clone(&received);
        readers.spawn(async move {
            for i in 0..MESSAGES {
                assert_eq!(text_of(subscriber.recv().await), format!("message {i}"));
                received.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let mut slow = hub.subscriber();
    slow.subscribe("room");
    assert_eq!(hub.subscribers("room"), FAST + 1);

    // Publish in steps of half a queue, each once the readers took the previous ones.
    for i in 0..MESSAGES {
        if i % (QUEUE / 2) == 0 {
            tokio::time::timeout(LIMIT, async {
                while received.load(Ordering::Relaxed) < FAST * i {
                    tokio::task::yield_now().await;
                }
            })
            .await
            .expect("the fast readers keep up");
        }
        hub.publish("room", &PreparedMessage::text(&format!("message {i}")));
    }
    while let Some(reader) = readers.join_next().await {
        reader.expect("every fast reader got every message, in order");
    }
    assert_eq!(received.load(Ordering::Relaxed), FAST * MESSAGES);
    (slow, hub)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_among_1000_is_closed_and_the_others_get_everything() {
    let (mut slow, hub) = topic_of_1000(SlowConsumer::Close(CloseCode::TRY_AGAIN_LATER)).await;
    // The close comes first, before the 64 messages it still had queued.
    assert_eq!(slow.closed(), Some(CloseCode::TRY_AGAIN_LATER));
    assert!(matches!(
        slow.recv().await,
        Some(Delivery::Close(CloseCode::TRY_AGAIN_LATER))
    ));
    assert!(slow.recv().await.is_none());
    assert_eq!(counts(hub.stats()), (2_000, 999 * 2_000 + 64, 0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_among_1000_misses_what_did_not_fit() {
    let (mut slow, hub) = topic_of_1000(SlowConsumer::Drop).await;
    assert_eq!(slow.closed(), None);
    // It keeps the first 64, and gets what is published once it has room again.
    for i in 0..64 {
        assert_eq!(text_of(slow.recv().await), format!("message {i}"));
    }
    hub.publish("room", &PreparedMessage::text("after"));
    assert_eq!(text_of(slow.recv().await), "after");
    assert_eq!(
        counts(hub.stats()),
        (2_001, 999 * 2_000 + 64 + 1, 2_000 - 64, 0)
    );
}

/// Over real sockets: `forward` sends each published message to the client from its shared
/// frame; a client that stops reading fills its socket, then its queue, and is closed with
/// 1013 "too slow" once it reads again, after the messages that got through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_closes_a_websocket_that_stopped_reading_with_1013() {
    let hub = Hub::with_config(HubConfig::default().queue(8));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let server = {
        let hub = hub.clone();
        tokio::spawn(async move {
            let mut tasks = JoinSet::new();
            for _ in 0..2 {
                let (tcp, _) = listener.accept().await.unwrap();
                let mut subscriber = hub.subscriber();
                subscriber.subscribe("feed");
                tasks.spawn(async move {
                    let ws = WebSocketStream::accept(tcp, common::quiet_config())
                        .await
                        .unwrap();
                    let (mut reader, writer) = ws.split();
                    // Forward until closed for being slow, or until the client closes.
                    tokio::select! {
                        forwarded = subscriber.forward(&writer) => {
                            forwarded.unwrap();
                            while let Ok(Some(_)) = reader.recv().await {}
                        }
                        () = async { while let Ok(Some(_)) = reader.recv().await {} } => {}
                    }
                });
            }
            while tasks.join_next().await.is_some() {}
        })
    };
    let mut reading = WebSocketStream::connect(&url).await.unwrap();
    let mut stopped = WebSocketStream::connect(&url).await.unwrap();
    tokio::time::timeout(LIMIT, async {
        while hub.subscribers("feed") < 2 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();

    // 64 KiB messages until the one that stopped reading is closed; the other reads all.
    let payload = |i: usize| format!("{i:08}").repeat(8 << 10);
    let mut published = 0;
    while hub.stats().closed == 0 {
        hub.publish("feed", &PreparedMessage::text(&payload(published)));
        match tokio::time::timeout(LIMIT, reading.recv())
            .await
            .unwrap()
            .unwrap()
        {
            Some(Message::Text(text)) => assert!(text == payload(published)),
            other => panic!("{other:?}"),
        }
        published += 1;
        assert!(published < 10_000, "never closed");
    }
    // Reading again: the messages that got through, in order, then the Close.
    let mut got = 0;
    loop {
        match tokio::time::timeout(LIMIT, stopped.recv())
            .await
            .unwrap()
            .unwrap()
        {
            Some(Message::Text(text)) => {
                assert!(text == payload(got), "message {got}");
                got += 1;
            }
            Some(Message::Close { code, reason }) => {
                assert_eq!(
                    (code, reason.as_str()),
                    (CloseCode::TRY_AGAIN_LATER, "too slow")
                );
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(got < published, "{got} of {published}");
    assert_eq!(stopped.recv().await.unwrap(), None);
    reading.close(CloseCode::NORMAL, "").await.unwrap();
    while reading.recv().await.unwrap().is_some() {}
    tokio::time::timeout(LIMIT, server).await.unwrap().unwrap();
    eprintln!("the stopped reader got {got} of {published} messages of 64 KiB, then 1013");
}

/// A blocking driver's server thread: `recv_blocking` feeds `send_prepared` on the blocking
/// socket; once the subscriber is closed for being slow, the close comes before what it
/// still had queued, as with `recv`, and the client sees the messages sent before it.
#[test]
fn a_blocking_thread_forwards_with_recv_blocking() {
    use wsproto::drivers::blocking::WebSocket;

    let hub = Hub::with_config(HubConfig::default().queue(4));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let mut subscriber = hub.subscriber();
    subscriber.subscribe("feed");
    let server = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        let mut ws = WebSocket::accept(tcp, common::quiet_config()).unwrap();
        while let Some(delivery) = subscriber.recv_blocking() {
            match delivery {
                Delivery::Message(message) => ws.send_prepared(&message).unwrap(),
                Delivery::Close(code) => ws.close(code, "too slow").unwrap(),
            }
        }
        while ws.recv().unwrap().is_some() {}
    });
    let mut client = WebSocket::connect(&url).unwrap();
    for i in 0..3 {
        hub.publish("feed", &PreparedMessage::text(&format!("m{i}")));
        assert_eq!(client.recv().unwrap(), Some(Message::Text(format!("m{i}"))));
    }
    // Four fit in the queue at most; publishing faster than that closes it.
    let mut published = 3;
    while hub.stats().closed == 0 {
        hub.publish("feed", &PreparedMessage::text(&format!("m{published}")));
        published += 1;
    }
    let mut got = 3;
    loop {
        match client.recv().unwrap() {
            Some(Message::Text(text)) => {
                assert_eq!(text, format!("m{got}"));
                got += 1;
            }
            Some(Message::Close { code, .. }) => {
                assert_eq!(code, CloseCode::TRY_AGAIN_LATER);
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(got < published);
    assert_eq!(client.recv().unwrap(), None);
    server.join().unwrap();
}

/// A socket that records each write: how many there were and what they carried.
struct CountingSocket {
    writes: Arc<std::sync::Mutex<Vec<usize>>>,
    bytes: Arc<std::sync::Mutex<Vec<u8>>>,
}

impl tokio::io::AsyncRead for CountingSocket {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        _: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Pending // the subscriber's peer sends nothing
    }
}

impl tokio::io::AsyncWrite for CountingSocket {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.writes.lock().unwrap().push(buf.len());
        self.bytes.lock().unwrap().extend_from_slice(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let len = bufs.iter().map(|b| b.len()).sum();
        self.writes.lock().unwrap().push(len);
        for buf in bufs {
            self.bytes.lock().unwrap().extend_from_slice(buf);
        }
        std::task::Poll::Ready(Ok(len))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// Messages that wait together go out in few writes: 1,000 small ones (20-byte frames)
/// queued before `forward` runs take two writes of at most 16 KiB (the batch), a 64 KiB
/// one among them is written from its own frame, and the bytes are every frame in order.
#[tokio::test]
async fn forward_writes_messages_that_wait_together_at_once() {
    let hub = Hub::with_config(HubConfig::default().queue(2_000));
    let mut subscriber = hub.subscriber();
    subscriber.subscribe("t");
    let mut expected = Vec::new();
    let mut publish = |message: PreparedMessage| {
        expected.extend_from_slice(message.frame());
        assert_eq!(hub.publish("t", &message), 1);
    };
    for i in 0..1_000 {
        publish(PreparedMessage::text(&format!("message {i:010}")));
    }
    publish(PreparedMessage::binary(&[7; 64 << 10]));
    publish(PreparedMessage::text("last"));
    let writes = Arc::default();
    let bytes = Arc::default();
    let socket = CountingSocket {
        writes: Arc::clone(&writes),
        bytes: Arc::clone(&bytes),
    };
    let ws = WebSocketStream::from_connection(
        socket,
        wsproto::Connection::upgraded_server(common::quiet_config()),
    );
    let (_reader, writer) = ws.split();
    // Everything is written at once: forward then waits for more, and is cut off.
    let _ = tokio::time::timeout(Duration::from_millis(200), subscriber.forward(&writer)).await;
    assert_eq!(*bytes.lock().unwrap(), expected);
    let frame = 2 + "message 0000000000".len();
    assert_eq!(frame, 20);
    let writes = writes.lock().unwrap().clone();
    // 16 KiB / 20 B: 820 frames (the batch stops once 16,384 bytes are queued), then 180;
    // the 64 KiB frame (a 10-byte header) alone, and the last message.
    assert_eq!(writes, [820 * 20, 180 * 20, 10 + (64 << 10), 6]);
}
