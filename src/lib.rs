//! hostform: desired-state management for Linux hypervisor hosts.
pub mod cli;
pub mod sandbox;
