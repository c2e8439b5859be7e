//! The azure crate against the in-process Azure emulator, over HTTPS with the emulator's CA
//! passed through task-sdk's HTTP setup (as `AGENT_CAINFO` would).

mod adf;
mod arm;
mod auth;
mod common;
