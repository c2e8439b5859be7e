//! Requests and answers as tasks build and read them: a method, a URL, headers and a body
//! going out; a status, headers and the whole body coming back (every API we call answers
//! with small JSON documents, so answers are read completely before they are returned).

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// An HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Method(&'static str);

impl Method {
    pub const GET: Method = Method("GET");
    pub const HEAD: Method = Method("HEAD");
    pub const POST: Method = Method("POST");
    pub const PUT: Method = Method("PUT");
    pub const PATCH: Method = Method("PATCH");
    pub const DELETE: Method = Method("DELETE");
    pub const OPTIONS: Method = Method("OPTIONS");

    pub fn as_str(&self) -> &'static str {
        self.0
    }

    /// Whether repeating the request has the same effect as sending it once (RFC 9110 §9.2.2).
    pub fn is_idempotent(&self) -> bool {
        matches!(self.0, "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS")
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// An HTTP status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StatusCode(u16);

impl StatusCode {
    pub const OK: StatusCode = StatusCode(200);
    pub const CREATED: StatusCode = StatusCode(201);
    pub const ACCEPTED: StatusCode = StatusCode(202);
    pub const NO_CONTENT: StatusCode = StatusCode(204);
    pub const NOT_MODIFIED: StatusCode = StatusCode(304);
    pub const BAD_REQUEST: StatusCode = StatusCode(400);
    pub const UNAUTHORIZED: StatusCode = StatusCode(401);
    pub const FORBIDDEN: StatusCode = StatusCode(403);
    pub const NOT_FOUND: StatusCode = StatusCode(404);
    pub const REQUEST_TIMEOUT: StatusCode = StatusCode(408);
    pub const CONFLICT: StatusCode = StatusCode(409);
    pub const TOO_MANY_REQUESTS: StatusCode = StatusCode(429);
    pub const INTERNAL_SERVER_ERROR: StatusCode = StatusCode(500);
    pub const BAD_GATEWAY: StatusCode = StatusCode(502);
    pub const SERVICE_UNAVAILABLE: StatusCode = StatusCode(503);
    pub const GATEWAY_TIMEOUT: StatusCode = StatusCode(504);

    /// A status code from its number; `None` outside 100..=999.
    pub fn from_u16(code: u16) -> Option<StatusCode> {
        (100..=999).contains(&code).then_some(StatusCode(code))
    }

    pub fn as_u16(&self) -> u16 {
        self.0
    }

    /// The standard reason phrase of common codes ("Not Found"), for messages about answers
    /// that carry no error text of their own.
    pub fn canonical_reason(&self) -> Option<&'static str> {
        Some(match self.0 {
            200 => "OK",
            201 => "Created",
            202 => "Accepted",
            204 => "No Content",
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            408 => "Request Timeout",
            409 => "Conflict",
            411 => "Length Required",
            412 => "Precondition Failed",
            413 => "Content Too Large",
            415 => "Unsupported Media Type",
            422 => "Unprocessable Content",
            429 => "Too Many Requests",
            500 => "Internal Server Error",
            501 => "Not Implemented",
            502 => "Bad Gateway",
            503 => "Service Unavailable",
            504 => "Gateway Timeout",
            _ => return None,
        })
    }

    pub fn is_informational(&self) -> bool {
        (100..200).contains(&self.0)
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.0)
    }

    pub fn is_client_error(&self) -> bool {
        (400..500).contains(&self.0)
    }

    pub fn is_server_error(&self) -> bool {
        (500..600).contains(&self.0)
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl PartialEq<u16> for StatusCode {
    fn eq(&self, other: &u16) -> bool {
        self.0 == *other
    }
}

/// One request header. Sensitive values (credentials) never appear in `Debug` output.
#[derive(Clone)]
pub(crate) struct Header {
    pub name: String,
    pub value: String,
    pub sensitive: bool,
}

impl fmt::Debug for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = if self.sensitive { "***" } else { &self.value };
        write!(f, "{}: {}", self.name, value)
    }
}

/// The largest answer body a request accepts unless it says otherwise
/// ([`Request::max_response_body`]): every API we call answers with JSON far smaller.
pub const DEFAULT_MAX_BODY: usize = 32 * 1024 * 1024;

/// A request to send with [`crate::HttpClient::send`]. Built step by step; a mistake in a
/// step (a URL that does not parse, a body that does not serialise) is reported when the
/// request is sent, as [`crate::SendError::Build`].
#[derive(Clone)]
pub struct Request {
    pub(crate) method: Method,
    /// The URL, or why there is none.
    pub(crate) url: Result<url::Url, String>,
    /// The first mistake made while building (a body that does not serialise).
    pub(crate) problem: Option<String>,
    pub(crate) headers: Vec<Header>,
    pub(crate) body: Vec<u8>,
    /// The largest answer body accepted, in bytes.
    pub(crate) max_body: usize,
}

impl Request {
    pub fn new(method: Method, url: &str) -> Request {
        let url = url::Url::parse(url).map_err(|e| format!("'{url}' is not a valid URL: {e}"));
        Request {
            method,
            url,
            problem: None,
            headers: Vec::new(),
            body: Vec::new(),
            max_body: DEFAULT_MAX_BODY,
        }
    }

    pub fn from_url(method: Method, url: url::Url) -> Request {
        Request {
            method,
            url: Ok(url),
            problem: None,
            headers: Vec::new(),
            body: Vec::new(),
            max_body: DEFAULT_MAX_BODY,
        }
    }

    pub fn get(url: &str) -> Request {
        Request::new(Method::GET, url)
    }

    pub fn post(url: &str) -> Request {
        Request::new(Method::POST, url)
    }

    pub fn method(&self) -> Method {
        self.method
    }

    /// The URL, if it parsed.
    pub fn url(&self) -> Option<&url::Url> {
        self.url.as_ref().ok()
    }

    /// Adds a header. `Host`, `Content-Length`, `Connection`, `Transfer-Encoding` and
    /// `User-Agent` are the client's to write and are ignored here.
    pub fn header(self, name: &str, value: impl Into<String>) -> Request {
        self.push_header(name, value.into(), false)
    }

    /// Adds a header whose value is a credential: it never appears in debug output.
    pub fn secret_header(self, name: &str, value: impl Into<String>) -> Request {
        self.push_header(name, value.into(), true)
    }

    /// `Authorization: Bearer <token>`, kept out of debug output.
    pub fn bearer_auth(self, token: &str) -> Request {
        self.secret_header("authorization", format!("Bearer {token}"))
    }

    /// Appends query parameters, percent-encoded.
    pub fn query<K: AsRef<str>, V: AsRef<str>>(mut self, pairs: &[(K, V)]) -> Request {
        if let Ok(url) = &mut self.url {
            let mut query = url.query_pairs_mut();
            for (k, v) in pairs {
                query.append_pair(k.as_ref(), v.as_ref());
            }
        }
        self
    }

    /// A JSON body, with `Content-Type: application/json`.
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Request {
        match serde_json::to_vec(body) {
            Ok(bytes) => self.body = bytes,
            Err(e) => {
                let problem = format!("the request body cannot be written as JSON: {e}");
                self.problem.get_or_insert(problem);
            }
        }
        self.header("content-type", "application/json")
    }

    /// A form body (`application/x-www-form-urlencoded`).
    pub fn form<K: AsRef<str>, V: AsRef<str>>(mut self, pairs: &[(K, V)]) -> Request {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            form.append_pair(k.as_ref(), v.as_ref());
        }
        self.body = form.finish().into_bytes();
        self.header("content-type", "application/x-www-form-urlencoded")
    }

    /// Accepts an answer body of up to `bytes` instead of [`DEFAULT_MAX_BODY`], for the few
    /// APIs whose answers can be larger (a workspace export). A larger answer fails the
    /// request with an error naming the limit; the body is never held past it.
    pub fn max_response_body(mut self, bytes: usize) -> Request {
        self.max_body = bytes;
        self
    }

    /// A raw body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }

    fn push_header(mut self, name: &str, value: String, sensitive: bool) -> Request {
        let name = name.to_ascii_lowercase();
        if !matches!(
            name.as_str(),
            "host" | "content-length" | "connection" | "transfer-encoding" | "user-agent"
        ) {
            self.headers.push(Header {
                name,
                value,
                sensitive,
            });
        }
        self
    }
}

impl fmt::Debug for Request {
    /// Method, URL and headers (credentials hidden); the body only by size, since it may
    /// carry a secret (a client secret in a token request's form).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("url", &self.url.as_ref().map(url::Url::as_str))
            .field("headers", &self.headers)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// Whether `value` can travel in an HTTP header: visible ASCII, spaces and tabs only (no line
/// breaks, which would end the header early).
pub fn is_valid_header_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
}

/// A whole answer.
#[derive(Clone)]
pub struct Response {
    pub(crate) status: StatusCode,
    /// Names in lower case, in the order received.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl Response {
    /// An answer built by hand (tests of code that reads answers).
    pub fn new(status: StatusCode, headers: Vec<(String, String)>, body: Vec<u8>) -> Response {
        let headers = headers
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        Response {
            status,
            headers,
            body,
        }
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The first value of header `name` (case-insensitive), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    }

    /// Every header, names in lower case.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn bytes(&self) -> &[u8] {
        &self.body
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.body
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn building_a_request() {
        let r = Request::get("https://h.example/api?x=1")
            .query(&[("path", "/a b&c")])
            .bearer_auth("tok-123")
            .header("Content-Length", "7")
            .json(&serde_json::json!({"k": 1}));
        assert_eq!(
            r.url().unwrap().as_str(),
            "https://h.example/api?x=1&path=%2Fa+b%26c"
        );
        assert_eq!(r.body, br#"{"k":1}"#);
        let names: Vec<&str> = r.headers.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["authorization", "content-type"]);
        let debug = format!("{r:?}");
        assert!(!debug.contains("tok-123"), "{debug}");
    }

    #[test]
    fn bad_url_is_kept_for_send_time() {
        let r = Request::get("not a url");
        assert!(r.url().is_none());
        assert!(r.url.unwrap_err().contains("not a url"));
    }

    #[test]
    fn form_bodies_are_encoded() {
        let r = Request::post("https://h/").form(&[("a", "1 2"), ("b", "x&y")]);
        assert_eq!(r.body, b"a=1+2&b=x%26y");
    }

    #[test]
    fn header_values() {
        assert!(is_valid_header_value("Bearer abc.DEF-_~+/="));
        assert!(!is_valid_header_value("abc\r\nX-Evil: 1"));
        assert!(!is_valid_header_value("caf\u{e9}"));
    }

    #[test]
    fn status_classes() {
        assert!(StatusCode::OK.is_success());
        assert!(StatusCode::NOT_FOUND.is_client_error());
        assert!(StatusCode::BAD_GATEWAY.is_server_error());
        assert_eq!(StatusCode::from_u16(42), None);
        assert_eq!(StatusCode::TOO_MANY_REQUESTS, 429);
    }
}
