//! `wss://` in both drivers against our own server behind rustls, on 127.0.0.1: exact echo,
//! the closing handshake, ALPN, and a typed error for each certificate the client refuses
//! (wrong host name, expired, untrusted root, and the default roots, which trust no test CA).
//!
//! Every certificate is made here at test time with rcgen; every test is bounded in time.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, RootCertStore, ServerConfig, ServerConnection};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;
use wsproto::drivers::blocking::{Transport, WebSocket};
use wsproto::drivers::tokio::WebSocketStream;
use wsproto::drivers::{Connector, Error, Message, tls};
use wsproto::{ClientRequest, CloseCode, Config, ConnectionState};

const LIMIT: Duration = Duration::from_secs(30);

// ----- harness ---------------------------------------------------------------------------

/// Runs a blocking test body on its own thread and fails the test if it takes over `LIMIT`.
fn within<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, result) = mpsc::channel();
    let runner = thread::spawn(move || {
        let _ = done.send(body());
    });
    match result.recv_timeout(LIMIT) {
        Ok(value) => value,
        Err(mpsc::RecvTimeoutError::Disconnected) => match runner.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the body sent nothing but did not panic"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("test did not finish within {LIMIT:?}"),
    }
}

/// Bounds an async test body.
async fn bounded<T>(body: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, body)
        .await
        .unwrap_or_else(|_| panic!("test did not finish within {LIMIT:?}"))
}

// ----- certificates ----------------------------------------------------------------------

/// A certificate authority made for one test.
struct Ca {
    cert: CertificateDer<'static>,
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self {
            cert: cert.der().clone(),
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate for `names`, valid now, or expired in 2001 when `expired`.
    fn leaf(&self, names: &[&str], expired: bool) -> Leaf {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        if expired {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap().der().clone();
        Leaf {
            chain: vec![cert],
            key: PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        }
    }

    /// A client configuration that trusts this CA only.
    fn client_config(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.cert.clone()).unwrap();
        tls::client_config_with_roots(roots)
    }
}

struct Leaf {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Leaf {
    fn server_config(self) -> Arc<ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(self.chain, self.key)
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

// ----- servers ---------------------------------------------------------------------------

/// What an echo server saw.
#[derive(Debug)]
struct ServerLog {
    alpn: Option<Vec<u8>>,
    close: Option<(u16, String)>,
    end: Result<(), String>,
}

/// The server side of a blocking TLS connection. The library's own `Transport` for
/// rustls's server streams comes from another branch; this one is the test's.
struct ServerTls(rustls::StreamOwned<ServerConnection, TcpStream>);

impl Read for ServerTls {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for ServerTls {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Transport for ServerTls {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.0.sock.set_read_timeout(timeout)
    }

    fn shutdown(&mut self) -> io::Result<()> {
        self.0.conn.send_close_notify();
        let _ = self.0.conn.complete_io(&mut self.0.sock);
        let _ = self.0.sock.shutdown(Shutdown::Both);
        Ok(())
    }
}

/// A blocking wss:// echo server for one connection; the URL names `host`.
fn blocking_server(
    config: Arc<ServerConfig>,
    host: &str,
) -> (String, thread::JoinHandle<ServerLog>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("wss://{host}:{}/", listener.local_addr().unwrap().port());
    let server = thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        let tls = rustls::StreamOwned::new(ServerConnection::new(config).unwrap(), tcp);
        let mut log = ServerLog {
            alpn: None,
            close: None,
            end: Ok(()),
        };
        let mut ws = match WebSocket::accept(ServerTls(tls), Config::default()) {
            Ok(ws) => ws,
            Err(e) => {
                log.end = Err(e.to_string());
                return log;
            }
        };
        log.alpn = ws.get_ref().0.conn.alpn_protocol().map(<[u8]>::to_vec);
        log.end = loop {
            let sent = match ws.recv() {
                Ok(Some(Message::Text(text))) => ws.send_text(&text),
                Ok(Some(Message::Binary(data))) => ws.send_binary(&data),
                Ok(Some(Message::Close { code, reason })) => {
                    log.close = Some((code.0, reason));
                    Ok(())
                }
                Ok(Some(_)) => Ok(()),
                Ok(None) => break Ok(()),
                Err(e) => break Err(e.to_string()),
            };
            if let Err(e) = sent {
                break Err(e.to_string());
            }
        };
        log
    });
    (url, server)
}

/// A tokio wss:// echo server for one connection; the URL names `host`.
async fn tokio_server(
    config: Arc<ServerConfig>,
    host: &str,
) -> (String, tokio::task::JoinHandle<ServerLog>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("wss://{host}:{}/", listener.local_addr().unwrap().port());
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let server = tokio::spawn(async move {
        let mut log = ServerLog {
            alpn: None,
            close: None,
            end: Ok(()),
        };
        let (tcp, _) = listener.accept().await.unwrap();
        let tls = match acceptor.accept(tcp).await {
            Ok(tls) => tls,
            Err(e) => {
                log.end = Err(Error::from(e).to_string());
                return log;
            }
        };
        log.alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        let mut ws = match WebSocketStream::accept(tls, Config::default()).await {
            Ok(ws) => ws,
            Err(e) => {
                log.end = Err(e.to_string());
                return log;
            }
        };
        log.end = loop {
            let sent = match ws.recv().await {
                Ok(Some(Message::Text(text))) => ws.send_text(&text).await,
                Ok(Some(Message::Binary(data))) => ws.send_binary(&data).await,
                Ok(Some(Message::Close { code, reason })) => {
                    log.close = Some((code.0, reason));
                    Ok(())
                }
                Ok(Some(_)) => Ok(()),
                Ok(None) => break Ok(()),
                Err(e) => break Err(e.to_string()),
            };
            if let Err(e) = sent {
                break Err(e.to_string());
            }
        };
        log
    });
    (url, server)
}

// ----- what the client sends and expects --------------------------------------------------

const TEXT: &str = "hello over TLS \u{2713}";

/// Crosses several TLS records (at most 16 KiB of plaintext each).
fn big_binary() -> Vec<u8> {
    (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect()
}

fn close_message(code: u16, reason: &str) -> Option<Message> {
    Some(Message::Close {
        code: CloseCode(code),
        reason: reason.into(),
    })
}

fn request(url: &str) -> ClientRequest {
    ClientRequest::new(url).unwrap()
}

fn assert_certificate_error(error: Error, want: &CertificateError) {
    match error {
        Error::Tls(rustls::Error::InvalidCertificate(got)) => assert_eq!(&got, want),
        other => panic!("expected Error::Tls(InvalidCertificate({want:?})), got {other:?}"),
    }
}

fn wrong_name_error() -> CertificateError {
    CertificateError::NotValidForNameContext {
        expected: ServerName::try_from("localhost").unwrap(),
        presented: vec![String::from("DnsName(\"other.example\")")],
    }
}

/// 2001-01-01T00:00:00Z, the `not_after` of the expired certificates.
fn expired_at() -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(978_307_200))
}

// ----- our client and our server over wss:// ---------------------------------------------

#[test]
fn blocking_wss_echo_and_close_1000() {
    within(|| {
        let ca = Ca::new("wsproto test CA");
        let (url, server) = blocking_server(
            ca.leaf(&["localhost", "127.0.0.1"], false).server_config(),
            "localhost",
        );
        let connector = Connector::new().tls_config(ca.client_config());
        let mut ws =
            WebSocket::connect_using(request(&url), Config::default(), &connector).unwrap();
        assert_eq!(ws.connection().state(), ConnectionState::Open);
        let session = ws.get_ref().tls().expect("a TLS session");
        assert_eq!(session.alpn_protocol(), Some(&b"http/1.1"[..]));

        ws.send_text(TEXT).unwrap();
        assert_eq!(ws.recv().unwrap(), Some(Message::Text(TEXT.into())));
        ws.send_binary(&big_binary()).unwrap();
        assert_eq!(ws.recv().unwrap(), Some(Message::Binary(big_binary())));
        ws.send_binary(&[]).unwrap();
        assert_eq!(ws.recv().unwrap(), Some(Message::Binary(Vec::new())));

        ws.close(CloseCode::NORMAL, "done").unwrap();
        assert_eq!(ws.recv().unwrap(), close_message(1000, "done"));
        assert_eq!(ws.recv().unwrap(), None);
        assert_eq!(ws.connection().state(), ConnectionState::Closed);

        let log = server.join().unwrap();
        assert_eq!(log.alpn.as_deref(), Some(&b"http/1.1"[..]));
        assert_eq!(log.close, Some((1000, "done".into())));
        assert_eq!(log.end, Ok(()));
    });
}

#[test]
fn blocking_wss_to_an_ip_address_with_extra_pem_roots() {
    within(|| {
        let ca = Ca::new("wsproto test CA");
        let (url, server) = blocking_server(
            ca.leaf(&["localhost", "127.0.0.1"], false).server_config(),
            "127.0.0.1",
        );
        let config = tls::client_config_with_pem_roots(ca.pem.as_bytes()).unwrap();
        let connector = Connector::new().tls_config(config);
        let mut ws =
            WebSocket::connect_using(request(&url), Config::default(), &connector).unwrap();
        ws.send_text(TEXT).unwrap();
        assert_eq!(ws.recv().unwrap(), Some(Message::Text(TEXT.into())));
        ws.close(CloseCode::NORMAL, "").unwrap();
        assert_eq!(ws.recv().unwrap(), close_message(1000, ""));
        assert_eq!(ws.recv().unwrap(), None);
        let log = server.join().unwrap();
        assert_eq!(log.close, Some((1000, String::new())));
        assert_eq!(log.end, Ok(()));
    });
}

#[tokio::test]
async fn tokio_wss_echo_and_close_1000() {
    bounded(async {
        let ca = Ca::new("wsproto test CA");
        let (url, server) = tokio_server(
            ca.leaf(&["localhost", "127.0.0.1"], false).server_config(),
            "localhost",
        )
        .await;
        let connector = Connector::new().tls_config(ca.client_config());
        let mut ws = WebSocketStream::connect_using(request(&url), Config::default(), &connector)
            .await
            .unwrap();
        assert_eq!(ws.connection().state(), ConnectionState::Open);
        let session = ws.get_ref().tls().expect("a TLS session");
        assert_eq!(session.alpn_protocol(), Some(&b"http/1.1"[..]));

        ws.send_text(TEXT).await.unwrap();
        assert_eq!(ws.recv().await.unwrap(), Some(Message::Text(TEXT.into())));
        ws.send_binary(&big_binary()).await.unwrap();
        assert_eq!(
            ws.recv().await.unwrap(),
            Some(Message::Binary(big_binary()))
        );
        ws.send_binary(&[]).await.unwrap();
        assert_eq!(ws.recv().await.unwrap(), Some(Message::Binary(Vec::new())));

        ws.close(CloseCode::NORMAL, "done").await.unwrap();
        assert_eq!(ws.recv().await.unwrap(), close_message(1000, "done"));
        assert_eq!(ws.recv().await.unwrap(), None);
        assert_eq!(ws.connection().state(), ConnectionState::Closed);

        let log = server.await.unwrap();
        assert_eq!(log.alpn.as_deref(), Some(&b"http/1.1"[..]));
        assert_eq!(log.close, Some((1000, "done".into())));
        assert_eq!(log.end, Ok(()));
    })
    .await;
}

// ----- certificates the client refuses ---------------------------------------------------

/// Connects the blocking client to a blocking server with `leaf`, trusting `trusted` only.
fn blocking_refused(leaf: Leaf, trusted: &Ca) -> Error {
    let (url, server) = blocking_server(leaf.server_config(), "localhost");
    let connector = Connector::new().tls_config(trusted.client_config());
    let error = WebSocket::connect_using(request(&url), Config::default(), &connector).unwrap_err();
    // The server hears the client's alert and gives up; it must not be left waiting.
    let log = server.join().unwrap();
    assert!(log.end.is_err(), "the server saw {log:?}");
    error
}

async fn tokio_refused(leaf: Leaf, trusted: &Ca) -> Error {
    let (url, server) = tokio_server(leaf.server_config(), "localhost").await;
    let connector = Connector::new().tls_config(trusted.client_config());
    let error = WebSocketStream::connect_using(request(&url), Config::default(), &connector)
        .await
        .unwrap_err();
    let log = server.await.unwrap();
    assert!(log.end.is_err(), "the server saw {log:?}");
    error
}

#[test]
fn blocking_wrong_host_name_is_refused() {
    within(|| {
        let ca = Ca::new("wsproto test CA");
        let error = blocking_refused(ca.leaf(&["other.example"], false), &ca);
        assert_certificate_error(error, &wrong_name_error());
    });
}

#[test]
fn blocking_expired_certificate_is_refused() {
    within(|| {
        let ca = Ca::new("wsproto test CA");
        let error = blocking_refused(ca.leaf(&["localhost"], true), &ca);
        match error {
            Error::Tls(rustls::Error::InvalidCertificate(CertificateError::ExpiredContext {
                not_after,
                ..
            })) => assert_eq!(not_after, expired_at()),
            other => panic!("expected ExpiredContext, got {other:?}"),
        }
    });
}

#[test]
fn blocking_untrusted_root_is_refused() {
    within(|| {
        let ca = Ca::new("wsproto test CA");
        let other = Ca::new("another CA");
        let error = blocking_refused(ca.leaf(&["localhost"], false), &other);
        assert_certificate_error(error, &CertificateError::UnknownIssuer);
    });
}

/// The default connector trusts the webpki roots, which do not hold the test CA: proof that
/// verification is on without any configuration.
#[test]
fn blocking_connect_verifies_by_default() {
    within(|| {
        let ca = Ca::new("wsproto test CA");
        let (url, server) =
            blocking_server(ca.leaf(&["localhost"], false).server_config(), "localhost");
        assert_certificate_error(
            WebSocket::connect(&url).unwrap_err(),
            &CertificateError::UnknownIssuer,
        );
        assert!(server.join().unwrap().end.is_err());
    });
}

#[tokio::test]
async fn tokio_wrong_host_name_is_refused() {
    bounded(async {
        let ca = Ca::new("wsproto test CA");
        let error = tokio_refused(ca.leaf(&["other.example"], false), &ca).await;
        assert_certificate_error(error, &wrong_name_error());
    })
    .await;
}

#[tokio::test]
async fn tokio_expired_certificate_is_refused() {
    bounded(async {
        let ca = Ca::new("wsproto test CA");
        let error = tokio_refused(ca.leaf(&["localhost"], true), &ca).await;
        match error {
            Error::Tls(rustls::Error::InvalidCertificate(CertificateError::ExpiredContext {
                not_after,
                ..
            })) => assert_eq!(not_after, expired_at()),
            other => panic!("expected ExpiredContext, got {other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn tokio_untrusted_root_is_refused() {
    bounded(async {
        let ca = Ca::new("wsproto test CA");
        let other = Ca::new("another CA");
        let error = tokio_refused(ca.leaf(&["localhost"], false), &other).await;
        assert_certificate_error(error, &CertificateError::UnknownIssuer);
    })
    .await;
}

/// As `blocking_connect_verifies_by_default`.
#[tokio::test]
async fn tokio_connect_verifies_by_default() {
    bounded(async {
        let ca = Ca::new("wsproto test CA");
        let (url, server) =
            tokio_server(ca.leaf(&["localhost"], false).server_config(), "localhost").await;
        assert_certificate_error(
            WebSocketStream::connect(&url).await.unwrap_err(),
            &CertificateError::UnknownIssuer,
        );
        assert!(server.await.unwrap().end.is_err());
    })
    .await;
}

// ----- a server that never answers the TLS handshake ----------------------------------------

/// A TLS handshake is bounded by `Config::handshake_timeout`, like the WebSocket one: a server
/// that accepts TCP and then says nothing costs the client that long, and no more.
#[test]
fn blocking_tls_handshake_times_out() {
    within(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("wss://localhost:{}/", listener.local_addr().unwrap().port());
        let config = Config::default().handshake_timeout(Some(Duration::from_millis(200)));
        let connector = Connector::new().tls_config(Ca::new("unused").client_config());
        let error = WebSocket::connect_using(request(&url), config, &connector).unwrap_err();
        match error {
            Error::Io(e) => assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}"),
            other => panic!("expected a timeout, got {other:?}"),
        }
        drop(listener);
    });
}

/// As `blocking_tls_handshake_times_out`.
#[tokio::test]
async fn tokio_tls_handshake_times_out() {
    bounded(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("wss://localhost:{}/", listener.local_addr().unwrap().port());
        let config = Config::default().handshake_timeout(Some(Duration::from_millis(200)));
        let connector = Connector::new().tls_config(Ca::new("unused").client_config());
        let error = WebSocketStream::connect_using(request(&url), config, &connector)
            .await
            .unwrap_err();
        match error {
            Error::Io(e) => assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}"),
            other => panic!("expected a timeout, got {other:?}"),
        }
        drop(listener);
    })
    .await;
}
