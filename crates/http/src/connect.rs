//! Opening a connection to an origin: straight, through the agent's proxy, or through the
//! task launcher's TLS tunnel; with TLS done here when the crate is built with the `tls`
//! feature.
//!
//! Why two ways to get TLS: every task folder of the .vsix carries its own binary for each
//! of five platforms, and an in-process TLS stack (rustls, ring, webpki, the platform
//! verifier) is about 950 KB of every binary. The agent runs our tasks with Node, which has
//! TLS, so release binaries are built without the `tls` feature and ask the launcher
//! (`launcher/launcher.js`) for a tunnel: a CONNECT to a loopback port with a per-run token,
//! after which the launcher holds the TLS session to the server and relays plain bytes.
//! Development builds keep TLS in-process so tests and `azp-local` run binaries directly.
//! The protocol and its security are in docs/tls-tunnel.md.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, BufReader};
use tokio::net::TcpStream;

use super::wire::{connect_tunnel, TunnelRefused};
use super::{HttpSettings, HttpSetupError, LauncherTunnel};

/// A byte stream a connection runs on: TCP, or TLS over TCP.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A connection ready for HTTP/1.1.
pub(crate) type Stream = BufReader<Box<dyn Io>>;

/// Where requests go: scheme, host and port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Origin {
    pub https: bool,
    /// The host to resolve: a name or an IP address (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// `host:port` as CONNECT names it (IPv6 in brackets).
    pub authority: String,
}

impl Origin {
    pub fn of(url: &url::Url) -> Result<Origin, String> {
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            other => {
                return Err(format!(
                    "'{other}' URLs are not supported, only https and http"
                ))
            }
        };
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(format!("'{url}' has no host")),
        };
        let port = url
            .port_or_known_default()
            .unwrap_or(if https { 443 } else { 80 });
        let authority = format!("{}:{port}", url.host_str().unwrap_or_default());
        Ok(Origin {
            https,
            host,
            port,
            authority,
        })
    }
}

/// How requests to an origin travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Route {
    Direct,
    /// Through the agent's proxy: CONNECT for https, the absolute URL for http.
    #[cfg(feature = "tls")]
    AgentProxy,
    /// Through the task launcher's TLS tunnel (https only).
    Launcher,
}

/// Why no connection was opened.
#[derive(Debug)]
pub(crate) enum ConnectError {
    /// The server was not reached; trying again later may work.
    Failed(String),
    /// Trying again cannot help: the certificate is not trusted, a proxy refuses our
    /// credentials, a setting is wrong.
    Refused(String),
    /// No connection within this long.
    TimedOut(Duration),
    /// This build cannot reach the origin at all (https without TLS or tunnel).
    Unsupported(String),
}

/// The agent's proxy, resolved from [`super::ProxySettings`].
///
/// Only builds with TLS in-process route through it themselves. Without TLS (the release
/// build), every https request goes through the launcher's tunnel, which applies the agent's
/// proxy and bypass list (tests/vectors/proxy-bypass.json keeps the two rules alike), and plain
/// http goes only to loopback and to the managed-identity endpoints, which are never proxied;
/// leaving the proxy out there keeps regex-lite (the bypass patterns) out of every shipped
/// binary: 58 KB raw, 25 KB brotli each (BENCHMARKS.md).
#[cfg(feature = "tls")]
struct AgentProxy {
    origin: Origin,
    /// `Basic …` when the agent has proxy credentials.
    authorization: Option<String>,
    bypass: Vec<regex_lite::Regex>,
}

/// Opens connections as the settings say.
pub(crate) struct Connector {
    #[cfg(feature = "tls")]
    proxy: Option<AgentProxy>,
    launcher: Option<LauncherTunnel>,
    #[cfg(feature = "tls")]
    tls: std::sync::Arc<rustls::ClientConfig>,
    connect_timeout: Duration,
}

impl Connector {
    pub fn new(settings: &HttpSettings) -> Result<Connector, HttpSetupError> {
        Ok(Connector {
            #[cfg(feature = "tls")]
            proxy: match &settings.proxy {
                None => None,
                Some(p) => Some(agent_proxy(p)?),
            },
            launcher: settings.launcher_tunnel.clone(),
            #[cfg(feature = "tls")]
            tls: tls::config(settings.ca_file.as_deref())?,
            connect_timeout: settings.connect_timeout,
        })
    }

    /// The route for a request to `url` at `origin`: https through the launcher when it
    /// offers a tunnel; otherwise the agent's proxy unless the agent would bypass it.
    pub fn route(&self, url: &url::Url, origin: &Origin) -> Route {
        if origin.https && self.launcher.is_some() {
            return Route::Launcher;
        }
        #[cfg(feature = "tls")]
        if let Some(p) = &self.proxy {
            if !bypasses_proxy(p, url) {
                return Route::AgentProxy;
            }
        }
        #[cfg(not(feature = "tls"))]
        let _ = url;
        Route::Direct
    }

    /// The `Proxy-Authorization` value for plain-http requests sent to the agent's proxy.
    #[cfg(feature = "tls")]
    pub fn proxy_authorization(&self) -> Option<&str> {
        self.proxy.as_ref()?.authorization.as_deref()
    }

    pub async fn open(&self, origin: &Origin, route: Route) -> Result<Stream, ConnectError> {
        // The launcher has the same connect timeout; waiting a little longer lets its answer,
        // which says which step timed out, arrive first.
        let limit = match route {
            Route::Launcher => self.connect_timeout + Duration::from_secs(5),
            #[cfg(feature = "tls")]
            Route::AgentProxy => self.connect_timeout,
            Route::Direct => self.connect_timeout,
        };
        match tokio::time::timeout(limit, self.open_now(origin, route)).await {
            Ok(result) => result,
            Err(_) => Err(ConnectError::TimedOut(limit)),
        }
    }

    async fn open_now(&self, origin: &Origin, route: Route) -> Result<Stream, ConnectError> {
        if origin.https && route != Route::Launcher && !cfg!(feature = "tls") {
            return Err(ConnectError::Unsupported(no_tls(origin)));
        }
        match route {
            Route::Launcher => {
                let Some(launcher) = &self.launcher else {
                    return Err(ConnectError::Unsupported("no launcher tunnel".into()));
                };
                let tcp = tcp(&launcher.address, Some("the task launcher's TLS tunnel")).await?;
                let mut stream = BufReader::new(Box::new(tcp) as Box<dyn Io>);
                let authorization = format!("Bearer {}", launcher.token);
                connect_tunnel(&mut stream, &origin.authority, Some(&authorization))
                    .await
                    .map_err(|refused| match refused {
                        TunnelRefused::Status {
                            status,
                            message,
                            permanent,
                        } => {
                            let message = if message.is_empty() {
                                format!(
                                    "the task launcher's TLS tunnel refused {} with HTTP {status}",
                                    origin.authority
                                )
                            } else {
                                message
                            };
                            // 400/405/407 are the tunnel refusing us, never a passing fault.
                            if permanent || matches!(status.as_u16(), 400 | 405 | 407) {
                                ConnectError::Refused(message)
                            } else {
                                ConnectError::Failed(message)
                            }
                        }
                        TunnelRefused::Io(detail) => ConnectError::Failed(format!(
                            "the task launcher's TLS tunnel failed: {detail}"
                        )),
                    })?;
                Ok(stream)
            }
            #[cfg(feature = "tls")]
            Route::AgentProxy => {
                let Some(proxy) = &self.proxy else {
                    return Err(ConnectError::Unsupported("no agent proxy".into()));
                };
                let tcp = tcp(
                    &(proxy.origin.host.as_str(), proxy.origin.port),
                    Some("the agent's proxy"),
                )
                .await?;
                let mut stream = BufReader::new(Box::new(tcp) as Box<dyn Io>);
                if !origin.https {
                    return Ok(stream);
                }
                connect_tunnel(
                    &mut stream,
                    &origin.authority,
                    proxy.authorization.as_deref(),
                )
                .await
                .map_err(|refused| match refused {
                    TunnelRefused::Status { status, .. } => {
                        let message = format!(
                            "the agent's proxy {} refused the tunnel to {} with HTTP {status}",
                            proxy.origin.authority, origin.authority
                        );
                        // 407: the agent's proxy credentials are wrong or missing.
                        if status.as_u16() == 407 {
                            ConnectError::Refused(message)
                        } else {
                            ConnectError::Failed(message)
                        }
                    }
                    TunnelRefused::Io(detail) => ConnectError::Failed(format!(
                        "the agent's proxy {} failed: {detail}",
                        proxy.origin.authority
                    )),
                })?;
                self.tls(origin, stream.into_inner()).await
            }
            Route::Direct => {
                let tcp = tcp(&(origin.host.as_str(), origin.port), None).await?;
                let stream: Box<dyn Io> = Box::new(tcp);
                if origin.https {
                    self.tls(origin, stream).await
                } else {
                    Ok(BufReader::new(stream))
                }
            }
        }
    }

    #[cfg(feature = "tls")]
    async fn tls(&self, origin: &Origin, stream: Box<dyn Io>) -> Result<Stream, ConnectError> {
        tls::handshake(&self.tls, origin, stream).await
    }

    #[cfg(not(feature = "tls"))]
    async fn tls(&self, origin: &Origin, _stream: Box<dyn Io>) -> Result<Stream, ConnectError> {
        Err(ConnectError::Unsupported(no_tls(origin)))
    }
}

fn no_tls(origin: &Origin) -> String {
    format!(
        "cannot open https://{}: this task binary has no TLS of its own and expects the task \
         launcher (launcher.js) to provide it, but it was not started by the launcher. Run the \
         task through its task.json (the agent, or azp-local on the packaged task folder)",
        origin.authority
    )
}

/// A TCP connection; `via` names what is reached when it is not the origin itself.
async fn tcp<A: tokio::net::ToSocketAddrs>(
    address: A,
    via: Option<&str>,
) -> Result<TcpStream, ConnectError> {
    let stream = TcpStream::connect(address).await.map_err(|e| {
        ConnectError::Failed(match via {
            Some(what) => format!("cannot connect to {what}: {e}"),
            None => e.to_string(),
        })
    })?;
    // Requests are written whole; waiting to coalesce them only adds latency.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

#[cfg(feature = "tls")]
/// Whether the agent would send a request to `url` straight rather than through `proxy`:
/// loopback destinations always, others when a bypass pattern matches `scheme://host`, with
/// `:port` only when it is not the scheme's default (the agent's AgentWebProxy rule).
fn bypasses_proxy(proxy: &AgentProxy, url: &url::Url) -> bool {
    // .NET's Uri.IsLoopback: the names localhost and loopback, 127.0.0.0/8, ::1.
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => {
            d.eq_ignore_ascii_case("localhost") || d.eq_ignore_ascii_case("loopback")
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        // ::1, and 127.0.0.1 in the IPv4-mapped or -compatible forms, as .NET's IPv6 parser.
        Some(url::Host::Ipv6(ip)) => {
            ip.is_loopback() || ip.to_ipv4() == Some(std::net::Ipv4Addr::LOCALHOST)
        }
        None => false,
    };
    if loopback {
        return true;
    }
    let host = url.host_str().unwrap_or_default();
    let subject = match url.port() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    };
    proxy.bypass.iter().any(|r| r.is_match(&subject))
}

#[cfg(feature = "tls")]
/// Whether a request to `url` goes straight rather than through the agent's proxy
/// `settings` (loopback, or a matching Agent.ProxyBypassList pattern): the rule the launcher's
/// tunnel follows too (tests/vectors/proxy-bypass.json). An unusable proxy URL is an error.
pub fn bypasses_agent_proxy(
    settings: &super::ProxySettings,
    url: &url::Url,
) -> Result<bool, HttpSetupError> {
    Ok(bypasses_proxy(&agent_proxy(settings)?, url))
}

#[cfg(feature = "tls")]
fn agent_proxy(settings: &super::ProxySettings) -> Result<AgentProxy, HttpSetupError> {
    // The setting is not echoed whole: it may carry credentials.
    let parsed = url::Url::parse(&settings.url).ok();
    let shown = parsed
        .as_ref()
        .and_then(|u| Some(format!("{}://{}", u.scheme(), u.host_str()?)))
        .map(|s| format!(" (got {s})"))
        .unwrap_or_default();
    let invalid = |why: &str| HttpSetupError::ProxyUrl {
        detail: format!("{why}{shown}"),
    };
    let url = parsed.ok_or_else(|| invalid("it is not a valid URL"))?;
    if url.scheme() != "http" {
        // An https proxy would need TLS to the proxy itself; agents configure http proxies.
        return Err(invalid("it must be an http:// URL"));
    }
    let origin = Origin::of(&url).map_err(|_| invalid("it names no host"))?;
    let mut bypass = Vec::with_capacity(settings.bypass.len());
    for pattern in settings
        .bypass
        .iter()
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
    {
        match regex_lite::RegexBuilder::new(pattern)
            .case_insensitive(true)
            .build()
        {
            Ok(regex) => bypass.push(regex),
            // The agent ignores a pattern it cannot compile; so do we, but say so.
            Err(e) => tracing::warn!(
                "ignoring the proxy bypass pattern '{pattern}' (Agent.ProxyBypassList): {e}"
            ),
        }
    }
    let authorization = settings.basic_authorization();
    Ok(AgentProxy {
        origin,
        authorization,
        bypass,
    })
}

#[cfg(feature = "tls")]
mod tls {
    //! TLS in-process: rustls with the ring provider, the platform's certificate verifier, and
    //! the agent's extra CA.

    use std::path::Path;
    use std::sync::Arc;

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    use tokio::io::BufReader;

    use super::{ConnectError, Io, Origin, Stream};
    use crate::HttpSetupError;

    pub fn config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, HttpSetupError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let extra = match ca_file {
            Some(path) => read_ca_file(path)?,
            None => Vec::new(),
        };
        let setup = |e: rustls::Error| HttpSetupError::Client(e.to_string());
        let verifier = if extra.is_empty() {
            rustls_platform_verifier::Verifier::new(provider.clone())
        } else {
            rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone())
        }
        .map_err(setup)?;
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(setup)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, HttpSetupError> {
        let error = |detail: String| HttpSetupError::CaFile {
            path: path.to_owned(),
            detail,
        };
        let pem = std::fs::read(path).map_err(|e| error(e.to_string()))?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| error(format!("it is not a PEM certificate file: {e}")))?;
        if certs.is_empty() {
            return Err(error("it holds no PEM certificate".into()));
        }
        Ok(certs)
    }

    pub async fn handshake(
        config: &Arc<rustls::ClientConfig>,
        origin: &Origin,
        stream: Box<dyn Io>,
    ) -> Result<Stream, ConnectError> {
        let name = ServerName::try_from(origin.host.clone()).map_err(|_| {
            ConnectError::Failed(format!("'{}' is not a valid TLS server name", origin.host))
        })?;
        let tls = tokio_rustls::TlsConnector::from(config.clone())
            .connect(name, stream)
            .await
            .map_err(|e| {
                // rustls reports TLS failures (certificate, protocol) as InvalidData; other
                // kinds are the connection failing during the handshake.
                if e.kind() == std::io::ErrorKind::InvalidData {
                    ConnectError::Refused(format!(
                        "TLS handshake with {} failed: {e}; if the agent uses a private CA, set Agent.CAInfo",
                        origin.authority
                    ))
                } else {
                    ConnectError::Failed(format!(
                        "TLS handshake with {} failed: {e}",
                        origin.authority
                    ))
                }
            })?;
        Ok(BufReader::new(Box::new(tls)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "tls")]
    fn proxy(bypass: &[&str]) -> AgentProxy {
        agent_proxy(&super::super::ProxySettings {
            url: "http://user:pw@proxy.corp.example:8888".into(),
            username: None,
            password: None,
            bypass: bypass.iter().map(|p| p.to_string()).collect(),
        })
        .unwrap()
    }

    #[cfg(feature = "tls")]
    #[test]
    fn bypass_follows_the_agent_rule() {
        let bypassed =
            |p: &AgentProxy, url: &str| bypasses_proxy(p, &url::Url::parse(url).unwrap());
        // Matched against scheme://host[:port], never the path or query.
        let p = proxy(&[
            r"\.corp\.example$",
            r"^https://build:8443$",
            "  ",
            "(unclosed",
        ]);
        assert!(bypassed(&p, "https://adb-1.corp.example/api/2.0/x?y=1"));
        assert!(bypassed(&p, "HTTPS://ADB-1.CORP.EXAMPLE/"));
        assert!(bypassed(&p, "https://build:8443/x"));
        assert!(
            !bypassed(&p, "https://build/x"),
            "443 is the default port: not written"
        );
        assert!(!bypassed(&p, "https://management.azure.com/corp.example"));
        // Loopback always goes straight, as the agent does.
        let none = proxy(&[]);
        assert!(bypassed(&none, "http://127.0.0.1:8080/"));
        assert!(bypassed(&none, "http://localhost/"));
        assert!(bypassed(&none, "http://127.0.0.2:9/"));
        assert!(!bypassed(&none, "https://adb-1.corp.example/"));
        // The invalid pattern was skipped, the blank one too.
        assert_eq!(p.bypass.len(), 2);
    }

    #[cfg(feature = "tls")]
    #[test]
    fn proxy_setting_errors_do_not_echo_credentials() {
        for url in ["https://user:pw@proxy:1", "not a url user:pw"] {
            let error = agent_proxy(&super::super::ProxySettings {
                url: url.into(),
                username: None,
                password: None,
                bypass: Vec::new(),
            })
            .err()
            .unwrap()
            .to_string();
            assert!(!error.contains("pw"), "{error}");
            assert!(error.contains("Agent.ProxyUrl"), "{error}");
        }
    }

    #[test]
    fn origins() {
        let o = Origin::of(&url::Url::parse("https://[::1]/x").unwrap()).unwrap();
        assert_eq!(
            (o.host.as_str(), o.port, o.authority.as_str()),
            ("::1", 443, "[::1]:443")
        );
        let o = Origin::of(&url::Url::parse("http://LocalHost:8080").unwrap()).unwrap();
        assert_eq!(
            (o.https, o.host.as_str(), o.port),
            (false, "localhost", 8080)
        );
        assert!(Origin::of(&url::Url::parse("ftp://h/").unwrap()).is_err());
    }
}
