//! TLS for the client drivers: rustls configurations for `wss://` and typed TLS failures.
//!
//! The drivers take a `wss://` URL through [`Connector`](super::Connector): with no
//! configuration of its own, it uses [`default_client_config`], which trusts the roots the
//! `webpki-roots` feature compiles in (Mozilla's) and those the `native-roots` feature
//! loads from the operating system, verifies the server's certificate and host name, sends
//! SNI, and offers ALPN `http/1.1` (the opening handshake is HTTP/1.1, RFC 6455 §4.1).
//!
//! The crypto provider is rustls's `ring`, chosen explicitly rather than taken from the
//! process default: it builds with a plain C compiler, where `aws-lc-rs` needs cmake too.
//! A configuration the caller builds (client certificates, a private CA, another provider)
//! goes to [`Connector::tls_config`](super::Connector::tls_config) unchanged.
//!
//! A certificate the client refuses comes back as [`Error::Tls`] with rustls's reason:
//! `InvalidCertificate(CertificateError::NotValidForNameContext { .. })` for a wrong host
//! name, `ExpiredContext { .. }` for an expired certificate, `UnknownIssuer` for a root the
//! configuration does not trust.
//!
//! ```no_run
//! use std::sync::Arc;
//! use wsproto::drivers::{Connector, tls};
//!
//! # fn demo() -> Result<(), wsproto::drivers::Error> {
//! // Trust the default roots and a private CA.
//! let ca = std::fs::read("ca.pem")?;
//! let connector = Connector::new().tls_config(tls::client_config_with_pem_roots(&ca)?);
//! # let _ = connector;
//! # Ok(())
//! # }
//! ```

use super::Error;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};
use std::io;
use std::sync::{Arc, OnceLock};
use std::vec::Vec;

/// The ALPN protocol the helpers offer: the opening handshake is an HTTP/1.1 exchange.
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// The ALPN protocol of HTTP/2 over TLS (RFC 9113 §3.2), which [`with_alpn_h2`] offers.
pub const ALPN_H2: &[u8] = b"h2";

/// The roots the enabled features provide, gathered once per process: the OS store is read
/// from disk, which is worth doing once rather than per connection.
fn feature_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        #[allow(unused_mut)] // without a roots feature the store stays empty
        let mut roots = RootCertStore::empty();
        #[cfg(feature = "webpki-roots")]
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        #[cfg(feature = "native-roots")]
        {
            // Certificates the OS store holds but rustls cannot parse are skipped, as are
            // unreadable files: the ones that load are still worth trusting.
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
        }
        roots
    })
}

/// The root certificates the enabled features provide: Mozilla's with `webpki-roots`, the
/// operating system's with `native-roots` (loaded once per process), both with both.
///
/// # Errors
/// [`Error::NoTlsRoots`] when neither feature is on, or the OS store held no usable
/// certificate.
pub fn default_roots() -> Result<RootCertStore, Error> {
    let roots = feature_roots();
    if roots.is_empty() {
        return Err(Error::NoTlsRoots);
    }
    Ok(roots.clone())
}

/// The configuration `wss://` uses when the [`Connector`](super::Connector) has none: the
/// [`default_roots`], host name verification, SNI, ALPN `http/1.1`, the `ring` provider.
/// Built once and shared, so that sessions resume across connections.
///
/// # Errors
/// As [`default_roots`].
pub fn default_client_config() -> Result<Arc<ClientConfig>, Error> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    if let Some(config) = CONFIG.get() {
        return Ok(Arc::clone(config));
    }
    let config = client_config_with_roots(default_roots()?);
    Ok(Arc::clone(CONFIG.get_or_init(|| config)))
}

/// A configuration like [`default_client_config`]'s that trusts `roots` instead: for a
/// private CA, or a test's.
#[must_use]
pub fn client_config_with_roots(roots: RootCertStore) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = Vec::from([ALPN_HTTP11.to_vec()]);
    Arc::new(config)
}

/// `config` offering ALPN `h2` alone instead of `http/1.1`: for WebSockets over HTTP/2
/// (RFC 8441), whose connection must be HTTP/2 from the TLS handshake on (RFC 9113 §3.2).
/// Everything else (roots, client certificates, provider) is `config`'s. Connect a TLS
/// stream with it, check that the server picked `h2` (`alpn_protocol()`), and hand the
/// stream to `drivers::tokio::http2::H2Connection::handshake` (feature `http2`).
///
/// ```
/// use wsproto::drivers::tls;
///
/// let roots = rustls::RootCertStore::empty();
/// let config = tls::with_alpn_h2(&tls::client_config_with_roots(roots));
/// assert_eq!(config.alpn_protocols, [b"h2".to_vec()]);
/// ```
#[must_use]
pub fn with_alpn_h2(config: &ClientConfig) -> Arc<ClientConfig> {
    let mut config = config.clone();
    config.alpn_protocols = Vec::from([ALPN_H2.to_vec()]);
    Arc::new(config)
}

/// A configuration that trusts the [`default_roots`] (when a roots feature is on) and every
/// certificate in `pem`: the client example's `--ca-file`.
///
/// # Errors
/// [`Error::Io`] (`InvalidData`) when `pem` holds no certificate or a malformed one;
/// [`Error::Tls`] when rustls refuses a certificate as a root.
pub fn client_config_with_pem_roots(pem: &[u8]) -> Result<Arc<ClientConfig>, Error> {
    let mut roots = feature_roots().clone();
    let mut added = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        roots.add(cert)?;
        added += 1;
    }
    if added == 0 {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "no certificate in the PEM").into());
    }
    Ok(client_config_with_roots(roots))
}

/// The name the server's certificate must carry: a DNS name, or an IP address (sent without
/// SNI, as RFC 6066 §3 allows only host names there).
#[cfg(any(feature = "blocking", feature = "tokio-rustls"))]
pub(crate) fn server_name(host: &str) -> Result<rustls::pki_types::ServerName<'static>, Error> {
    use std::string::{String, ToString};
    rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|_| {
        Error::Tls(rustls::Error::General(String::from(
            "the host is not a valid server name",
        )))
    })
}

/// The rustls error an IO error carries: tokio-rustls and rustls's `Stream` report TLS
/// failures as an `io::Error` of kind `InvalidData` wrapping the `rustls::Error`.
pub(crate) fn tls_error(e: &io::Error) -> Option<rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>().cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_give_back_the_rustls_error_they_carry() {
        let wrapped = io::Error::new(io::ErrorKind::InvalidData, rustls::Error::DecryptError);
        assert_eq!(tls_error(&wrapped), Some(rustls::Error::DecryptError));
        let plain = io::Error::from(io::ErrorKind::ConnectionReset);
        assert_eq!(tls_error(&plain), None);
        assert!(matches!(
            Error::from(wrapped),
            Error::Tls(rustls::Error::DecryptError)
        ));
    }

    #[test]
    fn helpers_offer_http11_with_sni() {
        let config = client_config_with_roots(RootCertStore::empty());
        assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
        assert!(config.enable_sni);
    }

    #[test]
    fn no_roots_names_the_features_to_enable() {
        let message = std::string::ToString::to_string(&Error::NoTlsRoots);
        assert!(message.contains("`webpki-roots`"), "{message}");
        assert!(message.contains("`native-roots`"), "{message}");
        assert!(message.contains("Connector::tls_config"), "{message}");
    }

    #[test]
    fn pem_without_certificates_is_refused() {
        assert!(matches!(
            client_config_with_pem_roots(b"not a pem"),
            Err(Error::Io(e)) if e.kind() == io::ErrorKind::InvalidData
        ));
    }

    #[test]
    #[cfg(any(feature = "blocking", feature = "tokio-rustls"))]
    fn ip_addresses_are_server_names() {
        use rustls::pki_types::ServerName;
        assert!(matches!(
            server_name("127.0.0.1"),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(matches!(
            server_name("localhost"),
            Ok(ServerName::DnsName(_))
        ));
    }
}
