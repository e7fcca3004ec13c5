//! Our client through an HTTP `CONNECT` proxy and a SOCKS5 proxy, both written here on tokio,
//! to an echo server made with our drivers, with both drivers; and each refusal's error.
//!
//! The proxies check credentials, record what the client sent them and relay bytes with
//! `tokio::io::copy_bidirectional`. Everything listens on 127.0.0.1 ephemeral ports and each
//! test is bounded by a timeout.

#[path = "common/proxies.rs"]
mod proxies;

use proxies::{Rules, TestProxy, http_proxy, socks5_proxy};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use wsproto::drivers::blocking::WebSocket;
use wsproto::drivers::proxy::{Proxy, ProxyError, SocksReply};
use wsproto::drivers::tokio::WebSocketStream;
use wsproto::drivers::{Connector, Error, Message};
use wsproto::{ClientRequest, CloseCode, Config};

const LIMIT: Duration = Duration::from_secs(20);

// ----- harness ---------------------------------------------------------------------------

/// Bounds an async test body.
async fn bounded<T>(body: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, body)
        .await
        .unwrap_or_else(|_| panic!("did not finish within {LIMIT:?}"))
}

/// Runs a blocking body on its own thread (detached, so a hang cannot hold the runtime) and
/// waits for it within the limit.
async fn off_runtime<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = done.send(body());
    });
    bounded(result)
        .await
        .expect("the blocking body panicked (see its message above)")
}

/// A tokio echo server (`WebSocketStream::accept`) for any number of connections.
async fn tokio_echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut ws = WebSocketStream::accept(stream, Config::default())
                    .await
                    .unwrap();
                while let Some(message) = ws.recv().await.unwrap() {
                    match message {
                        Message::Text(text) => ws.send_text(&text).await.unwrap(),
                        Message::Binary(data) => ws.send_binary(&data).await.unwrap(),
                        _ => {}
                    }
                }
            });
        }
    });
    addr
}

/// A blocking echo server (`WebSocket::accept`) for one connection, on its own thread.
fn blocking_echo_server() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(LIMIT)).unwrap();
        let mut ws = WebSocket::accept(stream, Config::default()).unwrap();
        while let Some(message) = ws.recv().unwrap() {
            match message {
                Message::Text(text) => ws.send_text(&text).unwrap(),
                Message::Binary(data) => ws.send_binary(&data).unwrap(),
                _ => {}
            }
        }
    });
    addr
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn binary() -> Vec<u8> {
    (0..=255).collect()
}

fn close_message() -> Message {
    Message::Close {
        code: CloseCode::NORMAL,
        reason: String::new(),
    }
}

/// Exact echoes of a text and a binary message, then a clean close, with the tokio driver.
async fn tokio_exchange<S>(ws: &mut WebSocketStream<S>) -> Result<(), Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    ws.send_text("through the proxy").await?;
    assert_eq!(
        ws.recv().await?,
        Some(Message::Text("through the proxy".into()))
    );
    ws.send_binary(&binary()).await?;
    assert_eq!(ws.recv().await?, Some(Message::Binary(binary())));
    ws.close(CloseCode::NORMAL, "").await?;
    assert_eq!(ws.recv().await?, Some(close_message()));
    assert_eq!(ws.recv().await?, None);
    Ok(())
}

/// The same with the blocking driver.
fn blocking_exchange<S: wsproto::drivers::blocking::Transport>(
    ws: &mut WebSocket<S>,
) -> Result<(), Error> {
    ws.send_text("through the proxy")?;
    assert_eq!(ws.recv()?, Some(Message::Text("through the proxy".into())));
    ws.send_binary(&binary())?;
    assert_eq!(ws.recv()?, Some(Message::Binary(binary())));
    ws.close(CloseCode::NORMAL, "")?;
    assert_eq!(ws.recv()?, Some(close_message()));
    assert_eq!(ws.recv()?, None);
    Ok(())
}

/// Through `proxy` to the echo server at `host:port` with the tokio driver: exact echoes and
/// a clean close.
async fn tokio_client_echoes(proxy: &Proxy, host: &str, port: u16) -> Result<(), Error> {
    let stream = proxy.connect_tokio(host, port).await?;
    assert!(stream.nodelay().unwrap());
    let request = ClientRequest::new(&format!("ws://{host}:{port}/")).unwrap();
    let mut ws = WebSocketStream::client_on(stream, request, Config::default()).await?;
    tokio_exchange(&mut ws).await
}

/// The same with the blocking driver.
fn blocking_client_echoes(proxy: &Proxy, host: &str, port: u16) -> Result<(), Error> {
    let stream = proxy.connect_blocking(host, port)?;
    assert!(stream.nodelay().unwrap());
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    let request = ClientRequest::new(&format!("ws://{host}:{port}/")).unwrap();
    let mut ws = WebSocket::client_on(stream, request, Config::default())?;
    blocking_exchange(&mut ws)
}

fn proxy_url(scheme_and_auth: &str, proxy: &TestProxy) -> Proxy {
    Proxy::parse(&format!("{scheme_and_auth}{}", proxy.addr)).unwrap()
}

// ----- HTTP CONNECT ----------------------------------------------------------------------

#[tokio::test]
async fn http_connect_tokio_echo_with_basic_auth() {
    bounded(async {
        let server = tokio_echo_server().await;
        let proxy = http_proxy(Rules {
            basic: Some("YWxpY2U6czNjcmV0"), // alice:s3cret
            ..Rules::default()
        })
        .await;
        let through = proxy_url("http://alice:s3cret@", &proxy);
        tokio_client_echoes(&through, "127.0.0.1", server.port())
            .await
            .unwrap();
        let authority = format!("127.0.0.1:{}", server.port());
        assert_eq!(
            proxy.seen(),
            [format!(
                "CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\
                 Proxy-Authorization: Basic YWxpY2U6czNjcmV0\r\n\r\n"
            )
            .into_bytes()]
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_connect_blocking_echo_with_percent_encoded_auth() {
    let server = blocking_echo_server();
    let proxy = http_proxy(Rules {
        basic: Some("YWwgaWNlOnBAc3M="), // "al ice:p@ss"
        ..Rules::default()
    })
    .await;
    let through = proxy_url("http://al%20ice:p%40ss@", &proxy);
    off_runtime(move || blocking_client_echoes(&through, "127.0.0.1", server.port()))
        .await
        .unwrap();
    assert_eq!(proxy.seen().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_connect_without_auth_both_drivers() {
    let proxy = http_proxy(Rules::default()).await;
    let through = proxy_url("http://", &proxy);
    let server = tokio_echo_server().await;
    bounded(tokio_client_echoes(&through, "127.0.0.1", server.port()))
        .await
        .unwrap();
    let server = blocking_echo_server();
    off_runtime(move || blocking_client_echoes(&through, "127.0.0.1", server.port()))
        .await
        .unwrap();
    let authority = format!("127.0.0.1:{}", server.port());
    assert_eq!(
        proxy.seen()[1],
        format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n").into_bytes()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_wrong_or_missing_credentials_give_407_error() {
    let proxy = http_proxy(Rules {
        basic: Some("YWxpY2U6czNjcmV0"),
        ..Rules::default()
    })
    .await;
    let port = closed_port(); // never reached
    for auth in ["http://alice:wrong@", "http://"] {
        let through = proxy_url(auth, &proxy);
        let err = bounded(through.connect_tokio("127.0.0.1", port))
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Proxy(ProxyError::AuthenticationRequired)),
            "{err:?}"
        );
        let err = off_runtime(move || through.connect_blocking("127.0.0.1", port))
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Proxy(ProxyError::AuthenticationRequired)),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "the proxy requires authentication (407): the credentials were refused or missing"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_403_gives_refused_with_status() {
    let proxy = http_proxy(Rules {
        refuse_with: Some(403),
        ..Rules::default()
    })
    .await;
    let through = proxy_url("http://", &proxy);
    let err = bounded(through.connect_tokio("127.0.0.1", 9))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Proxy(ProxyError::Refused { status: 403 })),
        "{err:?}"
    );
    let err = off_runtime(move || through.connect_blocking("127.0.0.1", 9))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Proxy(ProxyError::Refused { status: 403 })),
        "{err:?}"
    );
}

#[tokio::test]
async fn http_unreachable_target_gives_502() {
    let proxy = http_proxy(Rules::default()).await;
    let err = bounded(proxy_url("http://", &proxy).connect_tokio("127.0.0.1", closed_port()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Proxy(ProxyError::Refused { status: 502 })),
        "{err:?}"
    );
}

// ----- SOCKS5 ----------------------------------------------------------------------------

#[tokio::test]
async fn socks5_tokio_echo_with_username_password() {
    bounded(async {
        let server = tokio_echo_server().await;
        let proxy = socks5_proxy(Rules {
            socks: Some(("alice", "s3cret")),
            ..Rules::default()
        })
        .await;
        let through = proxy_url("socks5://alice:s3cret@", &proxy);
        tokio_client_echoes(&through, "127.0.0.1", server.port())
            .await
            .unwrap();
        let port = server.port().to_be_bytes();
        let mut expected = vec![5, 2, 0, 2, 1, 5];
        expected.extend_from_slice(b"alice");
        expected.push(6);
        expected.extend_from_slice(b"s3cret");
        expected.extend_from_slice(&[5, 1, 0, 1, 127, 0, 0, 1, port[0], port[1]]);
        assert_eq!(proxy.seen(), [expected]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socks5_blocking_echo_sends_the_name_for_the_proxy_to_resolve() {
    let server = blocking_echo_server();
    let proxy = socks5_proxy(Rules::default()).await;
    // socks5h:// is the same as socks5://: names go to the proxy.
    let through = proxy_url("socks5h://", &proxy);
    off_runtime(move || blocking_client_echoes(&through, "localhost", server.port()))
        .await
        .unwrap();
    let port = server.port().to_be_bytes();
    let mut expected = vec![5, 1, 0, 5, 1, 0, 3, 9];
    expected.extend_from_slice(b"localhost");
    expected.extend_from_slice(&port);
    assert_eq!(proxy.seen(), [expected]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socks5_both_drivers_without_auth() {
    let proxy = socks5_proxy(Rules::default()).await;
    let through = proxy_url("socks5://", &proxy);
    let server = tokio_echo_server().await;
    bounded(tokio_client_echoes(&through, "127.0.0.1", server.port()))
        .await
        .unwrap();
    let server = blocking_echo_server();
    off_runtime(move || blocking_client_echoes(&through, "127.0.0.1", server.port()))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socks5_wrong_credentials_give_auth_rejected() {
    let proxy = socks5_proxy(Rules {
        socks: Some(("alice", "s3cret")),
        ..Rules::default()
    })
    .await;
    let through = proxy_url("socks5://alice:wrong@", &proxy);
    let port = closed_port();
    let err = bounded(through.connect_tokio("127.0.0.1", port))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Proxy(ProxyError::SocksAuthRejected)),
        "{err:?}"
    );
    let err = off_runtime(move || through.connect_blocking("127.0.0.1", port))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Proxy(ProxyError::SocksAuthRejected)),
        "{err:?}"
    );
    // Without credentials we offer only "no authentication", which this proxy refuses.
    let err = bounded(proxy_url("socks5://", &proxy).connect_tokio("127.0.0.1", port))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Proxy(ProxyError::NoAcceptableAuthMethod)),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socks5_connection_refused_reply_is_named() {
    let proxy = socks5_proxy(Rules::default()).await;
    let through = proxy_url("socks5://", &proxy);
    let port = closed_port();
    let err = bounded(through.connect_tokio("127.0.0.1", port))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Proxy(ProxyError::Socks(SocksReply::ConnectionRefused))
        ),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "socks5 proxy: connection refused");
    let err = off_runtime(move || through.connect_blocking("127.0.0.1", port))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Proxy(ProxyError::Socks(SocksReply::ConnectionRefused))
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn unreachable_proxy_is_an_io_error() {
    let proxy = Proxy::socks5("127.0.0.1", closed_port());
    let err = bounded(proxy.connect_tokio("127.0.0.1", 9))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Io(_)), "{err:?}");
}

// ----- through a Connector, ws:// and wss:// ----------------------------------------------

/// A tokio wss:// echo server for any number of connections, with a certificate for
/// "localhost" made now; returns its port and a client configuration trusting it.
async fn tokio_wss_echo_server() -> (u16, Arc<rustls::ClientConfig>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server_config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let tls = acceptor.accept(stream).await.unwrap();
                let mut ws = WebSocketStream::accept(tls, Config::default())
                    .await
                    .unwrap();
                while let Some(message) = ws.recv().await.unwrap() {
                    match message {
                        Message::Text(text) => ws.send_text(&text).await.unwrap(),
                        Message::Binary(data) => ws.send_binary(&data).await.unwrap(),
                        _ => {}
                    }
                }
            });
        }
    });
    (port, wsproto::drivers::tls::client_config_with_roots(roots))
}

/// `url` through `connector` with the tokio driver: exact echoes and a clean close; says
/// whether the stream was TLS.
async fn tokio_connector_echoes(connector: &Connector, url: &str) -> Result<bool, Error> {
    let request = ClientRequest::new(url).unwrap();
    let mut ws = WebSocketStream::connect_using(request, Config::default(), connector).await?;
    let tls = ws.get_ref().tls().is_some();
    tokio_exchange(&mut ws).await?;
    Ok(tls)
}

/// The same with the blocking driver.
fn blocking_connector_echoes(connector: &Connector, url: &str) -> Result<bool, Error> {
    let request = ClientRequest::new(url).unwrap();
    let mut ws = WebSocket::connect_using(request, Config::default(), connector)?;
    let tls = ws.get_ref().tls().is_some();
    blocking_exchange(&mut ws)?;
    Ok(tls)
}

/// Both drivers through `connector` to `url`; each call makes one tunnel.
async fn both_drivers_through(connector: Connector, url: String) -> bool {
    let tokio_tls = tokio_connector_echoes(&connector, &url).await.unwrap();
    let blocking_tls = off_runtime(move || blocking_connector_echoes(&connector, &url))
        .await
        .unwrap();
    assert_eq!(tokio_tls, blocking_tls);
    tokio_tls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connector_carries_ws_and_wss_through_http_connect() {
    bounded(async {
        let proxy = http_proxy(Rules {
            basic: Some("YWxpY2U6czNjcmV0"), // alice:s3cret
            ..Rules::default()
        })
        .await;
        let (wss_port, tls) = tokio_wss_echo_server().await;
        let ws_port = tokio_echo_server().await.port();
        let connector = Connector::new()
            .tls_config(tls)
            .proxy(proxy_url("http://alice:s3cret@", &proxy));
        let url = format!("ws://localhost:{ws_port}/");
        assert!(!both_drivers_through(connector.clone(), url).await);
        let url = format!("wss://localhost:{wss_port}/");
        assert!(both_drivers_through(connector, url).await);
        let connect = |port: u16| {
            format!(
                "CONNECT localhost:{port} HTTP/1.1\r\nHost: localhost:{port}\r\n\
                 Proxy-Authorization: Basic YWxpY2U6czNjcmV0\r\n\r\n"
            )
            .into_bytes()
        };
        assert_eq!(
            proxy.seen(),
            [
                connect(ws_port),
                connect(ws_port),
                connect(wss_port),
                connect(wss_port)
            ]
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connector_carries_ws_and_wss_through_socks5() {
    bounded(async {
        let proxy = socks5_proxy(Rules {
            socks: Some(("bob", "hunter2")),
            ..Rules::default()
        })
        .await;
        let (wss_port, tls) = tokio_wss_echo_server().await;
        let ws_port = tokio_echo_server().await.port();
        let connector = Connector::new()
            .tls_config(tls)
            .proxy(proxy_url("socks5://bob:hunter2@", &proxy));
        let url = format!("ws://localhost:{ws_port}/");
        assert!(!both_drivers_through(connector.clone(), url).await);
        let url = format!("wss://localhost:{wss_port}/");
        assert!(both_drivers_through(connector, url).await);
        // Greeting offering no-auth and username/password, RFC 1929 credentials, then
        // CONNECT to the name "localhost" for the proxy to resolve.
        let sent = |port: u16| {
            let mut bytes = vec![5, 2, 0, 2, 1, 3];
            bytes.extend_from_slice(b"bob");
            bytes.push(7);
            bytes.extend_from_slice(b"hunter2");
            bytes.extend_from_slice(&[5, 1, 0, 3, 9]);
            bytes.extend_from_slice(b"localhost");
            bytes.extend_from_slice(&port.to_be_bytes());
            bytes
        };
        assert_eq!(
            proxy.seen(),
            [sent(ws_port), sent(ws_port), sent(wss_port), sent(wss_port)]
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connector_reports_the_407_of_wrong_credentials_for_wss() {
    bounded(async {
        let proxy = http_proxy(Rules {
            basic: Some("YWxpY2U6czNjcmV0"), // alice:s3cret
            ..Rules::default()
        })
        .await;
        let (wss_port, tls) = tokio_wss_echo_server().await;
        let connector = Connector::new()
            .tls_config(tls)
            .proxy(proxy_url("http://alice:wrong@", &proxy));
        let url = format!("wss://localhost:{wss_port}/");
        let request = ClientRequest::new(&url).unwrap();
        let error = WebSocketStream::connect_using(request.clone(), Config::default(), &connector)
            .await
            .unwrap_err();
        assert!(
            matches!(error, Error::Proxy(ProxyError::AuthenticationRequired)),
            "{error:?}"
        );
        let error = off_runtime(move || {
            WebSocket::connect_using(request, Config::default(), &connector).unwrap_err()
        })
        .await;
        assert!(
            matches!(error, Error::Proxy(ProxyError::AuthenticationRequired)),
            "{error:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_proxy_times_out_within_the_handshake_timeout() {
    // A proxy that accepts and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let connector = Connector::new().proxy(Proxy::parse(&format!("http://{addr}")).unwrap());
    let config = Config::default().handshake_timeout(Some(Duration::from_millis(200)));
    let request = ClientRequest::new("ws://localhost:9/").unwrap();
    let assert_timed_out = |error: Error, started: std::time::Instant| {
        let Error::Io(io) = &error else {
            panic!("{error:?}")
        };
        assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);
        assert_eq!(io.to_string(), "the proxy handshake timed out");
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(200), "{waited:?}");
    };
    let started = std::time::Instant::now();
    let error = bounded(WebSocketStream::connect_using(
        request.clone(),
        config.clone(),
        &connector,
    ))
    .await
    .unwrap_err();
    assert_timed_out(error, started);
    let started = std::time::Instant::now();
    let error =
        off_runtime(move || WebSocket::connect_using(request, config, &connector).unwrap_err())
            .await;
    assert_timed_out(error, started);
}
