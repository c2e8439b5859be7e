//! HTTP/1.1 on one connection (RFC 9112): writing a request, reading the answer with its
//! body framed by `Content-Length`, chunked transfer coding or the end of the connection.

use std::io;

use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt,
};

use super::message::{is_valid_header_value, Method, Request, Response, StatusCode};

/// Larger answer heads are refused: no API we call sends anything near this.
const MAX_HEAD: usize = 64 * 1024;
/// Larger bodies are refused rather than held in memory.
pub(crate) const MAX_BODY: usize = 256 * 1024 * 1024;

/// How the request line names the target.
pub(crate) enum Target {
    /// `/path?query`: to the origin server, or through a tunnel.
    Origin,
    /// The whole URL: to a forward proxy, for plain http.
    Absolute,
}

/// Why a request was not written.
#[derive(Debug)]
pub(crate) enum WriteError {
    /// The connection refused the bytes (closed or reset).
    Io,
    /// The request is unusable as given (a header value with a line break…).
    Invalid(String),
}

/// Why no whole answer was read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The connection closed (or was reset: the detail says which) before a single byte of
    /// the answer arrived.
    ClosedBeforeAnswer(String),
    /// The answer broke off or is not HTTP.
    Broken(String),
}

/// Writes the request: head and body in one buffer, so small requests are one packet.
pub(crate) async fn write_request<W: AsyncWrite + Unpin>(
    io: &mut W,
    request: &Request,
    url: &url::Url,
    target: Target,
    user_agent: &str,
    extra: &[(&str, &str)],
) -> Result<(), WriteError> {
    let mut head = String::with_capacity(256);
    let target = match target {
        Target::Origin => &url[url::Position::BeforePath..url::Position::AfterQuery],
        Target::Absolute => &url[..url::Position::AfterQuery],
    };
    head.push_str(request.method.as_str());
    head.push(' ');
    head.push_str(target);
    head.push_str(" HTTP/1.1\r\nhost: ");
    head.push_str(&host_header(url));
    head.push_str("\r\nuser-agent: ");
    head.push_str(user_agent);
    head.push_str("\r\n");
    for header in &request.headers {
        if !is_token(&header.name) {
            return Err(WriteError::Invalid(format!(
                "'{}' is not a valid header name",
                header.name
            )));
        }
        if !is_valid_header_value(&header.value) {
            return Err(WriteError::Invalid(format!(
                "the value of header '{}' contains a line break or a non-ASCII character",
                header.name
            )));
        }
        push_header(&mut head, &header.name, &header.value);
    }
    for (name, value) in extra {
        push_header(&mut head, name, value);
    }
    let has_body = !request.body.is_empty()
        || matches!(request.method, Method::POST | Method::PUT | Method::PATCH);
    if has_body {
        push_header(&mut head, "content-length", &request.body.len().to_string());
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&request.body);
    io.write_all(&bytes).await.map_err(|_| WriteError::Io)?;
    io.flush().await.map_err(|_| WriteError::Io)
}

/// An RFC 9110 token (header names): visible ASCII except separators.
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn push_header(head: &mut String, name: &str, value: &str) {
    head.push_str(name);
    head.push_str(": ");
    head.push_str(value);
    head.push_str("\r\n");
}

/// `host[:port]`, the port only when it is not the scheme's default.
pub(crate) fn host_header(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// A parsed answer head.
pub(crate) struct Head {
    pub status: StatusCode,
    pub headers: Vec<(String, String)>,
    /// HTTP/1.0 answers close the connection unless they say otherwise.
    pub http10: bool,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// Whether the connection may carry another request after this answer.
    fn keeps_alive(&self) -> bool {
        if self.has_token("connection", "close") {
            return false;
        }
        !self.http10 || self.has_token("connection", "keep-alive")
    }
}

/// Reads one answer head (status line and headers). `Err(ClosedBeforeAnswer)`: the connection
/// closed or was reset before any byte came.
pub(crate) async fn read_head<R: AsyncBufRead + Unpin>(io: &mut R) -> Result<Head, ReadError> {
    let mut raw = Vec::with_capacity(1024);
    loop {
        let before = raw.len();
        let read = io
            .take((MAX_HEAD - before) as u64 + 1)
            .read_until(b'\n', &mut raw)
            .await;
        let n = match read {
            Ok(n) => n,
            // A reset before any byte of the answer is as good as closed: the caller decides
            // whether the request may go again on a fresh connection.
            Err(e) if raw.is_empty() => return Err(ReadError::ClosedBeforeAnswer(e.to_string())),
            Err(e) => return Err(ReadError::Broken(e.to_string())),
        };
        if n == 0 {
            if raw.is_empty() {
                return Err(ReadError::ClosedBeforeAnswer(
                    "the server closed the connection without answering".into(),
                ));
            }
            return Err(ReadError::Broken(
                "the connection closed in the middle of the answer's headers".into(),
            ));
        }
        if raw.len() > MAX_HEAD {
            return Err(ReadError::Broken(
                "the answer's headers are larger than 64 KiB".into(),
            ));
        }
        let line = &raw[before..];
        if line == b"\r\n" || line == b"\n" {
            // Tolerate empty lines before the status line (RFC 9112 §2.2).
            if before == 0 {
                raw.clear();
                continue;
            }
            break;
        }
    }
    parse_head(&raw)
}

fn parse_head(raw: &[u8]) -> Result<Head, ReadError> {
    // Header values are ASCII in practice; other bytes are kept as replacement characters
    // rather than failing the whole answer.
    let text = String::from_utf8_lossy(raw);
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let status_line = lines.next().unwrap_or_default();
    let bad = || {
        ReadError::Broken(format!(
            "not an HTTP answer: '{}'",
            truncate(status_line, 80)
        ))
    };
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().ok_or_else(bad)?;
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        _ => return Err(bad()),
    };
    let status = parts
        .next()
        .filter(|c| c.len() == 3)
        .and_then(|c| c.parse::<u16>().ok())
        .and_then(StatusCode::from_u16)
        .ok_or_else(bad)?;
    let mut headers = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        if line.starts_with([' ', '\t']) {
            return Err(ReadError::Broken(
                "the answer folds a header over lines, which HTTP/1.1 forbids".into(),
            ));
        }
        let (name, value) = line.split_once(':').ok_or_else(|| {
            ReadError::Broken(format!("malformed header line '{}'", truncate(line, 80)))
        })?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    Ok(Head {
        status,
        headers,
        http10,
    })
}

fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// Reads a whole answer to `method`, skipping interim (1xx) answers. Returns it and whether
/// the connection may be used again.
pub(crate) async fn read_response<R: AsyncBufRead + Unpin>(
    io: &mut R,
    method: Method,
) -> Result<(Response, bool), ReadError> {
    let mut first = true;
    let head = loop {
        let head = match read_head(io).await {
            Ok(head) => head,
            Err(ReadError::ClosedBeforeAnswer(_)) if !first => {
                return Err(ReadError::Broken(
                    "the connection closed after an interim answer".into(),
                ))
            }
            Err(e) => return Err(e),
        };
        first = false;
        if !head.status.is_informational() {
            break head;
        }
    };
    let chunked = head.has_token("transfer-encoding", "chunked");
    // Both framings at once is a message smuggling risk: read it chunked, then close
    // (RFC 9112 §6.3).
    let mut reusable = head.keeps_alive() && !(chunked && head.header("content-length").is_some());
    let no_body = method == Method::HEAD
        || head.status == StatusCode::NO_CONTENT
        || head.status == StatusCode::NOT_MODIFIED;
    let body = if no_body {
        Vec::new()
    } else if chunked {
        read_chunked(io).await?
    } else if let Some(length) = head.header("content-length") {
        let length = length
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| length.parse::<usize>().ok())
            .flatten()
            .ok_or_else(|| {
                ReadError::Broken(format!("invalid Content-Length '{}'", truncate(length, 40)))
            })?;
        if length > MAX_BODY {
            return Err(too_large());
        }
        read_exactly(io, length).await.map_err(|_| {
            ReadError::Broken(format!("the answer was cut off before its {length} bytes"))
        })?
    } else {
        // No framing: the body ends with the connection.
        reusable = false;
        let mut body = Vec::new();
        io.take(MAX_BODY as u64 + 1)
            .read_to_end(&mut body)
            .await
            .map_err(|e| ReadError::Broken(e.to_string()))?;
        if body.len() > MAX_BODY {
            return Err(too_large());
        }
        body
    };
    Ok((Response::new(head.status, head.headers, body), reusable))
}

/// Reads `length` bytes, growing the buffer as they arrive rather than trusting the announced
/// length with memory up front.
async fn read_exactly<R: AsyncRead + Unpin>(io: &mut R, length: usize) -> io::Result<Vec<u8>> {
    let mut body = Vec::with_capacity(length.min(1 << 20));
    io.take(length as u64).read_to_end(&mut body).await?;
    if body.len() == length {
        Ok(body)
    } else {
        Err(io::ErrorKind::UnexpectedEof.into())
    }
}

fn too_large() -> ReadError {
    ReadError::Broken(format!("the answer is larger than {} MiB", MAX_BODY >> 20))
}

async fn read_chunked<R: AsyncBufRead + Unpin>(io: &mut R) -> Result<Vec<u8>, ReadError> {
    let cut = || ReadError::Broken("the answer was cut off in the middle of a chunk".into());
    let mut body = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        io.take(1024)
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| ReadError::Broken(e.to_string()))?;
        if !line.ends_with(b"\n") {
            return Err(cut());
        }
        let text = std::str::from_utf8(&line).map_err(|_| cut())?;
        let size_text = text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| {
            ReadError::Broken(format!("invalid chunk size '{}'", truncate(size_text, 20)))
        })?;
        if size == 0 {
            // Trailers, up to the empty line.
            loop {
                line.clear();
                io.take(MAX_HEAD as u64)
                    .read_until(b'\n', &mut line)
                    .await
                    .map_err(|e| ReadError::Broken(e.to_string()))?;
                if line.is_empty() {
                    return Err(cut());
                }
                if line == b"\r\n" || line == b"\n" {
                    return Ok(body);
                }
            }
        }
        // Checked before any arithmetic: the size is the server's claim.
        if size > MAX_BODY - body.len() {
            return Err(too_large());
        }
        let start = body.len();
        io.take(size as u64)
            .read_to_end(&mut body)
            .await
            .map_err(|_| cut())?;
        if body.len() - start != size {
            return Err(cut());
        }
        let mut crlf = [0u8; 2];
        io.read_exact(&mut crlf).await.map_err(|_| cut())?;
        if &crlf != b"\r\n" {
            return Err(ReadError::Broken("a chunk does not end with CRLF".into()));
        }
    }
}

/// Sends `CONNECT authority` on `io` (a proxy or the task launcher's TLS tunnel) and reads
/// the answer. `Ok(())` on 2xx; otherwise the status and the body as text.
pub(crate) async fn connect_tunnel<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut tokio::io::BufReader<S>,
    authority: &str,
    authorization: Option<&str>,
) -> Result<(), TunnelRefused> {
    let mut head = format!("CONNECT {authority} HTTP/1.1\r\nhost: {authority}\r\n");
    if let Some(value) = authorization {
        push_header(&mut head, "proxy-authorization", value);
    }
    head.push_str("\r\n");
    let io_error = |e: io::Error| TunnelRefused::Io(e.to_string());
    io.get_mut()
        .write_all(head.as_bytes())
        .await
        .map_err(io_error)?;
    io.get_mut().flush().await.map_err(io_error)?;
    let head = match read_head(io).await {
        Ok(head) => head,
        Err(ReadError::Broken(e) | ReadError::ClosedBeforeAnswer(e)) => {
            return Err(TunnelRefused::Io(e))
        }
    };
    if head.status.is_success() {
        return Ok(());
    }
    // The refusal's explanation, if it has a short one.
    let mut message = String::new();
    if let Some(length) = head
        .header("content-length")
        .and_then(|l| l.parse::<usize>().ok())
    {
        if let Ok(body) = read_exactly(io, length.min(4096)).await {
            message = String::from_utf8_lossy(&body).trim().to_owned();
        }
    }
    // The launcher marks the refusals that trying again cannot fix.
    let permanent = head
        .header("x-tunnel-retry")
        .is_some_and(|v| v.eq_ignore_ascii_case("no"));
    Err(TunnelRefused::Status {
        status: head.status,
        message,
        permanent,
    })
}

/// Why a CONNECT did not open a tunnel.
#[derive(Debug)]
pub(crate) enum TunnelRefused {
    Io(String),
    Status {
        status: StatusCode,
        message: String,
        /// Trying again cannot help (a certificate or a setting is wrong).
        permanent: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::BufReader;

    async fn read(raw: &[u8], method: Method) -> Result<(Response, bool), ReadError> {
        read_response(&mut BufReader::new(raw), method).await
    }

    #[tokio::test]
    async fn content_length_and_keep_alive() {
        let (r, reuse) = read(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b \r\n\r\nhello",
            Method::GET,
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text(), "hello");
        assert_eq!(r.header("x-a"), Some("b"));
        assert!(reuse);
    }

    #[tokio::test]
    async fn chunked_with_extensions_and_trailers() {
        let raw = b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nX-T: 1\r\n\r\n";
        let (r, reuse) = read(raw, Method::POST).await.unwrap();
        assert_eq!(r.text(), "Wikipedia");
        assert!(reuse);
    }

    #[tokio::test]
    async fn interim_answers_are_skipped_and_close_is_honoured() {
        let raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 2\r\n\r\nno";
        let (r, reuse) = read(raw, Method::GET).await.unwrap();
        assert_eq!(r.status(), 404);
        assert!(!reuse);
    }

    #[tokio::test]
    async fn unframed_bodies_end_with_the_connection() {
        let (r, reuse) = read(b"HTTP/1.0 200 OK\r\n\r\nall of it", Method::GET)
            .await
            .unwrap();
        assert_eq!(r.text(), "all of it");
        assert!(!reuse);
    }

    #[tokio::test]
    async fn both_framings_are_read_chunked_and_the_connection_closed() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
        let (r, reuse) = read(raw, Method::GET).await.unwrap();
        assert_eq!(r.text(), "ok");
        assert!(!reuse);
    }

    #[tokio::test]
    async fn header_bytes_that_are_not_utf8_do_not_fail_the_answer() {
        let raw = b"HTTP/1.1 200 OK\r\nX-Name: caf\xe9\r\nContent-Length: 2\r\n\r\nok";
        let (r, _) = read(raw, Method::GET).await.unwrap();
        assert_eq!(r.text(), "ok");
        assert_eq!(r.header("x-name"), Some("caf\u{fffd}"));
    }

    #[tokio::test]
    async fn head_and_204_have_no_body() {
        let (r, reuse) = read(
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
            Method::HEAD,
        )
        .await
        .unwrap();
        assert!(r.bytes().is_empty());
        assert!(reuse);
        let (r, _) = read(b"HTTP/1.1 204 No Content\r\n\r\n", Method::DELETE)
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
    }

    #[tokio::test]
    async fn broken_answers_are_errors_not_panics() {
        assert!(matches!(
            read(b"", Method::GET).await,
            Err(ReadError::ClosedBeforeAnswer(_))
        ));
        for raw in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            b"SSH-2.0-OpenSSH\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Le",
            b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello",
            // A chunk size that would overflow the body length.
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\nffffffffffffffff\r\n",
            // A huge announced length with nothing behind it: refused or cut off, never
            // allocated up front.
            b"HTTP/1.1 200 OK\r\nContent-Length: 268435456\r\n\r\nx",
        ] {
            assert!(
                matches!(read(raw, Method::GET).await, Err(ReadError::Broken(_))),
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[tokio::test]
    async fn request_heads() {
        let url = url::Url::parse("http://127.0.0.1:8080/api/2.0/x?y=1#frag").unwrap();
        let request = Request::post(url.as_str())
            .bearer_auth("t")
            .json(&serde_json::json!({}));
        let mut out = Vec::new();
        write_request(&mut out, &request, &url, Target::Origin, "ua/1", &[])
            .await
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "POST /api/2.0/x?y=1 HTTP/1.1\r\nhost: 127.0.0.1:8080\r\nuser-agent: ua/1\r\nauthorization: Bearer t\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
        );
        let mut out = Vec::new();
        let get = Request::get(url.as_str());
        write_request(
            &mut out,
            &get,
            &url,
            Target::Absolute,
            "ua/1",
            &[("proxy-authorization", "Basic x")],
        )
        .await
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("GET http://127.0.0.1:8080/api/2.0/x?y=1 HTTP/1.1\r\n"),
            "{text}"
        );
        assert!(!text.contains("content-length"), "{text}");
        assert!(text.contains("proxy-authorization: Basic x\r\n"), "{text}");
        let bad_name = Request::get(url.as_str()).header("x y", "1");
        assert!(matches!(
            write_request(&mut Vec::new(), &bad_name, &url, Target::Origin, "ua", &[]).await,
            Err(WriteError::Invalid(_))
        ));
        let evil = Request::get(url.as_str()).header("x", "a\r\nb: c");
        assert!(matches!(
            write_request(&mut Vec::new(), &evil, &url, Target::Origin, "ua", &[]).await,
            Err(WriteError::Invalid(_))
        ));
    }
}
