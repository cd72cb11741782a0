//! The sandbox's spec as hostform sees it inside the VM: its capacities scaled down as the
//! sandbox's disks were ([`super::scale`]), and the parts the sandbox cannot host yet left
//! out, each named with what it waits for. `hostform sandbox` sets the variables; they are
//! ignored outside a sandbox VM ([`super::scale::SANDBOX_MARK`]), so a real host never gets
//! a scaled or partial plan. The spec's label, which heads every plan, says what was done.

use std::path::Path;

use super::scale;
use super::types::{DomainType, Hypervisor, Spec};

/// Set by `hostform sandbox`: what to leave out, comma-separated [`LeftOut`] words.
pub const LEAVE_OUT_ENV: &str = "HOSTFORM_SANDBOX_LEAVE_OUT";

/// Set by `hostform sandbox`: the spec it was shaped from (its absolute path, the same inside
/// the VM). Only that spec is scaled and left out of.
pub const SPEC_ENV: &str = "HOSTFORM_SANDBOX_SPEC";

/// Set by `hostform sandbox` when it boots Xen for a scaled run: the kernel the spec's Xen
/// guests boot in the VM instead of their own (an absolute path on the shared root).
pub const XEN_KERNEL_ENV: &str = "HOSTFORM_SANDBOX_XEN_KERNEL";

/// With [`XEN_KERNEL_ENV`]: the initramfs they boot (a busybox that powers off when asked).
pub const XEN_RAMDISK_ENV: &str = "HOSTFORM_SANDBOX_XEN_RAMDISK";

/// The command line of a Xen guest booted in the sandbox: the initramfs is the root, the
/// console the Xen one, and the kernel spends as little of the emulated CPU as it can.
pub const XEN_GUEST_ARGS: &str = "console=hvc0 rdinit=/init quiet loglevel=3 mitigations=off \
    cryptomgr.notests random.trust_cpu=on no_timer_check audit=0";

/// The least memory a Xen guest gets in a scaled sandbox: the Debian kernel and its busybox
/// initramfs boot in it.
pub const XEN_GUEST_MIN_MEMORY: u64 = 128 * super::units::MIB;

/// How a scaled Xen sandbox runs the spec's Xen guests: their disks are blank LVs (or an
/// appliance's image with no boot loader of its own), so each boots the sandbox's kernel and
/// a tiny initramfs, in its memory divided by the scale (at least [`XEN_GUEST_MIN_MEMORY`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XenBoot {
    pub kernel: String,
    pub ramdisk: String,
}

impl XenBoot {
    fn from_env() -> Option<XenBoot> {
        let path = |k: &str| {
            let v = std::env::var(k).ok()?;
            let p = Path::new(&v);
            // Only a plain absolute path to a file: it lands in an xl config.
            let plain = p.is_absolute()
                && p.components().all(|c| {
                    matches!(
                        c,
                        std::path::Component::RootDir | std::path::Component::Normal(_)
                    )
                })
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c));
            (plain && p.is_file()).then_some(v)
        };
        Some(XenBoot {
            kernel: path(XEN_KERNEL_ENV)?,
            ramdisk: path(XEN_RAMDISK_ENV)?,
        })
    }

    /// Every Xen guest of `spec` booting the sandbox's kernel, its memory scaled by `n`.
    fn apply(&self, spec: &mut Spec, n: u64) {
        use super::de::Sp;
        use super::types::Boot;
        for vm in spec.vms.values_mut().filter(|v| is_xen(v)) {
            let span = vm.memory.as_ref().map(|m| m.span).unwrap_or_default();
            let mem = vm.memory.as_ref().map_or(0, |m| m.value.0);
            let scaled = (mem / n.max(1))
                .div_ceil(super::units::MIB)
                .saturating_mul(super::units::MIB)
                .max(XEN_GUEST_MIN_MEMORY);
            vm.memory = Some(Sp::new(super::units::Size(scaled), span));
            let name = |s: &str| Sp::new(s.to_string(), Default::default());
            vm.boot = Some(Boot {
                loader: None,
                kernel: Some(name(&self.kernel)),
                ramdisk: Some(name(&self.ramdisk)),
                root: None,
                args: Some(name(XEN_GUEST_ARGS)),
                firmware: None,
            });
        }
    }
}

/// A part of a spec the sandbox cannot host yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LeftOut {
    /// Xen guests, when the sandbox boots no Xen hypervisor (`--hypervisor none`).
    Xen,
    /// Shared VGs, their LVs and the guests on them: the sandbox runs no lvmlockd and
    /// sanlock yet.
    SharedVg,
    /// `bootloader-on`, for every spec in the VM: its /boot is the build machine's, shared
    /// over 9p, where GRUB could not read its files. A test that mounts a /boot of its own on
    /// the sandbox's disks keeps it with [`KEEP_BOOTLOADER_ENV`].
    Bootloader,
}

/// Set (to anything) inside the VM: hostform keeps `bootloader-on` (the caller gave GRUB a
/// /boot it can read).
pub const KEEP_BOOTLOADER_ENV: &str = "HOSTFORM_SANDBOX_BOOTLOADER";

impl LeftOut {
    pub const ALL: [LeftOut; 2] = [LeftOut::Xen, LeftOut::SharedVg];

    pub fn word(self) -> &'static str {
        match self {
            LeftOut::Xen => "xen",
            LeftOut::SharedVg => "shared-vg",
            LeftOut::Bootloader => "bootloader",
        }
    }

    /// What is left out, and what it waits for.
    pub fn describe(self) -> &'static str {
        match self {
            LeftOut::Xen => "Xen guests (the sandbox boots no Xen with `--hypervisor none`)",
            LeftOut::SharedVg => {
                "shared VGs and the guests on them (lvmlockd and sanlock run only in the sandbox of a cluster: a spec with `cluster:`)"
            }
            LeftOut::Bootloader => {
                "the boot chain: boot loaders, mdadm.conf and the initramfs (the sandbox's /boot is the build machine's, which GRUB cannot read)"
            }
        }
    }

    fn parse(word: &str) -> Option<LeftOut> {
        LeftOut::ALL.into_iter().find(|l| l.word() == word.trim())
    }

    /// Whether `spec` has anything of this part.
    pub fn present(self, spec: &Spec) -> bool {
        match self {
            LeftOut::Xen => spec.vms.values().any(is_xen),
            LeftOut::SharedVg => spec.volume_groups.values().any(|v| v.shared),
            LeftOut::Bootloader => spec.arrays.values().any(|a| !a.bootloader_on.is_empty()),
        }
    }
}

fn is_xen(vm: &super::types::Vm) -> bool {
    vm.hypervisor
        .as_ref()
        .is_some_and(|h| h.value == Hypervisor::Xen)
}

/// `spec` without `parts`: the guests, VGs and LVs they name, and every reference to them
/// (a dependency on a guest left out, a guest whose disk is on a VG left out).
pub fn leave_out(spec: &Spec, parts: &[LeftOut]) -> Spec {
    let mut s = spec.clone();
    for part in parts {
        match part {
            LeftOut::Bootloader => {
                for a in s.arrays.values_mut() {
                    a.bootloader_on.clear();
                }
            }
            LeftOut::Xen => s.vms.retain(|_, vm| !is_xen(vm)),
            LeftOut::SharedVg => {
                let shared: Vec<String> = s
                    .volume_groups
                    .iter()
                    .filter(|(_, v)| v.shared)
                    .map(|(k, _)| k.value.clone())
                    .collect();
                s.volume_groups.retain(|k, _| !shared.contains(&k.value));
                s.vms.retain(|_, vm| {
                    !vm.disks.iter().any(|d| {
                        d.lv.value
                            .split_once('/')
                            .is_some_and(|(vg, _)| shared.iter().any(|x| x == vg))
                    })
                });
            }
        }
    }
    let kept: Vec<String> = s.vms.keys().map(|k| k.value.clone()).collect();
    for vm in s.vms.values_mut() {
        vm.depends_on.retain(|d| kept.contains(&d.value));
    }
    s.shutdown.first.retain(|d| kept.contains(&d.value));
    s
}

/// What the sandbox asks of hostform inside, from the environment: a scale and the parts
/// to leave out. Both empty outside a sandbox VM.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Sandboxed {
    pub scale: Option<u64>,
    pub leave_out: Vec<LeftOut>,
    /// In a scaled Xen sandbox: what the Xen guests boot ([`XenBoot`]).
    pub xen_boot: Option<XenBoot>,
}

impl Sandboxed {
    /// For the spec at `path`: what the sandbox asks, when this is a sandbox VM and `path`
    /// is the spec the sandbox was shaped from ([`SPEC_ENV`]). Any other spec loads as written,
    /// in a sandbox too.
    pub fn from_env(path: &Path) -> Sandboxed {
        let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        if !Path::new(scale::SANDBOX_MARK).is_dir() {
            return Sandboxed::default();
        }
        // Every spec in the VM, not only the one it was shaped from.
        let boot: Vec<LeftOut> = if std::env::var_os(KEEP_BOOTLOADER_ENV).is_some() {
            Vec::new()
        } else {
            vec![LeftOut::Bootloader]
        };
        let ours = std::env::var_os(SPEC_ENV).is_some_and(|s| same(Path::new(&s), path));
        if !ours {
            return Sandboxed {
                scale: None,
                leave_out: boot,
                xen_boot: None,
            };
        }
        let mut leave_out: Vec<LeftOut> = std::env::var(LEAVE_OUT_ENV)
            .unwrap_or_default()
            .split(',')
            .filter_map(LeftOut::parse)
            .chain(boot)
            .collect();
        leave_out.sort();
        leave_out.dedup();
        let scale = scale::from_env();
        Sandboxed {
            scale,
            leave_out,
            // Only a scaled run boots its own kernel in place of the guests': with
            // `--scale 1` the spec runs as written.
            xen_boot: scale.and_then(|_| XenBoot::from_env()),
        }
    }

    /// The spec as the sandbox runs it, and its label saying how.
    pub fn apply(&self, spec: Spec, label: String) -> (Spec, String) {
        let mut notes = Vec::new();
        let mut spec = spec;
        if let Some(n) = self.scale {
            spec = scale::scaled(&spec, n);
            notes.push(format!("capacities divided by {n}"));
        }
        let present: Vec<LeftOut> = self
            .leave_out
            .iter()
            .copied()
            .filter(|l| l.present(&spec))
            .collect();
        if !present.is_empty() {
            spec = leave_out(&spec, &present);
            notes.extend(
                present
                    .iter()
                    .map(|l| format!("left out: {}", l.describe())),
            );
        }
        if let (Some(boot), Some(n)) = (&self.xen_boot, self.scale)
            && spec.vms.values().any(is_xen)
        {
            boot.apply(&mut spec, n);
            notes.push(format!(
                    "Xen guests boot the sandbox's kernel and a busybox initramfs, memory divided by {n} (at least {} MiB): their disks hold no OS",
                    XEN_GUEST_MIN_MEMORY / super::units::MIB
                ));
        }
        // No KVM in the sandbox (its guests are emulated, `domain-type: qemu`).
        let libvirt_guests = spec.vms.values().any(|v| {
            v.hypervisor
                .as_ref()
                .is_some_and(|h| h.value == Hypervisor::Libvirt)
        });
        if libvirt_guests
            && spec.libvirt.domain_type.as_ref().map(|d| d.value) != Some(DomainType::Qemu)
        {
            spec.libvirt.domain_type =
                Some(super::de::Sp::new(DomainType::Qemu, Default::default()));
            notes.push("libvirt guests emulated (domain-type qemu: no KVM)".into());
        }
        if notes.is_empty() {
            (spec, label)
        } else {
            (spec, format!("{label} (sandbox: {})", notes.join("; ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(name: &str) -> Spec {
        crate::spec::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(name),
            None,
        )
        .expect("loads")
        .spec
    }

    #[test]
    fn xen_guests_go_and_nothing_else() {
        let s = load("specs/dom0.yaml");
        assert!(LeftOut::Xen.present(&s));
        assert!(!LeftOut::SharedVg.present(&s));
        let t = leave_out(&s, &[LeftOut::Xen]);
        assert!(t.vms.is_empty());
        assert!(t.shutdown.first.is_empty());
        assert_eq!(t.volume_groups.len(), s.volume_groups.len());
        assert_eq!(t.bridges.len(), s.bridges.len());
        assert!(
            crate::spec::validate::validate(&t, &Default::default())
                .iter()
                .all(|d| !d.is_error())
        );
    }

    #[test]
    fn a_shared_vg_goes_with_the_guests_on_it() {
        let s = load("specs/kvm1.yaml");
        assert!(LeftOut::SharedVg.present(&s));
        let t = leave_out(&s, &[LeftOut::SharedVg]);
        assert!(t.volume_groups.values().all(|v| !v.shared));
        assert!(t.volume_groups.len() < s.volume_groups.len());
        for vm in t.vms.values() {
            for d in &vm.disks {
                let vg = d.lv.value.split_once('/').unwrap().0;
                assert!(t.volume_groups.keys().any(|k| k.value == vg), "{vg}");
            }
            for dep in &vm.depends_on {
                assert!(t.vms.keys().any(|k| k.value == dep.value));
            }
        }
        assert!(
            crate::spec::validate::validate(&t, &Default::default())
                .iter()
                .all(|d| !d.is_error())
        );
    }

    #[test]
    fn the_label_says_what_was_done_and_a_part_absent_is_not_named() {
        let sb = Sandboxed {
            scale: Some(1000),
            leave_out: vec![LeftOut::Xen, LeftOut::SharedVg],
            xen_boot: None,
        };
        let (_, label) = sb.apply(load("specs/dom0.yaml"), "specs/dom0.yaml".into());
        assert_eq!(
            label,
            "specs/dom0.yaml (sandbox: capacities divided by 1000; left out: Xen guests (the sandbox boots no Xen with `--hypervisor none`))"
        );
        let (_, label) = Sandboxed::default().apply(load("specs/minimal.yaml"), "m".into());
        assert_eq!(label, "m");
    }

    /// A scaled Xen sandbox runs every Xen guest of dom0.yaml from its own kernel, in its
    /// memory divided (at least the floor), keeping disks, NICs and dependencies; the label
    /// says so, and the spec it makes is still valid. Unscaled, nothing changes.
    #[test]
    fn in_a_scaled_xen_sandbox_xen_guests_boot_the_sandbox_kernel() {
        let boot = XenBoot {
            kernel: "/var/tmp/hostform-sandbox-cache/vmlinux-6.1".into(),
            ramdisk: "/var/tmp/hostform-sandbox-cache/pv-guest-0123.cpio".into(),
        };
        let s = load("specs/dom0.yaml");
        let sb = Sandboxed {
            scale: Some(1000),
            leave_out: vec![LeftOut::Bootloader],
            xen_boot: Some(boot.clone()),
        };
        let (t, label) = sb.apply(s.clone(), "specs/dom0.yaml".into());
        assert!(
            label.contains("Xen guests boot the sandbox's kernel and a busybox initramfs, memory divided by 1000 (at least 128 MiB)"),
            "{label}"
        );
        assert_eq!(t.vms.len(), s.vms.len());
        for (name, vm) in &t.vms {
            let b = vm.boot.as_ref().expect("boot");
            assert_eq!(b.loader, None, "{name}");
            assert_eq!(b.kernel.as_ref().unwrap().value, boot.kernel);
            assert_eq!(b.ramdisk.as_ref().unwrap().value, boot.ramdisk);
            assert!(b.args.as_ref().unwrap().value.contains("rdinit=/init"));
            assert_eq!(vm.memory.as_ref().unwrap().value.0, XEN_GUEST_MIN_MEMORY);
            let was = &s.vms[name.value.as_str()];
            assert_eq!(vm.disks.len(), was.disks.len());
            assert_eq!(vm.nics.len(), was.nics.len());
            assert_eq!(vm.depends_on, was.depends_on);
            assert_eq!(vm.vcpus, was.vcpus);
        }
        assert!(
            crate::spec::validate::validate(&t, &Default::default())
                .iter()
                .all(|d| !d.is_error())
        );
        // A large guest keeps its memory divided, above the floor.
        let mut big = s.clone();
        big.vms.values_mut().next().unwrap().memory = Some(super::super::de::Sp::new(
            super::super::units::Size(512 << 30),
            Default::default(),
        ));
        let (t, _) = sb.apply(big, "b".into());
        assert_eq!(
            t.vms
                .values()
                .next()
                .unwrap()
                .memory
                .as_ref()
                .unwrap()
                .value
                .0,
            (512u64 << 30) / 1000 / super::super::units::MIB * super::super::units::MIB
                + super::super::units::MIB
        );
        // Unscaled (`--scale 1`): the guests run as written.
        let as_written = Sandboxed {
            scale: None,
            leave_out: vec![],
            xen_boot: Some(boot),
        };
        let (t, label) = as_written.apply(s.clone(), "s".into());
        assert_eq!(label, "s");
        for (name, vm) in &t.vms {
            assert_eq!(
                vm.boot.as_ref().and_then(|b| b.loader),
                s.vms[name.value.as_str()]
                    .boot
                    .as_ref()
                    .and_then(|b| b.loader)
            );
        }
    }

    #[test]
    fn the_boot_chain_goes_and_nothing_else() {
        let s = load("tests/specs/e2e/boot.yaml");
        assert!(LeftOut::Bootloader.present(&s));
        let t = leave_out(&s, &[LeftOut::Bootloader]);
        assert!(!LeftOut::Bootloader.present(&t));
        assert_eq!(t.disks.len(), s.disks.len());
        assert_eq!(t.arrays.len(), s.arrays.len());
        assert!(
            t.volume_groups["vg0"].lvs["boot"].mount.is_some(),
            "mounts stay"
        );
        // Not announced by `hostform sandbox` (it applies to every spec in the VM).
        assert!(!LeftOut::ALL.contains(&LeftOut::Bootloader));
    }

    #[test]
    fn outside_a_sandbox_vm_the_variables_do_nothing() {
        // The build machine is no sandbox VM.
        assert!(!std::path::Path::new(scale::SANDBOX_MARK).exists());
        assert_eq!(
            Sandboxed::from_env(Path::new("specs/dom0.yaml")),
            Sandboxed::default()
        );
    }
}
