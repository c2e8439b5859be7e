//! Azure for our tasks: Entra ID tokens from an AzureRM service connection ([`auth`]), the
//! Azure Resource Manager template-deployment client ([`arm`]) and the Data Factory
//! pipeline-run client ([`adf`]) with its factory-object calls for deploying a factory
//! ([`factory`]).
//!
//! Facts: `shared/specs/arm-and-adf.md` (REST calls, api-versions 2021-04-01 and 2018-06-01)
//! and `shared/specs/agent-contract.md` §2 (what the agent exports for a service connection).
//!
//! It is **not** a general Azure SDK: it speaks only the calls the `deploy-arm` and
//! `run-adf-pipeline` tasks (and `configure-databricks`' service-connection mode) need, and it
//! reads nothing from the process environment: tasks read inputs, connections and the agent
//! snapshot with `task_sdk` and pass them in.
//!
//! # Typical use
//!
//! ```no_run
//! # async fn f(ctx: task_sdk::TaskContext) -> Result<(), task_sdk::TaskError> {
//! use azure::{Arm, Credential, DeploymentMode, DeploymentRequest, Scope, WaitOptions};
//! let http = ctx.http_client()?;
//! let conn = ctx.agent.azure_rm(&ctx.agent.required_input("ConnectedServiceName")?)?;
//! let credential = Credential::from_agent(&ctx.agent, &conn, &http)?;
//! let arm = Arm::new(&conn, credential, http)?;
//! let scope = Scope::ResourceGroup { subscription: "sub".into(), group: "rg".into() };
//! let request = DeploymentRequest::inline(serde_json::json!({}), serde_json::json!({}), DeploymentMode::Incremental);
//! arm.validate(&scope, "deploy-1", &request).await?;
//! let started = arm.deploy(&scope, "deploy-1", &request).await?;
//! let cancel = task_sdk::CancelSignal::install().await;
//! let done = arm.wait_deployment(&started, &WaitOptions::default(), cancel.cancelled()).await?;
//! if !done.succeeded() {
//!     for op in arm.list_operations(&scope, "deploy-1").await? { /* print failed ones */ }
//! }
//! # Ok(()) }
//! ```
//!
//! # Tokens without azure_identity
//!
//! Entra ID tokens come from plain token requests sent with task-sdk's client (agent proxy,
//! `AGENT_CAINFO`, the one retry policy), not from the official `azure_identity` crate: it cost
//! every task binary about 160 KB more, misread Entra ID's error bodies, read managed identity
//! settings only from the process environment and retried with its own policy. The
//! measurement and the decision are in [`auth`] and [`auth::AZURE_IDENTITY_MEASUREMENT`].

pub mod adf;
pub mod arm;
pub mod auth;
pub mod error_tree;
pub mod factory;
mod rest;
mod time;

pub use adf::{
    ActivityError, ActivityRun, AdfError, DataFactory, FactoryRef, PipelineRun, RunId, RunStatus,
    RunWaitOptions,
};
pub use arm::{
    Arm, ArmError, CancelOutcome, Change, ChangeType, Deployment, DeploymentMode,
    DeploymentRequest, Operation, ParametersSource, PropertyChange, ProvisioningState, Scope,
    StartedDeployment, TemplateSource, WaitOptions, WhatIfResult,
};
pub use auth::{
    arm_scope, databricks_token, AccessToken, AuthError, Credential, OidcAssertion,
    DATABRICKS_RESOURCE,
};
pub use error_tree::{ArmErrorTree, PolicyViolation};
pub use factory::ObjectPath;
