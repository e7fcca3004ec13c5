//! The reconnecting tokio client on a paused clock, against servers on 127.0.0.1: the waits
//! between attempts (measured on tokio's paused clock, so exactly) stay within the jitter
//! bounds and grow by the multiplier up to the maximum; the backoff resets after a
//! connection opens; a 4xx answer and a Close with 1008 or 1003 stop the retries; a server
//! that goes away and comes back on the same port is rejoined.
//!
//! Every test is bounded by a timeout on the paused clock: if the client waited for
//! something that never comes, the clock would jump to the bound and fail the test.

mod common;
#[path = "common/proxies.rs"]
mod proxies;

use common::quiet_config;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::time::Instant;
use wsproto::drivers::proxy::Proxy;
use wsproto::drivers::tokio::{Reconnect, ReconnectError, WebSocketStream};
use wsproto::drivers::{Answer, Connector, Error, Message};
use wsproto::{ClientRequest, CloseCode, HandshakeError};

/// Far more virtual time than any test needs.
const LIMIT: Duration = Duration::from_secs(3_600);

async fn bounded<T>(body: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, body)
        .await
        .unwrap_or_else(|_| panic!("test did not finish within {LIMIT:?} of virtual time"))
}

async fn bind() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    (listener, url)
}

fn reconnect(url: &str) -> Reconnect {
    Reconnect::new(ClientRequest::new(url).unwrap(), quiet_config())
}

/// What the scripted server does with each connection, in order.
#[derive(Debug, Clone, Copy)]
enum Then {
    /// Refuses the handshake with this status.
    Reject(u16),
    /// Accepts, then closes with this code and reason and finishes the handshake.
    Close(u16, &'static str),
}

/// Serves one connection per step and returns when each was accepted.
fn scripted_server(
    listener: TcpListener,
    steps: Vec<Then>,
) -> tokio::task::JoinHandle<Vec<Instant>> {
    tokio::spawn(async move {
        let mut accepted = Vec::new();
        for step in steps {
            let (stream, _) = listener.accept().await.unwrap();
            accepted.push(Instant::now());
            match step {
                Then::Reject(status) => {
                    let answer = Answer::Reject {
                        status,
                        headers: Vec::new(),
                        body: Vec::new(),
                    };
                    let refused =
                        WebSocketStream::accept_with(stream, quiet_config(), |_| answer).await;
                    assert!(refused.is_err(), "the rejection is the server's error");
                }
                Then::Close(code, reason) => {
                    let mut ws = WebSocketStream::accept(stream, quiet_config())
                        .await
                        .unwrap();
                    ws.close(CloseCode(code), reason).await.unwrap();
                    while ws.recv().await.unwrap().is_some() {}
                }
            }
        }
        accepted
    })
}

/// Runs the client's loop, reading each connection to its end; returns the error it ended
/// with and how many connections opened.
async fn run_to_the_end(client: &mut Reconnect) -> (Result<(), ReconnectError>, usize) {
    let mut opened = 0;
    let end = loop {
        match client.next().await {
            Ok(Some(ws)) => {
                opened += 1;
                while let Ok(Some(_)) = ws.recv().await {}
            }
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    (end, opened)
}

/// The gaps between consecutive instants, in milliseconds.
fn gaps_ms(times: &[Instant]) -> Vec<u128> {
    times
        .windows(2)
        .map(|pair| (pair[1] - pair[0]).as_millis())
        .collect()
}

fn assert_closed_with(end: Result<(), ReconnectError>, code: u16, reason: &str) {
    match end {
        Err(ReconnectError::Closed { code: c, reason: r }) => {
            assert_eq!((c.0, r.as_str()), (code, reason));
        }
        other => panic!("expected the Close {code} to stop the client, got {other:?}"),
    }
}

// ----- backoff ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn waits_stay_within_the_jitter_bounds_and_grow_to_the_max() {
    const FAILURES: usize = 9;
    bounded(async {
        let (listener, url) = bind().await;
        let mut steps = vec![Then::Reject(503); FAILURES];
        steps.push(Then::Close(1008, "enough"));
        let server = scripted_server(listener, steps);
        let mut client = reconnect(&url)
            .initial_delay(Duration::from_millis(1_000))
            .max_delay(Duration::from_millis(20_000))
            .multiplier(2.0)
            .jitter(0.5);
        let (end, opened) = run_to_the_end(&mut client).await;
        assert_closed_with(end, 1008, "enough");
        assert_eq!((opened, client.attempts()), (1, FAILURES as u64 + 1));

        let gaps = gaps_ms(&server.await.unwrap());
        // d = 1, 2, 4, 8, 16 s, then the 20 s maximum; each wait in [d/2, d].
        let bounds = [
            1_000, 2_000, 4_000, 8_000, 16_000, 20_000, 20_000, 20_000, 20_000,
        ];
        assert_eq!(gaps.len(), bounds.len());
        for (i, (&gap, &d)) in gaps.iter().zip(&bounds).enumerate() {
            assert!(
                d / 2 <= gap && gap <= d,
                "wait {i} was {gap} ms, outside [{}, {d}] ms",
                d / 2
            );
        }
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn without_jitter_waits_are_exact_multiples_up_to_the_max() {
    bounded(async {
        let (listener, url) = bind().await;
        let mut steps = vec![Then::Reject(503), Then::Reject(500), Then::Reject(502)];
        steps.extend([Then::Reject(504), Then::Reject(599), Then::Reject(503)]);
        steps.push(Then::Close(1003, "no binary here"));
        let server = scripted_server(listener, steps);
        let mut client = reconnect(&url)
            .initial_delay(Duration::from_millis(100))
            .max_delay(Duration::from_millis(1_000))
            .multiplier(2.0)
            .jitter(0.0);
        let (end, opened) = run_to_the_end(&mut client).await;
        assert_closed_with(end, 1003, "no binary here");
        assert_eq!((opened, client.attempts()), (1, 7));
        assert_eq!(
            gaps_ms(&server.await.unwrap()),
            [100, 200, 400, 800, 1_000, 1_000]
        );
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn backoff_resets_after_a_connection_opens() {
    bounded(async {
        let (listener, url) = bind().await;
        let steps = vec![
            Then::Reject(503),
            Then::Reject(503),
            // Opens, then goes away: 1001 asks for a new connection, after the initial wait.
            Then::Close(1001, "restarting"),
            Then::Reject(503),
            Then::Close(1008, "policy"),
        ];
        let server = scripted_server(listener, steps);
        let mut client = reconnect(&url)
            .initial_delay(Duration::from_millis(100))
            .multiplier(3.0)
            .jitter(0.0);
        let (end, opened) = run_to_the_end(&mut client).await;
        assert_closed_with(end, 1008, "policy");
        assert_eq!((opened, client.attempts()), (2, 5));
        assert_eq!(gaps_ms(&server.await.unwrap()), [100, 300, 100, 300]);
    })
    .await;
}

// ----- stopping ----------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_403_answer_stops_after_one_attempt() {
    bounded(async {
        let (listener, url) = bind().await;
        let server = tokio::spawn(async move {
            let accepted = scripted_server(listener, vec![Then::Reject(403)]);
            accepted.await.unwrap().len()
        });
        let mut client = reconnect(&url).initial_delay(Duration::from_millis(10));
        match client.next().await {
            Err(ReconnectError::Rejected { status, error }) => {
                assert_eq!(status, 403);
                assert!(
                    matches!(
                        error,
                        Error::Connection(wsproto::Error::Handshake(
                            HandshakeError::UnexpectedStatus { status: 403, .. }
                        ))
                    ),
                    "{error:?}"
                );
            }
            other => panic!("expected the 403 to stop the client, got {other:?}"),
        }
        assert_eq!(client.attempts(), 1);
        assert_eq!(server.await.unwrap(), 1);
        // Finished: no more attempts, however long one waits.
        assert!(client.next().await.unwrap().is_none());
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert!(client.next().await.unwrap().is_none());
        assert_eq!(client.attempts(), 1);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_close_with_1008_stops_and_with_4000_reconnects_unless_asked() {
    bounded(async {
        let (listener, url) = bind().await;
        let steps = vec![
            Then::Close(4000, "app code"),
            Then::Close(1011, "oops"),
            Then::Close(1008, "policy violated"),
        ];
        let server = scripted_server(listener, steps);
        let mut client = reconnect(&url).jitter(0.0);
        let (end, opened) = run_to_the_end(&mut client).await;
        assert_closed_with(end, 1008, "policy violated");
        assert_eq!((opened, client.attempts()), (3, 3));
        // Both ended connections had opened: the initial wait each time.
        assert_eq!(gaps_ms(&server.await.unwrap()), [1_000, 1_000]);

        // An application code added with `stop_on` stops too.
        let (listener, url) = bind().await;
        let server = scripted_server(listener, vec![Then::Close(4000, "app code")]);
        let mut client = reconnect(&url).stop_on(CloseCode(4000));
        let (end, opened) = run_to_the_end(&mut client).await;
        assert_closed_with(end, 4000, "app code");
        assert_eq!((opened, client.attempts()), (1, 1));
        server.await.unwrap();
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn closing_the_connection_ourselves_ends_the_loop() {
    bounded(async {
        let (listener, url) = bind().await;
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut ws = WebSocketStream::accept(stream, quiet_config())
                .await
                .unwrap();
            let mut close = None;
            while let Some(message) = ws.recv().await.unwrap() {
                if let Message::Close { code, reason } = message {
                    close = Some((code.0, reason));
                }
            }
            close
        });
        let mut client = reconnect(&url);
        let ws = client.next().await.unwrap().unwrap();
        ws.close(CloseCode::NORMAL, "bye").await.unwrap();
        // Not drained: `next` finishes the closing handshake itself.
        assert!(client.next().await.unwrap().is_none());
        assert_eq!(client.attempts(), 1);
        assert_eq!(server.await.unwrap(), Some((1000, "bye".into())));
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_connection_left_open_is_closed_with_1000_and_replaced() {
    bounded(async {
        let (listener, url) = bind().await;
        let server = tokio::spawn(async move {
            let mut closes = Vec::new();
            // The first connection is left open by the client; the second gets a 1008 the
            // client does not read before it calls `next` again.
            for then_close in [None, Some("go away")] {
                let (stream, _) = listener.accept().await.unwrap();
                let mut ws = WebSocketStream::accept(stream, quiet_config())
                    .await
                    .unwrap();
                if let Some(reason) = then_close {
                    ws.close(CloseCode::POLICY_VIOLATION, reason).await.unwrap();
                }
                while let Some(message) = ws.recv().await.unwrap() {
                    if let Message::Close { code, reason } = message {
                        closes.push((code.0, reason));
                    }
                }
            }
            closes
        });
        let mut client = reconnect(&url).jitter(0.0);
        client.next().await.unwrap().unwrap();
        client.next().await.unwrap().unwrap();
        assert_closed_with(client.next().await.map(|_| ()), 1008, "go away");
        assert_eq!(client.attempts(), 2);
        // Both got our Close 1000; on the second it crossed the server's 1008, which the
        // server then saw answered (RFC 6455 §7.1.3).
        assert_eq!(
            server.await.unwrap(),
            [(1000, String::new()), (1000, String::new())]
        );
    })
    .await;
}

// ----- rejoining ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_server_that_goes_away_and_comes_back_is_rejoined() {
    bounded(async {
        let (listener, url) = bind().await;
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            // The first server echoes one message, then vanishes: no Close, listener gone.
            let (stream, _) = listener.accept().await.unwrap();
            let mut ws = WebSocketStream::accept(stream, quiet_config())
                .await
                .unwrap();
            let Some(Message::Text(text)) = ws.recv().await.unwrap() else {
                panic!("expected a text message");
            };
            ws.send_text(&text).await.unwrap();
            drop((ws, listener));
            let gone = Instant::now();

            // Five seconds later a new one listens on the same port.
            tokio::time::sleep(Duration::from_secs(5)).await;
            let listener = TcpListener::bind(addr).await.unwrap();
            let (stream, _) = listener.accept().await.unwrap();
            let back = Instant::now() - gone;
            let mut ws = WebSocketStream::accept(stream, quiet_config())
                .await
                .unwrap();
            while let Some(message) = ws.recv().await.unwrap() {
                if let Message::Text(text) = message {
                    ws.send_text(&text).await.unwrap();
                }
            }
            back
        });

        let mut client = reconnect(&url).jitter(0.0);
        let ws = client.next().await.unwrap().unwrap();
        ws.send_text("first").await.unwrap();
        assert_eq!(
            ws.recv().await.unwrap(),
            Some(Message::Text("first".into()))
        );
        // The server vanished: the stream ends without a Close (or with a reset).
        assert!(!matches!(ws.recv().await, Ok(Some(_))));

        // Waits 1 s (refused), 2 s (refused), 4 s: the server is back after 5 s.
        let ws = client.next().await.unwrap().unwrap();
        ws.send_text("second").await.unwrap();
        assert_eq!(
            ws.recv().await.unwrap(),
            Some(Message::Text("second".into()))
        );
        ws.close(CloseCode::NORMAL, "").await.unwrap();
        assert_eq!(client.attempts(), 4);
        assert!(client.next().await.unwrap().is_none());
        assert_eq!(server.await.unwrap(), Duration::from_secs(7));
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_server_behind_a_proxy_is_rejoined_when_it_comes_back() {
    bounded(async {
        // The server's port, free for now: the proxy answers 502 Bad Gateway (HTTP) or
        // X'05' connection refused (SOCKS5) until a server listens there.
        let (listener, url) = bind().await;
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let http = proxies::http_proxy(proxies::Rules::default()).await;
        let socks = proxies::socks5_proxy(proxies::Rules::default()).await;
        for proxy in [
            Proxy::http("127.0.0.1", http.addr.port()),
            Proxy::socks5("127.0.0.1", socks.addr.port()),
        ] {
            let server = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(1_500)).await;
                let listener = TcpListener::bind(addr).await.unwrap();
                let (stream, _) = listener.accept().await.unwrap();
                let mut ws = WebSocketStream::accept(stream, quiet_config())
                    .await
                    .unwrap();
                while ws.recv().await.unwrap().is_some() {}
            });
            let mut client = reconnect(&url)
                .jitter(0.0)
                .connector(Connector::new().proxy(proxy.clone()));
            // Refused at 0 s and after 1 s; the server is back before the 2 s wait ends.
            let ws = match client.next().await {
                Ok(Some(ws)) => ws,
                other => panic!("expected {proxy:?} to reach the server again, got {other:?}"),
            };
            ws.close(CloseCode::NORMAL, "").await.unwrap();
            while let Ok(Some(_)) = ws.recv().await {}
            assert_eq!(client.attempts(), 3);
            assert!(client.next().await.unwrap().is_none());
            server.await.unwrap();
        }
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_next_dropped_while_closing_an_abandoned_connection_still_reconnects() {
    bounded(async {
        let (listener, url) = bind().await;
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            // The first connection is never read again: the client's Close goes unanswered.
            let (stream, _) = listener.accept().await.unwrap();
            let first = WebSocketStream::accept(stream, quiet_config())
                .await
                .unwrap();
            let (stream, _) = listener.accept().await.unwrap();
            let mut second = WebSocketStream::accept(stream, quiet_config())
                .await
                .unwrap();
            released.await.unwrap();
            drop(first);
            second.close(CloseCode::NORMAL, "").await.unwrap();
            while second.recv().await.unwrap().is_some() {}
        });
        let mut client = reconnect(&url).jitter(0.0);
        client.next().await.unwrap().unwrap();
        // Left open: `next` closes it with 1000 and waits (10 s) for the server's Close; the
        // application gives up on that `next` after 1 s.
        let gave_up = tokio::time::timeout(Duration::from_secs(1), client.next()).await;
        assert!(gave_up.is_err(), "the closing handshake cannot finish yet");
        // The Close on its way is ours, not the application's: the loop goes on.
        match client.next().await {
            Ok(Some(_)) => {}
            other => panic!("expected a new connection, got {other:?}"),
        }
        assert_eq!(client.attempts(), 2);
        release.send(()).unwrap();
        while let Ok(Some(_)) = client.current().unwrap().recv().await {}
        server.await.unwrap();
    })
    .await;
}
