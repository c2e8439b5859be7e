//! Workspace URL validation: what users paste into a service connection or a variable.

use crate::Error;

mod punycode;

/// Turns a workspace URL into `scheme://host[:port]`, or says why it cannot be one.
///
/// - `https` is required; `http` is allowed only for loopback hosts (127.0.0.1, localhost,
///   `[::1]`), where the emulator runs.
/// - A bare host name (`adb-1.2.azuredatabricks.net`) gets `https://`.
/// - Path, query and fragment are dropped: users paste browser URLs such as
///   `https://adb-1.2.azuredatabricks.net/?o=1#workspace`.
/// - User names and passwords in the URL are refused (and not repeated in the message).
pub fn normalize_host(input: &str) -> Result<String, Error> {
    let trimmed = input.trim();
    let invalid = |reason: &str| Error::InvalidHost {
        url: redact(trimmed),
        reason: reason.to_owned(),
    };
    if trimmed.is_empty() {
        return Err(invalid("it is empty; give the workspace URL, e.g. https://adb-1234567890123456.7.azuredatabricks.net"));
    }
    if trimmed.chars().any(char::is_whitespace) {
        return Err(invalid("it contains spaces; give the workspace URL, e.g. https://adb-1234567890123456.7.azuredatabricks.net"));
    }
    let with_scheme = if trimmed.contains("://") {
        trimmed.to_owned()
    } else {
        format!("https://{trimmed}")
    };
    if let Some(reason) = non_ascii_host(&with_scheme) {
        return Err(invalid(&reason));
    }
    let url =
        url::Url::parse(&with_scheme).map_err(|e| invalid(&format!("it is not a URL ({e})")))?;
    let host = match url.host_str() {
        Some(h) if !h.is_empty() => h.to_owned(),
        _ => return Err(invalid("it has no host name")),
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "it contains credentials; put the token in the token field, not in the URL",
        ));
    }
    let loopback = task_sdk::http::is_loopback(&url);
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(invalid(
                "https is required (http is accepted only for 127.0.0.1, localhost and [::1])",
            ))
        }
        other => {
            return Err(invalid(&format!(
                "the scheme '{other}' is not supported; use https"
            )))
        }
    }
    Ok(match url.port() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    })
}

/// Only ASCII host names are accepted (the release binaries carry no IDNA tables): for an
/// international one, say so and give its punycode form to paste instead.
fn non_ascii_host(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = match host_port.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => (h, Some(p)),
        _ => (host_port, None),
    };
    if host.is_ascii() {
        return None;
    }
    let suggestion = match punycode::to_ascii_host(host) {
        Some(ascii) => format!(
            ": use its punycode form, {scheme}://{ascii}{}",
            port.map(|p| format!(":{p}")).unwrap_or_default()
        ),
        None => String::new(),
    };
    Some(format!(
        "the host name '{host}' is not ASCII, and only ASCII (punycode) host names are accepted{suggestion}"
    ))
}

/// Drops any `user:password@` part before a URL goes into a message.
fn redact(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("***@{host}"),
        None => authority.to_owned(),
    };
    match scheme {
        Some(s) => format!("{s}://{authority}{tail}"),
        None => format!("{authority}{tail}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(input: &str) -> String {
        match normalize_host(input) {
            Err(Error::InvalidHost { reason, url }) => format!("{url}: {reason}"),
            other => panic!("{input}: expected InvalidHost, got {other:?}"),
        }
    }

    #[test]
    fn accepts_and_normalises() {
        let ok = |i: &str| normalize_host(i).unwrap();
        assert_eq!(
            ok("https://adb-1.2.azuredatabricks.net/"),
            "https://adb-1.2.azuredatabricks.net"
        );
        assert_eq!(
            ok(" https://adb-1.2.azuredatabricks.net/?o=1#ws "),
            "https://adb-1.2.azuredatabricks.net"
        );
        assert_eq!(
            ok("https://ADB-1.azuredatabricks.net/some/path"),
            "https://adb-1.azuredatabricks.net"
        );
        assert_eq!(
            ok("adb-1.2.azuredatabricks.net"),
            "https://adb-1.2.azuredatabricks.net"
        );
        assert_eq!(ok("https://example.test:8443"), "https://example.test:8443");
        assert_eq!(ok("http://127.0.0.1:8080/"), "http://127.0.0.1:8080");
        assert_eq!(ok("http://localhost:1"), "http://localhost:1");
        assert_eq!(ok("http://[::1]:9/x"), "http://[::1]:9");
    }

    #[test]
    fn rejects_with_reasons_naming_the_url() {
        assert!(reason("http://adb-1.azuredatabricks.net").contains("https is required"));
        assert!(reason("http://adb-1.azuredatabricks.net")
            .starts_with("http://adb-1.azuredatabricks.net"));
        assert!(reason("").contains("empty"));
        assert!(reason("my workspace").contains("spaces"));
        assert!(reason("ftp://host").contains("'ftp'"));
        assert!(reason("https://").contains("not a URL") || reason("https://").contains("no host"));
        assert!(reason("http://127.0.0.2:80").contains("https is required"));
        let creds = reason("https://bob:dapi-secret@adb-1.azuredatabricks.net");
        assert!(
            creds.contains("credentials")
                && !creds.contains("dapi-secret")
                && !creds.contains("bob"),
            "{creds}"
        );
        let idn = reason("https://bücher.example:8443/?o=1");
        assert!(
            idn.contains("only ASCII (punycode) host names are accepted")
                && idn.contains("https://xn--bcher-kva.example:8443")
                && !idn.contains("international domain name"),
            "{idn}"
        );
        assert!(reason("Adb-1.Ü.azuredatabricks.net")
            .contains("https://adb-1.xn--tda.azuredatabricks.net"));
        let display = normalize_host("http://x.example").unwrap_err().to_string();
        assert!(
            display.contains("http://x.example") && display.contains("https"),
            "{display}"
        );
    }
}
