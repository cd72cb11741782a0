//! The integration tests: one binary, one module per area (fast tier: no root, no VM).
mod bad_input;
mod cli;
mod colour;
mod common;
mod git;
mod host;
mod net;
mod plan;
mod plan_format;
mod safety;
mod scenarios;
mod schema;
mod shutdown;
mod spec_fuzz;
mod strings;
mod validate;
mod workflow;
