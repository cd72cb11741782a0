//! One room per resource kind: how to read it from the host, compare it, and change it.
pub mod block;
pub mod boot;
pub mod guest;
pub mod image;
pub mod libvirt;
pub mod lvm;
pub mod md;
pub mod net;
pub mod netconf;
pub mod xen;
