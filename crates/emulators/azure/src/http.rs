//! The request as the handlers see it and the reply they build: plain data, so that the
//! handlers stay synchronous functions of (state, request) that are easy to read and test.

use axum::{
    body::Bytes,
    http::{header::HeaderName, HeaderMap, HeaderValue, Method, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::{json, Value};

/// A request with its path split into percent-decoded segments.
pub struct Req {
    pub method: Method,
    pub path: String,
    pub segs: Vec<String>,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Linked documents fetched for this request so far (see `links`).
    pub links: crate::links::Links,
}

impl Req {
    pub fn new(
        method: Method,
        path: &str,
        query: Option<&str>,
        headers: HeaderMap,
        body: Bytes,
    ) -> Self {
        let segs = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| {
                url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_else(|| s.to_string())
            })
            .collect();
        let query = query
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        Self {
            method,
            path: path.to_string(),
            segs,
            query,
            headers,
            body,
            links: Default::default(),
        }
    }

    /// A query parameter; names compare case-insensitively, as ARM does.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as JSON; an empty body reads as `null`.
    pub fn json(&self) -> Result<Value, Reply> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&self.body).map_err(|e| {
            arm_error(
                StatusCode::BAD_REQUEST,
                "InvalidRequestContent",
                &format!("The request content was invalid and could not be deserialized: '{e}'."),
            )
        })
    }

    /// The body as `application/x-www-form-urlencoded` pairs (first occurrence wins).
    pub fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(&self.body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    /// Whether segment `i` equals `literal`, ignoring ASCII case (ARM paths are case-insensitive).
    pub fn seg_is(&self, i: usize, literal: &str) -> bool {
        self.segs
            .get(i)
            .is_some_and(|s| s.eq_ignore_ascii_case(literal))
    }
}

/// A response under construction.
pub struct Reply {
    pub status: StatusCode,
    pub headers: Vec<(String, String)>,
    pub body: Option<Value>,
    /// Not an answer yet: fetch this linked document, then route the request again.
    pub fetch: Option<String>,
}

impl Reply {
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

/// A JSON reply.
pub fn json(status: StatusCode, body: Value) -> Reply {
    Reply {
        status,
        headers: Vec::new(),
        body: Some(body),
        fetch: None,
    }
}

/// A reply without a body.
pub fn empty(status: StatusCode) -> Reply {
    Reply {
        status,
        headers: Vec::new(),
        body: None,
        fetch: None,
    }
}

/// ARM's error envelope: `{"error": {"code", "message"}}`.
pub fn arm_error(status: StatusCode, code: &str, message: &str) -> Reply {
    json(status, json!({"error": {"code": code, "message": message}}))
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut response = match self.body {
            Some(body) => {
                let mut r = (self.status, body.to_string()).into_response();
                r.headers_mut().insert(
                    axum::http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json; charset=utf-8"),
                );
                r
            }
            None => self.status.into_response(),
        };
        for (name, value) in self.headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                response.headers_mut().append(name, value);
            }
        }
        response
    }
}
