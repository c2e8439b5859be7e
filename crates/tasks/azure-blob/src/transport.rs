//! task-http as azure_core's transport: every request the blob SDK makes goes through the
//! task's one HTTP client (the agent's proxy and CA, the launcher's TLS tunnel) and its one
//! retry policy. azure_core's own retry policy is switched off ([`client_options`]) so that
//! requests are not retried twice over, and its default transport (reqwest) is not built in.
//!
//! Also the two authentication policies the SDK does not do our way: a bearer token from the
//! AzureRM service connection's [`azure::Credential`] (the SDK's own bearer policy refuses
//! http, which the loopback emulators use), and a SAS appended to each request's query.

use std::sync::Arc;

use async_trait::async_trait;
use azure_core::error::ErrorKind;
use azure_core::http::headers::{HeaderName, HeaderValue, Headers};
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{
    AsyncRawResponse, Body, ClientOptions, Context, Method, Request, RetryOptions, StatusCode,
    Transport,
};
use task_sdk::http::{Method as HttpMethod, Request as HttpRequest};
use task_sdk::{HttpClient, Replay};

/// Blob answers are read whole by task-http; the SDK asks for ranges of at most a few MiB,
/// and block uploads are sent in blocks of [`crate::upload::BLOCK_SIZE`].
const MAX_ANSWER: usize = 64 * 1024 * 1024;

/// azure_core's `HttpClient` over task-http.
#[derive(Debug, Clone)]
pub struct TaskTransport {
    http: HttpClient,
}

impl TaskTransport {
    pub fn new(http: HttpClient) -> TaskTransport {
        TaskTransport { http }
    }
}

fn method(m: Method) -> HttpMethod {
    match m {
        Method::Get => HttpMethod::GET,
        Method::Head => HttpMethod::HEAD,
        Method::Post => HttpMethod::POST,
        Method::Put => HttpMethod::PUT,
        Method::Patch => HttpMethod::PATCH,
        Method::Delete => HttpMethod::DELETE,
        _ => HttpMethod::OPTIONS,
    }
}

fn io_error(message: String) -> azure_core::Error {
    azure_core::Error::with_message(ErrorKind::Io, message)
}

#[async_trait]
impl azure_core::http::HttpClient for TaskTransport {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        let mut out = HttpRequest::from_url(method(request.method()), request.url().clone())
            .max_response_body(MAX_ANSWER);
        for (name, value) in request.headers().iter() {
            let name = name.as_str();
            out = if name.eq_ignore_ascii_case("authorization") {
                out.secret_header(name, value.as_str())
            } else {
                out.header(name, value.as_str())
            };
        }
        let body = match request.body() {
            Body::Bytes(bytes) => bytes.to_vec(),
            Body::SeekableStream(stream) => {
                // Not used by this task (it hands the SDK whole blocks); read it whole.
                use futures::io::AsyncReadExt as _;
                let mut stream = stream.clone();
                let mut buffer = Vec::new();
                stream
                    .read_to_end(&mut buffer)
                    .await
                    .map_err(|e| io_error(format!("cannot read the request body: {e}")))?;
                buffer
            }
        };
        let response = self
            .http
            .send(out.body(body), Replay::ByMethod)
            .await
            .map_err(|e| io_error(e.to_string()))?;
        let mut headers = Headers::new();
        for (name, value) in response.headers() {
            headers.insert(
                HeaderName::from(name.to_ascii_lowercase()),
                HeaderValue::from(value.to_owned()),
            );
        }
        let status = StatusCode::from(response.status().as_u16());
        Ok(AsyncRawResponse::from_bytes(
            status,
            headers,
            response.into_bytes(),
        ))
    }
}

/// How requests are authorised.
#[derive(Clone)]
pub enum Auth {
    /// An Entra ID token for Azure Storage from the AzureRM service connection.
    Entra(azure::Credential),
    /// A SAS (query string without `?`), from the user or made from an account key.
    Sas(String),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Entra(c) => f.debug_tuple("Entra").field(c).finish(),
            Auth::Sas(_) => f.write_str("Sas(***)"),
        }
    }
}

/// The audience of storage tokens.
pub const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";

#[derive(Debug)]
struct AuthPolicy {
    auth: Auth,
}

#[async_trait]
impl Policy for AuthPolicy {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        match &self.auth {
            Auth::Entra(credential) => {
                let token = credential.token(STORAGE_SCOPE).await.map_err(|e| {
                    azure_core::Error::with_message(ErrorKind::Credential, e.to_string())
                })?;
                request.insert_header("authorization", format!("Bearer {}", token.token));
            }
            Auth::Sas(sas) => {
                let url = request.url_mut();
                let query = match url.query() {
                    Some(q) if !q.is_empty() => format!("{q}&{sas}"),
                    _ => sas.clone(),
                };
                url.set_query(Some(&query));
            }
        }
        next[0].send(ctx, request, &next[1..]).await
    }
}

/// Client options for the SDK: our transport and authentication, no retry of its own.
pub fn client_options(http: &HttpClient, auth: Auth) -> ClientOptions {
    ClientOptions {
        transport: Some(Transport::new(Arc::new(TaskTransport::new(http.clone())))),
        retry: RetryOptions::none(),
        per_try_policies: vec![Arc::new(AuthPolicy { auth })],
        ..Default::default()
    }
}
