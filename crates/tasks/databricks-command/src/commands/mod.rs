//! One module per command of the databricks task (see the crate doc for adding one).

pub mod clusters;
pub mod deploy_jobs;
pub mod git_folder;
pub mod libraries;
pub mod run_job;
pub mod secrets;
pub mod upload;
