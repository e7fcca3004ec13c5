//! `--tls-cert PEM --tls-key PEM` for the example servers: a rustls server configuration, or
//! none (plain TCP) when neither is given. The crate's TLS is for clients; a server brings its
//! own TLS stream, and the drivers run on any stream.
#![allow(dead_code, reason = "each example uses a subset")]

use crate::args::Args;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::process::exit;
use std::sync::Arc;

/// The option names, for `Args::parse`.
pub const OPTIONS: [&str; 2] = ["tls-cert", "tls-key"];

/// The server configuration for `--tls-cert` and `--tls-key`, or `None` without them. Prints
/// why and exits when only one is given (status 2) or the files do not load (status 1).
pub fn server_config(args: &Args) -> Option<Arc<ServerConfig>> {
    // WebSocket handshakes are HTTP/1.1 (RFC 6455 §4.1); a browser offering h2 too gets this.
    with_alpn(args, &[b"http/1.1"])
}

/// [`server_config`] for a server that speaks HTTP/2 too: ALPN `h2`, then `http/1.1`, so
/// WebSockets arrive as RFC 8441 streams from clients that offer h2.
pub fn server_config_h2(args: &Args) -> Option<Arc<ServerConfig>> {
    with_alpn(args, &[b"h2", b"http/1.1"])
}

fn with_alpn(args: &Args, alpn: &[&[u8]]) -> Option<Arc<ServerConfig>> {
    let (cert, key) = match (args.flag("tls-cert"), args.flag("tls-key")) {
        (false, false) => return None,
        (true, true) => (args.get("tls-cert", ""), args.get("tls-key", "")),
        _ => {
            eprintln!("--tls-cert and --tls-key go together: give both or neither");
            exit(2)
        }
    };
    match load(&cert, &key) {
        Ok(mut config) => {
            config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            Some(Arc::new(config))
        }
        Err(why) => {
            eprintln!("cannot serve TLS: {why}");
            exit(1)
        }
    }
}

fn load(cert: &str, key: &str) -> Result<ServerConfig, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{cert}: {e}"))?;
    if chain.is_empty() {
        return Err(format!("{cert}: no CERTIFICATE block"));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{key}: {e}"))?;
    // ring, like the crate's client TLS: no C toolchain beyond cc, no cmake.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| format!("{cert} and {key}: {e}"))
}
