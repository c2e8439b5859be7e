//! Linked templates: the documents behind `templateLink.uri` and `parametersLink.uri`, fetched
//! the way ARM does (a plain GET; a SAS in the URI is the only credential) but only from a
//! loopback address: in tests that is Azurite. The handlers stay synchronous: when planning
//! meets a link not fetched yet it answers "fetch this first" ([`crate::http::Reply::fetch`]);
//! the router fetches outside the state lock and routes the request again.

use std::collections::HashMap;
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{json, Value};
use task_sdk::http::{HttpSettings, Method, Request};
use task_sdk::{HttpClient, Replay, RetryPolicy};

use crate::template::ArmError;

/// The most documents one request may fetch (ARM limits nesting too).
pub const MAX_FETCHES: usize = 32;

/// A fetched document, or why it could not be fetched (for the emulator's own diagnostics;
/// the client sees ARM's `InvalidContentLink`).
pub type Fetched = Result<Value, String>;

/// The documents one request fetched so far, by URI.
#[derive(Debug, Default)]
pub struct Links {
    docs: HashMap<String, Fetched>,
}

impl Links {
    pub fn get(&self, uri: &str) -> Option<&Fetched> {
        self.docs.get(uri)
    }

    pub fn insert(&mut self, uri: String, doc: Fetched) {
        self.docs.insert(uri, doc);
    }

    pub fn len(&self) -> usize {
        self.docs.len()
    }

    /// The document at `uri`: `Err` with "fetch it first" when not fetched yet, ARM's
    /// `InvalidContentLink` when it could not be.
    pub fn document(&self, uri: &str) -> Result<Value, ArmError> {
        match self.get(uri) {
            None => Err(ArmError::fetch_first(uri)),
            Some(Err(_)) => Err(content_link_error(uri)),
            Some(Ok(doc)) => Ok(doc.clone()),
        }
    }
}

/// ARM's answer when it cannot download a link (status 400, at validation).
pub fn content_link_error(uri: &str) -> ArmError {
    ArmError {
        status: StatusCode::BAD_REQUEST,
        error: json!({
            "code": "InvalidContentLink",
            "message": format!(
                "Unable to download deployment content from '{uri}'. The tracking Id is '{}'. Please see https://aka.ms/arm-deploy for usage details.",
                crate::clock::guid()
            ),
        }),
        fetch: None,
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// GETs `uri` (loopback only, http or https trusting the emulator's CA) and parses it as JSON.
pub async fn fetch(uri: &str, ca_file: &std::path::Path) -> Fetched {
    let url = url::Url::parse(uri).map_err(|e| format!("not a URI: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || !is_loopback(&url) {
        return Err("the emulator fetches links from loopback addresses only".into());
    }
    let settings = HttpSettings {
        ca_file: Some(ca_file.to_owned()),
        timeout: Duration::from_secs(30),
        ..HttpSettings::default()
    };
    let client = task_sdk::http::Client::new(&settings).map_err(|e| e.to_string())?;
    let http = HttpClient::new(client, RetryPolicy::default());
    let response = http
        .send(Request::from_url(Method::GET, url), Replay::Safe)
        .await
        .map_err(|e| e.to_string())?;
    if response.status().as_u16() != 200 {
        return Err(format!("HTTP {}", response.status()));
    }
    let bytes = response.bytes();
    let text = String::from_utf8_lossy(bytes);
    serde_json::from_str(text.trim_start_matches('\u{feff}')).map_err(|e| e.to_string())
}
