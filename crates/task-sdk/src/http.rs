//! The one HTTP client setup every task uses: rustls (ring), the agent's proxy settings,
//! an extra CA from `AGENT_CAINFO`, a user agent naming the extension, task and version,
//! and timeouts. Retries live in [`crate::retry`].

use std::path::PathBuf;
use std::time::Duration;

use crate::agent::Agent;

/// The extension's name in user agents.
pub const EXTENSION: &str = "azdo-data-tasks";

/// Why the HTTP client could not be set up: always a problem with the agent's settings.
#[derive(Debug, thiserror::Error)]
pub enum HttpSetupError {
    #[error("the agent's proxy URL (Agent.ProxyUrl) '{url}' is not a valid URL: fix the agent's proxy configuration")]
    ProxyUrl { url: String },
    #[error("the agent's proxy bypass list (Agent.ProxyBypassList) is not a JSON array of patterns: {detail}")]
    BypassList { detail: String },
    #[error("cannot read the agent's CA certificate file (Agent.CAInfo) '{path}': {detail}")]
    CaFile { path: PathBuf, detail: String },
    #[error("cannot set up HTTPS: {0}")]
    Client(String),
}

/// The agent's proxy configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxySettings {
    pub url: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Regular expressions, matched case-insensitively against the request URL.
    pub bypass: Vec<String>,
}

/// Everything the client needs from the agent and the task.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub proxy: Option<ProxySettings>,
    pub ca_file: Option<PathBuf>,
    pub user_agent: String,
    /// Per request, from the first byte sent to the last byte read.
    pub timeout: Duration,
    pub connect_timeout: Duration,
}

impl HttpSettings {
    /// Reads `Agent.ProxyUrl`, `Agent.ProxyUsername`, `Agent.ProxyPassword` (a secret),
    /// `Agent.ProxyBypassList` and `Agent.CAInfo`.
    pub fn from_agent(
        agent: &Agent,
        task: &str,
        version: &str,
    ) -> Result<HttpSettings, HttpSetupError> {
        let proxy = match agent
            .variable("Agent.ProxyUrl")
            .filter(|u| !u.trim().is_empty())
        {
            None => None,
            Some(url) => {
                let bypass = match agent.variable("Agent.ProxyBypassList") {
                    Some(list) if !list.trim().is_empty() => {
                        serde_json::from_str::<Vec<String>>(&list).map_err(|e| {
                            HttpSetupError::BypassList {
                                detail: e.to_string(),
                            }
                        })?
                    }
                    _ => Vec::new(),
                };
                let password = agent
                    .variable("Agent.ProxyPassword")
                    .filter(|p| !p.is_empty());
                if let Some(p) = &password {
                    crate::secrets::register(p);
                }
                Some(ProxySettings {
                    url: url.trim().to_owned(),
                    username: agent
                        .variable("Agent.ProxyUsername")
                        .filter(|u| !u.is_empty()),
                    password,
                    bypass,
                })
            }
        };
        Ok(HttpSettings {
            proxy,
            ca_file: agent
                .variable("Agent.CAInfo")
                .filter(|p| !p.trim().is_empty())
                .map(PathBuf::from),
            user_agent: user_agent(task, version),
            timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(30),
        })
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

/// Installs the ring crypto provider once per process (reqwest is built without one).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Builds the client every task uses.
pub fn client(settings: &HttpSettings) -> Result<reqwest::Client, HttpSetupError> {
    install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .user_agent(settings.user_agent.clone())
        .timeout(settings.timeout)
        .connect_timeout(settings.connect_timeout)
        .no_proxy();
    if let Some(path) = &settings.ca_file {
        let pem = std::fs::read(path).map_err(|e| HttpSetupError::CaFile {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        let certs =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| HttpSetupError::CaFile {
                path: path.clone(),
                detail: e.to_string(),
            })?;
        if certs.is_empty() {
            return Err(HttpSetupError::CaFile {
                path: path.clone(),
                detail: "it holds no PEM certificate".into(),
            });
        }
        builder = builder.tls_certs_merge(certs);
    }
    if let Some(proxy) = &settings.proxy {
        builder = builder.proxy(proxy_for(proxy)?);
    }
    builder
        .build()
        .map_err(|e| HttpSetupError::Client(e.to_string()))
}

fn proxy_for(settings: &ProxySettings) -> Result<reqwest::Proxy, HttpSetupError> {
    let proxy_url = url::Url::parse(&settings.url).map_err(|_| HttpSetupError::ProxyUrl {
        url: settings.url.clone(),
    })?;
    let mut patterns = Vec::with_capacity(settings.bypass.len());
    for pattern in &settings.bypass {
        let regex = regex_lite::RegexBuilder::new(pattern)
            .case_insensitive(true)
            .build()
            .map_err(|e| HttpSetupError::BypassList {
                detail: format!("'{pattern}': {e}"),
            })?;
        patterns.push(regex);
    }
    let target = proxy_url.clone();
    let mut proxy = reqwest::Proxy::custom(move |url| {
        if patterns.iter().any(|p| p.is_match(url.as_str())) {
            None
        } else {
            Some(target.clone())
        }
    });
    if let Some(user) = &settings.username {
        proxy = proxy.basic_auth(user, settings.password.as_deref().unwrap_or(""));
    }
    Ok(proxy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    fn agent(vars: &[(&str, &str)]) -> Agent {
        Agent::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn settings_read_the_agent_variables() {
        let a = agent(&[
            ("AGENT_PROXYURL", "http://proxy.local:8888"),
            ("AGENT_PROXYUSERNAME", "bob"),
            ("SECRET_AGENT_PROXYPASSWORD", "proxy-pass-77"),
            (
                "AGENT_PROXYBYPASSLIST",
                r#"["\\.internal\\.example$", "localhost"]"#,
            ),
            ("AGENT_CAINFO", "/etc/ca.pem"),
        ]);
        let s = HttpSettings::from_agent(&a, "deploynotebooks", "0.1.0").unwrap();
        assert_eq!(
            s.proxy,
            Some(ProxySettings {
                url: "http://proxy.local:8888".into(),
                username: Some("bob".into()),
                password: Some("proxy-pass-77".into()),
                bypass: vec!["\\.internal\\.example$".into(), "localhost".into()],
            })
        );
        assert_eq!(s.ca_file, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(s.user_agent, "azdo-data-tasks/0.1.0 (deploynotebooks)");
        assert_eq!(crate::secrets::mask("proxy-pass-77"), "***");
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

    #[test]
    fn bad_settings_are_named() {
        let a = agent(&[
            ("AGENT_PROXYURL", "http://p:1"),
            ("AGENT_PROXYBYPASSLIST", "not json"),
        ]);
        assert!(matches!(
            HttpSettings::from_agent(&a, "t", "1"),
            Err(HttpSetupError::BypassList { .. })
        ));
        let a = agent(&[("AGENT_CAINFO", "/definitely/missing.pem")]);
        let s = HttpSettings::from_agent(&a, "t", "1").unwrap();
        let e = client(&s).unwrap_err().to_string();
        assert!(
            e.contains("Agent.CAInfo") && e.contains("/definitely/missing.pem"),
            "{e}"
        );
    }

    /// A one-shot HTTP "proxy" on loopback that records the request head it receives.
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

    #[test]
    fn requests_go_through_the_agent_proxy_with_credentials() {
        let (proxy_url, handle) = fake_proxy();
        let a = agent(&[
            ("AGENT_PROXYURL", &proxy_url),
            ("AGENT_PROXYUSERNAME", "bob"),
            ("SECRET_AGENT_PROXYPASSWORD", "pw"),
        ]);
        let s = HttpSettings::from_agent(&a, "t", "1").unwrap();
        let c = client(&s).unwrap();
        let body = runtime().block_on(async {
            c.get("http://workspace.example.test/api/2.0/workspace/list")
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
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

    #[test]
    fn bypass_list_skips_the_proxy() {
        // The "target" is a plain server; the proxy address points nowhere useful.
        let (target_url, handle) = fake_proxy();
        let a = agent(&[
            ("AGENT_PROXYURL", "http://127.0.0.1:9"),
            ("AGENT_PROXYBYPASSLIST", r#"["127\\.0\\.0\\.1"]"#),
        ]);
        let s = HttpSettings::from_agent(&a, "t", "1").unwrap();
        let c = client(&s).unwrap();
        let status = runtime().block_on(async {
            c.get(format!("{target_url}/x"))
                .send()
                .await
                .unwrap()
                .status()
        });
        assert_eq!(status, 200);
        let head = handle.join().unwrap();
        assert!(head.starts_with("GET /x HTTP/1.1"), "{head}");
    }
}
