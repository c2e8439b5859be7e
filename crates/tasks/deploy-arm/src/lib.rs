//! The `deployarm` task's logic: reading the inputs of `AzureResourceManagerTemplateDeployment@3`
//! (and the aliases of `AzureResourceGroupDeployment@2`, so either task's YAML works after
//! renaming it), building the deployment from template and parameters files or URLs with
//! `overrideParameters` applied, and running it through the `azure` crate's ARM client:
//! validate, deploy and wait (cancelling the deployment on timeout or pipeline cancellation),
//! validation only, what-if, or deleting a resource group. Failures show the whole ARM error
//! tree and the failed deployment operations; outputs become variables in the Microsoft
//! task's format.
//!
//! It is not an ARM client (that is the `azure` crate), and the binary stays a few lines: it
//! hands [`deploy::run`] the agent snapshot, the HTTP client and the cancellation signal.
//!
//! Modules, each testable on its own:
//! - [`inputs`]: typed inputs, aliases, pick-list values;
//! - [`overrides`]: the `overrideParameters` grammar and typing;
//! - [`files`]: file patterns, encodings, JSON with comments;
//! - [`naming`]: deployment names;
//! - [`outputs`]: outputs as variables;
//! - [`whatif`]: what-if changes as a table and as Markdown;
//! - [`artifacts`]: staging the template's folder for linked templates;
//! - [`deploy`]: the flow.

pub mod artifacts;
pub mod deploy;
pub mod files;
pub mod inputs;
pub mod naming;
pub mod outputs;
pub mod overrides;
pub mod whatif;
