//! Interop with WebSocket implementations nobody here wrote, over 127.0.0.1:
//!
//! - our `echo_server` and `echo_server_blocking` examples against the Python `websockets`
//!   and Node `ws` clients (`tests/interop/py_client.py`, `node_client.js`);
//! - our client (the blocking driver, the case runner below) against the Python and Node
//!   echo servers, with the same case list;
//! - the `chat` example in two headless Chromium pages (`chat_browser.js`), screenshot saved
//!   as `<target>/chat.png`; `axum_chat` likewise over https with ALPN h2, its WebSockets
//!   RFC 8441 streams (the page's welcome line must say `over HTTP/2.0`);
//! - two `chat` processes sharing one room through a `redis-server` of the test's own (on a
//!   free port, without persistence): our clients, then two Chromium pages, one per process;
//! - `echo_server --http2` against our HTTP/2 client: several WebSockets on one h2c (or h2
//!   over TLS) connection and an HTTP/1.1 upgrade on the same port, echoed byte for byte;
//! - all of the above again over TLS (wss://, and https:// for the chat page): our servers
//!   with `--tls-cert/--tls-key`, the peers' clients with `--ca-file`, the peers' servers with
//!   their own TLS, and Chromium trusting the test leaf's public key. The certificates (a CA
//!   and a leaf for localhost and 127.0.0.1) are generated once per run with rcgen into
//!   `<target>/interop/certs/`.
//!
//! Set-up, once per test run: `.ci/install-deps` (idempotent; when it fails the tests are
//! skipped with a message, or fail when `CI` is set), then `cargo build --release
//! --examples --features redis` into this test's own target directory (found from the test executable's
//! path, `<target>/<profile>/deps/interop-*`), so the servers run as optimised builds and
//! `cargo test --test interop` works on its own. Every child process is stopped when its
//! handle drops and each test has an overall time limit. Timings go to stderr uncaptured.

#[path = "common/proxies.rs"]
mod proxies;

use rustls::pki_types::CertificateDer;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};
use wsproto::drivers::blocking::{ClientStream, Transport, WebSocket};
use wsproto::drivers::{Connector, tls};
use wsproto::drivers::{Error, Message};
use wsproto::{ClientRequest, CloseCode, Config, MessageKind};

/// Prints past the test harness's capture, so CI logs show how long each part took.
macro_rules! report {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stderr(), "interop: {}", format_args!($($arg)*));
    }};
}

// ----- set-up ------------------------------------------------------------------------------

struct Setup {
    examples: PathBuf,
    target: PathBuf,
    python: PathBuf,
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The target directory this test binary was built into.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // <target>/<profile>/deps/interop-<hash>
    exe.ancestors()
        .nth(3)
        .expect("test executable under <target>/<profile>/deps")
        .to_path_buf()
}

static DEPS: OnceLock<Result<(), String>> = OnceLock::new();
static EXAMPLES: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// Installs the peers and builds the examples once; `None` means skip this test.
fn setup() -> Option<Setup> {
    let deps = DEPS.get_or_init(|| {
        let started = Instant::now();
        let out = Command::new("bash")
            .arg(repo().join(".ci/install-deps"))
            .current_dir(repo())
            .output()
            .map_err(|e| format!("cannot run .ci/install-deps: {e}"))?;
        report!(
            "set-up: .ci/install-deps took {} ms",
            started.elapsed().as_millis()
        );
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                ".ci/install-deps failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    if let Err(why) = deps {
        if std::env::var_os("CI").is_some() {
            panic!("{why}");
        }
        report!("SKIPPED (the interop peers are not installed; CI is unset): {why}");
        return None;
    }
    let examples = EXAMPLES.get_or_init(|| {
        let started = Instant::now();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let target = target_dir();
        let out = Command::new(cargo)
            // `redis`: the chat's --redis, for the chat across two processes.
            .args(["build", "--release", "--examples", "--features", "redis"])
            .arg("--target-dir")
            .arg(&target)
            .current_dir(repo())
            .output()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        report!(
            "set-up: cargo build --release --examples --features redis took {} ms",
            started.elapsed().as_millis()
        );
        if out.status.success() {
            Ok(target.join("release").join("examples"))
        } else {
            Err(format!(
                "cargo build --release --examples --features redis failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    let examples = examples
        .as_ref()
        .unwrap_or_else(|why| panic!("{why}"))
        .clone();
    let deps_dir = std::env::var_os("WSPROTO_DEPS").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/wsproto-deps"),
        PathBuf::from,
    );
    Some(Setup {
        examples,
        target: target_dir(),
        python: deps_dir.join("venv/bin/python"),
    })
}

// ----- child processes -----------------------------------------------------------------

/// PIDs of the children a test started, for the watchdog.
type Pids = Arc<Mutex<Vec<u32>>>;

/// Runs `body` on its own thread; past `limit`, kills every child it started and fails.
fn with_limit(name: &str, limit: Duration, body: impl FnOnce(&Pids) + Send + 'static) {
    let pids: Pids = Arc::default();
    let (done, finished) = mpsc::channel();
    let started = Instant::now();
    let runner = {
        let pids = Arc::clone(&pids);
        thread::spawn(move || {
            body(&pids);
            let _ = done.send(());
        })
    };
    match finished.recv_timeout(limit) {
        Ok(()) => report!("{name}: passed in {} ms", started.elapsed().as_millis()),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            report!("{name}: FAILED after {} ms", started.elapsed().as_millis());
            if let Err(panic) = runner.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            for pid in pids.lock().unwrap().iter() {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
            panic!("{name}: did not finish within {limit:?}");
        }
    }
}

/// A child process whose stdout lines are collected; stopped (SIGTERM, then SIGKILL) on drop.
struct Proc {
    name: String,
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Proc {
    /// Starts `command`; its stderr goes to `<target>/interop/<name>.stderr`.
    fn spawn(pids: &Pids, setup: &Setup, name: &str, command: &mut Command) -> Self {
        Self::start(pids, setup, name, command, Stdio::null())
    }

    /// As [`Proc::spawn`], with its stdin a pipe the caller writes to (dropping it is the end
    /// of input).
    fn spawn_with_stdin(
        pids: &Pids,
        setup: &Setup,
        name: &str,
        command: &mut Command,
    ) -> (Self, std::process::ChildStdin) {
        let mut proc = Self::start(pids, setup, name, command, Stdio::piped());
        let stdin = proc.child.stdin.take().unwrap();
        (proc, stdin)
    }

    fn start(pids: &Pids, setup: &Setup, name: &str, command: &mut Command, stdin: Stdio) -> Self {
        let logs = setup.target.join("interop");
        std::fs::create_dir_all(&logs).unwrap();
        let stderr = std::fs::File::create(logs.join(format!("{name}.stderr"))).unwrap();
        let mut child = command
            .current_dir(repo())
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        pids.lock().unwrap().push(child.id());
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            name: name.to_string(),
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a stdout line containing `needle` and returns it.
    fn wait_line(&mut self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "{}: no line with {needle:?} within {limit:?}; output so far:\n{}",
                    self.name,
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits for the process to exit; returns its status and every stdout line.
    fn finish(mut self, limit: Duration) -> (ExitStatus, Vec<String>) {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                panic!(
                    "{} did not exit within {limit:?}; output:\n{}",
                    self.name,
                    self.seen.join("\n")
                );
            }
            thread::sleep(Duration::from_millis(20));
        };
        // The pipe closes when the process exits; take what is left.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        (status, std::mem::take(&mut self.seen))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SIGTERM first: the browser driver closes Chromium on it.
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Checks a peer program's output contract: exit 0 and a final `interop: N passed, 0 failed`.
fn assert_peer_passed(name: &str, status: ExitStatus, lines: &[String], want_passed: usize) {
    for line in lines.iter().filter(|line| line.starts_with("FAIL")) {
        report!("  {name}: {line}");
    }
    let last = lines.last().map_or("", String::as_str);
    assert!(
        status.success() && last == format!("interop: {want_passed} passed, 0 failed"),
        "{name}: {status}, last line {last:?}; output:\n{}",
        lines.join("\n")
    );
}

/// The URL in a `listening on ws://...` (or `wss://`) line.
fn url_in(line: &str) -> String {
    let start = line
        .find("wss://")
        .or_else(|| line.find("ws://"))
        .expect("a ws:// or wss:// URL");
    let url = line[start..].split_whitespace().next().unwrap();
    format!("{}/", url.trim_end_matches('/'))
}

// ----- test certificates -----------------------------------------------------------------

/// A CA and a leaf it signed for `localhost` and `127.0.0.1`, as PEM files.
struct Certs {
    /// The CA certificate: the one root the clients trust.
    ca: PathBuf,
    ca_der: CertificateDer<'static>,
    /// The leaf certificate, then the leaf's private key (PKCS#8).
    cert: PathBuf,
    key: PathBuf,
    /// base64 of the SHA-256 of the leaf's SubjectPublicKeyInfo, for Chromium.
    spki_sha256: String,
}

static CERTS: OnceLock<Certs> = OnceLock::new();

/// Generates the certificates once per run into `<target>/interop/certs/`.
fn certs(setup: &Setup) -> &'static Certs {
    CERTS.get_or_init(|| {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
            KeyPair, KeyUsagePurpose, PublicKeyData,
        };
        let dir = setup.target.join("interop").join("certs");
        std::fs::create_dir_all(&dir).unwrap();

        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.distinguished_name
            .push(DnType::CommonName, "wsproto interop test CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);

        let leaf_key = KeyPair::generate().unwrap();
        let mut leaf =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        leaf.distinguished_name
            .push(DnType::CommonName, "localhost");
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        // OpenSSL's strict chain checks (Python >= 3.13 turns them on) want it.
        leaf.use_authority_key_identifier_extension = true;
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();

        let certs = Certs {
            ca: dir.join("ca.pem"),
            ca_der: ca_cert.der().clone(),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            spki_sha256: sha256_base64(&leaf_key.subject_public_key_info()),
        };
        std::fs::write(&certs.ca, ca_cert.pem()).unwrap();
        std::fs::write(&certs.cert, leaf_cert.pem()).unwrap();
        std::fs::write(&certs.key, leaf_key.serialize_pem()).unwrap();
        certs
    })
}

/// SHA-256 from the crypto provider rustls already carries (no hashing crate of our own).
fn sha256_base64(data: &[u8]) -> String {
    use base64::Engine;
    let suite = rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256;
    let digest = suite.tls13().unwrap().common.hash_provider.hash(data);
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

/// The server flags of our examples and the peers' servers.
fn tls_server_args(certs: &Certs) -> [&std::ffi::OsStr; 4] {
    [
        "--tls-cert".as_ref(),
        certs.cert.as_os_str(),
        "--tls-key".as_ref(),
        certs.key.as_os_str(),
    ]
}

// ----- our servers, their clients -------------------------------------------------------

/// The peers' case list: 7 sizes of text and binary, 2 fragmented, ping-pong, close.
const CASES: usize = 18;

fn our_server_their_client(server: &'static str, client: &'static str, deflate: bool, tls: bool) {
    let Some(setup) = setup() else { return };
    let name = format!(
        "{server} <- {client}{}{}",
        if deflate { " (deflate)" } else { "" },
        if tls { " (wss)" } else { "" }
    );
    let flag: &[&str] = if deflate { &["--deflate"] } else { &[] };
    let certs = tls.then(|| certs(&setup));
    with_limit(&name.clone(), Duration::from_secs(240), move |pids| {
        let mut command = Command::new(setup.examples.join(server));
        command.args(["--addr", "127.0.0.1:0"]).args(flag);
        if let Some(certs) = certs {
            command.args(tls_server_args(certs));
        }
        let mut ours = Proc::spawn(pids, &setup, server, &mut command);
        let url = url_in(&ours.wait_line("listening on", Duration::from_secs(10)));
        if tls {
            assert!(url.starts_with("wss://"), "{url}");
            plain_http_to_tls_server(&url);
        }
        let started = Instant::now();
        let mut command = match client {
            "py_client.py" => Command::new(&setup.python),
            _ => Command::new("node"),
        };
        command
            .arg(format!("tests/interop/{client}"))
            .args(["--url", &url, "--timeout", "180"])
            // With --deflate the peer fails unless permessage-deflate was negotiated.
            .args(flag);
        if let Some(certs) = certs {
            command.arg("--ca-file").arg(&certs.ca);
        }
        let (status, lines) =
            Proc::spawn(pids, &setup, client, &mut command).finish(Duration::from_secs(200));
        report!("{name}: client ran in {} ms", started.elapsed().as_millis());
        assert_peer_passed(client, status, &lines, CASES);
    });
}

/// A client that speaks plain HTTP to a TLS port fails its TLS handshake: the server must
/// end that connection and keep serving (the peer's client runs next).
fn plain_http_to_tls_server(url: &str) {
    let addr = url.trim_start_matches("wss://").trim_end_matches('/');
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    // rustls answers a non-TLS record with an alert (or just closes); then comes the end.
    let mut answer = Vec::new();
    let ended = tcp.read_to_end(&mut answer);
    assert!(
        ended.is_ok()
            || ended
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "the server did not end the connection: {ended:?}"
    );
    assert!(
        answer.is_empty() || answer[0] == 0x15,
        "expected a TLS alert record or nothing, got {answer:?}"
    );
}

#[test]
fn echo_server_with_python_websockets_client() {
    our_server_their_client("echo_server", "py_client.py", false, false);
}

#[test]
fn echo_server_with_node_ws_client() {
    our_server_their_client("echo_server", "node_client.js", false, false);
}

#[test]
fn echo_server_blocking_with_python_websockets_client() {
    our_server_their_client("echo_server_blocking", "py_client.py", false, false);
}

#[test]
fn echo_server_blocking_with_node_ws_client() {
    our_server_their_client("echo_server_blocking", "node_client.js", false, false);
}

#[test]
fn echo_server_deflate_with_python_websockets_client() {
    our_server_their_client("echo_server", "py_client.py", true, false);
}

#[test]
fn echo_server_deflate_with_node_ws_client() {
    our_server_their_client("echo_server", "node_client.js", true, false);
}

#[test]
fn echo_server_wss_with_python_websockets_client() {
    our_server_their_client("echo_server", "py_client.py", false, true);
}

#[test]
fn echo_server_wss_with_node_ws_client() {
    our_server_their_client("echo_server", "node_client.js", false, true);
}

#[test]
fn echo_server_blocking_wss_with_python_websockets_client() {
    our_server_their_client("echo_server_blocking", "py_client.py", false, true);
}

#[test]
fn echo_server_blocking_wss_with_node_ws_client() {
    our_server_their_client("echo_server_blocking", "node_client.js", false, true);
}

/// One TLS flag without the other is a usage error, before anything listens.
#[test]
fn examples_want_both_tls_flags() {
    let Some(setup) = setup() else { return };
    let certs = certs(&setup);
    let examples: [(&str, &[&str]); 5] = [
        ("echo_server", &[]),
        ("echo_server", &["--http2"]),
        ("echo_server_blocking", &[]),
        ("chat", &[]),
        ("axum_chat", &[]),
    ];
    for (example, extra) in examples {
        for (flag, path) in [("--tls-cert", &certs.cert), ("--tls-key", &certs.key)] {
            let out = Command::new(setup.examples.join(example))
                .args(extra)
                .args(["--addr", "127.0.0.1:0", flag])
                .arg(path)
                .stdin(Stdio::null())
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(2), "{example} {extra:?} {flag}");
            assert_eq!(
                String::from_utf8_lossy(&out.stderr),
                "--tls-cert and --tls-key go together: give both or neither\n",
                "{example} {flag}"
            );
            assert!(out.stdout.is_empty(), "{example} {flag}");
        }
    }
}

// ----- our client, their servers --------------------------------------------------------

const SIZES: [(&str, usize); 7] = [
    ("0", 0),
    ("125", 125),
    ("126", 126),
    ("65535", 65535),
    ("65536", 65536),
    ("1MiB", 1 << 20),
    ("16MiB", 16 << 20),
];
const ASCII_UNIT: &str = "The quick brown fox jumps over the lazy dog 0123456789. ";
const UTF8_UNIT: &str =
    "wsproto h\u{e9}llo w\u{f6}rld \u{2713} \u{4e2d}\u{6587} \u{1f600} \u{2014} caf\u{e9} ";
const FRAG_TEXT: &str = "fragmented \u{2713} text \u{1f600} across frames \u{2014} done";
const PING_PAYLOAD: &[u8] = b"wsproto-ping-\x00\x01\xfe\xff";

/// Text of exactly `n` UTF-8 bytes; from 65,535 bytes on it mixes 1- to 4-byte characters.
fn make_text(n: usize) -> String {
    let unit = if n >= 65535 { UTF8_UNIT } else { ASCII_UNIT };
    let mut text = unit.repeat(n / unit.len());
    for ch in unit.chars() {
        if text.len() + ch.len_utf8() > n {
            break;
        }
        text.push(ch);
    }
    let pad = n - text.len();
    text.push_str(&".".repeat(pad));
    text
}

/// `n` bytes of a 251-byte cycle.
fn make_binary(n: usize) -> Vec<u8> {
    (0..n).map(|i| ((i % 251) * 37 + 11) as u8).collect()
}

/// `FRAG_TEXT` cut inside the ✓ (after 1 byte), the 😀 (after 2) and the — (after 1).
fn frag_text_pieces() -> Vec<&'static [u8]> {
    let bytes = FRAG_TEXT.as_bytes();
    let mut cuts = vec![0];
    for (ch, k) in [('\u{2713}', 1), ('\u{1f600}', 2), ('\u{2014}', 1)] {
        cuts.push(FRAG_TEXT.find(ch).unwrap() + k);
    }
    cuts.push(bytes.len());
    cuts.windows(2).map(|w| &bytes[w[0]..w[1]]).collect()
}

type CaseResult = Result<String, String>;

/// Reads the next data message; Pings and Pongs are skipped.
fn next_message<S: Transport>(ws: &mut WebSocket<S>) -> Result<Message, String> {
    loop {
        match ws.recv().map_err(|e| e.to_string())? {
            Some(Message::Ping(_) | Message::Pong(_)) => {}
            Some(message) => return Ok(message),
            None => return Err("connection closed".into()),
        }
    }
}

fn expect_echo<S: Transport>(ws: &mut WebSocket<S>, want: &Message) -> CaseResult {
    let got = next_message(ws)?;
    let len = |m: &Message| match m {
        Message::Text(t) => t.len(),
        Message::Binary(b) => b.len(),
        _ => 0,
    };
    if &got == want {
        Ok(format!("{} bytes echoed", len(want)))
    } else {
        match (&got, want) {
            (Message::Text(_), Message::Text(_)) | (Message::Binary(_), Message::Binary(_)) => {
                Err(format!(
                    "content differs: got {} bytes, want {}",
                    len(&got),
                    len(want)
                ))
            }
            _ => Err(format!("wrong message type: {:?}", kind_of(&got))),
        }
    }
}

fn kind_of(message: &Message) -> &'static str {
    match message {
        Message::Text(_) => "text",
        Message::Binary(_) => "binary",
        Message::Ping(_) => "ping",
        Message::Pong(_) => "pong",
        Message::Close { .. } => "close",
        Message::TextChunk { .. } => "text chunk",
        Message::BinaryChunk { .. } => "binary chunk",
    }
}

/// Our client over wss://, through the crate's own TLS (`connect_using`), trusting only `ca`.
fn connect_wss(
    url: &str,
    config: Config,
    ca: &CertificateDer<'static>,
) -> Result<WebSocket<ClientStream>, Error> {
    let request = ClientRequest::new(url)?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone())?;
    let connector = Connector::new().tls_config(tls::client_config_with_roots(roots));
    WebSocket::connect_using(request, config, &connector)
}

/// The client configuration of the case list.
fn case_config(deflate: bool) -> Config {
    let mut config = Config::default();
    config.max_message_size = (16 << 20) + (64 << 10);
    config.keepalive_interval = None;
    if deflate {
        config.deflate = Some(wsproto::DeflateConfig::default());
    }
    config
}

/// Runs the case list on one connection; returns one line per case.
fn run_cases<S: Transport>(
    connected: Result<WebSocket<S>, Error>,
    deflate: bool,
) -> Vec<(String, CaseResult)> {
    let mut ws = match connected {
        Ok(ws) => ws,
        Err(e) => return vec![("connect".into(), Err(e.to_string()))],
    };
    if deflate && !ws.connection().is_deflate_negotiated() {
        return vec![(
            "deflate".into(),
            Err("permessage-deflate was not negotiated".into()),
        )];
    }
    let mut results = Vec::new();
    let mut record = |name: String, started: Instant, result: CaseResult| {
        let result =
            result.map(|detail| format!("{detail} [{} ms]", started.elapsed().as_millis()));
        results.push((name, result));
    };
    for kind in [MessageKind::Text, MessageKind::Binary] {
        for (label, n) in SIZES {
            let started = Instant::now();
            let (name, want) = match kind {
                MessageKind::Text => (format!("text-{label}"), Message::Text(make_text(n))),
                MessageKind::Binary => (format!("binary-{label}"), Message::Binary(make_binary(n))),
            };
            let sent = match &want {
                Message::Text(text) => ws.send_text(text),
                Message::Binary(data) => ws.send_binary(data),
                _ => unreachable!(),
            };
            let result = sent
                .map_err(|e| e.to_string())
                .and_then(|()| expect_echo(&mut ws, &want));
            record(name, started, result);
        }
    }

    let started = Instant::now();
    let result = (|| {
        for piece in frag_text_pieces() {
            ws.send_fragment(MessageKind::Text, piece, false)
                .map_err(|e| e.to_string())?;
        }
        ws.send_fragment(MessageKind::Text, b"", true)
            .map_err(|e| e.to_string())?;
        expect_echo(&mut ws, &Message::Text(FRAG_TEXT.into()))
    })();
    record("fragmented-text".into(), started, result);

    let started = Instant::now();
    let data = make_binary(71_001);
    let result = (|| {
        for piece in [&data[..1000], &data[1000..71_000], &data[71_000..]] {
            ws.send_fragment(MessageKind::Binary, piece, false)
                .map_err(|e| e.to_string())?;
        }
        ws.send_fragment(MessageKind::Binary, b"", true)
            .map_err(|e| e.to_string())?;
        expect_echo(&mut ws, &Message::Binary(data.clone()))
    })();
    record("fragmented-binary".into(), started, result);

    let started = Instant::now();
    let result = (|| {
        ws.send_ping(PING_PAYLOAD).map_err(|e| e.to_string())?;
        loop {
            match ws.recv().map_err(|e| e.to_string())? {
                Some(Message::Pong(payload)) if payload == PING_PAYLOAD => {
                    return Ok(format!("pong payload {PING_PAYLOAD:?}"));
                }
                Some(Message::Ping(_)) => {}
                other => return Err(format!("expected the pong, got {other:?}")),
            }
        }
    })();
    record("ping-pong".into(), started, result);

    let started = Instant::now();
    let result = (|| {
        ws.close(CloseCode::NORMAL, "bye")
            .map_err(|e| e.to_string())?;
        let (code, reason) = match ws.recv().map_err(|e| e.to_string())? {
            Some(Message::Close { code, reason }) => (code, reason),
            other => return Err(format!("expected the server's Close, got {other:?}")),
        };
        match ws.recv() {
            Ok(None) => {}
            other => return Err(format!("expected the end after the Close, got {other:?}")),
        }
        let echoed = if reason == "bye" {
            "reason echoed"
        } else {
            "reason not echoed"
        };
        let detail = format!("server close frame: {code}, reason {reason:?} ({echoed})");
        if code == CloseCode::NORMAL {
            Ok(detail)
        } else {
            Err(detail)
        }
    })();
    record("close-1000".into(), started, result);
    results
}

fn our_client_their_server(server: &'static str, deflate: bool, tls: bool) {
    let Some(setup) = setup() else { return };
    let name = format!(
        "our client -> {server}{}{}",
        if deflate { " (deflate)" } else { "" },
        if tls { " (wss)" } else { "" }
    );
    let certs = tls.then(|| certs(&setup));
    with_limit(&name.clone(), Duration::from_secs(240), move |pids| {
        let mut command = match server {
            "py_echo_server.py" => Command::new(&setup.python),
            _ => Command::new("node"),
        };
        command.arg(format!("tests/interop/{server}")).args([
            "--port",
            "0",
            "--max-connections",
            "1",
            "--timeout",
            "180",
        ]);
        if deflate {
            command.arg("--deflate");
        }
        if let Some(certs) = certs {
            command.args(tls_server_args(certs));
        }
        let mut theirs = Proc::spawn(pids, &setup, server, &mut command);
        let url = url_in(&theirs.wait_line("listening on", Duration::from_secs(30)));
        let started = Instant::now();
        let config = case_config(deflate);
        let results = match certs {
            Some(certs) => {
                assert!(url.starts_with("wss://"), "{url}");
                run_cases(connect_wss(&url, config, &certs.ca_der), deflate)
            }
            None => run_cases(
                ClientRequest::new(&url)
                    .map_err(Error::from)
                    .and_then(|request| WebSocket::connect_with(request, config)),
                deflate,
            ),
        };
        report!("{name}: cases ran in {} ms", started.elapsed().as_millis());
        let mut failed = Vec::new();
        for (case, result) in &results {
            if let Err(detail) = result {
                report!("  FAIL {case}: {detail}");
                failed.push(case.as_str());
            }
        }
        assert!(
            failed.is_empty(),
            "{name}: failed cases {failed:?}: {results:#?}"
        );
        assert_eq!(results.len(), CASES);
        // The server judges our closing handshake: it must count one clean connection.
        let (status, lines) = theirs.finish(Duration::from_secs(30));
        assert_peer_passed(server, status, &lines, 1);
    });
}

#[test]
fn client_with_python_websockets_server() {
    our_client_their_server("py_echo_server.py", false, false);
}

#[test]
fn client_deflate_with_python_websockets_server() {
    our_client_their_server("py_echo_server.py", true, false);
}

#[test]
fn client_with_node_ws_server() {
    our_client_their_server("node_echo_server.js", false, false);
}

#[test]
fn client_wss_with_python_websockets_server() {
    our_client_their_server("py_echo_server.py", false, true);
}

#[test]
fn client_wss_with_node_ws_server() {
    our_client_their_server("node_echo_server.js", false, true);
}

// ----- echo_server --http2 and our HTTP/2 client -----------------------------------------

/// WebSockets `echo_server --http2` serves on one HTTP/2 connection in these tests.
const H2_STREAMS: usize = 8;

/// `echo_server --http2` over h2c: [`H2_STREAMS`] RFC 8441 streams on one TCP connection
/// (every other one deflated), each echoing text and binary byte for byte, and an HTTP/1.1
/// upgrade on the same port beside them.
#[test]
fn echo_server_http2_h2c_with_our_http2_client() {
    echo_server_http2(false);
}

/// The same over TLS: ALPN h2 (`tls::with_alpn_h2`) for the streams, none (HTTP/1.1) for the
/// upgrade.
#[test]
fn echo_server_http2_tls_with_our_http2_client() {
    echo_server_http2(true);
}

fn echo_server_http2(tls: bool) {
    use wsproto::drivers::tokio::WebSocketStream;
    use wsproto::drivers::tokio::http2::H2Connection;

    let Some(setup) = setup() else { return };
    let name = if tls {
        "echo_server --http2 (h2 over TLS)"
    } else {
        "echo_server --http2 (h2c)"
    };
    let certs = tls.then(|| certs(&setup));
    with_limit(name, Duration::from_secs(120), move |pids| {
        let mut command = Command::new(setup.examples.join("echo_server"));
        command.args(["--addr", "127.0.0.1:0", "--deflate", "--http2"]);
        if let Some(certs) = certs {
            command.args(tls_server_args(certs));
        }
        let mut server = Proc::spawn(pids, &setup, "echo_server", &mut command);
        let url = url_in(&server.wait_line("listening on", Duration::from_secs(10)));
        let url = url.replace("127.0.0.1", "localhost");
        let addr = url.split('/').nth(2).unwrap().to_string();
        let roots = certs.map(|certs| {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(certs.ca_der.clone()).unwrap();
            tls::client_config_with_roots(roots)
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let started = Instant::now();
        runtime.block_on(async move {
            let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
            let h2 = match &roots {
                None => H2Connection::handshake(tcp).await.unwrap(),
                Some(roots) => {
                    let connector = tokio_rustls::TlsConnector::from(tls::with_alpn_h2(roots));
                    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
                    let tls = connector.connect(name, tcp).await.unwrap();
                    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
                    H2Connection::handshake(tls).await.unwrap()
                }
            };
            let mut streams = Vec::new();
            for s in 0..H2_STREAMS {
                let (h2, request) = (h2.clone(), ClientRequest::new(&url).unwrap());
                streams.push(tokio::spawn(async move {
                    let ws = h2.open(request, case_config(s % 2 == 0)).await.unwrap();
                    assert_eq!(ws.connection().is_deflate_negotiated(), s % 2 == 0);
                    echo_exactly(ws, s).await;
                }));
            }
            // An HTTP/1.1 upgrade to the same port, while the streams run.
            let mut connector = Connector::new();
            if let Some(roots) = roots {
                connector = connector.tls_config(roots);
            }
            let request = ClientRequest::new(&url).unwrap();
            let ws = WebSocketStream::connect_using(request, case_config(true), &connector)
                .await
                .unwrap();
            echo_exactly(ws, H2_STREAMS).await;
            for stream in streams {
                stream.await.unwrap();
            }
        });
        report!(
            "{name}: {H2_STREAMS} streams on one connection and an HTTP/1.1 upgrade echoed in {} ms",
            started.elapsed().as_millis()
        );
    });
}

/// Sends text and binary messages from empty to 1 MiB on `ws` (`seed` varies the bytes) and
/// expects each back exactly, with its type; then closes with 1000.
async fn echo_exactly<S>(mut ws: wsproto::drivers::tokio::WebSocketStream<S>, seed: usize)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    for len in [0, 125, 126, 65535, 65536, 1 << 20] {
        let text = format!("{seed} {}", make_text(len));
        ws.send_text(&text).await.unwrap();
        match ws.recv().await.unwrap() {
            Some(Message::Text(back)) => assert!(back == text, "stream {seed}: text of {len}"),
            other => panic!("stream {seed}: expected text of {len}, got {other:?}"),
        }
        let mut binary = make_binary(len);
        binary.iter_mut().for_each(|b| *b ^= seed as u8);
        ws.send_binary(&binary).await.unwrap();
        match ws.recv().await.unwrap() {
            Some(Message::Binary(back)) => {
                assert!(back == binary, "stream {seed}: binary of {len}")
            }
            other => panic!("stream {seed}: expected binary of {len}, got {other:?}"),
        }
    }
    ws.close(CloseCode::NORMAL, "done").await.unwrap();
    while let Some(message) = ws.recv().await.unwrap() {
        assert!(matches!(message, Message::Close { .. }), "{message:?}");
    }
}

// ----- graceful shutdown of the example servers ------------------------------------------

/// Issue 16: on SIGTERM every tokio example server closes its WebSockets with 1001 "going
/// away" and exits 0: over HTTP/1.1 upgrades, and over RFC 8441 streams where it serves
/// HTTP/2 (h2c, or h2 over TLS). The `Server`-based ones through `shutdown_on_signals`, the
/// hyper and axum ones through `drivers::tokio::Shutdown`.
#[test]
fn example_servers_close_with_1001_on_sigterm() {
    let Some(setup) = setup() else { return };
    let certs = certs(&setup);
    with_limit(
        "example servers on SIGTERM",
        Duration::from_secs(120),
        move |pids| {
            // (example, extra arguments, WebSocket path, serves HTTP/2, TLS)
            let servers: [(&str, &[&str], &str, bool, bool); 8] = [
                ("echo_server", &[], "/", false, false),
                ("echo_server", &[], "/", false, true),
                ("echo_server", &["--http2"], "/", true, false),
                ("echo_server", &["--http2"], "/", true, true),
                ("chat", &[], "/ws", false, false),
                ("axum_echo_server", &[], "/", true, false),
                ("axum_chat", &[], "/ws", true, false),
                ("axum_chat", &[], "/ws", true, true),
            ];
            for (example, args, path, http2, tls) in servers {
                let mut name = [example]
                    .iter()
                    .chain(args)
                    .copied()
                    .collect::<Vec<_>>()
                    .join(" ");
                if tls {
                    name.push_str(" (TLS)");
                }
                let mut command = Command::new(setup.examples.join(example));
                command.args(["--addr", "127.0.0.1:0"]).args(args);
                if tls {
                    command.args(tls_server_args(certs));
                }
                let mut server = Proc::spawn(pids, &setup, example, &mut command);
                let line = server.wait_line("://", Duration::from_secs(10));
                let port = addr_in(&line).rsplit(':').next().unwrap().to_string();
                let scheme = if tls { "wss" } else { "ws" };
                let url = format!("{scheme}://localhost:{port}{path}");
                let roots = tls.then(|| {
                    let mut roots = rustls::RootCertStore::empty();
                    roots.add(certs.ca_der.clone()).unwrap();
                    tls::client_config_with_roots(roots)
                });
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let pid = server.child.id();
                let closed = runtime.block_on(going_away_on_sigterm(pid, url, roots, http2));
                let (status, _) = server.finish(Duration::from_secs(15));
                assert!(status.success(), "{name}: exit {status}");
                report!("{name}: {closed} WebSockets closed with 1001, exit 0");
            }
        },
    );
}

/// The `host:port` in a line that holds a URL (`listening on ws://…`, `open http://…/`).
fn addr_in(line: &str) -> &str {
    let start = line.find("://").expect("a URL") + 3;
    line[start..]
        .split(|c: char| c == '/' || c.is_whitespace())
        .next()
        .unwrap()
}

/// Opens two WebSockets by HTTP/1.1 upgrade and, with `http2`, two RFC 8441 streams on one
/// connection; sends SIGTERM to `pid`; expects the server's Close 1001 "going away" on each
/// (after any chat lines) and the end of the stream. Returns how many were closed.
async fn going_away_on_sigterm(
    pid: u32,
    url: String,
    roots: Option<Arc<rustls::ClientConfig>>,
    http2: bool,
) -> usize {
    use wsproto::drivers::tokio::WebSocketStream;
    use wsproto::drivers::tokio::http2::{H2Connection, H2Stream};

    let mut connector = Connector::new();
    if let Some(roots) = &roots {
        connector = connector.tls_config(Arc::clone(roots));
    }
    let mut upgraded = Vec::new();
    for _ in 0..2 {
        let request = ClientRequest::new(&url).unwrap();
        let ws = WebSocketStream::connect_using(request, Config::default(), &connector)
            .await
            .unwrap();
        upgraded.push(ws);
    }
    let mut streams: Vec<WebSocketStream<H2Stream>> = Vec::new();
    if http2 {
        let addr = url.split('/').nth(2).unwrap();
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let h2 = match &roots {
            None => H2Connection::handshake(tcp).await.unwrap(),
            Some(roots) => {
                let connector = tokio_rustls::TlsConnector::from(tls::with_alpn_h2(roots));
                let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
                H2Connection::handshake(connector.connect(name, tcp).await.unwrap())
                    .await
                    .unwrap()
            }
        };
        for _ in 0..2 {
            let request = ClientRequest::new(&url).unwrap();
            streams.push(h2.open(request, Config::default()).await.unwrap());
        }
    }
    // Each one open for real: an echo, or the chat's welcome line.
    for ws in &mut upgraded {
        ws.send_text("before the signal").await.unwrap();
        assert!(matches!(ws.recv().await.unwrap(), Some(Message::Text(_))));
    }
    for ws in &mut streams {
        ws.send_text("before the signal").await.unwrap();
        assert!(matches!(ws.recv().await.unwrap(), Some(Message::Text(_))));
    }
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    for ws in &mut upgraded {
        expect_going_away(ws).await;
    }
    for ws in &mut streams {
        expect_going_away(ws).await;
    }
    upgraded.len() + streams.len()
}

/// Skips text (echoes, chat lines) up to the server's Close, which must be 1001 "going
/// away"; `recv` answers it, then the stream ends.
async fn expect_going_away<S>(ws: &mut wsproto::drivers::tokio::WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let limit = Duration::from_secs(10);
    loop {
        match tokio::time::timeout(limit, ws.recv())
            .await
            .expect("the Close in time")
        {
            Ok(Some(Message::Text(_))) => continue,
            Ok(Some(Message::Close { code, reason })) => {
                assert_eq!(
                    (code, reason.as_str()),
                    (CloseCode::GOING_AWAY, "going away")
                );
                break;
            }
            other => panic!("expected the server's Close, got {other:?}"),
        }
    }
    assert!(matches!(
        tokio::time::timeout(limit, ws.recv()).await.unwrap(),
        Ok(None)
    ));
}

// ----- the chat page in Chromium ----------------------------------------------------------

#[test]
fn chat_in_headless_chromium() {
    chat_in_chromium(false, false);
}

/// The page over https:// and its WebSocket over wss://, Chromium trusting the test leaf.
#[test]
fn chat_https_wss_in_headless_chromium() {
    chat_in_chromium(true, false);
}

/// `axum_chat` over https with ALPN h2: Chromium loads the page over HTTP/2 and opens its
/// WebSocket as an RFC 8441 extended CONNECT stream, which the welcome line reports
/// (`over HTTP/2.0`). The 1 MiB deflate echo goes to `echo_server --http2` over h2 as well.
#[test]
fn axum_chat_over_h2_in_headless_chromium() {
    chat_in_chromium(true, true);
}

/// `http2`: `axum_chat` and `echo_server --http2` (HTTP/2 with TLS), and every page must say
/// its WebSocket runs over HTTP/2.0; otherwise `chat` and `echo_server`.
fn chat_in_chromium(tls: bool, http2: bool) {
    let Some(setup) = setup() else { return };
    let name = match (tls, http2) {
        (true, true) => "axum_chat in chromium (https and wss over h2)",
        (true, false) => "chat in chromium (https, wss)",
        (false, _) => "chat in chromium",
    };
    let chat_example = if http2 { "axum_chat" } else { "chat" };
    let certs = tls.then(|| certs(&setup));
    with_limit(name, Duration::from_secs(150), move |pids| {
        let with_tls = |command: &mut Command| {
            if let Some(certs) = certs {
                command.args(tls_server_args(certs));
            }
        };
        let mut command = Command::new(setup.examples.join(chat_example));
        command.args(["--addr", "127.0.0.1:0"]);
        with_tls(&mut command);
        let mut chat = Proc::spawn(pids, &setup, chat_example, &mut command);
        let scheme = if tls { "https://" } else { "http://" };
        let line = chat.wait_line(
            &format!("{chat_example}: open {scheme}"),
            Duration::from_secs(10),
        );
        let mut url = line
            .split_whitespace()
            .find(|word| word.starts_with(scheme))
            .unwrap()
            .to_string();
        // Chromium also negotiates permessage-deflate with the echo server and exchanges
        // 1 MiB messages with it.
        let mut command = Command::new(setup.examples.join("echo_server"));
        command.args(["--addr", "127.0.0.1:0", "--deflate"]);
        if http2 {
            command.arg("--http2");
        }
        with_tls(&mut command);
        let mut echo = Proc::spawn(pids, &setup, "echo_server", &mut command);
        let mut echo_url = url_in(&echo.wait_line("listening on", Duration::from_secs(10)));
        let mut browser = Command::new("node");
        browser.arg("tests/interop/chat_browser.js");
        if let Some(certs) = certs {
            // The name the leaf was issued for; the page then opens wss://localhost:PORT/ws.
            url = url.replace("127.0.0.1", "localhost");
            echo_url = echo_url.replace("127.0.0.1", "localhost");
            browser.args(["--trust-spki", &certs.spki_sha256]);
        }
        if http2 {
            browser.args(["--expect-welcome", "over HTTP/2.0"]);
        }
        let screenshot = setup.target.join(match (tls, http2) {
            (true, true) => "chat-h2.png",
            (true, false) => "chat-wss.png",
            (false, _) => "chat.png",
        });
        browser
            .args(["--url", &url, "--echo-url", &echo_url, "--timeout", "120"])
            .arg("--screenshot")
            .arg(&screenshot);
        let (status, lines) = Proc::spawn(pids, &setup, "chat_browser.js", &mut browser)
            .finish(Duration::from_secs(135));
        assert_peer_passed("chat_browser.js", status, &lines, 8);
        report!("{name}: screenshot at {}", screenshot.display());
    });
}

// ----- the chat across two processes, through Redis --------------------------------------

/// A `redis-server` of the test's own on 127.0.0.1, without persistence; stopped with its
/// [`Proc`] (SIGTERM, then SIGKILL), so nothing outlives the test.
struct RedisServer {
    port: u16,
    _proc: Proc,
}

impl RedisServer {
    /// Starts one on `port`, or on a free port (one the kernel just handed out).
    fn start(pids: &Pids, setup: &Setup, port: Option<u16>) -> Self {
        let port = port.unwrap_or_else(|| {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        });
        let mut command = Command::new("/usr/bin/redis-server");
        command.args(["--bind", "127.0.0.1", "--port", &port.to_string()]);
        command.args(["--save", "", "--appendonly", "no", "--logfile", ""]);
        let mut proc = Proc::spawn(pids, setup, "redis-server", &mut command);
        proc.wait_line("Ready to accept connections", Duration::from_secs(10));
        Self { port, _proc: proc }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Sends one command in RESP and returns its reply, which must be an integer.
    fn integer(&self, command: &[&[u8]]) -> i64 {
        let mut request = format!("*{}\r\n", command.len()).into_bytes();
        for arg in command {
            request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            request.extend_from_slice(arg);
            request.extend_from_slice(b"\r\n");
        }
        let mut tcp = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        tcp.write_all(&request).unwrap();
        let mut reply = String::new();
        BufReader::new(tcp).read_line(&mut reply).unwrap();
        let n = reply
            .strip_prefix(':')
            .and_then(|n| n.trim_end().parse().ok());
        n.unwrap_or_else(|| panic!("redis answered {reply:?} to {command:?}"))
    }

    /// Waits until `n` clients have the pattern subscription (each chat's relay): until a
    /// message to a topic nobody joined reaches `n` of them. (`PUBSUB NUMPAT` counts
    /// distinct patterns, not subscribers.)
    fn wait_subscribers(&self, n: i64) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.integer(&[b"PUBLISH", b"wsproto-chat:probe", b""]) != n {
            assert!(
                Instant::now() < deadline,
                "the chats did not subscribe again"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Starts a `chat` example sharing its room through `redis`; returns it and its address.
fn chat_on_redis(pids: &Pids, setup: &Setup, redis: &RedisServer, name: &str) -> (Proc, String) {
    let mut command = Command::new(setup.examples.join("chat"));
    command.args(["--addr", "127.0.0.1:0", "--redis", &redis.url()]);
    let mut chat = Proc::spawn(pids, setup, name, &mut command);
    chat.wait_line(
        &format!("chat: sharing the room through {}", redis.url()),
        Duration::from_secs(10),
    );
    let line = chat.wait_line("chat: open http://", Duration::from_secs(10));
    let addr = addr_in(&line).to_string();
    (chat, addr)
}

/// Two `chat` processes, one room: lines typed into a guest of one reach the guests of
/// both, in the same order, and so do lines another Redis client publishes to the room's
/// channel; text that is not UTF-8 is skipped. When redis-server restarts, both chats
/// subscribe again and the next line goes through without a "not sent" notice (the
/// publishing connection is made again and the line retried).
#[test]
fn chat_across_two_processes_through_redis() {
    let Some(setup) = setup() else { return };
    let name = "chat across two processes through redis";
    with_limit(name, Duration::from_secs(90), move |pids| {
        let redis = RedisServer::start(pids, &setup, None);
        let (chat_a, addr_a) = chat_on_redis(pids, &setup, &redis, "chat-a");
        let (chat_b, addr_b) = chat_on_redis(pids, &setup, &redis, "chat-b");
        redis.wait_subscribers(2);
        let port = |addr: &str| addr.rsplit(':').next().unwrap().to_string();
        let (a, b) = (
            format!("guest-1@{}", port(&addr_a)),
            format!("guest-1@{}", port(&addr_b)),
        );

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            use wsproto::drivers::tokio::WebSocketStream;
            async fn lines<S>(ws: &mut WebSocketStream<S>, want: &[&str])
            where
                S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
            {
                for want in want {
                    let got = tokio::time::timeout(Duration::from_secs(10), ws.recv())
                        .await
                        .unwrap_or_else(|_| panic!("no line {want:?} within 10 s"));
                    match got.unwrap() {
                        Some(Message::Text(text)) => assert_eq!(text, *want),
                        other => panic!("expected {want:?}, got {other:?}"),
                    }
                }
            }

            let mut guest_b = WebSocketStream::connect(&format!("ws://{addr_b}/ws"))
                .await
                .unwrap();
            lines(
                &mut guest_b,
                &[&format!("* you are {b}"), &format!("* {b} joined")],
            )
            .await;
            let mut guest_a = WebSocketStream::connect(&format!("ws://{addr_a}/ws"))
                .await
                .unwrap();
            let joined = format!("* {a} joined");
            lines(&mut guest_a, &[&format!("* you are {a}"), &joined]).await;
            lines(&mut guest_b, &[&joined]).await;

            guest_a.send_text("hello from A \u{2713}").await.unwrap();
            let said = format!("{a}: hello from A \u{2713}");
            lines(&mut guest_a, &[&said]).await;
            lines(&mut guest_b, &[&said]).await;

            // Another Redis client publishing to the room's channel: two subscribers (one
            // relay per chat process) take each message; the one that is not UTF-8 never
            // reaches a guest, the next line does.
            let channel: &[u8] = b"wsproto-chat:room";
            assert_eq!(redis.integer(&[b"PUBLISH", channel, b"\xff\xfe"]), 2);
            assert_eq!(
                redis.integer(&[b"PUBLISH", channel, b"* maintenance at noon"]),
                2
            );
            lines(&mut guest_a, &["* maintenance at noon"]).await;
            lines(&mut guest_b, &["* maintenance at noon"]).await;

            // redis-server restarts on the same port.
            let port = redis.port;
            drop(redis);
            let redis = RedisServer::start(pids, &setup, Some(port));
            redis.wait_subscribers(2);
            guest_b.send_text("after the restart").await.unwrap();
            let said = format!("{b}: after the restart");
            lines(&mut guest_b, &[&said]).await;
            lines(&mut guest_a, &[&said]).await;

            // B leaves: A hears it through Redis.
            guest_b.close(CloseCode::NORMAL, "").await.unwrap();
            while guest_b.recv().await.unwrap().is_some() {}
            lines(&mut guest_a, &[&format!("* {b} left")]).await;

            // Both shut down on SIGTERM (A's guest gets 1001, and its "left" goes out first)
            // and report their relay's counters: the three lines each published (joined,
            // a line, left), the one payload that was not UTF-8, the one resubscription. (What each received includes the
            // probes of `wait_subscribers`, so it is only bounded below: the six lines.)
            for (chat, has_guest) in [(chat_b, false), (chat_a, true)] {
                let status = Command::new("kill")
                    .args(["-TERM", &chat.child.id().to_string()])
                    .status()
                    .unwrap();
                assert!(status.success());
                if has_guest {
                    expect_going_away(&mut guest_a).await;
                }
                let (status, out) = chat.finish(Duration::from_secs(15));
                assert!(status.success(), "{status}");
                let report = out
                    .iter()
                    .find_map(|line| line.strip_prefix("chat: redis relay: "));
                let report = report.unwrap_or_else(|| panic!("no relay report in {out:?}"));
                let counts: Vec<u64> = report
                    .split(", ")
                    .map(|part| part.rsplit(' ').next().unwrap().parse().unwrap())
                    .collect();
                assert_eq!(
                    report
                        .split(", ")
                        .map(|p| p.rsplit_once(' ').unwrap().0)
                        .collect::<Vec<_>>(),
                    ["published", "received", "invalid", "resubscribed"]
                );
                assert_eq!((counts[0], counts[2], counts[3]), (3, 1, 1), "{report}");
                assert!(counts[1] >= 6, "{report}");
            }
            drop(redis);
        });
        // Neither process logged a line it could not publish.
        for chat in ["chat-a", "chat-b"] {
            let log = setup.target.join(format!("interop/{chat}.stderr"));
            let stderr = std::fs::read_to_string(log).unwrap();
            assert!(!stderr.contains("cannot publish"), "{chat}: {stderr}");
        }
    });
}

/// The same room in Chromium: page A on one chat process, page B on the other; a line typed
/// in A appears in B (and in A, through Redis).
#[test]
fn chat_over_redis_in_two_chromium_pages() {
    let Some(setup) = setup() else { return };
    let name = "chat over redis in two chromium pages";
    with_limit(name, Duration::from_secs(150), move |pids| {
        let redis = RedisServer::start(pids, &setup, None);
        let (_chat_a, addr_a) = chat_on_redis(pids, &setup, &redis, "chat-a-browser");
        let (_chat_b, addr_b) = chat_on_redis(pids, &setup, &redis, "chat-b-browser");
        redis.wait_subscribers(2);
        let screenshot = setup.target.join("chat-redis.png");
        let mut browser = Command::new("node");
        browser.arg("tests/interop/chat_browser.js");
        browser
            .args(["--url", &format!("http://{addr_a}/")])
            .args(["--url-b", &format!("http://{addr_b}/")])
            .args(["--timeout", "120"])
            .arg("--screenshot")
            .arg(&screenshot);
        let (status, lines) = Proc::spawn(pids, &setup, "chat_browser.js-redis", &mut browser)
            .finish(Duration::from_secs(135));
        assert_peer_passed("chat_browser.js", status, &lines, 7);
        report!("{name}: screenshot at {}", screenshot.display());
    });
}

// ----- the client example ---------------------------------------------------------------

/// The `client` example with every flag: `--url wss://localhost:P/ --ca-file --proxy
/// --subprotocol chat --deflate`, through a test proxy (`socks` or HTTP CONNECT with Basic
/// auth) to the Python `websockets` TLS echo server. Each stdin line comes back on stdout,
/// and the server counts one clean close with the subprotocol and compression agreed.
fn client_example_through_proxy(socks: bool) {
    let Some(setup) = setup() else { return };
    let name = format!(
        "client example -> {} proxy -> py_echo_server.py (wss)",
        if socks { "SOCKS5" } else { "HTTP CONNECT" }
    );
    let certs = certs(&setup);
    with_limit(&name.clone(), Duration::from_secs(120), move |pids| {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let (proxy, proxy_url) = runtime.block_on(async {
            if socks {
                let rules = proxies::Rules {
                    socks: Some(("bob", "hunter2")),
                    ..proxies::Rules::default()
                };
                let proxy = proxies::socks5_proxy(rules).await;
                let url = format!("socks5://bob:hunter2@{}", proxy.addr);
                (proxy, url)
            } else {
                let rules = proxies::Rules {
                    basic: Some("YWxpY2U6czNjcmV0"), // alice:s3cret
                    ..proxies::Rules::default()
                };
                let proxy = proxies::http_proxy(rules).await;
                let url = format!("http://alice:s3cret@{}", proxy.addr);
                (proxy, url)
            }
        });

        let mut command = Command::new(&setup.python);
        command
            .arg("tests/interop/py_echo_server.py")
            .args(["--port", "0", "--max-connections", "1", "--timeout", "60"])
            .args(["--deflate", "--subprotocol", "chat"])
            .args(tls_server_args(certs));
        let mut theirs = Proc::spawn(
            pids,
            &setup,
            "py_echo_server.py (client example)",
            &mut command,
        );
        let port = url_in(&theirs.wait_line("listening on", Duration::from_secs(30)))
            .rsplit(':')
            .next()
            .unwrap()
            .trim_end_matches('/')
            .to_string();
        let url = format!("wss://localhost:{port}/");

        let lines = ["hello", "wörld, through a tunnel", &"x".repeat(70_000)];
        let mut command = Command::new(setup.examples.join("client"));
        command
            .args([
                "--url",
                &url,
                "--proxy",
                &proxy_url,
                "--subprotocol",
                "chat",
                "--deflate",
            ])
            .arg("--ca-file")
            .arg(&certs.ca);
        let log = if socks {
            "client (socks5)"
        } else {
            "client (connect)"
        };
        let started = Instant::now();
        let (mut client, mut stdin) = Proc::spawn_with_stdin(pids, &setup, log, &mut command);
        // One line at a time, each echo awaited: a server may drop what arrives after our
        // Close (RFC 6455 §5.5.1), and the client closes at the end of its input.
        for line in lines {
            writeln!(stdin, "{line}").unwrap();
            let echoed = client.wait_line("", Duration::from_secs(20));
            assert!(
                echoed == line,
                "echoed {} bytes for a line of {}",
                echoed.len(),
                line.len()
            );
        }
        drop(stdin);
        let (status, printed) = client.finish(Duration::from_secs(60));
        report!("{name}: client ran in {} ms", started.elapsed().as_millis());
        let stderr =
            std::fs::read_to_string(setup.target.join("interop").join(format!("{log}.stderr")))
                .unwrap();
        assert!(status.success(), "{status}; stderr:\n{stderr}");
        // The echoes, and nothing else.
        assert_eq!(printed.len(), lines.len());
        assert!(
            stderr.contains(&format!(
                "client: connected to {url} (subprotocol: chat, permessage-deflate: on)"
            )),
            "{stderr}"
        );

        // The proxy was asked for localhost:port, the name left for it to resolve.
        let seen = proxy.seen();
        assert_eq!(seen.len(), 1);
        if socks {
            let mut want = vec![5, 2, 0, 2, 1, 3];
            want.extend_from_slice(b"bob\x07hunter2");
            want.extend_from_slice(&[5, 1, 0, 3, 9]);
            want.extend_from_slice(b"localhost");
            want.extend_from_slice(&port.parse::<u16>().unwrap().to_be_bytes());
            assert_eq!(seen[0], want);
        } else {
            assert_eq!(
                String::from_utf8_lossy(&seen[0]),
                format!(
                    "CONNECT localhost:{port} HTTP/1.1\r\nHost: localhost:{port}\r\n\
                     Proxy-Authorization: Basic YWxpY2U6czNjcmV0\r\n\r\n"
                )
            );
        }
        let (status, server_lines) = theirs.finish(Duration::from_secs(30));
        assert_peer_passed("py_echo_server.py", status, &server_lines, 1);
        let pass = server_lines.iter().find(|l| l.starts_with("PASS")).unwrap();
        assert!(
            pass.contains("echoed 3 messages")
                && pass.contains("peer closed with 1000")
                && pass.contains("[permessage-deflate]")
                && pass.contains("subprotocol chat"),
            "{pass}"
        );
        drop(runtime);
    });
}

#[test]
fn client_example_wss_through_http_connect_proxy() {
    client_example_through_proxy(false);
}

#[test]
fn client_example_wss_through_socks5_proxy() {
    client_example_through_proxy(true);
}
