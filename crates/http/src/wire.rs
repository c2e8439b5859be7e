//! HTTP/1.1 on one connection (RFC 9112): writing a request, reading the answer with its
//! body framed by `Content-Length`, chunked transfer coding or the end of the connection.

use std::io;

use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt,
};

use super::message::{is_valid_header_value, Method, Request, Response, StatusCode};

/// Larger answer heads are refused: no API we call sends anything near this.
const MAX_HEAD: usize = 64 * 1024;

/// How the request line names the target.
pub(crate) enum Target {
    /// `/path?query`: to the origin server, or through a tunnel.
    Origin,
    /// The whole URL: to a forward proxy, for plain http (builds with the in-process proxy).
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
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
    /// Names in lower case, values trimmed, in the order received.
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

    /// Every comma-separated element of every `name` header, trimmed (RFC 9110 §5.3).
    fn list<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(k, _)| k == name)
            .flat_map(|(_, v)| v.split(','))
            .map(|t| t.trim_matches([' ', '\t']))
    }

    fn has_token(&self, name: &str, token: &str) -> bool {
        self.list(name).any(|t| t.eq_ignore_ascii_case(token))
    }

    /// Whether the connection may carry another request after this answer.
    fn keeps_alive(&self) -> bool {
        if self.has_token("connection", "close") {
            return false;
        }
        !self.http10 || self.has_token("connection", "keep-alive")
    }
}

/// How an answer's body is delimited (RFC 9112 §6.3).
#[derive(Debug, PartialEq, Eq)]
enum Framing {
    /// No body: an answer to HEAD, 204 or 304.
    Empty,
    Length(u64),
    Chunked,
    /// The body ends when the server closes the connection.
    Close,
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
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                return Err(ReadError::Broken(e.to_string()))
            }
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

/// At most this many header fields in an answer head (hyper's default too).
const MAX_HEADERS: usize = 100;

/// Parses a whole head, up to and including its empty line, with `httparse`: a status line
/// of HTTP/1.0 or 1.1, header names that are tokens, values without control characters.
fn parse_head(raw: &[u8]) -> Result<Head, ReadError> {
    let status_line = || {
        let end = raw.iter().position(|&b| b == b'\n').unwrap_or(raw.len());
        truncate(String::from_utf8_lossy(&raw[..end]).trim_end(), 80)
    };
    // An obsolete line folding: httparse calls it a bad header name; say what it is.
    if raw
        .split(|&b| b == b'\n')
        .skip(1)
        .any(|line| line.starts_with(b" ") || line.starts_with(b"\t"))
    {
        return Err(ReadError::Broken(
            "the answer folds a header over lines, which HTTP/1.1 forbids".into(),
        ));
    }
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut slots);
    match parsed.parse(raw) {
        Ok(httparse::Status::Complete(_)) => {}
        // read_head stops at the empty line, so the head is always complete here.
        Ok(httparse::Status::Partial) => {
            return Err(ReadError::Broken(
                "the answer's headers are incomplete".into(),
            ))
        }
        Err(httparse::Error::Version | httparse::Error::Status) => {
            return Err(ReadError::Broken(format!(
                "not an HTTP/1.1 answer: '{}'",
                status_line()
            )))
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(ReadError::Broken(format!(
                "the answer has more than {MAX_HEADERS} headers"
            )))
        }
        Err(e) => {
            return Err(ReadError::Broken(format!(
                "the answer's headers are malformed: {e}"
            )))
        }
    }
    let status = parsed
        .code
        .and_then(StatusCode::from_u16)
        .ok_or_else(|| ReadError::Broken(format!("not an HTTP answer: '{}'", status_line())))?;
    let headers = parsed
        .headers
        .iter()
        .map(|h| {
            // Header values are ASCII in practice; other bytes (obs-text) are kept as
            // replacement characters rather than failing the whole answer.
            let value = String::from_utf8_lossy(h.value);
            (
                h.name.to_ascii_lowercase(),
                value.trim_matches([' ', '\t']).to_owned(),
            )
        })
        .collect();
    Ok(Head {
        status,
        headers,
        http10: parsed.version == Some(0),
    })
}

/// How the body of an answer to `method` with `head` is delimited, and whether the
/// connection may be used again afterwards (RFC 9112 §6.3 and §6.1).
fn framing(head: &Head, method: Method) -> Result<(Framing, bool), ReadError> {
    let keeps_alive = head.keeps_alive();
    if method == Method::HEAD
        || head.status == StatusCode::NO_CONTENT
        || head.status == StatusCode::NOT_MODIFIED
    {
        return Ok((Framing::Empty, keeps_alive));
    }
    if head.headers.iter().any(|(k, _)| k == "transfer-encoding") {
        let codings: Vec<&str> = head.list("transfer-encoding").collect();
        // We send no TE header, so chunked is the only transfer coding a server may apply
        // (RFC 9112 §7.4), and it must be the last one, applied once (§6.1, §7). A final
        // coding other than chunked would make the body last until the connection closes
        // (§6.3), encoded in a way this client cannot undo: refused, like any coding but
        // chunked, rather than handed over as if it were the body.
        let only_chunked = codings.len() == 1 && codings[0].eq_ignore_ascii_case("chunked");
        if !only_chunked {
            return Err(ReadError::Broken(format!(
                "the answer uses Transfer-Encoding '{}'; only 'chunked' is understood",
                truncate(&codings.join(", "), 60)
            )));
        }
        // Both framings at once is a smuggling risk: Transfer-Encoding wins, and the
        // connection is not trusted with another request (§6.3). So is Transfer-Encoding in
        // an HTTP/1.0 answer (§6.1).
        let both = head.header("content-length").is_some();
        return Ok((Framing::Chunked, keeps_alive && !both && !head.http10));
    }
    let mut length: Option<u64> = None;
    for value in head.list("content-length") {
        // 1*DIGIT, no sign, no spaces inside; repeated values must agree (§6.3 item 5).
        let parsed = (!value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()))
            .then(|| value.parse::<u64>().ok())
            .flatten()
            .ok_or_else(|| {
                ReadError::Broken(format!("invalid Content-Length '{}'", truncate(value, 40)))
            })?;
        match length {
            Some(first) if first != parsed => {
                return Err(ReadError::Broken(format!(
                    "the answer has conflicting Content-Length values {first} and {parsed}"
                )))
            }
            _ => length = Some(parsed),
        }
    }
    Ok(match length {
        Some(n) => (Framing::Length(n), keeps_alive),
        // No framing: the body ends with the connection.
        None => (Framing::Close, false),
    })
}

fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// Reads a whole answer to `method`, skipping interim (1xx) answers, refusing a body larger
/// than `max_body` bytes. Returns it and whether the connection may be used again.
pub(crate) async fn read_response<R: AsyncBufRead + Unpin>(
    io: &mut R,
    method: Method,
    max_body: usize,
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
    let (framing, reusable) = framing(&head, method)?;
    let body = match framing {
        Framing::Empty => Vec::new(),
        Framing::Chunked => read_chunked(io, max_body).await?,
        Framing::Length(length) => {
            if length > max_body as u64 {
                return Err(too_large(max_body));
            }
            read_exactly(io, length as usize).await.map_err(|e| {
                ReadError::Broken(if e.kind() == io::ErrorKind::TimedOut {
                    e.to_string()
                } else {
                    format!("the answer was cut off before its {length} bytes")
                })
            })?
        }
        Framing::Close => {
            let mut body = Vec::new();
            io.take(max_body as u64 + 1)
                .read_to_end(&mut body)
                .await
                .map_err(|e| ReadError::Broken(e.to_string()))?;
            if body.len() > max_body {
                return Err(too_large(max_body));
            }
            body
        }
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

fn too_large(limit: usize) -> ReadError {
    let limit = if limit % (1 << 20) == 0 {
        format!("{} MiB", limit >> 20)
    } else {
        format!("{limit} bytes")
    };
    ReadError::Broken(format!(
        "the answer is larger than {limit}, the most this request accepts"
    ))
}

/// Longest chunk-size line (size and extensions) accepted.
const MAX_CHUNK_LINE: usize = 4096;

/// Reads one line ending in CRLF, at most `limit` bytes with the CRLF, into `line` without
/// its CRLF. `what` names the line in errors.
async fn read_crlf_line<R: AsyncBufRead + Unpin>(
    io: &mut R,
    line: &mut Vec<u8>,
    limit: usize,
    what: &str,
) -> Result<(), ReadError> {
    line.clear();
    io.take(limit as u64)
        .read_until(b'\n', line)
        .await
        .map_err(|e| ReadError::Broken(e.to_string()))?;
    if !line.ends_with(b"\n") {
        return Err(ReadError::Broken(if line.len() >= limit {
            format!("the answer has a {what} longer than {limit} bytes")
        } else {
            "the answer was cut off in the middle of a chunk".into()
        }));
    }
    if !line.ends_with(b"\r\n") {
        return Err(ReadError::Broken(format!(
            "the answer has a {what} that does not end with CRLF"
        )));
    }
    line.truncate(line.len() - 2);
    Ok(())
}

/// The size of a chunk from its size line (RFC 9112 §7.1): hex digits only (no sign, no
/// prefix, no space before), the value checked for overflow, then optional whitespace and
/// chunk extensions, which are ignored.
fn chunk_size(line: &[u8]) -> Result<u64, ReadError> {
    let bad = || {
        ReadError::Broken(format!(
            "invalid chunk size '{}'",
            truncate(&String::from_utf8_lossy(line), 20)
        ))
    };
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(bad());
    }
    let mut size: u64 = 0;
    for &b in &line[..digits] {
        let digit = (b as char).to_digit(16).unwrap_or_default();
        size = size
            .checked_mul(16)
            .and_then(|s| s.checked_add(u64::from(digit)))
            .ok_or_else(bad)?;
    }
    let rest = &line[digits..];
    let rest = &rest[rest
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count()..];
    // Extensions: `;name[=value]…`, visible characters, spaces and tabs only.
    let extensions_ok = rest.is_empty()
        || (rest[0] == b';'
            && rest
                .iter()
                .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80));
    if !extensions_ok {
        return Err(bad());
    }
    Ok(size)
}

/// Reads a chunked body (RFC 9112 §7.1): chunks, the last chunk, trailer fields (checked,
/// then dropped) and the final CRLF.
pub(crate) async fn read_chunked<R: AsyncBufRead + Unpin>(
    io: &mut R,
    max_body: usize,
) -> Result<Vec<u8>, ReadError> {
    let cut = || ReadError::Broken("the answer was cut off in the middle of a chunk".into());
    let mut body = Vec::new();
    let mut line = Vec::new();
    loop {
        read_crlf_line(io, &mut line, MAX_CHUNK_LINE, "chunk-size line").await?;
        let size = chunk_size(&line)?;
        if size == 0 {
            return read_trailers(io).await.map(|()| body);
        }
        // Checked before any allocation: the size is the server's claim.
        if size > (max_body - body.len()) as u64 {
            return Err(too_large(max_body));
        }
        let size = size as usize;
        let start = body.len();
        io.take(size as u64)
            .read_to_end(&mut body)
            .await
            .map_err(|e| ReadError::Broken(e.to_string()))?;
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

/// The trailer section after the last chunk, up to its empty line: well-formed fields
/// (checked with httparse like the head's), at most 64 KiB.
async fn read_trailers<R: AsyncBufRead + Unpin>(io: &mut R) -> Result<(), ReadError> {
    let mut section = Vec::new();
    let mut line = Vec::new();
    loop {
        let room = MAX_HEAD.saturating_sub(section.len());
        if room < 2 {
            return Err(ReadError::Broken(
                "the answer's trailers are larger than 64 KiB".into(),
            ));
        }
        read_crlf_line(io, &mut line, room, "trailer line").await?;
        section.extend_from_slice(&line);
        section.extend_from_slice(b"\r\n");
        if line.is_empty() {
            break;
        }
    }
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    match httparse::parse_headers(&section, &mut slots) {
        Ok(httparse::Status::Complete(_)) => Ok(()),
        Ok(httparse::Status::Partial) => Err(ReadError::Broken(
            "the answer's trailers are incomplete".into(),
        )),
        Err(e) => Err(ReadError::Broken(format!(
            "the answer's trailers are malformed: {e}"
        ))),
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
mod reference;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DEFAULT_MAX_BODY;
    use tokio::io::BufReader;

    async fn read(raw: &[u8], method: Method) -> Result<(Response, bool), ReadError> {
        read_response(&mut BufReader::new(raw), method, DEFAULT_MAX_BODY).await
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

    /// The error of reading `raw`, which must fail as a broken answer.
    async fn refused(raw: &[u8], max_body: usize) -> String {
        match read_response(&mut BufReader::new(raw), Method::GET, max_body).await {
            Err(ReadError::Broken(detail)) => detail,
            Err(other) => panic!("{other:?} for {}", String::from_utf8_lossy(raw)),
            Ok((r, _)) => panic!(
                "accepted {:?} for {}",
                r.text(),
                String::from_utf8_lossy(raw)
            ),
        }
    }

    #[tokio::test]
    async fn conflicting_content_lengths_are_refused() {
        for raw in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nokk"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nokk",
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\ncontent-length: 2\r\n\r\nokk",
        ] {
            let e = refused(raw, DEFAULT_MAX_BODY).await;
            assert!(e.contains("conflicting Content-Length"), "{e}");
        }
        // The same value repeated is one length (RFC 9112 §6.3).
        for raw in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok",
        ] {
            let (r, reuse) = read(raw, Method::GET).await.unwrap();
            assert_eq!(r.text(), "ok");
            assert!(reuse);
        }
        // A list element that is not a number is as bad as a lone one.
        let e = refused(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2,\r\n\r\nok",
            DEFAULT_MAX_BODY,
        )
        .await;
        assert!(e.contains("invalid Content-Length"), "{e}");
    }

    #[tokio::test]
    async fn transfer_codings_other_than_a_final_chunked_are_refused() {
        for (coding, named) in [
            ("chunked, gzip", "chunked, gzip"),
            ("gzip", "gzip"),
            ("gzip, chunked", "gzip, chunked"),
            ("chunked, chunked", "chunked, chunked"),
            ("identity", "identity"),
        ] {
            let raw = format!(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: {coding}\r\n\r\n2\r\nok\r\n0\r\n\r\n"
            );
            let e = refused(raw.as_bytes(), DEFAULT_MAX_BODY).await;
            assert!(
                e.contains(&format!("Transfer-Encoding '{named}'")),
                "{coding}: {e}"
            );
        }
        // Two header lines are one list: chunked must still come last, once.
        let e = refused(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
            DEFAULT_MAX_BODY,
        )
        .await;
        assert!(e.contains("'chunked, gzip'"), "{e}");
        // Case does not matter for the coding's name.
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
        assert_eq!(read(raw, Method::GET).await.unwrap().0.text(), "ok");
    }

    #[tokio::test]
    async fn chunked_in_an_http10_answer_is_read_then_the_connection_closed() {
        let raw = b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
        let (r, reuse) = read(raw, Method::GET).await.unwrap();
        assert_eq!(r.text(), "ok");
        assert!(!reuse);
    }

    #[tokio::test]
    async fn chunk_sizes_are_hex_digits_only() {
        for size in [
            "+2",
            "-2",
            "0x2",
            " 2",
            "2x",
            "2 x",
            "",
            // Overflows 64 bits: refused, not wrapped around.
            "10000000000000002",
            "2;ext\x01",
        ] {
            let raw = format!(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{size}\r\nok\r\n0\r\n\r\n"
            );
            let e = refused(raw.as_bytes(), DEFAULT_MAX_BODY).await;
            assert!(e.contains("invalid chunk size"), "{size:?}: {e}");
        }
        // A size line must end with CRLF.
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\nok\r\n0\r\n\r\n";
        let e = refused(raw, DEFAULT_MAX_BODY).await;
        assert!(e.contains("CRLF"), "{e}");
        // What RFC 9112 §7.1 allows: leading zeros, extensions, whitespace before them.
        for size in [
            "002",
            "2;name=value",
            "2 ;a;b=\"q s\"",
            "2\t",
            "0000000000000000002",
        ] {
            let raw = format!(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{size}\r\nok\r\n0\r\n\r\n"
            );
            let (r, _) = read(raw.as_bytes(), Method::GET).await.unwrap();
            assert_eq!(r.text(), "ok", "{size:?}");
        }
    }

    #[tokio::test]
    async fn malformed_trailers_are_refused() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nbad trailer\r\n\r\n";
        let e = refused(raw, DEFAULT_MAX_BODY).await;
        assert!(e.contains("trailers are malformed"), "{e}");
    }

    #[tokio::test]
    async fn invalid_header_names_and_values_are_refused() {
        for line in [
            &b"X Y: 1"[..],
            b"X(: 1",
            b": no name",
            b"X-A\x01: 1",
            b"X-A : 1",
            b"X-A: a\x01b",
            b"X-A: a\x7fb",
            b"X-A: a\rb",
        ] {
            let mut raw = b"HTTP/1.1 200 OK\r\n".to_vec();
            raw.extend_from_slice(line);
            raw.extend_from_slice(b"\r\nContent-Length: 2\r\n\r\nok");
            let e = refused(&raw, DEFAULT_MAX_BODY).await;
            assert!(
                e.contains("headers are malformed"),
                "{}: {e}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[tokio::test]
    async fn bodies_past_the_limit_are_refused_with_the_limit_named() {
        let big = DEFAULT_MAX_BODY + 1;
        let raw = format!("HTTP/1.1 200 OK\r\nContent-Length: {big}\r\n\r\n");
        let e = refused(raw.as_bytes(), DEFAULT_MAX_BODY).await;
        assert!(e.contains("larger than 32 MiB"), "{e}");
        // A request's own limit, whatever the framing.
        for raw in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello world",
        ] {
            let e = refused(raw, 10).await;
            assert!(e.contains("larger than 10 bytes"), "{e}");
            let (r, _) = read_response(&mut BufReader::new(raw), Method::GET, 11)
                .await
                .unwrap();
            assert_eq!(r.text(), "hello world");
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
