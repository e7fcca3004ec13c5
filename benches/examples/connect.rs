//! What TLS adds to opening a connection: the time from `connect_using` to `Accepted` for
//! `ws://` and for `wss://` (TLS 1.3, ring, ECDSA P-256 certificate made at start-up) against
//! our tokio echo server on 127.0.0.1, then the close. Rounds alternate between the two, so
//! the machine's noise falls on both alike; the medians and their ratio are printed.
//!
//! ```text
//! cargo run --release -p wsproto-benches --example connect -- [ROUNDS] [PER_ROUND]
//! ```
//!
//! Each connect uses a fresh `ClientConfig` with session resumption off, so every `wss://`
//! row is a full handshake (the default configuration resumes, which is cheaper).

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
    let mut wss = Vec::new();
    for _ in 0..rounds {
        ws.push(round(&format!("ws://localhost:{ws_port}/"), &roots, per_round).await);
        wss.push(round(&format!("wss://localhost:{wss_port}/"), &roots, per_round).await);
    }
    let (ws, wss) = (median(ws), median(wss));
    println!(
        "connect to Accepted, median of {rounds} rounds x {per_round}: ws:// {:.1} us, \
         wss:// {:.1} us, wss/ws {:.2}x",
        micros(ws),
        micros(wss),
        wss.as_secs_f64() / ws.as_secs_f64()
    );
}

/// The mean time of `count` sequential connects to `url` (each then closed, off the clock).
async fn round(url: &str, roots: &Arc<rustls::RootCertStore>, count: usize) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..count {
        // A fresh configuration each time: no session to resume, a full TLS handshake.
        let mut config = Arc::unwrap_or_clone(tls::client_config_with_roots((**roots).clone()));
        config.resumption = rustls::client::Resumption::disabled();
        let connector = Connector::new().tls_config(Arc::new(config));
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
