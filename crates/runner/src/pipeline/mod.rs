//! The pipeline model and its loader: YAML → stages → jobs → steps, checked before anything
//! runs (unknown keys, missing `dependsOn` targets, task versions and inputs, conditions),
//! every problem reported with `file:line:col`.

mod graph;
mod jobs;
mod load;
mod model;
mod steps;

pub use load::{load, runtime_expression, LoadContext, Loaded};
pub use model::*;
