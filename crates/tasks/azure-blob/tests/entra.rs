//! The AzureRM service connection path: an Entra ID token for Azure Storage from the Azure
//! emulator's token endpoint, exactly as deployarm gets its ARM tokens. Azurite cannot check
//! Entra tokens (its OAuth mode only parses tokens, over HTTPS), so a loopback gate in front
//! of it does what Azure Storage does: it refuses a request without a bearer token issued by
//! the emulator for `https://storage.azure.com` (401 InvalidAuthenticationInfo), and forwards
//! an accepted request to Azurite with the development account's SAS in place of the token.

use azure_task_testkit as common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use azure_emulator::{Emulator, Scheme};
use common::azurite::{with_refusing_endpoint, Azurite, ACCOUNT, KEY};
use common::{Env, CONNECTION};

const BIN: &str = env!("CARGO_BIN_EXE_azure-blob");

struct Gate<'a> {
    emulator: &'a Emulator,
    upstream: u16,
    sas: String,
    accepted: AtomicUsize,
    refused: AtomicUsize,
}

fn read_head(stream: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).ok()?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).ok()?;
    Some((head, body))
}

impl Gate<'_> {
    /// One request per connection; the answer closes it.
    fn handle(&self, mut client: TcpStream) {
        client.set_nonblocking(false).unwrap();
        let Some((head, body)) = read_head(&mut client) else {
            return;
        };
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or_default().to_owned();
        let headers: Vec<&str> = lines.filter(|l| !l.is_empty()).collect();
        let token = headers.iter().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("authorization")
                .then(|| v.trim().strip_prefix("Bearer ").map(str::to_owned))?
        });
        let audience = token
            .as_deref()
            .and_then(|t| self.emulator.token_audience(t));
        if audience.as_deref().map(|a| a.trim_end_matches('/')) != Some("https://storage.azure.com")
        {
            self.refused.fetch_add(1, Ordering::SeqCst);
            let _ = client.write_all(
                b"HTTP/1.1 401 Server failed to authenticate the request.\r\nx-ms-error-code: InvalidAuthenticationInfo\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            );
            return;
        }
        self.accepted.fetch_add(1, Ordering::SeqCst);
        let mut parts = request_line.splitn(3, ' ');
        let (method, target, version) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        let separator = if target.contains('?') { '&' } else { '?' };
        let mut forwarded = format!("{method} {target}{separator}{} {version}\r\n", self.sas);
        for h in headers {
            let name = h.split(':').next().unwrap_or_default();
            if !name.eq_ignore_ascii_case("authorization")
                && !name.eq_ignore_ascii_case("connection")
            {
                forwarded.push_str(h);
                forwarded.push_str("\r\n");
            }
        }
        forwarded.push_str("connection: close\r\n\r\n");
        let mut server = TcpStream::connect(("127.0.0.1", self.upstream)).unwrap();
        server.write_all(forwarded.as_bytes()).unwrap();
        server.write_all(&body).unwrap();
        let _ = std::io::copy(&mut server, &mut client);
    }

    fn serve(&self, listener: &TcpListener, stop: &AtomicBool) {
        listener.set_nonblocking(true).unwrap();
        while !stop.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((stream, _)) => self.handle(stream),
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }
}

#[test]
fn the_service_connection_gets_storage_tokens_for_every_scheme() {
    let azurite = Azurite::start();
    for scheme in [
        Scheme::ServicePrincipal,
        Scheme::WorkloadIdentityFederation,
        Scheme::ManagedServiceIdentity,
    ] {
        let env = Env::new(scheme);
        env.write("d/a.csv", "1,2\n");
        let gate = Gate {
            emulator: &env.emulator,
            upstream: azurite.port,
            sas: azure_blob::auth::account_sas(
                ACCOUNT,
                KEY,
                SystemTime::now(),
                Duration::from_secs(600),
            )
            .unwrap(),
            accepted: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
        };
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!(
            "http://127.0.0.1:{}/{ACCOUNT}",
            listener.local_addr().unwrap().port()
        );
        let stop = AtomicBool::new(false);
        let (up, wait) = std::thread::scope(|s| {
            s.spawn(|| gate.serve(&listener, &stop));
            let run = |inputs: &[(&str, &str)]| {
                let mut all = vec![
                    ("azureSubscription", CONNECTION),
                    ("blobEndpoint", endpoint.as_str()),
                ];
                all.extend_from_slice(inputs);
                env.run(BIN, &all)
            };
            let up = run(&[
                ("command", "upload"),
                ("container", "entra"),
                ("prefix", "p"),
                ("sourcePath", "d"),
                ("createContainer", "true"),
            ]);
            let wait = run(&[
                ("command", "waitFor"),
                ("container", "entra"),
                ("blobName", "p/a.csv"),
                ("timeoutSeconds", "5"),
            ]);
            stop.store(true, Ordering::SeqCst);
            (up, wait)
        });
        assert!(up.succeeded(), "{scheme:?}: {}", up.dump());
        assert!(wait.succeeded(), "{scheme:?}: {}", wait.dump());
        up.assert_no_secret(&env.secrets());
        assert!(gate.accepted.load(Ordering::SeqCst) >= 3, "{scheme:?}");
        assert_eq!(gate.refused.load(Ordering::SeqCst), 0, "{scheme:?}");
    }
}

#[test]
fn a_token_the_service_does_not_accept_fails_with_advice() {
    // The endpoint refuses every token: as Azure Storage does for a token of another tenant.
    let env = Env::new(Scheme::ServicePrincipal);
    let refusal = "HTTP/1.1 401 Server failed to authenticate the request.\r\nx-ms-error-code: InvalidAuthenticationInfo\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
    let (o, refused) = with_refusing_endpoint(refusal, |endpoint, refused| {
        let o = env.run(
            BIN,
            &[
                ("azureSubscription", CONNECTION),
                ("blobEndpoint", &format!("{endpoint}/{ACCOUNT}")),
                ("command", "delete"),
                ("container", "entra"),
                ("prefix", "x/"),
            ],
        );
        (o, refused.load(Ordering::SeqCst))
    });
    assert!(o.failed(), "{}", o.dump());
    assert!(
        o.failure().contains("InvalidAuthenticationInfo"),
        "{}",
        o.dump()
    );
    assert_eq!(refused, 1, "a 401 is not retried");
    o.assert_no_secret(&env.secrets());
}
