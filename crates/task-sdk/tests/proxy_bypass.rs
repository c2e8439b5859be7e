//! task-sdk's half of the proxy-bypass vectors shared with the launcher
//! (tests/vectors/proxy-bypass.json; the JavaScript half is
//! launcher/test/shared-vectors.test.js): both must route every case alike, as the agent does.
// The in-process proxy exists with in-process TLS only (task-http connect.rs); the launcher
// checks the same vectors for the release build (launcher/test/shared-vectors.test.js).
#![cfg(feature = "tls")]

use std::path::Path;

use task_sdk::http::{bypasses_agent_proxy, ProxySettings};

#[test]
fn the_client_bypasses_the_proxy_exactly_for_the_shared_vectors() {
    // From the workspace root, so that the test finds the file wherever the HTTP code lives.
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join("tests/vectors/proxy-bypass.json");
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let vectors: serde_json::Value = serde_json::from_str(&text).expect("the vectors are JSON");
    let proxy = vectors["proxy"].as_str().expect("proxy");
    let cases = vectors["cases"].as_array().expect("cases");
    assert!(cases.len() > 20, "the vectors file holds the cases");
    for case in cases {
        let url = case["url"].as_str().expect("url");
        let bypass: Vec<String> = case["bypass"]
            .as_array()
            .expect("bypass")
            .iter()
            .map(|p| p.as_str().expect("a pattern").to_owned())
            .collect();
        let settings = ProxySettings {
            url: proxy.to_owned(),
            username: None,
            password: None,
            bypass: bypass.clone(),
        };
        let parsed = url::Url::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        let direct = bypasses_agent_proxy(&settings, &parsed).expect("a usable proxy URL");
        assert_eq!(
            direct,
            case["direct"].as_bool().expect("direct"),
            "{url} with {bypass:?}: {}",
            case["why"]
        );
    }
}
