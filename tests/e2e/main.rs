//! The end-to-end tier: a throwaway VM with a real kernel (hostform sandbox), real mdadm, LVM,
//! sfdisk, udev and iproute2. Slow (each test boots a VM, about 6-12 s): at most
//! `HOSTFORM_E2E_VMS` VMs (2 by default) run at once.
//!
//! Where no sandbox can boot, each test says so loudly and passes, unless HOSTFORM_E2E=require
//! or CI=true, where it fails: the tier is never silently skipped in CI (scripts/test).
//!
//! One binary (`cargo test --test e2e`), one module per area; a test's name is its module and
//! its own name, e.g. `cargo test --test e2e storage::` runs the storage area. Each test that
//! boots prints an `e2e-timing` line when it ends (common.rs, docs/performance.md).
mod boot;
mod cluster;
mod common;
mod guests;
mod net;
mod package;
mod safety;
mod sandbox;
mod storage;
mod workflow;
mod xen;
