//! The workspace handle and the one way it sends a request and reads the answer.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use task_sdk::http::{is_valid_header_value, Method, Request, Response};
use task_sdk::{HttpClient, Replay};

use crate::error::{self, Error};
use crate::{host, Auth};

/// A Databricks workspace: its URL, credentials and the task's HTTP client.
///
/// Cheap to clone (shared inside); clones may be used concurrently.
#[derive(Clone)]
pub struct Workspace {
    inner: Arc<Inner>,
}

struct Inner {
    host: String,
    auth: Auth,
    http: HttpClient,
    poll: PollSettings,
}

/// How waits poll (runs, cluster start): first interval, doubling up to the maximum.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PollSettings {
    pub first: Duration,
    pub max: Duration,
}

impl fmt::Debug for Workspace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Workspace")
            .field("host", &self.inner.host)
            .field("auth", &self.inner.auth)
            .finish()
    }
}

/// A request being described: method, API path, query, JSON (or raw) body, replay rule, and
/// the workspace path it is about (for `NotFound`/`AlreadyExists`).
pub(crate) struct Call<'a> {
    pub method: Method,
    pub path: Cow<'static, str>,
    pub query: Vec<(&'static str, String)>,
    pub body: Option<serde_json::Value>,
    /// A raw `application/octet-stream` body (the Files API), instead of JSON.
    pub raw: Option<Vec<u8>>,
    pub replay: Replay,
    pub subject: Option<&'a str>,
    /// The largest answer accepted, if not the client's default.
    pub max_response_body: Option<usize>,
}

impl<'a> Call<'a> {
    /// A call to a path built at run time (one that carries a file path or an id).
    pub fn new(method: Method, path: impl Into<Cow<'static, str>>) -> Self {
        Call {
            method,
            path: path.into(),
            query: Vec::new(),
            body: None,
            raw: None,
            replay: Replay::ByMethod,
            subject: None,
            max_response_body: None,
        }
    }

    pub fn get(path: &'static str) -> Self {
        Call::new(Method::GET, path)
    }

    pub fn post(path: &'static str, body: serde_json::Value) -> Self {
        Call::new(Method::POST, path).json(body)
    }

    pub fn json(mut self, body: serde_json::Value) -> Self {
        self.body = Some(body);
        self
    }

    pub fn raw_body(mut self, bytes: Vec<u8>) -> Self {
        self.raw = Some(bytes);
        self
    }

    pub fn query(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.query.push((key, value.into()));
        self
    }

    /// The request may be repeated after an ambiguous failure (it is idempotent).
    pub fn replay_safe(mut self) -> Self {
        self.replay = Replay::Safe;
        self
    }

    pub fn about(mut self, subject: &'a str) -> Self {
        self.subject = Some(subject);
        self
    }

    /// Accepts an answer of up to `bytes` instead of the client's default.
    pub fn max_response_body(mut self, bytes: usize) -> Self {
        self.max_response_body = Some(bytes);
        self
    }
}

impl Workspace {
    /// A client for the workspace at `host` (see [`normalize_host`](crate::normalize_host)
    /// for what is accepted: https, or http on loopback; path and query are dropped).
    ///
    /// The token is not checked here (no request is made); call
    /// [`Workspace::check_credentials`] for that. Callers register the token as a secret
    /// with the agent before anything could print it; this crate never prints it.
    pub fn new(host: &str, auth: Auth, http: HttpClient) -> Result<Workspace, Error> {
        let host = host::normalize_host(host)?;
        if auth.is_blank() {
            return Err(Error::InvalidRequest(format!(
                "the token for {host} is empty"
            )));
        }
        Ok(Workspace {
            inner: Arc::new(Inner {
                host,
                auth,
                http,
                poll: PollSettings {
                    first: Duration::from_millis(500),
                    max: Duration::from_secs(10),
                },
            }),
        })
    }

    /// Changes how [`Workspace::wait_run`] and [`Workspace::wait_cluster_running`] poll: the first interval, doubling up
    /// to `max` (defaults: 0.5 s up to 10 s). For tests against a fast emulator.
    pub fn with_poll_interval(self, first: Duration, max: Duration) -> Workspace {
        let inner = &self.inner;
        Workspace {
            inner: Arc::new(Inner {
                host: inner.host.clone(),
                auth: inner.auth.clone(),
                http: inner.http.clone(),
                poll: PollSettings {
                    first,
                    max: max.max(first),
                },
            }),
        }
    }

    /// The normalised workspace URL, `scheme://host[:port]` without a trailing slash.
    pub fn host(&self) -> &str {
        &self.inner.host
    }

    /// The HTTP client (and so the retry policy) this workspace uses.
    pub fn http(&self) -> &HttpClient {
        &self.inner.http
    }

    pub(crate) fn poll(&self) -> PollSettings {
        self.inner.poll
    }

    /// Sends `call` and decodes a success answer as `T` (an empty body reads as `{}`).
    pub(crate) async fn send<T: DeserializeOwned>(&self, call: Call<'_>) -> Result<T, Error> {
        let response = self.exchange(&call).await?;
        let status = response.status().as_u16();
        let bytes = response.into_bytes();
        let body: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|_| Error::UnexpectedBody {
                host: self.inner.host.clone(),
                status,
                summary: error::summarize(&bytes, None),
            })?;
        serde_json::from_value(value).map_err(|e| Error::Decode {
            host: self.inner.host.clone(),
            call: format!("{} {}", call.method, call.path),
            detail: e.to_string(),
        })
    }

    /// Sends `call`; returns a success answer as it came (headers, raw body), or the error it
    /// means.
    pub(crate) async fn exchange(&self, call: &Call<'_>) -> Result<Response, Error> {
        let inner = &self.inner;
        let headers = inner.auth.headers().await.map_err(|detail| Error::Token {
            host: inner.host.clone(),
            detail,
        })?;
        let url = format!("{}{}", inner.host, call.path);
        let mut request = Request::new(call.method, &url)
            .secret_header("authorization", checked_secret(&headers.bearer)?)
            .header("accept", "application/json");
        for (name, value) in headers.extra {
            request = request.secret_header(name, checked_secret(&value)?);
        }
        if !call.query.is_empty() {
            request = request.query(&call.query);
        }
        if let Some(body) = &call.body {
            request = request.json(body);
        }
        if let Some(bytes) = call.max_response_body {
            request = request.max_response_body(bytes);
        }
        if let Some(raw) = &call.raw {
            request = request
                .header("content-type", "application/octet-stream")
                .body(raw.clone());
        }
        tracing::debug!("{} {}{}", call.method, call.path, describe_subject(call));
        let response = inner.http.send(request, call.replay).await?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let error = error::from_answer(
            &inner.host,
            status,
            response.header("x-databricks-reason-phrase"),
            response.header("content-type"),
            response.bytes(),
            call.subject,
        );
        tracing::debug!(
            "{} {} answered HTTP {}: {error}",
            call.method,
            call.path,
            status.as_u16()
        );
        Err(error)
    }
}

/// The credential header value, if headers can carry it. A token with a character headers
/// cannot carry is named as such, without the token.
fn checked_secret(value: &str) -> Result<&str, Error> {
    if is_valid_header_value(value) {
        Ok(value)
    } else {
        Err(Error::InvalidRequest(
            "the token contains characters an HTTP header cannot carry (a line break or a non-ASCII character?): check the secret".into(),
        ))
    }
}

fn describe_subject(call: &Call<'_>) -> String {
    match call.subject {
        Some(s) => format!(" ({s})"),
        None => String::new(),
    }
}
