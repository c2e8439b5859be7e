//! One module per command of the databricks task (see the crate doc for adding one).

pub mod clusters;
pub mod deploy_jobs;
pub mod run_job;
