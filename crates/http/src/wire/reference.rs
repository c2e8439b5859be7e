//! Property tests of the answer reader against a reference: hyper's HTTP/1.1 client
//! (`hyper::client::conn::http1`, on the same `httparse`) reading the same bytes over an
//! in-memory pipe. Generated answers vary the status line, header case and whitespace,
//! interim answers, the framing (Content-Length, chunked with random chunk splits,
//! extensions and trailers, or the end of the connection) and how the bytes arrive; some are
//! then broken on purpose.
//!
//! The property: whatever hyper refuses, we refuse; whatever both read, we read the same
//! status, headers and body. We refuse more than hyper only where the module says so:
//! transfer codings other than one final `chunked` (hyper reads them until the connection
//! closes and hands over the coded bytes). Cases: `PROPTEST_CASES` (256 by default).

use std::pin::Pin;
use std::task::{Context, Poll};

use http_body_util::BodyExt;
use hyper::body::Bytes;
use proptest::prelude::*;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader, ReadBuf};

use super::{read_response, ReadError};
use crate::{Method, DEFAULT_MAX_BODY};

/// What an answer reader made of some bytes: status, headers other than the framing ones
/// (sorted, names in lower case, values trimmed), body.
type Read = (u16, Vec<(String, String)>, Vec<u8>);

fn comparable(status: u16, headers: Vec<(String, String)>, body: Vec<u8>) -> Read {
    let mut headers: Vec<(String, String)> = headers
        .into_iter()
        .map(|(k, v)| {
            (
                k.to_ascii_lowercase(),
                v.trim_matches([' ', '\t']).to_owned(),
            )
        })
        .filter(|(k, _)| k != "content-length" && k != "transfer-encoding")
        .collect();
    headers.sort();
    (status, headers, body)
}

/// A reader handing out at most `step` bytes per read, so that every boundary (a line, a
/// chunk, the head) falls between two reads some of the time.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl AsyncRead for Trickle<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = self.step.min(self.data.len()).min(buf.remaining());
        buf.put_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Poll::Ready(Ok(()))
    }
}

async fn ours(raw: &[u8], step: usize) -> Result<Read, ReadError> {
    let mut io = BufReader::with_capacity(64, Trickle { data: raw, step });
    let (response, _) = read_response(&mut io, Method::GET, DEFAULT_MAX_BODY).await?;
    let headers = response
        .headers()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    Ok(comparable(
        response.status().as_u16(),
        headers,
        response.into_bytes(),
    ))
}

/// hyper's reading of `raw`, sent as the answer to a GET, then the connection closed.
async fn reference(raw: Vec<u8>) -> Result<Read, String> {
    let (client, mut server) = tokio::io::duplex(1 << 16);
    tokio::spawn(async move {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match server.read(&mut byte).await {
                Ok(1) => head.push(byte[0]),
                _ => return,
            }
        }
        let _ = server.write_all(&raw).await;
        let _ = server.shutdown().await;
    });
    let io = hyper_util::rt::TokioIo::new(client);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let request = hyper::Request::get("/")
        .header("host", "127.0.0.1")
        .body(http_body_util::Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes()
        .to_vec();
    Ok(comparable(status, headers, body))
}

/// How the generated body is delimited.
#[derive(Debug, Clone)]
enum Framing {
    Length,
    Chunked {
        /// Where the body is cut into chunks (positions, unsorted).
        cuts: Vec<usize>,
        /// An extension per chunk, for some.
        extensions: Vec<Option<String>>,
        upper_hex: bool,
        leading_zeros: usize,
        trailers: Vec<(String, String)>,
    },
    /// No framing: the body ends with the connection.
    Close,
}

/// A way to break a generated answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Break {
    None,
    /// A second Content-Length with another value (Length framing).
    ConflictingLength,
    /// The same Content-Length twice, as a list: still valid.
    RepeatedLength,
    /// A transfer coding after chunked, or instead of it.
    CodingNotLast,
    /// Chunked and a Content-Length that is wrong: chunked wins.
    ChunkedAndLength,
    /// A `+` before the first chunk size.
    PlusSign,
    /// A first chunk size of more than 64 bits.
    Overflow,
    /// A header whose name has a space in it.
    BadHeaderName,
    /// The bytes end early (a framed body cut off).
    Truncated,
}

#[derive(Debug, Clone)]
struct Answer {
    http10: bool,
    status: u16,
    reason: &'static str,
    interim: bool,
    /// (name, value, whitespace before the value, whitespace after it)
    headers: Vec<(String, String, &'static str, &'static str)>,
    connection: Option<&'static str>,
    body: Vec<u8>,
    framing: Framing,
    breaking: Break,
    /// How many bytes our reader gets per read.
    step: usize,
    /// Where a truncated answer ends, as a fraction of its length.
    cut_at: f64,
}

impl Answer {
    fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let version = if self.http10 { "HTTP/1.0" } else { "HTTP/1.1" };
        if self.interim {
            out.extend_from_slice(format!("{version} 100 Continue\r\n\r\n").as_bytes());
        }
        let final_head = out.len();
        out.extend_from_slice(format!("{version} {} {}\r\n", self.status, self.reason).as_bytes());
        for (name, value, before, after) in &self.headers {
            out.extend_from_slice(format!("{name}:{before}{value}{after}\r\n").as_bytes());
        }
        if let Some(c) = self.connection {
            out.extend_from_slice(format!("Connection: {c}\r\n").as_bytes());
        }
        if self.breaking == Break::BadHeaderName {
            out.extend_from_slice(b"Bad Name: x\r\n");
        }
        let length = self.body.len();
        match &self.framing {
            Framing::Length => {
                out.extend_from_slice(format!("Content-Length: {length}\r\n").as_bytes());
                match self.breaking {
                    Break::ConflictingLength => out.extend_from_slice(
                        format!("content-length: {}\r\n", length + 1).as_bytes(),
                    ),
                    Break::RepeatedLength => out.extend_from_slice(
                        format!("content-length: {length}, {length}\r\n").as_bytes(),
                    ),
                    _ => {}
                }
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(&self.body);
            }
            Framing::Chunked {
                cuts,
                extensions,
                upper_hex,
                leading_zeros,
                trailers,
            } => {
                let coding = match self.breaking {
                    Break::CodingNotLast => "chunked, gzip",
                    _ => "chunked",
                };
                out.extend_from_slice(format!("Transfer-Encoding: {coding}\r\n").as_bytes());
                if self.breaking == Break::ChunkedAndLength {
                    out.extend_from_slice(format!("Content-Length: {}\r\n", length + 7).as_bytes());
                }
                out.extend_from_slice(b"\r\n");
                let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (length + 1)).collect();
                bounds.push(0);
                bounds.push(length);
                bounds.sort();
                bounds.dedup();
                for (i, pair) in bounds.windows(2).enumerate() {
                    let chunk = &self.body[pair[0]..pair[1]];
                    let mut size = if *upper_hex {
                        format!("{:X}", chunk.len())
                    } else {
                        format!("{:x}", chunk.len())
                    };
                    size.insert_str(0, &"0".repeat(*leading_zeros));
                    if i == 0 {
                        match self.breaking {
                            Break::PlusSign => size.insert(0, '+'),
                            Break::Overflow => size.insert_str(0, "10000000000000000"),
                            _ => {}
                        }
                    }
                    out.extend_from_slice(size.as_bytes());
                    if let Some(Some(ext)) = extensions.get(i) {
                        out.extend_from_slice(ext.as_bytes());
                    }
                    out.extend_from_slice(b"\r\n");
                    out.extend_from_slice(chunk);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n");
                for (name, value) in trailers {
                    out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
                }
                out.extend_from_slice(b"\r\n");
            }
            Framing::Close => {
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(&self.body);
            }
        }
        if self.breaking == Break::Truncated {
            // Somewhere in the body's bytes or its framing, never at the very end.
            let head_end = final_head
                + out[final_head..]
                    .windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .unwrap_or(0)
                + 4;
            let span = out.len() - head_end;
            let keep = head_end + ((span as f64 * self.cut_at) as usize).min(span - 1);
            out.truncate(keep);
        }
        out
    }

    /// Breaks we must refuse whatever hyper does.
    fn must_refuse(&self) -> bool {
        matches!(
            self.breaking,
            Break::ConflictingLength
                | Break::CodingNotLast
                | Break::PlusSign
                | Break::Overflow
                | Break::BadHeaderName
                | Break::Truncated
        )
    }
}

/// A header name of the kinds services send, in random letter case.
fn header_name() -> impl Strategy<Value = String> {
    let names = prop::sample::select(vec![
        "content-type",
        "x-request-id",
        "etag",
        "x-ms-request-id",
        "retry-after",
        "cache-control",
        "x-databricks-org-id",
        "server",
        "date",
        "vary",
        "x-ms-ratelimit-remaining-subscription-reads",
    ]);
    (names, any::<u64>()).prop_map(|(name, case)| {
        name.chars()
            .enumerate()
            .map(|(i, c)| {
                if case >> (i % 64) & 1 == 1 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect()
    })
}

fn lws() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["", " ", "  ", "\t", " \t"])
}

fn framing() -> impl Strategy<Value = Framing> {
    prop_oneof![
        Just(Framing::Length),
        (
            prop::collection::vec(any::<usize>(), 0..6),
            prop::collection::vec(prop::option::of("[ \t]?;[a-z]{1,5}(=[a-z0-9]{1,5})?"), 0..7),
            any::<bool>(),
            0usize..3,
            prop::collection::vec(("x-[a-z]{1,8}", "[!-~]{1,10}"), 0..3),
        )
            .prop_map(|(cuts, extensions, upper_hex, leading_zeros, trailers)| {
                Framing::Chunked {
                    cuts,
                    extensions,
                    upper_hex,
                    leading_zeros,
                    trailers,
                }
            }),
        Just(Framing::Close),
    ]
}

fn answer() -> impl Strategy<Value = Answer> {
    let breaking = prop::sample::select(vec![
        Break::None,
        Break::None,
        Break::None,
        Break::ConflictingLength,
        Break::RepeatedLength,
        Break::CodingNotLast,
        Break::ChunkedAndLength,
        Break::PlusSign,
        Break::Overflow,
        Break::BadHeaderName,
        Break::Truncated,
    ]);
    (
        (
            prop::bool::weighted(0.15),
            prop::sample::select(vec![
                200u16, 201, 202, 204, 301, 304, 400, 404, 409, 429, 500, 503,
            ]),
            prop::sample::select(vec!["OK", "", "Some Reason"]),
            prop::bool::weighted(0.2),
            prop::collection::vec(
                (header_name(), "[!-~]([ -~]{0,20}[!-~])?", lws(), lws()),
                0..6,
            ),
            prop::option::of(prop::sample::select(vec!["keep-alive", "close", "Close"])),
        ),
        prop::collection::vec(any::<u8>(), 0..400),
        framing(),
        breaking,
        1usize..40,
        0.0f64..1.0,
    )
        .prop_map(
            |(
                (http10, status, reason, interim, headers, connection),
                body,
                framing,
                breaking,
                step,
                cut_at,
            )| {
                let mut answer = Answer {
                    http10,
                    status,
                    reason,
                    interim,
                    headers,
                    connection,
                    body,
                    framing,
                    breaking,
                    step,
                    cut_at,
                };
                answer.make_consistent();
                answer
            },
        )
}

impl Answer {
    /// Keeps each break to the framing it belongs to, and out of cases the RFC leaves open.
    fn make_consistent(&mut self) {
        // 204 and 304 have no body, whatever the headers say.
        if matches!(self.status, 204 | 304) {
            self.body.clear();
            self.framing = Framing::Length;
        }
        // Transfer-Encoding in HTTP/1.0 is faulty framing (RFC 9112 §6.1): a unit test covers
        // what we do; hyper and we need not agree on it.
        if self.http10 && matches!(self.framing, Framing::Chunked { .. }) {
            self.framing = Framing::Length;
        }
        let chunked = matches!(self.framing, Framing::Chunked { .. });
        let fits = match self.breaking {
            Break::ConflictingLength | Break::RepeatedLength => {
                matches!(self.framing, Framing::Length)
            }
            Break::CodingNotLast | Break::ChunkedAndLength => chunked,
            // Both break the first chunk of data.
            Break::PlusSign | Break::Overflow => chunked && !self.body.is_empty(),
            // Only framed bodies can be seen to end early; an empty Content-Length body has
            // nothing to cut.
            Break::Truncated => {
                chunked || (matches!(self.framing, Framing::Length) && !self.body.is_empty())
            }
            Break::None | Break::BadHeaderName => true,
        };
        // An answer that has no body has no framing to break (RFC 9112 §6.3 item 1).
        let bodiless = matches!(self.status, 204 | 304) && self.breaking != Break::BadHeaderName;
        if !fits || bodiless {
            self.breaking = Break::None;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        // The default 256, or PROPTEST_CASES.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn we_read_what_hyper_reads_or_refuse_more(answer in answer()) {
        let raw = answer.render();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (ours, theirs) = runtime.block_on(async {
            (ours(&raw, answer.step).await, reference(raw.clone()).await)
        });
        let shown = String::from_utf8_lossy(&raw);
        if answer.must_refuse() {
            prop_assert!(ours.is_err(), "accepted a broken answer ({:?}): {}", answer.breaking, shown);
        }
        match (&ours, &theirs) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a, b, "{}", shown),
            (Ok(_), Err(e)) => prop_assert!(false, "hyper refused ({}) what we read: {}", e, shown),
            // Stricter than hyper only where documented.
            (Err(e), Ok(_)) => prop_assert!(
                answer.breaking == Break::CodingNotLast,
                "we refused ({:?}) what hyper reads: {}", e, shown
            ),
            (Err(_), Err(_)) => {}
        }
    }
}
