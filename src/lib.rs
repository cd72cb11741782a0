//! hostform: desired-state management for Linux hypervisor hosts.
pub mod apply;
pub mod cli;
pub mod diag;
pub mod discover;
pub mod interrupt;
pub mod kinds;
pub mod plan;
pub mod progress;
pub mod runner;
pub mod safe;
pub mod sandbox;
pub mod shutdown;
pub mod spec;
pub mod synthetic;
pub mod version;
pub mod workflow;
