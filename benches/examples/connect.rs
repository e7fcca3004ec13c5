//! What TLS adds to opening a connection: the time from `connect_using` to `Accepted` for
//! `ws://` and for `wss://` (TLS 1.3, ring, ECDSA P-256 certificate made at start-up) against
//! our tokio echo server on 127.0.0.1, then the close. Rounds alternate between the two, so
//! the machine's noise falls on both alike; the medians and their ratio are printed.
//!
//! ```text
//! cargo run --release -p wsproto-benches --example connect -- [ROUNDS] [PER_ROUND]
//! ```
//!
//! The `wss://` full row gives each connect a fresh `ClientConfig` with session resumption
//! off: a full handshake every time. The resumed row shares one configuration across the
//! round, as `tls::default_client_config` is shared, so connects after the first resume
//! the TLS 1.3 session.

use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use wsproto::drivers::tokio::WebSocketStream;
use wsproto::drivers::{Connector, tls};
use wsproto::{ClientRequest, CloseCode, Config};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("usage: connect [ROUNDS] [PER_ROUND]"))
        .collect();
    let rounds = args.first().copied().unwrap_or(20);
    let per_round = args.get(1).copied().unwrap_or(50);

    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server_tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        )
        .unwrap();
    let ws_port = serve(None).await;
    let wss_port = serve(Some(tokio_rustls::TlsAcceptor::from(Arc::new(server_tls)))).await;

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).unwrap();
    let roots = Arc::new(roots);

    let mut ws = Vec::new();
    let mut full = Vec::new();
    let mut resumed = Vec::new();
    let ws_url = format!("ws://localhost:{ws_port}/");
    let wss_url = format!("wss://localhost:{wss_port}/");
    for _ in 0..rounds {
        ws.push(round(&ws_url, &roots, per_round, Tls::Full).await);
        full.push(round(&wss_url, &roots, per_round, Tls::Full).await);
        resumed.push(round(&wss_url, &roots, per_round, Tls::Resumed).await);
    }
    let (ws, full, resumed) = (median(ws), median(full), median(resumed));
    println!(
        "connect to Accepted, median of {rounds} rounds x {per_round}: ws:// {:.1} us; \
         wss:// full handshake {:.1} us ({:.2}x ws://), resumed {:.1} us ({:.2}x ws://)",
        micros(ws),
        micros(full),
        full.as_secs_f64() / ws.as_secs_f64(),
        micros(resumed),
        resumed.as_secs_f64() / ws.as_secs_f64()
    );
}

/// How a round's `wss://` connects handshake.
#[derive(Clone, Copy, PartialEq)]
enum Tls {
    /// A fresh configuration per connect, resumption off.
    Full,
    /// One configuration for the round: sessions resume.
    Resumed,
}

/// The mean time of `count` sequential connects to `url` (each then closed, off the clock).
async fn round(url: &str, roots: &Arc<rustls::RootCertStore>, count: usize, mode: Tls) -> Duration {
    let shared = Connector::new().tls_config(tls::client_config_with_roots((**roots).clone()));
    let mut total = Duration::ZERO;
    for _ in 0..count {
        let connector = match mode {
            Tls::Resumed => shared.clone(),
            Tls::Full => {
                let config = tls::client_config_with_roots((**roots).clone());
                let mut config = Arc::unwrap_or_clone(config);
                config.resumption = rustls::client::Resumption::disabled();
                Connector::new().tls_config(Arc::new(config))
            }
        };
        let request = ClientRequest::new(url).unwrap();
        let started = Instant::now();
        let mut ws = WebSocketStream::connect_using(request, Config::default(), &connector)
            .await
            .unwrap();
        total += started.elapsed();
        ws.close(CloseCode::NORMAL, "").await.unwrap();
        while ws.recv().await.unwrap().is_some() {}
    }
    total / u32::try_from(count).unwrap()
}

/// Our echo server, plain or behind `tls`; returns its port.
async fn serve(tls: Option<tokio_rustls::TlsAcceptor>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            stream.set_nodelay(true).unwrap();
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    None => drain(WebSocketStream::accept(stream, Config::default()).await).await,
                    Some(tls) => {
                        let stream = tls.accept(stream).await.unwrap();
                        drain(WebSocketStream::accept(stream, Config::default()).await).await;
                    }
                }
            });
        }
    });
    port
}

/// Reads until the client's close completes.
async fn drain<S>(ws: Result<WebSocketStream<S>, wsproto::drivers::Error>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut ws = ws.unwrap();
    while let Ok(Some(_)) = ws.recv().await {}
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
