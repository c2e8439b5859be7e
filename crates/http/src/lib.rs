//! The HTTP/1.1 client every task binary uses: keep-alive connections in a capped pool, the
//! agent's proxy (CONNECT for https, absolute URLs for http, a bypass list), an extra CA,
//! timeouts (overall and read-idle), a body cap per request, and the one retry policy
//! ([`retry`]). TLS is in-process (rustls with ring) with the `tls` feature, and otherwise
//! comes from the task launcher's tunnel (see the `connect` module and docs/tls-tunnel.md).
//!
//! What it is not: a general-purpose client. It speaks HTTP/1.1 only, sends whole bodies and
//! reads whole answers into memory (every API we call answers with JSON documents), decodes
//! no content or transfer codings but chunked, and knows nothing of the agent: task-sdk reads
//! the agent's variables into [`HttpSettings`].
//!
//! Our own small client rather than reqwest/hyper: the calls we make are small JSON exchanges
//! over HTTP/1.1, and the general-purpose stack measured about 400 KB of every task binary.
//! Answer heads are parsed by `httparse` (hyper's parser); the framing rules around it follow
//! RFC 9112 §6 and are checked against hyper by property tests (`src/wire/reference.rs`).

mod connect;
mod message;
pub mod retry;
mod stall;
mod wire;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use connect::{ConnectError, Connector, Origin, Route, Stream};
use wire::{ReadError, Target, WriteError};

#[cfg(feature = "tls")]
pub use connect::bypasses_agent_proxy;
pub use message::{is_valid_header_value, Method, Request, Response, StatusCode, DEFAULT_MAX_BODY};
pub use retry::{HttpClient, Replay, RetryPolicy, SendError};

/// The extension's name in user agents.
pub const EXTENSION: &str = "azdo-data-tasks";

/// Why the HTTP client could not be set up: always a problem with the agent's settings.
#[derive(Debug, thiserror::Error)]
pub enum HttpSetupError {
    #[error("the agent's proxy setting (Agent.ProxyUrl) is unusable: {detail}; fix the agent's proxy configuration")]
    ProxyUrl { detail: String },
    #[error("the agent's proxy bypass list (Agent.ProxyBypassList) is not a JSON array of patterns: {detail}")]
    BypassList { detail: String },
    #[error("cannot read the agent's CA certificate file (Agent.CAInfo) '{path}': {detail}")]
    CaFile { path: PathBuf, detail: String },
    #[error("cannot set up HTTPS: {0}")]
    Client(String),
}

/// The agent's proxy configuration. `Debug` leaves the password out.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxySettings {
    pub url: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Regular expressions, matched case-insensitively against the request URL.
    pub bypass: Vec<String>,
}

impl std::fmt::Debug for ProxySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxySettings")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("bypass", &self.bypass)
            .finish_non_exhaustive()
    }
}

impl ProxySettings {
    /// `Basic …` for the `Proxy-Authorization` header, when there is a user name. As secret
    /// as the password: whoever reads settings from the agent registers it for masking.
    pub fn basic_authorization(&self) -> Option<String> {
        use base64::Engine;
        let user = self.username.as_ref()?;
        let password = self.password.as_deref().unwrap_or("");
        let pair = format!("{user}:{password}");
        Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        ))
    }
}

/// Everything the client needs from the agent and the task.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub proxy: Option<ProxySettings>,
    pub ca_file: Option<PathBuf>,
    pub user_agent: String,
    /// Per request, from the first byte sent to the last byte read.
    pub timeout: Duration,
    /// Per request, the longest wait for the next byte of the answer: a server that stalls
    /// half-way fails the request this soon rather than at `timeout`.
    pub read_timeout: Duration,
    pub connect_timeout: Duration,
    /// The task launcher's TLS tunnel, when the launcher started this process.
    pub launcher_tunnel: Option<LauncherTunnel>,
}

impl Default for HttpSettings {
    /// No proxy, no extra CA, no launcher; the agent's usual timeouts.
    fn default() -> Self {
        HttpSettings {
            proxy: None,
            ca_file: None,
            user_agent: EXTENSION.to_owned(),
            timeout: Duration::from_secs(120),
            read_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(30),
            launcher_tunnel: None,
        }
    }
}

/// Where the task launcher (`launcher.js`) listens for TLS tunnels, and the token it wants.
#[derive(Clone, PartialEq, Eq)]
pub struct LauncherTunnel {
    pub address: String,
    pub token: String,
}

impl std::fmt::Debug for LauncherTunnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LauncherTunnel")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// Whether `url` names a loopback host: 127.0.0.1, `[::1]` or `localhost`, where the
/// emulators run.
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip == std::net::Ipv4Addr::LOCALHOST,
        Some(url::Host::Ipv6(ip)) => ip == std::net::Ipv6Addr::LOCALHOST,
        None => false,
    }
}

/// The project's rule for service URLs: https, or http to a loopback host only, so that a
/// credential never crosses the network in the clear.
pub fn is_secure_or_loopback(url: &url::Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => is_loopback(url),
        _ => false,
    }
}

/// `azdo-data-tasks/<version> (<task>)`.
pub fn user_agent(task: &str, version: &str) -> String {
    format!("{EXTENSION}/{version} ({task})")
}

/// Installs the ring crypto provider as the process default, for code outside this crate
/// that builds its own rustls configuration (tests' servers). This crate's client does not
/// need it.
#[cfg(feature = "tls")]
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Builds the client every task uses.
pub fn client(settings: &HttpSettings) -> Result<Client, HttpSetupError> {
    Client::new(settings)
}

/// Idle connections older than this are not reused: servers close idle connections after
/// a minute or more, and a request sent on a connection the server is closing fails.
const IDLE_REUSE_LIMIT: Duration = Duration::from_secs(30);
/// At most this many idle connections are kept per origin and route (deploynotebooks
/// uploads 8 at a time by default), and this many in all: past either, the oldest go.
const MAX_IDLE_PER_ORIGIN: usize = 16;
const MAX_IDLE_TOTAL: usize = 32;

/// An HTTP/1.1 client with a pool of keep-alive connections. Cheap to clone (shared inside);
/// clones may send concurrently.
///
/// It sends one request and reads the whole answer; retries are [`crate::HttpClient`]'s.
#[derive(Clone)]
pub struct Client {
    inner: Arc<ClientInner>,
}

struct ClientInner {
    connector: Connector,
    user_agent: String,
    timeout: Duration,
    read_timeout: Duration,
    idle: Mutex<HashMap<PoolKey, Vec<(Stream, Instant)>>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("user_agent", &self.inner.user_agent)
            .finish()
    }
}

/// Connections are shared by requests to the same origin on the same route.
type PoolKey = (Origin, Route);

/// Why one exchange produced no answer.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The server never saw the request: no connection could be opened.
    Connect(String),
    /// No connection could be opened, and trying again cannot help (an untrusted
    /// certificate, a proxy refusing our credentials, a wrong setting).
    Refused(String),
    /// No connection within this long: the server never saw the request.
    ConnectTimeout(Duration),
    /// No answer within the request timeout.
    Timeout,
    /// The request may have reached the server; the answer did not come back whole.
    Transport(String),
    /// The request cannot be sent as it is, or this build cannot reach the URL.
    Unusable(String),
}

impl Client {
    pub fn new(settings: &HttpSettings) -> Result<Client, HttpSetupError> {
        Ok(Client {
            inner: Arc::new(ClientInner {
                connector: Connector::new(settings)?,
                user_agent: settings.user_agent.clone(),
                timeout: settings.timeout,
                read_timeout: settings.read_timeout,
                idle: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Sends `request` once and reads the answer, within the request timeout. `replayable`:
    /// the request may be sent again after the server may have seen it (see `exchange`).
    pub(crate) async fn send_once(
        &self,
        request: &Request,
        replayable: bool,
    ) -> Result<Response, Failure> {
        let exchange = self.exchange(request, replayable);
        match tokio::time::timeout(self.inner.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(Failure::Timeout),
        }
    }

    async fn exchange(&self, request: &Request, replayable: bool) -> Result<Response, Failure> {
        if let Some(problem) = &request.problem {
            return Err(Failure::Unusable(problem.clone()));
        }
        let url = request
            .url
            .as_ref()
            .map_err(|e| Failure::Unusable(e.clone()))?;
        let origin = Origin::of(url).map_err(Failure::Unusable)?;
        let route = self.inner.connector.route(url, &origin);
        let key = (origin, route);
        // A pooled connection can still die between the check in take_idle and our write
        // (the server closing it as idle). If the request could not be written, it goes once
        // more on a fresh connection; if it was written and the connection closed without an
        // answer, the server may have acted on it, so only a replayable request goes again.
        if let Some(stream) = self.take_idle(&key) {
            match self.exchange_on(stream, request, url, &key).await {
                Ok(response) => return Ok(response),
                Err(Exchange::NotSent) => {}
                Err(Exchange::NoAnswer(_)) if replayable => {}
                Err(Exchange::NoAnswer(detail)) => return Err(Failure::Transport(detail)),
                Err(Exchange::Failed(failure)) => return Err(failure),
            }
        }
        let stream = self
            .inner
            .connector
            .open(&key.0, route)
            .await
            .map_err(|e| match e {
                ConnectError::Failed(detail) => Failure::Connect(detail),
                ConnectError::Refused(detail) => Failure::Refused(detail),
                ConnectError::TimedOut(limit) => Failure::ConnectTimeout(limit),
                ConnectError::Unsupported(detail) => Failure::Unusable(detail),
            })?;
        match self.exchange_on(stream, request, url, &key).await {
            Ok(response) => Ok(response),
            Err(Exchange::Failed(failure)) => Err(failure),
            Err(Exchange::NotSent) => Err(Failure::Transport(
                "the connection closed while the request was being sent".into(),
            )),
            Err(Exchange::NoAnswer(detail)) => Err(Failure::Transport(detail)),
        }
    }

    async fn exchange_on(
        &self,
        mut stream: Stream,
        request: &Request,
        url: &url::Url,
        key: &PoolKey,
    ) -> Result<Response, Exchange> {
        #[cfg(feature = "tls")]
        let (target, extra) = {
            let via_proxy = key.1 == Route::AgentProxy && !key.0.https;
            match (via_proxy, self.inner.connector.proxy_authorization()) {
                (true, Some(auth)) => (Target::Absolute, vec![("proxy-authorization", auth)]),
                (true, None) => (Target::Absolute, Vec::new()),
                (false, _) => (Target::Origin, Vec::new()),
            }
        };
        #[cfg(not(feature = "tls"))]
        let (target, extra): (Target, Vec<(&str, &str)>) = (Target::Origin, Vec::new());
        let user_agent = &self.inner.user_agent;
        match wire::write_request(stream.get_mut(), request, url, target, user_agent, &extra).await
        {
            Ok(()) => {}
            Err(WriteError::Invalid(detail)) => {
                return Err(Exchange::Failed(Failure::Unusable(detail)))
            }
            Err(WriteError::Io) => return Err(Exchange::NotSent),
        }
        let mut reader = stall::ReadIdle::new(&mut stream, self.inner.read_timeout);
        let answer = wire::read_response(&mut reader, request.method, request.max_body).await;
        match answer {
            Ok((response, reusable)) => {
                // Bytes after the answer would be read as the next answer: never pool them.
                if reusable && stream.buffer().is_empty() {
                    self.put_idle(key.clone(), stream);
                }
                Ok(response)
            }
            Err(ReadError::ClosedBeforeAnswer(detail)) => Err(Exchange::NoAnswer(detail)),
            Err(ReadError::Broken(detail)) => Err(Exchange::Failed(Failure::Transport(detail))),
        }
    }

    /// A pooled connection for `key` that is still open and quiet, if any.
    fn take_idle(&self, key: &PoolKey) -> Option<Stream> {
        let mut idle = self.inner.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.get_mut(key)?;
        while let Some((mut stream, since)) = list.pop() {
            if since.elapsed() < IDLE_REUSE_LIMIT && is_open_and_quiet(&mut stream) {
                return Some(stream);
            }
        }
        None
    }

    /// Keeps `stream` for reuse, within the pool's caps: expired connections go first, then
    /// the oldest of the origin, then the oldest of all.
    fn put_idle(&self, key: PoolKey, stream: Stream) {
        let mut idle = self.inner.idle.lock().unwrap_or_else(|e| e.into_inner());
        for list in idle.values_mut() {
            list.retain(|(_, since)| since.elapsed() < IDLE_REUSE_LIMIT);
        }
        idle.retain(|_, list| !list.is_empty());
        let list = idle.entry(key).or_default();
        // Lists are in the order connections came back: the oldest first.
        if list.len() >= MAX_IDLE_PER_ORIGIN {
            list.remove(0);
        }
        list.push((stream, Instant::now()));
        let total: usize = idle.values().map(Vec::len).sum();
        for _ in MAX_IDLE_TOTAL..total {
            let oldest = idle
                .iter()
                .filter_map(|(k, list)| Some((k.clone(), list.first()?.1)))
                .min_by_key(|(_, since)| *since)
                .map(|(k, _)| k);
            if let Some(k) = oldest {
                if let Some(list) = idle.get_mut(&k) {
                    list.remove(0);
                }
            }
        }
    }
}

/// A duration in seconds for messages: `30`, `0.5`, `1.25` (to the millisecond). Integer
/// arithmetic: formatting an `f32`/`f64` would bring core's float formatting into every
/// task binary (BENCHMARKS.md, "Binary size after the cuts").
pub(crate) fn seconds(d: Duration) -> String {
    let millis = d.subsec_millis();
    if millis == 0 {
        return d.as_secs().to_string();
    }
    let fraction = format!("{millis:03}");
    format!("{}.{}", d.as_secs(), fraction.trim_end_matches('0'))
}

/// Whether an idle connection can carry a request: nothing has arrived on it since the last
/// answer (no close, no reset, no stray bytes such as an unsolicited 408). Polls the socket
/// once without waiting.
fn is_open_and_quiet(stream: &mut Stream) -> bool {
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio::io::{AsyncRead, ReadBuf};
    if !stream.buffer().is_empty() {
        return false;
    }
    let mut byte = [0u8; 1];
    let mut buf = ReadBuf::new(&mut byte);
    let mut cx = Context::from_waker(std::task::Waker::noop());
    matches!(
        Pin::new(stream.get_mut()).poll_read(&mut cx, &mut buf),
        Poll::Pending
    )
}

/// What went wrong in one exchange on one connection.
enum Exchange {
    /// The request could not be written: the server cannot have acted on it.
    NotSent,
    /// The request was written, and the connection closed before any answer came.
    NoAnswer(String),
    Failed(Failure),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    #[test]
    fn seconds_read_as_the_float_formatting_did() {
        assert_eq!(seconds(Duration::from_secs(30)), "30");
        assert_eq!(seconds(Duration::ZERO), "0");
        assert_eq!(seconds(Duration::from_millis(500)), "0.5");
        assert_eq!(seconds(Duration::from_millis(1250)), "1.25");
        assert_eq!(seconds(Duration::from_millis(10_001)), "10.001");
        // Below a millisecond is not shown.
        assert_eq!(seconds(Duration::from_micros(2_000_400)), "2");
    }

    /// Settings with the agent's proxy at `url`.
    fn with_proxy(url: &str, credentials: Option<(&str, &str)>, bypass: &[&str]) -> HttpSettings {
        HttpSettings {
            proxy: Some(ProxySettings {
                url: url.to_owned(),
                username: credentials.map(|c| c.0.to_owned()),
                password: credentials.map(|c| c.1.to_owned()),
                bypass: bypass.iter().map(|b| b.to_string()).collect(),
            }),
            user_agent: user_agent("t", "1"),
            ..HttpSettings::default()
        }
    }

    #[test]
    fn proxy_credentials_stay_out_of_debug_output() {
        let s = with_proxy("http://p:1", Some(("bob", "proxy-pass-88")), &[]);
        let shown = format!("{s:?}");
        assert!(
            shown.contains("bob") && !shown.contains("proxy-pass-88"),
            "{shown}"
        );
        assert_eq!(
            s.proxy.unwrap().basic_authorization().as_deref(),
            Some("Basic Ym9iOnByb3h5LXBhc3MtODg=")
        );
    }

    #[test]
    fn https_or_loopback_only() {
        let ok = |u: &str| is_secure_or_loopback(&url::Url::parse(u).unwrap());
        assert!(ok("https://adb-1.2.azuredatabricks.net"));
        assert!(ok("http://127.0.0.1:8080"));
        assert!(ok("http://[::1]:8080"));
        assert!(ok("http://LOCALHOST/x"));
        assert!(!ok("http://127.0.0.2"));
        assert!(!ok("http://login.microsoftonline.com/"));
        assert!(!ok("ftp://127.0.0.1/"));
    }

    /// In-process proxy routing exists with in-process TLS only (connect.rs says why).
    #[cfg(feature = "tls")]
    #[test]
    fn bad_settings_are_named() {
        let s = with_proxy("socks5://p:1", None, &[]);
        assert!(matches!(client(&s), Err(HttpSetupError::ProxyUrl { .. })));
    }

    /// With TLS in-process, the agent's CA file is read when the client is built.
    #[cfg(feature = "tls")]
    #[test]
    fn an_unreadable_ca_file_is_named() {
        let s = HttpSettings {
            ca_file: Some("/definitely/missing.pem".into()),
            ..HttpSettings::default()
        };
        let e = client(&s).unwrap_err().to_string();
        assert!(
            e.contains("Agent.CAInfo") && e.contains("/definitely/missing.pem"),
            "{e}"
        );
    }

    /// A one-shot HTTP "proxy" on loopback that records the request head it receives.
    #[cfg(feature = "tls")]
    fn fake_proxy() -> (String, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buf = vec![0u8; 8192];
            let mut head = Vec::new();
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = stream.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                head.extend_from_slice(&buf[..n]);
            }
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
            String::from_utf8_lossy(&head).into_owned()
        });
        (url, handle)
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// In-process proxy routing exists with in-process TLS only (connect.rs says why).
    #[cfg(feature = "tls")]
    #[test]
    fn requests_go_through_the_agent_proxy_with_credentials() {
        let (proxy_url, handle) = fake_proxy();
        let s = with_proxy(&proxy_url, Some(("bob", "pw")), &[]);
        let c = client(&s).unwrap();
        let body = runtime().block_on(async {
            c.send_once(
                &Request::get("http://workspace.example.test/api/2.0/workspace/list"),
                true,
            )
            .await
            .unwrap()
            .text()
        });
        assert_eq!(body, "ok");
        let head = handle.join().unwrap();
        assert!(
            head.starts_with("GET http://workspace.example.test/api/2.0/workspace/list HTTP/1.1"),
            "{head}"
        );
        // base64("bob:pw")
        assert!(
            head.contains("proxy-authorization: Basic Ym9iOnB3"),
            "{head}"
        );
        assert!(head.contains("azdo-data-tasks/1 (t)"), "{head}");
    }

    /// In-process proxy routing exists with in-process TLS only (connect.rs says why).
    #[cfg(feature = "tls")]
    #[test]
    fn bypass_list_skips_the_proxy() {
        // The "target" is a plain server; the proxy address points nowhere useful.
        let (target_url, handle) = fake_proxy();
        let s = with_proxy("http://127.0.0.1:9", None, &["127\\.0\\.0\\.1"]);
        let c = client(&s).unwrap();
        let status = runtime().block_on(async {
            c.send_once(&Request::get(&format!("{target_url}/x")), true)
                .await
                .unwrap()
                .status()
        });
        assert_eq!(status, 200);
        let head = handle.join().unwrap();
        assert!(head.starts_with("GET /x HTTP/1.1"), "{head}");
    }

    /// Reads one request head (up to the blank line) from `stream`; empty at end of stream.
    fn read_head(stream: &mut std::net::TcpStream) -> String {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => break,
            }
        }
        String::from_utf8_lossy(&head).into_owned()
    }

    /// A loopback server that hands each accepted connection to `serve` on its own thread.
    fn raw_server<F>(serve: F) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>)
    where
        F: Fn(std::net::TcpStream) + Send + Sync + 'static,
    {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let accepted = std::sync::Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let serve = std::sync::Arc::new(serve);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                count.fetch_add(1, Ordering::SeqCst);
                let serve = serve.clone();
                std::thread::spawn(move || serve(stream));
            }
        });
        (address, accepted)
    }

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

    fn plain_client() -> Client {
        Client::new(&HttpSettings::default()).unwrap()
    }

    #[test]
    fn connections_are_kept_alive_and_reused() {
        let (address, accepted) = raw_server(|mut stream| {
            while !read_head(&mut stream).is_empty() {
                let _ = stream.write_all(OK);
            }
        });
        let c = plain_client();
        runtime().block_on(async {
            for _ in 0..3 {
                let r = c
                    .send_once(&Request::get(&format!("http://{address}/")), true)
                    .await
                    .unwrap();
                assert_eq!(r.text(), "ok");
            }
        });
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn a_connection_the_server_closed_is_replaced_transparently() {
        // Answers one request per connection, then closes without saying so.
        let (address, accepted) = raw_server(|mut stream| {
            read_head(&mut stream);
            let _ = stream.write_all(OK);
        });
        let c = plain_client();
        runtime().block_on(async {
            for _ in 0..2 {
                let r = c
                    .send_once(
                        &Request::post(&format!("http://{address}/")).body("x"),
                        false,
                    )
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        });
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    /// A server whose first connection answers one request, then reads the start of the
    /// next one and closes with it unread (the kernel resets the connection): the server
    /// has seen the second request. Later connections answer normally.
    fn resetting_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let connections = std::sync::Arc::new(AtomicUsize::new(0));
        raw_server(move |mut stream| {
            let first = connections.fetch_add(1, Ordering::SeqCst) == 0;
            read_head(&mut stream);
            let _ = stream.write_all(OK);
            if first {
                let mut byte = [0u8; 1];
                let _ = stream.peek(&mut byte);
                std::thread::sleep(std::time::Duration::from_millis(20));
                return;
            }
            while !read_head(&mut stream).is_empty() {
                let _ = stream.write_all(OK);
            }
        })
    }

    #[test]
    fn a_request_the_server_saw_goes_again_only_if_replayable() {
        use std::sync::atomic::Ordering;
        let (address, accepted) = resetting_server();
        let url = format!("http://{address}/");
        let c = plain_client();
        runtime().block_on(async {
            c.send_once(&Request::get(&url), true).await.unwrap();
            let again = c.send_once(&Request::get(&url), true).await.unwrap();
            assert_eq!(again.text(), "ok");
        });
        assert_eq!(accepted.load(Ordering::SeqCst), 2, "a fresh connection");

        let (address, _) = resetting_server();
        let url = format!("http://{address}/");
        let c = plain_client();
        let second = runtime().block_on(async {
            c.send_once(&Request::post(&url).body("x"), false)
                .await
                .unwrap();
            c.send_once(&Request::post(&url).body("x"), false).await
        });
        assert!(
            matches!(&second, Err(Failure::Transport(_))),
            "a POST the server may have acted on is not sent twice: {second:?}"
        );
    }

    #[test]
    fn an_idle_connection_with_a_stray_answer_is_not_reused() {
        // After the answer, the server times the idle connection out the way some do: an
        // unsolicited 408, then close.
        let (address, accepted) = raw_server(|mut stream| {
            read_head(&mut stream);
            let _ = stream.write_all(OK);
            let _ = stream.write_all(
                b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
            );
        });
        let url = format!("http://{address}/");
        let c = plain_client();
        runtime().block_on(async {
            c.send_once(&Request::post(&url).body("x"), false)
                .await
                .unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let r = c
                .send_once(&Request::post(&url).body("x"), false)
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        });
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    fn idle_counts(c: &Client) -> (usize, usize) {
        let idle = c.inner.idle.lock().unwrap();
        let most = idle.values().map(Vec::len).max().unwrap_or(0);
        (most, idle.values().map(Vec::len).sum())
    }

    /// A connection that is open and quiet, as the pool holds them; its far end goes into
    /// `far_ends`, to stay open.
    fn quiet_stream(far_ends: &mut Vec<tokio::io::DuplexStream>) -> Stream {
        let (ours, theirs) = tokio::io::duplex(64);
        far_ends.push(theirs);
        tokio::io::BufReader::new(Box::new(ours) as Box<dyn connect::Io>)
    }

    #[test]
    fn the_idle_pool_is_capped_per_origin_and_in_all() {
        let c = plain_client();
        let key = |port: u16| {
            let url = url::Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
            (Origin::of(&url).unwrap(), Route::Direct)
        };
        let mut far_ends = Vec::new();
        runtime().block_on(async {
            for _ in 0..MAX_IDLE_PER_ORIGIN + 5 {
                c.put_idle(key(1), quiet_stream(&mut far_ends));
            }
            assert_eq!(idle_counts(&c), (MAX_IDLE_PER_ORIGIN, MAX_IDLE_PER_ORIGIN));
            for port in 2..6 {
                for _ in 0..MAX_IDLE_PER_ORIGIN {
                    c.put_idle(key(port), quiet_stream(&mut far_ends));
                }
            }
            assert_eq!(idle_counts(&c), (MAX_IDLE_PER_ORIGIN, MAX_IDLE_TOTAL));
            // The newest stay: the last origin filled is whole.
            assert!(c.take_idle(&key(5)).is_some());
            let idle = c.inner.idle.lock().unwrap();
            assert_eq!(
                idle.get(&key(5)).map(Vec::len),
                Some(MAX_IDLE_PER_ORIGIN - 1)
            );
            assert_eq!(idle.get(&key(1)).map(Vec::len), None, "the oldest went");
        });
    }

    #[test]
    fn a_server_that_stalls_fails_at_the_read_timeout() {
        // The head and half the body, then nothing, with the connection open.
        let (address, _) = raw_server(|mut stream| {
            read_head(&mut stream);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello");
            std::thread::sleep(std::time::Duration::from_secs(30));
        });
        let settings = HttpSettings {
            read_timeout: std::time::Duration::from_millis(300),
            ..HttpSettings::default()
        };
        let c = Client::new(&settings).unwrap();
        let result =
            runtime().block_on(c.send_once(&Request::get(&format!("http://{address}/")), true));
        match result {
            Err(Failure::Transport(detail)) => {
                assert!(
                    detail.contains("read timeout") && detail.contains("0.3 s"),
                    "{detail}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_server_that_never_answers_fails_at_the_read_timeout_without_a_resend() {
        use std::sync::atomic::Ordering;
        let (address, accepted) = raw_server(|mut stream| {
            read_head(&mut stream);
            std::thread::sleep(std::time::Duration::from_secs(30));
        });
        let settings = HttpSettings {
            read_timeout: std::time::Duration::from_millis(300),
            ..HttpSettings::default()
        };
        let c = Client::new(&settings).unwrap();
        let request = Request::post(&format!("http://{address}/")).body("x");
        let result = runtime().block_on(c.send_once(&request, false));
        assert!(
            matches!(&result, Err(Failure::Transport(d)) if d.contains("read timeout")),
            "{result:?}"
        );
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_request_may_accept_a_larger_body() {
        let (address, _) = raw_server(|mut stream| {
            while !read_head(&mut stream).is_empty() {
                let _ =
                    stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\nhello world");
            }
        });
        let url = format!("http://{address}/");
        let c = plain_client();
        runtime().block_on(async {
            let small = c
                .send_once(&Request::get(&url).max_response_body(10), true)
                .await;
            assert!(
                matches!(&small, Err(Failure::Transport(d)) if d.contains("larger than 10 bytes")),
                "{small:?}"
            );
            let fits = c
                .send_once(&Request::get(&url).max_response_body(11), true)
                .await
                .unwrap();
            assert_eq!(fits.text(), "hello world");
        });
    }

    /// A proxy that accepts connections and never answers stands in for a network that drops
    /// packets: the request fails as a connect failure, retried even for a POST.
    #[cfg(feature = "tls")]
    #[test]
    fn a_connect_timeout_is_a_connect_failure() {
        let (address, accepted) = raw_server(|mut stream| {
            read_head(&mut stream);
            std::thread::sleep(std::time::Duration::from_secs(5));
        });
        let settings = HttpSettings {
            connect_timeout: std::time::Duration::from_millis(200),
            ..with_proxy(&format!("http://{address}"), None, &[])
        };
        let policy = crate::RetryPolicy {
            budget: std::time::Duration::from_millis(900),
            base_delay: std::time::Duration::from_millis(10),
            ..Default::default()
        };
        let c = crate::HttpClient::new(Client::new(&settings).unwrap(), policy);
        let error = runtime()
            .block_on(c.send(
                Request::post("https://adb-1.example.test/api/2.1/jobs/runs/submit"),
                crate::Replay::ByMethod,
            ))
            .unwrap_err();
        assert!(
            matches!(error, crate::SendError::Connect { .. }),
            "{error:?}"
        );
        assert!(
            accepted.load(std::sync::atomic::Ordering::SeqCst) >= 2,
            "retried"
        );
    }

    fn tunnel_settings(address: &str) -> HttpSettings {
        HttpSettings {
            launcher_tunnel: Some(LauncherTunnel {
                address: address.to_owned(),
                token: "tunnel-token-5150".into(),
            }),
            // The launcher handles the agent's proxy for https; this one must not be used.
            ..with_proxy("http://127.0.0.1:9", None, &[])
        }
    }

    #[test]
    fn https_goes_through_the_launcher_tunnel_with_its_token() {
        let (address, _) = raw_server(|mut stream| {
            let connect = read_head(&mut stream);
            let ok = connect.starts_with("CONNECT adb-1.example.test:443 HTTP/1.1\r\n")
                && connect.contains("proxy-authorization: Bearer tunnel-token-5150\r\n");
            if !ok {
                let _ = stream.write_all(b"HTTP/1.1 407 No\r\ncontent-length: 0\r\n\r\n");
                return;
            }
            let _ = stream.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n");
            // Inside the tunnel: plain HTTP/1.1 in origin form.
            let request = read_head(&mut stream);
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{}",
                request.len(),
                request
            );
            let _ = stream.write_all(answer.as_bytes());
        });
        let c = Client::new(&tunnel_settings(&address)).unwrap();
        let echoed = runtime().block_on(async {
            c.send_once(
                &Request::get("https://adb-1.example.test/api/2.0/clusters/list"),
                true,
            )
            .await
            .unwrap()
            .text()
        });
        assert!(
            echoed
                .starts_with("GET /api/2.0/clusters/list HTTP/1.1\r\nhost: adb-1.example.test\r\n"),
            "{echoed}"
        );
    }

    /// Sends a GET through a launcher tunnel that refuses every CONNECT with 502, `extra`
    /// headers and `reason` as the body. Returns the error and how many CONNECTs came.
    fn through_a_refusing_tunnel(
        extra: &'static str,
        reason: &'static str,
    ) -> (crate::SendError, usize) {
        let (address, accepted) = raw_server(move |mut stream| {
            read_head(&mut stream);
            let answer = format!(
                "HTTP/1.1 502 Bad Gateway\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n{reason}",
                reason.len()
            );
            let _ = stream.write_all(answer.as_bytes());
        });
        let policy = crate::RetryPolicy {
            budget: std::time::Duration::from_millis(300),
            base_delay: std::time::Duration::from_millis(10),
            ..Default::default()
        };
        let c = crate::HttpClient::new(Client::new(&tunnel_settings(&address)).unwrap(), policy);
        let error = runtime()
            .block_on(c.send(
                Request::get("https://adb-1.example.test/"),
                crate::Replay::ByMethod,
            ))
            .unwrap_err();
        (error, accepted.load(std::sync::atomic::Ordering::SeqCst))
    }

    #[test]
    fn a_refused_tunnel_is_a_connect_error_with_the_launchers_reason() {
        let reason =
            "cannot reach adb-1.example.test:443: getaddrinfo ENOTFOUND adb-1.example.test";
        let (error, connects) = through_a_refusing_tunnel("", reason);
        assert_eq!(
            error.to_string(),
            format!("cannot connect to adb-1.example.test: {reason}")
        );
        assert!(error.is_dns());
        assert_eq!(connects, 1, "a wrong host name is not retried");
    }

    #[test]
    fn a_tunnel_refusal_marked_permanent_is_not_retried() {
        let reason = "TLS handshake with adb-1.example.test:443 failed: certificate has expired (CERT_HAS_EXPIRED)";
        let (error, connects) = through_a_refusing_tunnel("x-tunnel-retry: no\r\n", reason);
        assert_eq!(
            error.to_string(),
            format!("cannot connect to adb-1.example.test: {reason}")
        );
        assert_eq!(connects, 1);
        let (_, connects) = through_a_refusing_tunnel(
            "",
            "cannot reach adb-1.example.test:443: connect ECONNREFUSED 10.0.0.1:443",
        );
        assert!(
            connects >= 2,
            "a passing failure is tried again: {connects}"
        );
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn https_without_tls_or_launcher_says_what_to_do() {
        let c = crate::HttpClient::new(plain_client(), crate::RetryPolicy::default());
        let error = runtime()
            .block_on(c.send(
                Request::get("https://adb-1.example.test/"),
                crate::Replay::ByMethod,
            ))
            .unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("launcher") && text.contains("adb-1.example.test"),
            "{text}"
        );
    }
}
