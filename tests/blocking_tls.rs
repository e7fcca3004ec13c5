//! The blocking driver over rustls streams on both sides (`Transport` for
//! `rustls::StreamOwned<C, TcpStream>`, client and server connections): echoes, the closing
//! handshake ending with the TLS `close_notify` alert, and keepalive through the socket's read
//! timeout. Certificates (a CA and a leaf for localhost) are generated here with rcgen.
//!
//! Every test listens on 127.0.0.1 and is bounded by a timeout, so none can hang.

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::Duration;
use wsproto::drivers::Message;
use wsproto::drivers::blocking::{Transport, WebSocket};
use wsproto::{ClientRequest, CloseCode, Config};

const LIMIT: Duration = Duration::from_secs(30);

type ClientTls = rustls::StreamOwned<ClientConnection, TcpStream>;
type ServerTls = rustls::StreamOwned<ServerConnection, TcpStream>;

/// Runs `body` on its own thread and fails the test if it takes over `limit`.
fn within<T: Send + 'static>(limit: Duration, body: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, result) = mpsc::channel();
    let runner = thread::spawn(move || {
        let _ = done.send(body());
    });
    match result.recv_timeout(limit) {
        Ok(value) => value,
        Err(_) => match runner.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => panic!("test did not finish within {limit:?}"),
        },
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server config with a leaf for localhost signed by a fresh CA, and a client config that
/// trusts only that CA.
fn configs() -> (Arc<ServerConfig>, Arc<ClientConfig>) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);

    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();

    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let server = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone(), ca_cert.der().clone()], key)
        .unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(ca_cert.der().clone()).unwrap();
    let client = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}

/// Accepts one TCP connection and wraps it in a server TLS stream (the handshake runs on the
/// first read, inside `WebSocket::accept`).
fn accept_tls(listener: &TcpListener, config: Arc<ServerConfig>) -> ServerTls {
    let (tcp, _) = listener.accept().unwrap();
    rustls::StreamOwned::new(ServerConnection::new(config).unwrap(), tcp)
}

fn connect_tls(port: u16, config: Arc<ClientConfig>) -> ClientTls {
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    rustls::StreamOwned::new(ClientConnection::new(config, name).unwrap(), tcp)
}

/// How the last read of a client stream ended: `Ok(0)` after a `close_notify`, an
/// `UnexpectedEof` error when the TCP connection ended without one.
#[derive(Debug, Clone, PartialEq)]
enum LastRead {
    None,
    Bytes,
    CleanEof,
    Error(io::ErrorKind),
}

/// A client TLS stream that records how its reads end, delegating the rest.
struct Recording {
    inner: ClientTls,
    last: Arc<Mutex<LastRead>>,
}

impl Read for Recording {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let result = self.inner.read(buf);
        *self.last.lock().unwrap() = match &result {
            Ok(0) => LastRead::CleanEof,
            Ok(_) => LastRead::Bytes,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return result,
            Err(e) => LastRead::Error(e.kind()),
        };
        result
    }
}

impl Write for Recording {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl Transport for Recording {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.inner.set_read_timeout(timeout)
    }

    fn shutdown(&mut self) -> io::Result<()> {
        Transport::shutdown(&mut self.inner)
    }

    fn writes_vectored(&self) -> bool {
        self.inner.writes_vectored()
    }
}

fn quiet() -> Config {
    let mut config = Config::default();
    config.keepalive_interval = None;
    config
}

#[test]
fn tls_echo_then_close_ends_with_close_notify() {
    within(LIMIT, || {
        let (server_config, client_config) = configs();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = thread::spawn(move || {
            let stream = accept_tls(&listener, server_config);
            let mut ws = WebSocket::accept(stream, quiet()).unwrap();
            let mut seen = Vec::new();
            while let Some(message) = ws.recv().unwrap() {
                match &message {
                    Message::Text(text) => ws.send_text(text).unwrap(),
                    Message::Binary(data) => ws.send_binary(data).unwrap(),
                    _ => {}
                }
                seen.push(message);
            }
            seen
        });

        let last = Arc::new(Mutex::new(LastRead::None));
        let stream = Recording {
            inner: connect_tls(port, client_config),
            last: Arc::clone(&last),
        };
        let request = ClientRequest::new(&format!("wss://localhost:{port}/")).unwrap();
        let mut ws = WebSocket::client_on(stream, request, quiet()).unwrap();
        ws.send_text("hello over tls \u{2713}").unwrap();
        assert_eq!(
            ws.recv().unwrap(),
            Some(Message::Text("hello over tls \u{2713}".into()))
        );
        // Larger than a TLS record (16 KiB), so the server's echo spans several records.
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        ws.send_binary(&data).unwrap();
        assert_eq!(ws.recv().unwrap(), Some(Message::Binary(data.clone())));

        ws.close(CloseCode::NORMAL, "bye").unwrap();
        assert_eq!(
            ws.recv().unwrap(),
            Some(Message::Close {
                code: CloseCode::NORMAL,
                reason: "bye".into()
            })
        );
        assert_eq!(ws.recv().unwrap(), None);
        // The server shut its stream first (RFC 6455 §7.1.1), with a close_notify alert: the
        // client's read ended cleanly rather than with an UnexpectedEof.
        assert_eq!(*last.lock().unwrap(), LastRead::CleanEof);

        let seen = server.join().unwrap();
        assert_eq!(
            seen,
            vec![
                Message::Text("hello over tls \u{2713}".into()),
                Message::Binary(data),
                Message::Close {
                    code: CloseCode::NORMAL,
                    reason: "bye".into()
                },
            ]
        );
    });
}

#[test]
fn tls_streams_do_not_write_vectored() {
    let (_, client_config) = configs();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let stream = connect_tls(listener.local_addr().unwrap().port(), client_config);
    assert!(!stream.writes_vectored());
}

#[test]
fn tls_server_keepalive_pings_through_the_read_timeout() {
    within(LIMIT, || {
        let (server_config, client_config) = configs();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = thread::spawn(move || {
            let stream = accept_tls(&listener, server_config);
            let mut config = quiet();
            config.keepalive_interval = Some(Duration::from_millis(100));
            let mut ws = WebSocket::accept(stream, config).unwrap();
            // Blocked in a read with nothing arriving, the server must still ping: only the
            // socket's read timeout gets it out of rustls's read.
            let mut messages = Vec::new();
            while let Some(message) = ws.recv().unwrap() {
                messages.push(message);
            }
            messages
        });

        let request = ClientRequest::new(&format!("wss://localhost:{port}/")).unwrap();
        let stream = connect_tls(port, client_config);
        let mut ws = WebSocket::client_on(stream, request, quiet()).unwrap();
        // The client's own pong answers the ping; the client sees the ping itself.
        let first = ws.recv().unwrap();
        assert!(matches!(first, Some(Message::Ping(_))), "{first:?}");
        ws.close(CloseCode::NORMAL, "").unwrap();
        loop {
            match ws.recv().unwrap() {
                Some(Message::Close { code, .. }) => assert_eq!(code, CloseCode::NORMAL),
                Some(Message::Ping(_)) => {}
                Some(other) => panic!("unexpected {other:?}"),
                None => break,
            }
        }
        let messages = server.join().unwrap();
        assert!(
            matches!(messages.last(), Some(Message::Close { code, .. }) if *code == CloseCode::NORMAL),
            "{messages:?}"
        );
    });
}
