//! Keepalive, pong deadline and closing-handshake timeout, with simulated time.
mod common;
use common::*;
use std::time::Duration;
use wsproto::{CloseCode, Config, Connection, ConnectionState, Error};

fn keepalive_config() -> Config {
    let mut c = quiet_config();
    c.keepalive_interval = Some(secs(10));
    c.keepalive_timeout = Some(secs(5));
    c
}

#[test]
fn no_timers_no_deadline() {
    let server = Connection::upgraded_server(quiet_config());
    assert_eq!(server.poll_timeout(), None);
}

#[test]
fn keepalive_ping_after_idle_interval_then_pong_rearms() {
    let mut p = Pair::with_configs(keepalive_config(), quiet_config());
    // A fresh connection needs the current time to arm its keepalive.
    assert_eq!(p.client.poll_timeout(), Some(Duration::ZERO));
    p.client.handle_timeout(secs(100));
    assert_eq!(p.client.poll_timeout(), Some(secs(110)));
    p.client.handle_timeout(secs(109));
    assert!(!p.client.wants_write(), "no ping before the interval");
    p.client.handle_timeout(secs(110));
    // Ping with the 4-byte sequence number 1, masked by the client.
    assert_eq!(p.deliver_to_server(), [Ev::Ping(vec![0, 0, 0, 1])]);
    assert_eq!(p.client.poll_timeout(), Some(secs(115)), "pong deadline");
    assert_eq!(p.deliver_to_client(), [Ev::Pong(vec![0, 0, 0, 1])]);
    // The Pong re-arms the keepalive an interval after the Ping went out, without asking
    // for the time; the next call that brings the time moves it past the Pong's arrival.
    assert_eq!(
        p.client.poll_timeout(),
        Some(secs(120)),
        "re-armed by the pong"
    );
    p.client.handle_timeout(secs(112));
    assert_eq!(p.client.poll_timeout(), Some(secs(122)));
}

#[test]
fn received_bytes_reset_the_idle_timer() {
    let mut p = Pair::with_configs(keepalive_config(), quiet_config());
    p.client.handle_timeout(secs(0));
    p.server.send_text("still here").unwrap();
    assert_eq!(p.deliver_to_client(), [Ev::Text("still here".into())]);
    // Receiving does not ask for the time: the deadline stands until the next call brings it.
    assert_eq!(p.client.poll_timeout(), Some(secs(10)));
    p.client.handle_timeout(secs(7));
    assert_eq!(p.client.poll_timeout(), Some(secs(17)));
    p.client.handle_timeout(secs(10));
    assert!(!p.client.wants_write());
}

#[test]
fn reads_never_ask_for_the_time() {
    let mut p = Pair::with_configs(keepalive_config(), quiet_config());
    p.client.handle_timeout(secs(0));
    for i in 0..5 {
        p.server.send_binary(&[i; 3]).unwrap();
        assert_eq!(p.deliver_to_client(), [Ev::Binary(vec![i; 3])]);
        assert_eq!(p.client.poll_timeout(), Some(secs(10)), "after read {i}");
    }
    // At the deadline, the bytes that arrived move it instead of sending a Ping.
    p.client.handle_timeout(secs(10));
    assert!(!p.client.wants_write(), "no ping after traffic");
    assert_eq!(p.client.poll_timeout(), Some(secs(20)));
    // A silent interval after that sends the Ping.
    p.client.handle_timeout(secs(20));
    assert_eq!(p.deliver_to_server(), [Ev::Ping(vec![0, 0, 0, 1])]);
}

#[test]
fn missing_pong_fails_with_1011() {
    let mut p = Pair::with_configs(quiet_config(), keepalive_config());
    p.server.handle_timeout(secs(0));
    p.server.handle_timeout(secs(10));
    assert_eq!(take_output(&mut p.server), [0x89, 0x04, 0, 0, 0, 1]);
    // A Pong with another payload does not count.
    p.client.send_pong(&[9, 9, 9, 9]).unwrap();
    assert_eq!(p.deliver_to_server(), [Ev::Pong(vec![9, 9, 9, 9])]);
    p.server.handle_timeout(secs(14));
    assert!(!p.server.wants_write());
    p.server.handle_timeout(secs(15));
    assert_eq!(drain(&mut p.server), [Ev::Error(Error::KeepaliveTimeout)]);
    let out = take_output(&mut p.server);
    assert_eq!(&out[..4], [0x88, out[1], 0x03, 0xF3], "Close 1011");
    assert!(p.server.wants_shutdown());
    assert_eq!(p.server.poll_timeout(), None);
    assert_eq!(
        feed(&mut p.client, &out)[0],
        close(1011, "no pong arrived within the keepalive timeout")
    );
}

#[test]
fn close_timeout_gives_up_on_a_silent_peer() {
    let mut c = quiet_config();
    c.close_timeout = Some(secs(3));
    let mut server = Connection::upgraded_server(c);
    server.close(CloseCode::GOING_AWAY, "").unwrap();
    assert_eq!(take_output(&mut server), [0x88, 0x02, 0x03, 0xE9]);
    assert_eq!(server.state(), ConnectionState::Closing);
    assert_eq!(server.poll_timeout(), Some(Duration::ZERO));
    server.handle_timeout(secs(50));
    assert_eq!(server.poll_timeout(), Some(secs(53)));
    server.handle_timeout(secs(52));
    assert!(!server.wants_shutdown());
    server.handle_timeout(secs(53));
    assert!(server.wants_shutdown());
    assert_eq!(drain(&mut server), [Ev::Closed(1006)]);
    assert_eq!(server.state(), ConnectionState::Closed);
    assert_eq!(server.poll_timeout(), None);
}

#[test]
fn client_waits_for_the_server_to_close_tcp_then_gives_up() {
    let mut c = quiet_config();
    c.close_timeout = Some(secs(3));
    let mut p = Pair::with_configs(c, quiet_config());
    p.client.close(CloseCode::NORMAL, "").unwrap();
    p.client.handle_timeout(secs(0));
    assert_eq!(p.deliver_to_server(), [close(1000, ""), Ev::Closed(1000)]);
    assert!(p.server.wants_shutdown() || p.server.wants_write());
    assert_eq!(p.deliver_to_client(), [close(1000, ""), Ev::Closed(1000)]);
    // RFC 6455 §7.1.1: the client lets the server close TCP first...
    assert!(!p.client.wants_shutdown());
    p.client.handle_timeout(secs(2));
    assert!(!p.client.wants_shutdown());
    // ...but not forever.
    p.client.handle_timeout(secs(3));
    assert!(p.client.wants_shutdown());
}

#[test]
fn spurious_timeouts_are_harmless() {
    let mut p = Pair::with_configs(keepalive_config(), keepalive_config());
    for t in 0..10 {
        p.client.handle_timeout(secs(t));
        p.server.handle_timeout(secs(t));
    }
    assert!(!p.client.wants_write() && !p.server.wants_write());
    p.client.send_text("hi").unwrap();
    assert_eq!(p.deliver_to_server(), [Ev::Text("hi".into())]);
}
