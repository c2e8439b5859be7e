//! The `azure-emulator` binary and the blocking start.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use azure_emulator::{Emulator, Options};

#[test]
fn binary_prints_url_then_ca_path_and_serves() {
    let dir = std::env::temp_dir().join(format!("azure-emulator-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    let mut child = Command::new(env!("CARGO_BIN_EXE_azure-emulator"))
        .args([
            "--port",
            "0",
            "--ca-out",
            ca.to_str().unwrap(),
            "--latency-ms",
            "1",
            "--fault",
            "POST /subscriptions/*/createRun 503 times=2",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = lines.next().unwrap().unwrap();
    let ca_line = lines.next().unwrap().unwrap();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    assert_eq!(ca_line, ca.display().to_string());
    let pem = std::fs::read_to_string(&ca).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));

    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (state, faults): (serde_json::Value, serde_json::Value) = runtime.block_on(async {
        let client = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(pem.as_bytes()).unwrap()])
            .build()
            .unwrap();
        let get = |path: &'static str| {
            let request = client.get(format!("{url}{path}"));
            async move { request.send().await.unwrap().json().await.unwrap() }
        };
        (get("/emulator/state").await, get("/emulator/faults").await)
    });
    assert_eq!(state["tokensIssued"], 0);
    assert_eq!(
        faults["rules"][0]["pattern"],
        "POST /subscriptions/*/createRun"
    );
    assert_eq!(faults["rules"][0]["times"], 2);
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_bad_fault_rule_is_refused_with_its_form() {
    let out = Command::new(env!("CARGO_BIN_EXE_azure-emulator"))
        .args(["--fault", "POST /x 200"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--fault: a fault status must be an error status"),
        "{stderr}"
    );
    assert!(stderr.contains("usage: azure-emulator"), "{stderr}");
}

#[test]
fn start_blocking_serves_from_its_own_thread_and_stops_on_drop() {
    let emu = Emulator::start_blocking(Options::default()).unwrap();
    let url = emu.url();
    let ca_path = emu.ca_pem_path().to_path_buf();
    assert!(ca_path.exists());
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(emu.ca_pem().as_bytes()).unwrap()])
        .build()
        .unwrap();
    let status = runtime.block_on(async {
        client
            .get(format!("{url}/emulator/state"))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, reqwest::StatusCode::OK);
    drop(emu);
    assert!(!ca_path.exists(), "the temporary CA file is removed");
    let refused = std::net::TcpStream::connect(url.trim_start_matches("https://"));
    assert!(refused.is_err(), "the port is closed after drop");
}
