//! Faults between the task and Azurite: 503s from a loopback fault server in front of it (Azurite
//! cannot be told to answer 503), and a file that vanishes between the scan and its upload.

use azure_task_testkit as common;

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use azure_emulator::Scheme;
use common::azurite::{Azurite, ACCOUNT, KEY};
use common::Env;

const BIN: &str = env!("CARGO_BIN_EXE_azure-blob");

/// Answers the first request of each of the first `faults` connections with
/// `503 ServerBusy` (as Azure Storage does when throttling) and closes it; later connections
/// are passed through to `upstream` byte for byte.
struct FaultServer {
    port: u16,
    served: Arc<AtomicUsize>,
}

fn read_request_head_and_body(stream: &mut TcpStream) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let length: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body)
}

impl FaultServer {
    fn start(upstream: u16, faults: usize) -> FaultServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let served = Arc::new(AtomicUsize::new(0));
        let counter = served.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut client) = stream else { continue };
                if counter.load(Ordering::SeqCst) < faults {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let _ = read_request_head_and_body(&mut client);
                    let _ = client.write_all(
                        b"HTTP/1.1 503 The server is busy.\r\nx-ms-error-code: ServerBusy\r\nretry-after: 0\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    );
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c2, &mut s2);
                    let _ = s2.shutdown(std::net::Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let (mut client, mut server) = (client, server);
                    let _ = std::io::copy(&mut server, &mut client);
                    let _ = client.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        FaultServer { port, served }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT}", self.port)
    }
}

fn run(env: &Env, endpoint: &str, inputs: &[(&str, &str)]) -> common::Outcome {
    let cs = format!("AccountName={ACCOUNT};AccountKey={KEY};BlobEndpoint={endpoint}");
    let mut all = vec![
        ("authenticationType", "connectionString"),
        ("connectionString", cs.as_str()),
    ];
    all.extend_from_slice(inputs);
    let o = env.run(BIN, &all);
    o.assert_no_secret(&[KEY.to_owned()]);
    o
}

#[test]
fn answers_503_are_retried_by_the_one_retry_policy() {
    let azurite = Azurite::start();
    let faults = FaultServer::start(azurite.port, 3);
    let env = Env::new(Scheme::ServicePrincipal);
    env.write("d/a.csv", "1,2\n");
    env.write("d/b.csv", "3,4\n");
    let up = [
        ("command", "upload"),
        ("container", "busy"),
        ("sourcePath", "d"),
        ("createContainer", "true"),
    ];
    let o = run(&env, &faults.endpoint(), &up);
    assert!(o.succeeded(), "{}", o.dump());
    assert_eq!(
        faults.served.load(Ordering::SeqCst),
        3,
        "the fault server answered 503 three times"
    );
    // What arrived is whole: read back from Azurite directly.
    let o = run(
        &env,
        &azurite.blob_endpoint(),
        &[
            ("command", "download"),
            ("container", "busy"),
            ("destinationPath", "back"),
        ],
    );
    assert!(o.succeeded(), "{}", o.dump());
    assert_eq!(
        std::fs::read_to_string(env.root().join("back/b.csv")).unwrap(),
        "3,4\n"
    );
}

#[test]
fn a_service_that_stays_busy_fails_the_task_with_the_status() {
    let azurite = Azurite::start();
    let faults = FaultServer::start(azurite.port, usize::MAX);
    let env = Env::new(Scheme::ServicePrincipal);
    env.write("d/a.csv", "1,2\n");
    // The test kit sets a retry budget of 3 s.
    let o = run(
        &env,
        &faults.endpoint(),
        &[
            ("command", "upload"),
            ("container", "busy"),
            ("sourcePath", "d"),
            ("createContainer", "true"),
        ],
    );
    assert!(o.failed(), "{}", o.dump());
    assert!(
        o.failure().contains("HTTP 503 (ServerBusy)"),
        "{}",
        o.dump()
    );
    assert!(
        faults.served.load(Ordering::SeqCst) > 1,
        "retried before giving up"
    );
}

#[test]
fn a_file_that_vanishes_before_its_upload_is_named_and_the_rest_go() {
    use azure_blob::{files, upload};
    let azurite = Azurite::start();
    let dir = tempfile::tempdir().unwrap();
    for name in ["a.csv", "b.csv", "c.csv"] {
        std::fs::write(dir.path().join(name), name).unwrap();
    }
    let store = support::store(&azurite, "vanish");
    support::runtime().block_on(async {
        store.create().await.unwrap();
        let scanned = files::scan(dir.path(), "in").unwrap();
        std::fs::remove_file(dir.path().join("b.csv")).unwrap();
        let options = upload::Options {
            overwrite: true,
            incremental: true,
            checksum: false,
            metadata: vec![],
            concurrency: 2,
        };
        let err = upload::upload(&store, scanned, "in", &options)
            .await
            .unwrap_err();
        assert!(
            err.message().contains("b.csv' vanished during the upload"),
            "{}",
            err.message()
        );
        assert!(
            err.message().starts_with("1 file(s) were not uploaded"),
            "{}",
            err.message()
        );
        let names: Vec<String> = store
            .list("in/")
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, ["in/a.csv", "in/c.csv"]);
    });
}
