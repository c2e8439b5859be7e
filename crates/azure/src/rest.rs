//! Authorized JSON calls shared by the ARM and Data Factory clients: the bearer token from the
//! credential (cached), refreshed once when the service answers 401
//! `ExpiredAuthenticationToken`, as the Microsoft client does; retries come from
//! `task_sdk::HttpClient`.

use std::time::Duration;

use serde_json::Value;
use task_sdk::http::{Method, Request, Response, StatusCode};
use task_sdk::{HttpClient, Replay, SendError};
use url::Url;

use crate::auth::{AuthError, Credential};

/// Why a call produced no answer.
#[derive(Debug)]
pub(crate) enum RestError {
    Auth(AuthError),
    Send(SendError),
}

/// A whole answer: ARM and Data Factory bodies are small JSON documents.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: StatusCode,
    pub body: String,
    /// The answer as received, for its headers.
    response: Response,
}

impl Answer {
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.response.header(name).filter(|v| !v.is_empty())
    }

    /// `Retry-After` in seconds (ARM sends whole seconds; an HTTP date is accepted too), read
    /// as the retry policy reads it.
    pub fn retry_after(&self) -> Option<Duration> {
        let value = self.header("retry-after")?;
        task_sdk::retry::parse_retry_after(value, std::time::SystemTime::now())
    }

    /// A 401 saying the bearer token expired: `ExpiredAuthenticationToken` in the body, or,
    /// for bodiless answers (HEAD), an expiry in the `WWW-Authenticate` challenge.
    pub fn token_expired(&self) -> bool {
        if self.status != StatusCode::UNAUTHORIZED {
            return false;
        }
        match self.error_code() {
            Some(code) => code == "ExpiredAuthenticationToken",
            None => self.header("www-authenticate").is_some_and(|c| {
                let c = c.to_ascii_lowercase();
                c.contains("invalid_token") && c.contains("expir")
            }),
        }
    }

    /// The `error.code` of a JSON error body.
    pub fn error_code(&self) -> Option<String> {
        self.json()?
            .get("error")?
            .get("code")?
            .as_str()
            .map(str::to_owned)
    }
}

/// The HTTP client, the credential and the token scope of one service.
#[derive(Clone, Debug)]
pub(crate) struct Bearer {
    pub http: HttpClient,
    pub credential: Credential,
    pub scope: String,
}

impl Bearer {
    pub async fn call(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
        replay: Replay,
    ) -> Result<Answer, RestError> {
        self.call_with(method, url, body, replay, &[]).await
    }

    /// [`Bearer::call`] with extra request headers (e.g. ARM's `x-ms-correlation-request-id`).
    pub async fn call_with(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
        replay: Replay,
        headers: &[(&str, &str)],
    ) -> Result<Answer, RestError> {
        let token = self
            .credential
            .token(&self.scope)
            .await
            .map_err(RestError::Auth)?;
        let answer = self
            .once(&method, &url, body, replay, headers, &token.token)
            .await?;
        if answer.token_expired() {
            tracing::debug!("the access token expired; getting a new one");
            let token = self
                .credential
                .refresh(&self.scope)
                .await
                .map_err(RestError::Auth)?;
            return self
                .once(&method, &url, body, replay, headers, &token.token)
                .await;
        }
        Ok(answer)
    }

    async fn once(
        &self,
        method: &Method,
        url: &Url,
        body: Option<&Value>,
        replay: Replay,
        headers: &[(&str, &str)],
        token: &str,
    ) -> Result<Answer, RestError> {
        // A body-less POST or PUT still carries `Content-Length: 0` (the client writes it;
        // ARM answers 411 without it).
        let mut request = Request::from_url(*method, url.clone())
            .bearer_auth(token)
            .header("accept", "application/json");
        for (name, value) in headers {
            request = request.header(name, *value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = self
            .http
            .send(request, replay)
            .await
            .map_err(RestError::Send)?;
        Ok(Answer {
            status: response.status(),
            body: response.text(),
            response,
        })
    }
}
