//! [`Connector`]: how a client reaches its server (TCP, directly or through a proxy, then
//! TLS for `wss://`).

use super::Error;
use super::proxy::Proxy;
use crate::config::Config;
use crate::handshake::ClientRequest;
#[cfg(feature = "rustls")]
use std::sync::Arc;

/// How a client reaches its server: a TCP connection with `TCP_NODELAY` on, directly or
/// tunnelled through an HTTP CONNECT or SOCKS5 [`Proxy`], then for `wss://` a TLS session
/// (end to end: the proxy only relays the encrypted bytes). The drivers' `connect` and `connect_with` use
/// `Connector::default()`; `connect_using` takes one.
///
/// ```no_run
/// # #[cfg(all(feature = "blocking", feature = "rustls"))]
/// # fn demo(config: std::sync::Arc<rustls::ClientConfig>) -> Result<(), wsproto::drivers::Error> {
/// use wsproto::drivers::{Connector, blocking::WebSocket};
/// use wsproto::{ClientRequest, Config};
///
/// let connector = Connector::new().tls_config(config);
/// let request = ClientRequest::new("wss://example.com/chat")?;
/// let ws = WebSocket::connect_using(request, Config::default(), &connector)?;
/// # let _ = ws;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct Connector {
    /// The TLS configuration for `wss://`; `None` takes [`super::tls::default_client_config`].
    #[cfg(feature = "rustls")]
    tls: Option<Arc<rustls::ClientConfig>>,
    /// Which proxy, if any, carries the connection.
    proxy: ProxyChoice,
}

/// Where a [`Connector`] finds its proxy.
#[derive(Clone, Debug, Default)]
enum ProxyChoice {
    /// None: connect directly (the default, so that nothing in the environment reroutes a
    /// connection the application did not ask to reroute).
    #[default]
    Direct,
    /// This one, for every server.
    Fixed(Proxy),
    /// The environment's, read at each connect as curl reads it ([`Proxy::from_env`]).
    FromEnv,
}

impl Connector {
    /// A connector with the defaults: direct TCP, and for `wss://` the default TLS
    /// configuration (`tls::default_client_config`, with a TLS feature on).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses `config` for `wss://`: custom roots, client certificates, another crypto
    /// provider. It is used as given; offer ALPN `http/1.1` in it as the
    /// [`tls`](super::tls) helpers do, since some servers insist on it.
    #[cfg(feature = "rustls")]
    #[must_use]
    pub fn tls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Tunnels every connection through `proxy` (`NO_PROXY` does not apply to it).
    #[must_use]
    pub fn proxy(mut self, proxy: Proxy) -> Self {
        self.proxy = ProxyChoice::Fixed(proxy);
        self
    }

    /// Takes the proxy from the environment at each connect, as curl does: `https_proxy`
    /// for `wss://`, `http_proxy` for `ws://`, then `all_proxy`, with `no_proxy` exempting
    /// hosts (see [`Proxy::from_env_with`] for the exact rules). A proxy variable that does
    /// not parse makes the connect fail with [`Error::Proxy`] rather than go direct.
    #[must_use]
    pub fn proxy_from_env(mut self) -> Self {
        self.proxy = ProxyChoice::FromEnv;
        self
    }

    /// Connects directly, whatever the environment says (the default).
    #[must_use]
    pub fn no_proxy(mut self) -> Self {
        self.proxy = ProxyChoice::Direct;
        self
    }

    /// The proxy for a connection to `request`'s server, if any.
    fn proxy_for(&self, request: &ClientRequest) -> Result<Option<Proxy>, Error> {
        Ok(match &self.proxy {
            ProxyChoice::Direct => None,
            ProxyChoice::Fixed(proxy) => Some(proxy.clone()),
            ProxyChoice::FromEnv => Proxy::try_from_env_with(
                |name| std::env::var(name).ok(),
                request.is_secure(),
                request.host(),
            )?,
        })
    }

    /// The TLS configuration to connect with: the one given, else the default.
    #[cfg(any(
        all(feature = "blocking", feature = "rustls"),
        feature = "tokio-rustls"
    ))]
    fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, Error> {
        match &self.tls {
            Some(config) => Ok(Arc::clone(config)),
            None => super::tls::default_client_config(),
        }
    }

    /// The blocking driver's stream to `request`'s server: TCP, then TLS for `wss://`, its
    /// handshake done here (within `config.handshake_timeout`) so that a refused
    /// certificate is reported before any WebSocket byte is sent.
    #[cfg(feature = "blocking")]
    pub(crate) fn connect_blocking(
        &self,
        request: &ClientRequest,
        config: &Config,
    ) -> Result<super::blocking::ClientStream, Error> {
        use super::blocking::ClientStream;
        if !request.is_secure() {
            return Ok(ClientStream::Plain(self.tcp_blocking(request, config)?));
        }
        #[cfg(feature = "rustls")]
        {
            let mut tcp = self.tcp_blocking(request, config)?;
            let name = super::tls::server_name(request.host())?;
            let mut tls = rustls::ClientConnection::new(self.client_config()?, name)?;
            tcp.set_read_timeout(config.handshake_timeout)?;
            tcp.set_write_timeout(config.handshake_timeout)?;
            while tls.is_handshaking() {
                // The error of a refused certificate is the rustls::Error inside the
                // io::Error; `Error::from` takes it out. The alert has been sent.
                tls.complete_io(&mut tcp).map_err(|e| match e.kind() {
                    // What a socket timeout looks like, on Unix and on Windows.
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                        handshake_timed_out()
                    }
                    _ => e,
                })?;
            }
            // The driver sets the read timeout it needs before each read.
            tcp.set_write_timeout(None)?;
            Ok(ClientStream::Tls(std::boxed::Box::new(
                rustls::StreamOwned::new(tls, tcp),
            )))
        }
        #[cfg(not(feature = "rustls"))]
        {
            let _ = config;
            Err(Error::TlsRequired)
        }
    }

    /// The tokio driver's stream to `request`'s server: TCP, then TLS for `wss://`, its
    /// handshake bounded by `config.handshake_timeout`.
    #[cfg(feature = "tokio")]
    pub(crate) async fn connect_tokio(
        &self,
        request: &ClientRequest,
        config: &Config,
    ) -> Result<super::tokio::ClientStream, Error> {
        use super::tokio::ClientStream;
        if !request.is_secure() {
            return Ok(ClientStream::Plain(self.tcp_tokio(request, config).await?));
        }
        #[cfg(feature = "tokio-rustls")]
        {
            let tcp = self.tcp_tokio(request, config).await?;
            let name = super::tls::server_name(request.host())?;
            let connector = tokio_rustls::TlsConnector::from(self.client_config()?);
            let handshake = connector.connect(name, tcp);
            let tls = match config.handshake_timeout {
                Some(limit) => ::tokio::time::timeout(limit, handshake)
                    .await
                    .map_err(|_| handshake_timed_out())??,
                None => handshake.await?,
            };
            Ok(ClientStream::Tls(std::boxed::Box::new(tls)))
        }
        #[cfg(not(feature = "tokio-rustls"))]
        {
            let _ = config;
            Err(Error::TlsRequired)
        }
    }

    /// The TCP connection to `request`'s server for the blocking driver, through the proxy
    /// if there is one, with `TCP_NODELAY` on: every frame is written whole, so Nagle's delay
    /// would only hold back small messages. `config.handshake_timeout` bounds each connect
    /// attempt and each read and write of the proxy's handshake (blocking sockets have no
    /// overall deadline).
    #[cfg(feature = "blocking")]
    fn tcp_blocking(
        &self,
        request: &ClientRequest,
        config: &Config,
    ) -> Result<std::net::TcpStream, Error> {
        let (host, port) = (request.host(), request.port());
        if let Some(proxy) = self.proxy_for(request)? {
            return proxy
                .connect_blocking_within(host, port, config.handshake_timeout)
                .map_err(proxy_timed_out);
        }
        let stream = super::tcp_connect_blocking(host, port, config.handshake_timeout)?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    /// The TCP connection to `request`'s server for the tokio driver, through the proxy if
    /// there is one, `TCP_NODELAY` on; the connect and the proxy's handshake together are
    /// bounded by `config.handshake_timeout`.
    #[cfg(feature = "tokio")]
    async fn tcp_tokio(
        &self,
        request: &ClientRequest,
        config: &Config,
    ) -> Result<::tokio::net::TcpStream, Error> {
        let (host, port) = (request.host(), request.port());
        let proxy = self.proxy_for(request)?;
        let connect = async {
            match &proxy {
                Some(proxy) => proxy.connect_tokio(host, port).await,
                None => {
                    let stream = ::tokio::net::TcpStream::connect((host, port)).await?;
                    stream.set_nodelay(true)?;
                    Ok(stream)
                }
            }
        };
        match config.handshake_timeout {
            Some(limit) => ::tokio::time::timeout(limit, connect)
                .await
                .map_err(|_| Error::Io(connect_timeout(proxy.is_some())))?,
            None => connect.await,
        }
    }
}

/// The error of a connect (`through_proxy`: and the proxy's handshake) that outlasted
/// `Config::handshake_timeout`.
fn connect_timeout(through_proxy: bool) -> std::io::Error {
    let what = if through_proxy {
        "the proxy handshake timed out"
    } else {
        "connecting timed out"
    };
    std::io::Error::new(std::io::ErrorKind::TimedOut, what)
}

/// A socket timeout during the blocking proxy handshake, said as such.
#[cfg(feature = "blocking")]
fn proxy_timed_out(error: Error) -> Error {
    match error {
        Error::Io(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Error::Io(connect_timeout(true))
        }
        other => other,
    }
}

/// The error of a TLS handshake that outlasted `Config::handshake_timeout`.
#[cfg(any(
    all(feature = "blocking", feature = "rustls"),
    feature = "tokio-rustls"
))]
fn handshake_timed_out() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "the TLS handshake timed out")
}
