//! Drives the emulator over HTTPS the way our clients do.

mod adf;
mod adf_objects;
mod adf_run;
mod arm;
mod common;
mod entra;
mod faults;
mod linked;
mod process;
