//! What the four Databricks tasks (`configuredatabricks`, `deploynotebooks`,
//! `executenotebook`, `waitexecution`) share, in one place:
//!
//! - [`connection`]: which workspace and credentials a task uses — its own inputs, else the
//!   job variables `Databricks.Host` / `Databricks.Token` that `configuredatabricks` set —
//!   and how errors are explained (an expired Entra ID token, a refused token, a wrong URL);
//! - [`idempotency`]: the token that makes a retried `runs/submit` return the run it started;
//! - [`wait`]: waiting for a run and reporting its end (used by `executenotebook` with
//!   "wait" on, and by `waitexecution`: one implementation).
//!
//! It is not a Databricks client (that is the `databricks` crate) and prints only through
//! `task_sdk::out`.

pub mod connection;

/// The job variable `executenotebook` sets with the run id and `waitexecution` reads, named
/// as the old marketplace tasks named it so that scripts reading it keep working.
pub const RUN_ID_VARIABLE: &str = "AZDO_DATABRICKS_RUNID";

pub mod idempotency;
pub mod wait;

pub use connection::{
    entra_credential, explain, workspace_url, Connection, CredentialKind, HOST_VARIABLE,
    SERVICE_CONNECTION_INPUT, TOKEN_EXPIRES_VARIABLE, TOKEN_VARIABLE,
};

/// SHA-256 of `bytes` as lower-case hex (file digests for incremental uploads).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

#[cfg(feature = "testing")]
pub mod testing;
