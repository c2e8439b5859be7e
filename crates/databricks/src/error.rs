//! Errors, and how an HTTP answer that is not a success becomes one.
//!
//! Bodies are never copied into an error whole: the envelope's `message` is kept (trimmed to
//! a sane length); anything else is summarised (an HTML page by its title, text by its first
//! line, always with its length).

use std::time::Duration;

use task_sdk::http::StatusCode;
use task_sdk::SendError;

use crate::clusters::ClusterState;

/// Longest server message kept in an error.
const MAX_MESSAGE_CHARS: usize = 1000;
/// Longest first line of a text body kept in a summary.
const MAX_LINE_CHARS: usize = 160;

/// Everything a call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 401, or 403 for a token the workspace does not accept ("Invalid access token."): the
    /// token is wrong or expired.
    #[error("authentication failed for {host}: the token is invalid or expired (HTTP {status}: {detail}). Create a new token (Databricks: User Settings > Developer > Access tokens) or check the service connection, then update the pipeline's secret")]
    Auth {
        host: String,
        status: u16,
        detail: String,
    },
    /// 403 for a token the workspace accepts but that may not do this call.
    #[error("permission denied by {host}: the token is valid but lacks permission for this operation (HTTP 403: {detail}). Ask a workspace admin to grant the user or service principal access")]
    Forbidden { host: String, detail: String },
    /// A workspace path that does not exist (`RESOURCE_DOES_NOT_EXIST`).
    #[error("{path} does not exist in the workspace")]
    NotFound { path: String },
    /// A workspace path that exists where a new object was to be created
    /// (`RESOURCE_ALREADY_EXISTS`: an import without overwrite, or mkdirs over a notebook).
    #[error("{path} already exists in the workspace (import with overwrite to replace it)")]
    AlreadyExists { path: String },
    /// Content over the Workspace API's 10 MB limit (checked before sending, and
    /// `MAX_NOTEBOOK_SIZE_EXCEEDED` from the server). `size` is 0 when the server reported it.
    #[error("{path} is too large for the Workspace API: {size} bytes, the limit is {limit} bytes (10 MB)", limit = crate::MAX_IMPORT_BYTES)]
    TooLarge { path: String, size: u64 },
    /// Any other `{"error_code", "message"}` answer.
    #[error("Databricks refused the request: {message} ({}HTTP {status})", if error_code.is_empty() { String::new() } else { format!("{error_code}, ") })]
    Api {
        status: u16,
        error_code: String,
        message: String,
    },
    /// An answer that is not the API's JSON (a gateway's HTML page, plain text, an empty body):
    /// often a wrong URL or a proxy in the way.
    #[error("unexpected answer from {host} (HTTP {status}): {summary}{}", body_hint(*status))]
    UnexpectedBody {
        host: String,
        status: u16,
        summary: String,
    },
    /// A success answer whose JSON does not have the expected shape.
    #[error("the answer of {host} to {call} could not be read: {detail}")]
    Decode {
        host: String,
        call: String,
        detail: String,
    },
    /// No answer after every retry the policy allowed (connection refused, DNS, timeout…).
    #[error(transparent)]
    Transport(#[from] SendError),
    /// The workspace URL is not usable.
    #[error("the Databricks workspace URL '{url}' is not valid: {reason}")]
    InvalidHost { url: String, reason: String },
    /// A request this client refuses to send (e.g. an idempotency token over 64 characters).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The [`TokenSource`](crate::TokenSource) could not give a token.
    #[error("could not obtain a token for {host}: {detail}")]
    Token { host: String, detail: String },
    /// A cluster that ended up in a state from which it will not become RUNNING by itself.
    #[error("cluster {id} is {state} instead of RUNNING{}{}", if message.is_empty() { String::new() } else { format!(": {message}") }, reason.as_ref().map(|r| format!(". Termination reason: {r}")).unwrap_or_default())]
    ClusterNotRunning {
        id: String,
        state: ClusterState,
        message: String,
        /// Why it terminated, when the service said.
        reason: Option<Box<crate::TerminationReason>>,
    },
    /// A wait that ran out of time.
    #[error("{what} did not happen within {} s", waited.as_secs())]
    TimedOut { what: String, waited: Duration },
}

/// What a non-API answer most likely means.
fn body_hint(status: u16) -> &'static str {
    match status {
        500..=599 => "; the workspace or a proxy in between is failing, try again later",
        _ => "; is this the URL of a Databricks workspace (and is no proxy answering instead)?",
    }
}

impl Error {
    /// Whether the error says the object (path, run, job, cluster) does not exist: a
    /// `NotFound`, or the Jobs/Clusters API's 400 `INVALID_PARAMETER_VALUE` "… does not exist".
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::NotFound { .. } => true,
            Error::Api {
                error_code,
                message,
                ..
            } => {
                error_code == "RESOURCE_DOES_NOT_EXIST"
                    || (error_code == "INVALID_PARAMETER_VALUE"
                        && message.contains("does not exist"))
            }
            _ => false,
        }
    }

    /// Whether the token was refused (401/403): retrying with the same token will not help.
    pub fn is_auth(&self) -> bool {
        matches!(self, Error::Auth { .. } | Error::Forbidden { .. })
    }

    /// The API's `error_code`, when the server sent one.
    pub fn error_code(&self) -> Option<&str> {
        match self {
            Error::Api { error_code, .. } if !error_code.is_empty() => Some(error_code),
            Error::NotFound { .. } => Some("RESOURCE_DOES_NOT_EXIST"),
            Error::AlreadyExists { .. } => Some("RESOURCE_ALREADY_EXISTS"),
            _ => None,
        }
    }
}

/// What an error answer says, before it is tied to a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ErrorBody {
    pub error_code: String,
    pub message: String,
}

/// Reads the envelope: `{"error_code", "message"}`, also `{"error": …}` (older endpoints) and
/// SCIM's `{"detail": …}`. `None` when the body is not such JSON.
pub(crate) fn parse_envelope(body: &[u8]) -> Option<ErrorBody> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let obj = value.as_object()?;
    let text = |k: &str| {
        obj.get(k)
            .and_then(|v| v.as_str())
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let error_code = text("error_code").unwrap_or_default().to_owned();
    let message = text("message")
        .or_else(|| text("error"))
        .or_else(|| text("detail"))
        .map(clip)
        .unwrap_or_default();
    if error_code.is_empty() && message.is_empty() {
        return None;
    }
    Some(ErrorBody {
        error_code,
        message,
    })
}

/// Turns an error answer into an [`Error`]. `subject` is the workspace path the call was
/// about, if any (it names `NotFound`/`AlreadyExists`).
pub(crate) fn from_answer(
    host: &str,
    status: StatusCode,
    reason_header: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
    subject: Option<&str>,
) -> Error {
    let envelope = parse_envelope(body);
    let code = status.as_u16();
    if code == 401 || code == 403 {
        let detail = envelope
            .as_ref()
            .map(|e| {
                if e.message.is_empty() {
                    e.error_code.clone()
                } else {
                    e.message.clone()
                }
            })
            .or_else(|| reason_header.map(clip))
            .unwrap_or_else(|| summarize(body, content_type));
        // The service answers 403 for a well-formed token it does not know (and for an
        // expired one): that is an authentication failure, not a missing permission.
        let bad_token = code == 401 || {
            let d = detail.to_ascii_lowercase();
            d.contains("invalid access token")
                || d.contains("expired")
                || d.contains("invalid token")
        };
        return if bad_token {
            Error::Auth {
                host: host.to_owned(),
                status: code,
                detail,
            }
        } else {
            Error::Forbidden {
                host: host.to_owned(),
                detail,
            }
        };
    }
    let Some(envelope) = envelope else {
        return Error::UnexpectedBody {
            host: host.to_owned(),
            status: code,
            summary: summarize(body, content_type),
        };
    };
    match (envelope.error_code.as_str(), subject) {
        ("RESOURCE_DOES_NOT_EXIST", Some(path)) => Error::NotFound {
            path: path.to_owned(),
        },
        ("RESOURCE_ALREADY_EXISTS", Some(path)) => Error::AlreadyExists {
            path: path.to_owned(),
        },
        ("MAX_NOTEBOOK_SIZE_EXCEEDED", Some(path)) => Error::TooLarge {
            path: path.to_owned(),
            size: 0,
        },
        _ => Error::Api {
            status: code,
            error_code: envelope.error_code,
            message: envelope.message,
        },
    }
}

fn clip(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() && c != '\n' { ' ' } else { c })
        .collect();
    match clean.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", &clean[..cut]),
        None => clean,
    }
}

/// Describes a body that is not the API's JSON without repeating it.
pub(crate) fn summarize(body: &[u8], content_type: Option<&str>) -> String {
    let len = body.len();
    if body.iter().all(u8::is_ascii_whitespace) {
        return if len == 0 {
            "an empty body".to_owned()
        } else {
            format!("a blank body ({len} bytes)")
        };
    }
    let Ok(text) = std::str::from_utf8(body) else {
        return format!("{len} bytes of binary data");
    };
    let lower = text.to_ascii_lowercase();
    let html = content_type.is_some_and(|c| c.to_ascii_lowercase().contains("html"))
        || lower.trim_start().starts_with("<!doctype html")
        || lower.contains("<html");
    if html {
        return match html_title(text, &lower) {
            Some(title) => format!("an HTML page titled \"{title}\" ({len} bytes)"),
            None => format!("an HTML page without a title ({len} bytes)"),
        };
    }
    if serde_json::from_slice::<serde_json::Value>(body).is_ok() {
        return format!("JSON without an error message ({len} bytes)");
    }
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or_default();
    format!("text starting \"{}\" ({len} bytes)", one_line(first))
}

fn html_title(text: &str, lower: &str) -> Option<String> {
    let open = lower.find("<title")?;
    let start = open + lower[open..].find('>')? + 1;
    let end = start + lower[start..].find("</title")?;
    let title = one_line(text.get(start..end)?.trim());
    (!title.is_empty()).then_some(title)
}

/// Collapses whitespace and control characters and cuts to [`MAX_LINE_CHARS`].
fn one_line(text: &str) -> String {
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect();
    let joined = words.join(" ");
    match joined.char_indices().nth(MAX_LINE_CHARS) {
        Some((cut, _)) => format!("{}…", &joined[..cut]),
        None => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str, subject: Option<&str>) -> Error {
        from_answer(
            "https://h",
            StatusCode::from_u16(status).unwrap(),
            None,
            None,
            body.as_bytes(),
            subject,
        )
    }

    #[test]
    fn envelope_codes_map_to_kinds() {
        let nf = r#"{"error_code":"RESOURCE_DOES_NOT_EXIST","message":"Path (/x) doesn't exist."}"#;
        assert!(matches!(answer(404, nf, Some("/x")), Error::NotFound { path } if path == "/x"));
        assert!(matches!(
            answer(404, nf, None),
            Error::Api { status: 404, .. }
        ));
        let ae =
            r#"{"error_code":"RESOURCE_ALREADY_EXISTS","message":"Path (/x) already exists."}"#;
        assert!(matches!(
            answer(400, ae, Some("/x")),
            Error::AlreadyExists { .. }
        ));
        let other = answer(
            400,
            r#"{"error_code":"INVALID_PARAMETER_VALUE","message":"Run 7 does not exist."}"#,
            None,
        );
        assert!(other.is_not_found());
        assert_eq!(other.to_string(), "Databricks refused the request: Run 7 does not exist. (INVALID_PARAMETER_VALUE, HTTP 400)");
        assert!(
            matches!(answer(400, r#"{"error":"bad thing"}"#, None), Error::Api { message, .. } if message == "bad thing")
        );
    }

    #[test]
    fn auth_answers() {
        let e = answer(
            401,
            r#"{"error_code":"UNAUTHENTICATED","message":"Credential was not sent"}"#,
            None,
        );
        assert!(matches!(e, Error::Auth { status: 401, .. }));
        assert!(
            e.to_string().starts_with(
                "authentication failed for https://h: the token is invalid or expired (HTTP 401"
            ),
            "{e}"
        );
        let e = answer(
            403,
            r#"{"error_code":"PERMISSION_DENIED","message":"Invalid access token."}"#,
            None,
        );
        assert!(matches!(e, Error::Auth { status: 403, .. }), "{e:?}");
        let e = answer(
            403,
            r#"{"error_code":"PERMISSION_DENIED","message":"User does not have Manage permission on /Shared"}"#,
            None,
        );
        assert!(
            e.to_string()
                .contains("the token is valid but lacks permission"),
            "{e}"
        );
        let e = from_answer(
            "https://h",
            StatusCode::FORBIDDEN,
            Some("Invalid access token."),
            None,
            b"",
            None,
        );
        assert!(matches!(e, Error::Auth { .. }), "{e:?}");
        let e = answer(401, "<html><title>Unauthorized</title></html>", None);
        assert!(
            e.to_string().contains("HTML page titled \"Unauthorized\""),
            "{e}"
        );
    }

    #[test]
    fn odd_bodies_are_summarised_not_dumped() {
        let html = format!("<!DOCTYPE html><html><head><title>\n 502 Bad Gateway </title></head><body>{}</body></html>", "x".repeat(5000));
        let e = answer(502, &html, None).to_string();
        assert!(
            e.contains("HTML page titled \"502 Bad Gateway\"")
                && e.contains(&format!("{} bytes", html.len())),
            "{e}"
        );
        assert!(!e.contains("xxxx"), "{e}");
        let e = answer(
            500,
            "upstream connect error or disconnect/reset before headers\nsecond line",
            None,
        )
        .to_string();
        assert!(
            e.contains("\"upstream connect error or disconnect/reset before headers\"")
                && !e.contains("second line"),
            "{e}"
        );
        assert!(answer(500, "", None).to_string().contains("an empty body"));
        assert!(answer(500, "   \n", None)
            .to_string()
            .contains("blank body"));
        let long = "y".repeat(10_000);
        let e = answer(500, &long, None).to_string();
        assert!(e.len() < 400, "{e}");
        assert!(summarize(&[0xff, 0xfe, 0], None).contains("binary"));
        assert!(summarize(b"{\"a\":1}", None).contains("JSON without an error message"));
    }

    #[test]
    fn long_messages_are_clipped() {
        let body = serde_json::json!({"error_code": "X", "message": "m".repeat(5000)}).to_string();
        let e = answer(400, &body, None).to_string();
        assert!(e.len() < MAX_MESSAGE_CHARS + 100, "{}", e.len());
    }
}
