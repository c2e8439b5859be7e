//! Reading what token endpoints answer: the token and its expiry, and Entra ID's error body.
//! Pure functions, so every shape real services send is tested without a server.

use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::AccessToken;

/// A token answer: `access_token`, and its expiry from `expires_in` (seconds from now; a
/// number from Entra ID, a string from IMDS) or else `expires_on` (seconds since the epoch,
/// a string from the managed identity endpoints). `expires_in` wins when both are present:
/// it is relative, so a skewed agent clock does not shorten or stretch the token's life.
pub(crate) fn parse_token(body: &str, now: SystemTime) -> Result<AccessToken, &'static str> {
    let value: Value = serde_json::from_str(body).map_err(|_| "the answer is not JSON")?;
    let token = value
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or("the answer has no access_token")?;
    let expires_on = match value.get("expires_in").and_then(seconds) {
        Some(secs) => now.checked_add(secs),
        None => value
            .get("expires_on")
            .and_then(seconds)
            .and_then(|secs| SystemTime::UNIX_EPOCH.checked_add(secs)),
    }
    .ok_or("the answer has no usable expires_in or expires_on")?;
    Ok(AccessToken {
        token: token.to_owned(),
        expires_on,
    })
}

/// A whole number of seconds, given as a JSON number or a string of digits.
fn seconds(v: &Value) -> Option<Duration> {
    match v {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0 && *f < u64::MAX as f64)
                .map(|f| f as u64)
        }),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    }
    .map(Duration::from_secs)
}

/// Entra ID's OAuth error body: `{error, error_description, error_codes: [..], ...}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EntraError {
    /// The OAuth error (`invalid_client`, `unauthorized_client`, …).
    pub error: String,
    /// The `AADSTS` code: `error_codes[0]`, else read from the description.
    pub code: Option<u32>,
    /// The description's first line: `AADSTSnnnn: …`, without the trace and correlation ids
    /// and timestamp Entra ID puts on the following lines.
    pub description: String,
}

/// Entra ID's error body, or `None` when `body` is not one (a proxy's HTML page, say).
pub(crate) fn parse_entra_error(body: &str) -> Option<EntraError> {
    let value: Value = serde_json::from_str(body).ok()?;
    let error = value
        .get("error")
        .and_then(Value::as_str)?
        .trim()
        .to_owned();
    if error.is_empty() {
        return None;
    }
    let full = value
        .get("error_description")
        .and_then(Value::as_str)
        .filter(|d| !d.trim().is_empty())
        .unwrap_or(&error);
    let description = first_line(full);
    let code = value
        .get("error_codes")
        .and_then(Value::as_array)
        .and_then(|codes| codes.first())
        .and_then(Value::as_u64)
        .and_then(|c| u32::try_from(c).ok())
        .or_else(|| aadsts_code(&description));
    Some(EntraError {
        error,
        code,
        description,
    })
}

/// A managed identity endpoint's error text: IMDS sends `{error, error_description}`, App
/// Service `{statusCode, message}`; anything else is shown as sent, shortened.
pub(crate) fn managed_identity_error(body: &str) -> String {
    let value = serde_json::from_str::<Value>(body).ok();
    let field = |name: &str| {
        value
            .as_ref()
            .and_then(|v| v.get(name))
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let text = match (field("error"), field("error_description")) {
        (Some(error), Some(description)) => format!("{error}: {}", first_line(&description)),
        (None, Some(description)) => first_line(&description),
        (Some(error), None) => error,
        (None, None) => field("message")
            .or_else(|| field("Message"))
            .map(|m| first_line(&m))
            .unwrap_or_else(|| first_line(body)),
    };
    if text.is_empty() {
        "no details in the answer".to_owned()
    } else {
        text
    }
}

/// The first non-empty line, trimmed and at most 400 characters.
pub(crate) fn first_line(text: &str) -> String {
    let line = text
        .split(['\r', '\n'])
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or_default();
    truncate(line, 400)
}

pub(crate) fn truncate(text: &str, max: usize) -> String {
    let text = text.trim();
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

/// The number after the first `AADSTS` in `text`.
pub(crate) fn aadsts_code(text: &str) -> Option<u32> {
    let rest = &text[text.find("AADSTS")? + "AADSTS".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn entra_answers_carry_expires_in_as_a_number() {
        let t = parse_token(
            r#"{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"eyJ0.a.b"}"#,
            at(1_000),
        )
        .unwrap();
        assert_eq!(t.token, "eyJ0.a.b");
        assert_eq!(t.expires_on, at(4_599));
    }

    #[test]
    fn imds_answers_carry_strings_and_expires_in_wins() {
        // IMDS: every number is a string; expires_on is the server's clock, expires_in ours.
        let body = r#"{"access_token":"tok","client_id":"c","expires_in":"86399","expires_on":"1700086399","ext_expires_in":"86399","not_before":"1700000000","resource":"https://management.azure.com/","token_type":"Bearer"}"#;
        assert_eq!(parse_token(body, at(2_000)).unwrap().expires_on, at(88_399));
    }

    #[test]
    fn app_service_answers_carry_only_expires_on() {
        let body = r#"{"access_token":"tok","expires_on":"1700003600","resource":"https://management.azure.com","token_type":"Bearer","client_id":"c"}"#;
        assert_eq!(
            parse_token(body, at(5)).unwrap().expires_on,
            at(1_700_003_600)
        );
        // Cloud Shell and some SDK-compatible endpoints send it as a number.
        let body = r#"{"access_token":"tok","expires_on":1700003600}"#;
        assert_eq!(
            parse_token(body, at(5)).unwrap().expires_on,
            at(1_700_003_600)
        );
    }

    #[test]
    fn unusable_expiries_and_missing_tokens_are_refused() {
        for body in [
            r#"{"access_token":"tok"}"#,
            r#"{"access_token":"tok","expires_in":"soon"}"#,
            r#"{"access_token":"tok","expires_in":-5}"#,
            r#"{"access_token":"tok","expires_on":"11/21/2025 10:00:00 +00:00"}"#,
            r#"{"access_token":"tok","expires_in":18446744073709551615}"#,
        ] {
            assert_eq!(
                parse_token(body, at(1)).unwrap_err(),
                "the answer has no usable expires_in or expires_on",
                "{body}"
            );
        }
        assert_eq!(
            parse_token(r#"{"expires_in":5}"#, at(1)).unwrap_err(),
            "the answer has no access_token"
        );
        assert_eq!(
            parse_token(r#"{"access_token":"","expires_in":5}"#, at(1)).unwrap_err(),
            "the answer has no access_token"
        );
        assert_eq!(
            parse_token("<html>", at(1)).unwrap_err(),
            "the answer is not JSON"
        );
    }

    #[test]
    fn entra_errors_keep_their_first_line_and_code() {
        // As Entra ID sends it: the description holds escaped CR LF before the trace ids.
        let body = r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app 'a'.\r\nTrace ID: 0f1e\r\nCorrelation ID: 9a8b\r\nTimestamp: 2025-11-21 10:00:00Z","error_codes":[7000215],"timestamp":"2025-11-21 10:00:00Z","trace_id":"0f1e","correlation_id":"9a8b","error_uri":"https://login.microsoftonline.com/error?code=7000215"}"#;
        let e = parse_entra_error(body).unwrap();
        assert_eq!(e.error, "invalid_client");
        assert_eq!(e.code, Some(7000215));
        assert_eq!(e.description, "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app 'a'.");
    }

    #[test]
    fn entra_error_codes_come_from_the_text_when_the_list_is_missing() {
        let e = parse_entra_error(
            r#"{"error":"invalid_request","error_description":"AADSTS90002: Tenant 't' not found.\r\nTrace ID: x"}"#,
        )
        .unwrap();
        assert_eq!(e.code, Some(90002));
        assert_eq!(e.description, "AADSTS90002: Tenant 't' not found.");
        let e = parse_entra_error(r#"{"error":"temporarily_unavailable"}"#).unwrap();
        assert_eq!(
            (e.code, e.description.as_str()),
            (None, "temporarily_unavailable")
        );
        assert_eq!(parse_entra_error("<html>Proxy error</html>"), None);
        assert_eq!(parse_entra_error(r#"{"message":"x"}"#), None);
    }

    #[test]
    fn managed_identity_errors_of_both_protocols_are_read() {
        assert_eq!(
            managed_identity_error(
                r#"{"error":"invalid_request","error_description":"Identity not found"}"#
            ),
            "invalid_request: Identity not found"
        );
        assert_eq!(
            managed_identity_error(
                r#"{"statusCode":400,"message":"Unable to load the proper Managed Identity.","correlationId":"c"}"#
            ),
            "Unable to load the proper Managed Identity."
        );
        assert_eq!(managed_identity_error("\n  Bad Gateway \n"), "Bad Gateway");
        assert_eq!(managed_identity_error(""), "no details in the answer");
    }

    #[test]
    fn lines_and_codes() {
        assert_eq!(first_line("\r\n  a b \r\nc"), "a b");
        assert_eq!(first_line(&"x".repeat(500)).chars().count(), 401);
        assert_eq!(
            aadsts_code("AADSTS7000215: Invalid client secret"),
            Some(7000215)
        );
        assert_eq!(aadsts_code("no code here"), None);
    }
}
