//! Azurite, Microsoft's Azure Storage emulator (npm package `azurite`, pinned in the top-level
//! package-lock.json): started on a free loopback port with a temporary workspace, stopped
//! when dropped. A test that needs it fails (never skips) when it is not installed.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Azurite's well-known development account and key (published by Microsoft).
pub const ACCOUNT: &str = "devstoreaccount1";
pub const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A running `azurite-blob`.
pub struct Azurite {
    child: Child,
    pub port: u16,
    /// `http`, or `https` when started with OAuth.
    scheme: &'static str,
    _dir: tempfile::TempDir,
    _certificates: Option<tempfile::TempDir>,
}

/// `node_modules/.bin/azurite-blob` of the workspace.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../node_modules/.bin/azurite-blob")
}

impl Azurite {
    /// Starts Azurite's blob service; panics with what to do when it is not installed.
    pub fn start() -> Azurite {
        Azurite::launch(&[], "http", None)
    }

    /// Starts Azurite over https with the Azure emulator's server certificate (so clients
    /// trust it through the emulator's CA) and `--oauth basic`: it then accepts bearer
    /// tokens (checking their issuer, audience and lifetime, not their signature) and answers
    /// `Get User Delegation Key`, which it serves over OAuth only.
    pub fn start_oauth(emulator: &azure_emulator::Emulator) -> Azurite {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = emulator.server_certificate_pem();
        let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert_path, cert).unwrap();
        std::fs::write(&key_path, key).unwrap();
        let args = [
            "--oauth".to_owned(),
            "basic".to_owned(),
            "--cert".to_owned(),
            cert_path.display().to_string(),
            "--key".to_owned(),
            key_path.display().to_string(),
        ];
        Azurite::launch(&args, "https", Some(dir))
    }

    fn launch(
        extra: &[String],
        scheme: &'static str,
        certificates: Option<tempfile::TempDir>,
    ) -> Azurite {
        let bin = binary();
        assert!(
            bin.exists(),
            "Azurite is not installed ({}): run `npm ci` at the top of the repository",
            bin.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(&bin)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--location")
            .arg(dir.path())
            .args([
                "--skipApiVersionCheck",
                "--loose",
                "--silent",
                "--disableTelemetry",
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("azurite-blob starts");
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "Azurite did not listen on port {port} within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Azurite {
            child,
            port,
            scheme,
            _dir: dir,
            _certificates: certificates,
        }
    }

    /// The development account's blob service URL.
    pub fn blob_endpoint(&self) -> String {
        format!("{}://127.0.0.1:{}/{ACCOUNT}", self.scheme, self.port)
    }

    /// A connection string with the development account's key.
    pub fn connection_string(&self) -> String {
        self.connection_string_with_key(KEY)
    }

    pub fn connection_string_with_key(&self, key: &str) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={key};BlobEndpoint={};",
            self.blob_endpoint()
        )
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `f` with a loopback storage endpoint (`http://127.0.0.1:port`) that answers every
/// request with `answer` (a whole HTTP/1.1 response, sent after reading the request head) and
/// counts the requests: a service that refuses the caller (another tenant's token, a missing
/// data role), which Azurite cannot be made to do.
pub fn with_refusing_endpoint<T>(
    answer: &str,
    f: impl FnOnce(&str, &std::sync::atomic::AtomicUsize) -> T,
) -> T {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let stop = AtomicBool::new(false);
    let refused = AtomicUsize::new(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            listener.set_nonblocking(true).unwrap();
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((mut c, _)) => {
                        c.set_nonblocking(false).unwrap();
                        c.set_read_timeout(Some(std::time::Duration::from_millis(200)))
                            .unwrap();
                        let mut head = Vec::new();
                        let mut byte = [0u8; 1];
                        while !head.ends_with(b"\r\n\r\n")
                            && c.read(&mut byte).is_ok_and(|n| n == 1)
                        {
                            head.push(byte[0]);
                        }
                        refused.fetch_add(1, Ordering::SeqCst);
                        let _ = c.write_all(answer.as_bytes());
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
        });
        let result = f(&endpoint, &refused);
        stop.store(true, Ordering::SeqCst);
        result
    })
}
