//! The Azure Pipelines agent contract, for task binaries written in Rust.
//!
//! This is our counterpart of azure-pipelines-task-lib, limited to what the agent really does
//! (`shared/specs/agent-contract.md`): reading inputs, variables, secrets and service
//! connections from the environment ([`Agent`]); writing and parsing logging commands
//! ([`command`]); deciding and reporting the task's result ([`run`]); logging through
//! `tracing` in the agent's conventions ([`logging`]); and the settings of the one HTTP client
//! every task uses, read from the agent ([`http::settings_from_agent`]). The client and its
//! retry policy are crate `task-http`, re-exported as [`http`] and [`retry`].
//!
//! It is not a service client: Databricks and Azure calls live in their own crates.
//!
//! A task's `main` is a few lines:
//!
//! ```no_run
//! use task_sdk::{run, TaskInfo, TaskContext, TaskError};
//!
//! const INFO: TaskInfo = TaskInfo { name: "example", version: "0.1.0", manifest: "{}" };
//!
//! fn main() -> std::process::ExitCode {
//!     run(INFO, |ctx: TaskContext| async move {
//!         let folder = ctx.agent.required_input("workspaceFolder")?;
//!         task_sdk::out::info(&format!("deploying to {folder}"));
//!         Ok::<(), TaskError>(())
//!     })
//! }
//! ```

pub mod agent;
pub mod agent_env;
mod cancel;
pub mod command;
pub mod endpoint;
pub mod http;
pub mod logging;
pub mod secrets;
mod task;
pub mod time;

pub use agent::{env_name, Agent, InputError, PickMatch};
pub use cancel::CancelSignal;
pub use command::{IssueType, TaskResult};
pub use endpoint::{AzureAuth, AzureCloud, AzureRmConnection, Endpoint, EndpointError};
pub use task::{out, run, Context, TaskContext, TaskError, TaskInfo, RETRY_BUDGET_VARIABLE};
pub use task_http::retry;
pub use task_http::{HttpClient, Replay, RetryPolicy, SendError};
