//! One room per resource kind: how to read it from the host, compare it, and change it.
pub mod block;
pub mod image;
pub mod lvm;
pub mod md;
pub mod net;
pub mod netconf;
