//! Fault rules for the local emulators (Databricks, Azure), so tests can make a chosen call fail
//! the way a real service sometimes does: an error status (429, 500, 503 … with `Retry-After`)
//! or a connection closed without an answer, before the request is handled or after it (the
//! service did the work; the client never hears of it).
//!
//! A rule names `METHOD path-pattern` (`*` in either matches anything, `/` included; paths
//! compare ignoring ASCII case), skips the first `offset` requests it matches and then fires
//! `times` times (forever without `times`). Rules are set when an emulator starts (a flag in
//! [`Rule::from_str`]'s form) or while it runs (`POST /emulator/faults` with [`Rule::from_json`]'s
//! form; `GET` lists what is left, `DELETE` clears), and each emulator renders a status fault
//! with its own service's error body.
//!
//! Dropping a connection needs a server that can close one from inside a handler, which
//! `axum::serve` cannot: [`serve_connection`] serves one connection and hands each request a
//! [`ConnectionKill`].
//!
//! [`TokenBucket`] is the rate limit both emulators apply (Databricks per endpoint, Azure
//! Resource Manager per subscription for writes).
//!
//! Not here: probabilistic faults (the Databricks emulator keeps its own, next to these rules)
//! and latency.

mod bucket;
mod connection;
mod rule;

pub use bucket::TokenBucket;
pub use connection::{serve_connection, ConnectionKill};
pub use rule::{Action, DropMode, Rule, Rules};
