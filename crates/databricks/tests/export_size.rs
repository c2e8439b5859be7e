//! Workspace export is the one call that accepts answers past the HTTP client's 32 MiB
//! default; past its own limit it fails, naming the limit.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use base64::Engine;
use databricks::{Auth, ExportFormat, Workspace, EXPORT_MAX_BODY};

/// A loopback "workspace" answering every request with `head` and `body`.
fn server(head: String, body: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut seen = Vec::new();
            let mut byte = [0u8; 1];
            while !seen.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                seen.push(byte[0]);
            }
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    url
}

fn workspace(url: &str) -> Workspace {
    Workspace::new(
        url,
        Auth::Token(common::TOKEN.into()),
        common::http(Duration::from_millis(200)),
    )
    .unwrap()
}

#[tokio::test]
async fn an_export_past_the_default_limit_is_read() {
    // 25 MiB of content is 33.3 MiB of base64: more than any other call accepts.
    let content = vec![b'#'; 25 << 20];
    let body = format!(
        r#"{{"content":"{}","file_type":"py"}}"#,
        base64::engine::general_purpose::STANDARD.encode(&content)
    )
    .into_bytes();
    assert!(body.len() > task_sdk::http::DEFAULT_MAX_BODY);
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let url = server(head, body);
    let exported = workspace(&url)
        .export("/Shared/big", ExportFormat::Source)
        .await
        .unwrap();
    assert_eq!(exported.len(), content.len());
}

#[tokio::test]
async fn an_export_past_its_limit_fails_naming_the_limit() {
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        EXPORT_MAX_BODY + 1
    );
    let url = server(head, b"{".to_vec());
    let error = workspace(&url)
        .export("/Shared/huge", ExportFormat::Source)
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(text.contains("larger than 64 MiB"), "{text}");
}
