//! Test proxies on tokio: an HTTP `CONNECT` proxy and a SOCKS5 proxy (RFC 1928, RFC 1929),
//! which check credentials, record what each client sent before its tunnel opened and relay
//! bytes with `tokio::io::copy_bidirectional`. Shared by `tests/proxy.rs` and the interop
//! test of the client example.
#![allow(dead_code, reason = "each test file uses a subset")]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How a test proxy behaves.
#[derive(Clone, Copy, Default)]
pub struct Rules {
    /// HTTP: the `Proxy-Authorization: Basic` token required; SOCKS5: (user, password).
    pub basic: Option<&'static str>,
    pub socks: Option<(&'static str, &'static str)>,
    /// HTTP: answer this status instead of opening the tunnel.
    pub refuse_with: Option<u16>,
}

/// A running test proxy: its address and what each client sent before the tunnel opened.
pub struct TestProxy {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl TestProxy {
    pub fn seen(&self) -> Vec<Vec<u8>> {
        self.seen.lock().unwrap().clone()
    }
}

/// Starts a proxy whose per-connection behaviour is `serve`.
async fn start<F, Fut>(rules: Rules, serve: F) -> TestProxy
where
    F: Fn(TcpStream, Rules, Arc<Mutex<Vec<Vec<u8>>>>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(serve(stream, rules, log.clone()));
        }
    });
    TestProxy { addr, seen }
}

/// An HTTP `CONNECT` proxy.
pub async fn http_proxy(rules: Rules) -> TestProxy {
    start(rules, serve_http_connect).await
}

async fn serve_http_connect(mut client: TcpStream, rules: Rules, seen: Arc<Mutex<Vec<Vec<u8>>>>) {
    // The client sends its head and waits, so reading up to the blank line takes all of it.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0];
        if client.read(&mut byte).await.unwrap() == 0 {
            return;
        }
        head.push(byte[0]);
    }
    seen.lock().unwrap().push(head.clone());
    let text = String::from_utf8(head).unwrap();
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap();
    let target = request_line
        .strip_prefix("CONNECT ")
        .and_then(|rest| rest.strip_suffix(" HTTP/1.1"))
        .expect("a CONNECT request line");
    if let Some(token) = rules.basic {
        let expected = format!("basic {token}");
        let given = lines.find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("proxy-authorization")
                .then(|| value.trim().to_ascii_lowercase())
        });
        if given.as_deref() != Some(expected.to_ascii_lowercase().as_str()) {
            // Like real proxies, with a body after the head.
            let body = "<html>authentication required</html>";
            let answer = format!(
                "HTTP/1.1 407 Proxy Authentication Required\r\n\
                 Proxy-Authenticate: Basic realm=\"test\"\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            );
            client.write_all(answer.as_bytes()).await.unwrap();
            return;
        }
    }
    if let Some(status) = rules.refuse_with {
        let answer = format!("HTTP/1.1 {status} Refused\r\nContent-Length: 0\r\n\r\n");
        client.write_all(answer.as_bytes()).await.unwrap();
        return;
    }
    let Ok(mut server) = TcpStream::connect(target).await else {
        let answer = "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n";
        client.write_all(answer.as_bytes()).await.unwrap();
        return;
    };
    client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await
        .unwrap();
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}

/// A SOCKS5 proxy (RFC 1928, with RFC 1929 username/password when `rules.socks` is set).
pub async fn socks5_proxy(rules: Rules) -> TestProxy {
    start(rules, serve_socks5).await
}

async fn read_n(stream: &mut TcpStream, seen: &mut Vec<u8>, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    stream.read_exact(&mut buf).await.unwrap();
    seen.extend_from_slice(&buf);
    buf
}

async fn serve_socks5(mut client: TcpStream, rules: Rules, log: Arc<Mutex<Vec<Vec<u8>>>>) {
    let mut seen = Vec::new();
    let greeting = read_n(&mut client, &mut seen, 2).await;
    assert_eq!(greeting[0], 5);
    let methods = read_n(&mut client, &mut seen, usize::from(greeting[1])).await;
    let wanted = if rules.socks.is_some() { 2 } else { 0 };
    if !methods.contains(&wanted) {
        log.lock().unwrap().push(seen);
        client.write_all(&[5, 0xff]).await.unwrap();
        return;
    }
    client.write_all(&[5, wanted]).await.unwrap();
    if let Some((user, pass)) = rules.socks {
        let head = read_n(&mut client, &mut seen, 2).await;
        assert_eq!(head[0], 1);
        let given_user = read_n(&mut client, &mut seen, usize::from(head[1])).await;
        let plen = read_n(&mut client, &mut seen, 1).await[0];
        let given_pass = read_n(&mut client, &mut seen, usize::from(plen)).await;
        if given_user != user.as_bytes() || given_pass != pass.as_bytes() {
            log.lock().unwrap().push(seen);
            client.write_all(&[1, 1]).await.unwrap();
            return;
        }
        client.write_all(&[1, 0]).await.unwrap();
    }
    let request = read_n(&mut client, &mut seen, 4).await;
    assert_eq!(request[..3], [5, 1, 0]);
    let host = match request[3] {
        1 => {
            let a = read_n(&mut client, &mut seen, 4).await;
            std::net::Ipv4Addr::new(a[0], a[1], a[2], a[3]).to_string()
        }
        3 => {
            let len = read_n(&mut client, &mut seen, 1).await[0];
            String::from_utf8(read_n(&mut client, &mut seen, usize::from(len)).await).unwrap()
        }
        4 => {
            let a: [u8; 16] = read_n(&mut client, &mut seen, 16).await.try_into().unwrap();
            std::net::Ipv6Addr::from(a).to_string()
        }
        other => panic!("address type {other}"),
    };
    let port = read_n(&mut client, &mut seen, 2).await;
    let port = u16::from_be_bytes([port[0], port[1]]);
    log.lock().unwrap().push(seen);
    let Ok(mut server) = TcpStream::connect((host.as_str(), port)).await else {
        // RFC 1928 §6: X'05' connection refused.
        client
            .write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0])
            .await
            .unwrap();
        return;
    };
    let bound = server.local_addr().unwrap().port().to_be_bytes();
    client
        .write_all(&[5, 0, 0, 1, 127, 0, 0, 1, bound[0], bound[1]])
        .await
        .unwrap();
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}
