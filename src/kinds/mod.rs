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

/// A failure that one more try gets past: the host was busy, not wrong. Each kind tells its
/// own from its tool's words; apply asks once more, after `settle`, and logs `why`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transient {
    /// What happened, for the log.
    pub why: &'static str,
    /// Wait for udev to settle before the second try.
    pub settle: bool,
}

/// Whether the failed command `argv`, which printed `stderr`, is worth one more try.
pub fn transient(argv: &[&str], stderr: &str) -> Option<Transient> {
    if lvm::lock_start_raced_udev(argv, stderr) {
        return Some(Transient {
            why: "lvmlockd did not find the lockspace's device (udev had not made it yet): asking again once udev has settled",
            settle: true,
        });
    }
    if xen::hotplug_timed_out(argv, stderr) {
        return Some(Transient {
            why: "a Xen hotplug script outlasted libxl's 40-s limit (a busy dom0) and libxl destroyed the new domain: trying once more",
            settle: false,
        });
    }
    None
}
