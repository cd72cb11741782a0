//! What a sandbox for a spec looks like: one blank disk per spec disk, carrying the spec's
//! serial and by-id name, sized from the spec (scaled down) or a default; one NIC per bridge
//! port, named as in the spec.

use std::collections::BTreeSet;
use std::path::Path;

use super::{MAX_SERIAL_LEN, Provide, SandboxConfig, SandboxDisk, sanitize_serial};
use crate::spec::sandboxed::{self, LeftOut};
use crate::spec::types::{Hypervisor, NetManager};
use crate::spec::units::MIB;
use crate::spec::{Spec, scale};

/// How spec sizes become sandbox sizes.
#[derive(Debug, Clone, Copy)]
pub struct Sizing {
    /// Divide the spec's disk sizes by this.
    pub scale: u64,
    /// Size of disks whose size the spec does not give.
    pub default_disk: u64,
}

pub use crate::spec::scale::MIN_DISK;

/// Disks and NICs for `spec`. Commands, workdir and limits are the caller's.
pub fn layout(spec: &Spec, sizing: Sizing) -> Vec<SandboxDisk> {
    let headroom = scale::headroom(spec, sizing.scale);
    spec.disks
        .values()
        .map(|d| {
            let alias =
                d.id.as_ref()
                    .and_then(|id| id.value.strip_prefix("/dev/disk/by-id/"))
                    .map(str::to_string);
            // A serial from the spec is used as is; otherwise the tail of the by-id name
            // (where ata-/nvme- names keep the serial) keeps disks of one model apart.
            let serial = match (&d.serial, &alias) {
                (Some(s), _) => s.value.clone(),
                (None, Some(a)) => {
                    let clean = sanitize_serial(&a.replace(|c: char| !c.is_ascii(), "_"));
                    let full = a.chars().filter(|c| c.is_ascii()).collect::<String>();
                    let tail: String = full
                        .chars()
                        .rev()
                        .take(MAX_SERIAL_LEN)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect();
                    if tail.is_empty() { clean } else { tail }
                }
                (None, None) => "hostform-disk".to_string(),
            };
            // The size the plan inside checks (the spec's, scaled as hostform scales it there),
            // plus the room the scaled capacities' floors need.
            let size = d
                .size
                .map(|s| scale::disk(s.value.0, sizing.scale))
                .unwrap_or(sizing.default_disk.max(MIN_DISK))
                .saturating_add(headroom)
                .div_ceil(MIB)
                * MIB;
            SandboxDisk {
                serial,
                size_bytes: size,
                by_id_aliases: alias.into_iter().collect(),
            }
        })
        .collect()
}

/// Interface names the guest's NICs take: every bridge port of the spec, sorted.
pub fn nics(spec: &Spec) -> Vec<String> {
    let ports: BTreeSet<String> = spec
        .bridges
        .values()
        .flat_map(|b| b.ports.iter().map(|p| p.value.clone()))
        .collect();
    ports.into_iter().collect()
}

/// Apply a spec's disks, NICs, needs and scale to a configuration. `path` is the spec's
/// absolute path: hostform inside scales and leaves out of that spec only.
pub fn apply(cfg: &mut SandboxConfig, spec: &Spec, path: &Path, sizing: Sizing) {
    cfg.env.push((
        sandboxed::SPEC_ENV.to_string(),
        path.to_string_lossy().into_owned(),
    ));
    cfg.disks = layout(spec, sizing);
    cfg.nics = nics(spec);
    cfg.hostname = hostname(spec);
    // Under Xen (chosen by the caller: [`wants_xen`] or `--hypervisor`) Xen guests are kept.
    let out = left_out(spec, cfg.xen);
    // What the spec needs, once the parts the sandbox cannot host are left out.
    cfg.provide = provide(&sandboxed::leave_out(spec, &out));
    if cfg.xen {
        cfg.provide.push(Provide::Xen);
    }
    if sizing.scale > 1 {
        cfg.env
            .push((scale::ENV.to_string(), sizing.scale.to_string()));
    }
    if !out.is_empty() {
        let words: Vec<&str> = out.iter().map(|l| l.word()).collect();
        cfg.env
            .push((sandboxed::LEAVE_OUT_ENV.to_string(), words.join(",")));
    }
}

/// Whether a sandbox for `spec` boots Xen when not told: when the spec has Xen guests.
pub fn wants_xen(spec: &Spec) -> bool {
    LeftOut::Xen.present(spec)
}

/// For a scaled Xen sandbox of a spec with Xen guests: the kernel and initramfs they boot
/// instead of their own ([`sandboxed::XenBoot`]), prepared on the build machine and named to
/// hostform inside. Nothing for a spec without Xen guests.
pub fn xen_guest_boot(cfg: &mut SandboxConfig, spec: &Spec) -> Result<(), super::SandboxError> {
    if !LeftOut::Xen.present(spec) {
        return Ok(());
    }
    let (kernel, ramdisk) = super::xen::sandbox_guest_boot()?;
    for (k, p) in [
        (sandboxed::XEN_KERNEL_ENV, kernel),
        (sandboxed::XEN_RAMDISK_ENV, ramdisk),
    ] {
        cfg.env
            .push((k.to_string(), p.to_string_lossy().into_owned()));
    }
    Ok(())
}

/// The memory of a Xen sandbox for `spec` scaled by `scale`: dom0's share, the spec's Xen
/// guests as the sandbox runs them (their memory scaled, at least
/// [`sandboxed::XEN_GUEST_MIN_MEMORY`] each, plus Xen's own per-domain overhead) and some
/// slack; never less than [`super::xen::DEFAULT_MEMORY_MIB`]. Unscaled, the guests keep their
/// memory and the caller sizes the machine (`--memory`).
pub fn xen_memory_mib(spec: &Spec, scale: u64) -> u32 {
    const OVERHEAD_MIB: u64 = 16;
    const SLACK_MIB: u64 = 128;
    let default = super::xen::DEFAULT_MEMORY_MIB;
    if scale <= 1 {
        return default;
    }
    let guests: u64 = spec
        .vms
        .values()
        .filter(|v| {
            v.hypervisor
                .as_ref()
                .is_some_and(|h| h.value == Hypervisor::Xen)
        })
        .map(|v| {
            let mem = v.memory.as_ref().map_or(0, |m| m.value.0) / scale;
            mem.max(sandboxed::XEN_GUEST_MIN_MEMORY).div_ceil(MIB) + OVERHEAD_MIB
        })
        .sum();
    let dom0 = u64::from(super::xen::dom0_mem_mib(default));
    let need = (dom0 + guests + SLACK_MIB).min(64 * 1024);
    (need as u32).max(default)
}

/// The parts of `spec` this sandbox cannot host, which hostform inside leaves out (and its
/// plan header names): Xen guests when the sandbox boots no Xen (`xen` false), shared VGs
/// until it runs lvmlockd.
pub fn left_out(spec: &Spec, xen: bool) -> Vec<LeftOut> {
    LeftOut::ALL
        .into_iter()
        .filter(|l| !(xen && *l == LeftOut::Xen))
        .filter(|l| l.present(spec))
        .collect()
}

/// What the spec needs from its host that a bare sandbox lacks: the network files its
/// manager reads, libvirtd for libvirt guests, and md resync throttled for its arrays. The Xen
/// toolstack is added by [`apply`] when the sandbox boots Xen; lvmlockd for shared VGs (the
/// cluster issue) is not provided yet: that part is left out ([`left_out`]) and named.
pub fn provide(spec: &Spec) -> Vec<Provide> {
    let mut p = BTreeSet::new();
    if !spec.bridges.is_empty() {
        p.insert(match spec.network.manager {
            NetManager::Networkd => Provide::Networkd,
            NetManager::Ifupdown | NetManager::Auto => Provide::Ifupdown,
        });
    }
    if spec.vms.values().any(|v| {
        v.hypervisor
            .as_ref()
            .is_some_and(|h| h.value == Hypervisor::Libvirt)
    }) {
        p.insert(Provide::Libvirtd);
    }
    if !spec.arrays.is_empty() {
        p.insert(Provide::ThrottleResync);
    }
    p.into_iter().collect()
}

/// The guest's hostname: the spec's host, so that `plan` and `apply` inside take the VM for
/// that host (`crate::workflow::host`); a host that is no valid hostname keeps the default.
pub fn hostname(spec: &Spec) -> String {
    crate::workflow::host::parse_name(&spec.host.value)
        .unwrap_or_else(|_| super::GUEST_HOSTNAME.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_disks_become_sandbox_disks() {
        let l = crate::spec::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("specs/dom0.yaml"),
            None,
        )
        .expect("dom0 loads");
        let disks = layout(
            &l.spec,
            Sizing {
                scale: 1000,
                default_disk: 8 << 30,
            },
        );
        assert_eq!(disks.len(), 2);
        assert_eq!(
            disks[0].by_id_aliases,
            vec!["ata-WDC_WD80EFAX-68LHPN0_7SGK1234".to_string()]
        );
        // Same model, different serials: the tails differ.
        assert_ne!(
            sanitize_serial(&disks[0].serial),
            sanitize_serial(&disks[1].serial)
        );
        assert!(disks[0].serial.ends_with("7SGK1234"));
        // 8 TB / 1000 = 8 GB, rounded up to whole MiB, and the room the scaled LVs' floors
        // need.
        let room = scale::headroom(&l.spec, 1000);
        assert!(room > 0);
        assert_eq!(
            disks[0].size_bytes,
            8_000_000_000u64.div_ceil(MIB) * MIB + room
        );
        assert_eq!(
            provide(&l.spec),
            vec![Provide::Ifupdown, Provide::ThrottleResync]
        );
        assert_eq!(nics(&l.spec), vec!["eth0".to_string()]);
        assert_eq!(hostname(&l.spec), "dom0");
    }

    /// Asked to boot Xen, a spec keeps its Xen guests and gets the toolstack; otherwise they
    /// are left out and named, and nothing of Xen is set up.
    #[test]
    fn xen_guests_are_kept_under_xen() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let l = crate::spec::load(&root.join("specs/dom0.yaml"), None).expect("dom0 loads");
        assert_eq!(left_out(&l.spec, false), vec![LeftOut::Xen]);
        assert!(left_out(&l.spec, true).is_empty());
        let sizing = Sizing {
            scale: 1000,
            default_disk: 8 << 30,
        };
        let mut cfg = SandboxConfig::new("/", vec!["true".into()]);
        apply(&mut cfg, &l.spec, &root.join("specs/dom0.yaml"), sizing);
        assert!(!cfg.xen);
        assert!(!cfg.provide.contains(&Provide::Xen));
        assert!(
            cfg.env
                .iter()
                .any(|(k, v)| k == sandboxed::LEAVE_OUT_ENV && v == "xen"),
            "{:?}",
            cfg.env
        );
        let mut cfg = SandboxConfig::new("/", vec!["true".into()]);
        cfg.xen = true;
        apply(&mut cfg, &l.spec, &root.join("specs/dom0.yaml"), sizing);
        assert_eq!(cfg.provide.last(), Some(&Provide::Xen));
        assert!(
            !cfg.env.iter().any(|(k, _)| k == sandboxed::LEAVE_OUT_ENV),
            "{:?}",
            cfg.env
        );
        let plain = crate::spec::load_str("t.yaml", "host: h\n").expect("valid");
        let mut cfg = SandboxConfig::new("/", vec!["true".into()]);
        apply(&mut cfg, &plain.spec, Path::new("/t.yaml"), sizing);
        assert!(!cfg.xen);
        assert!(!cfg.provide.contains(&Provide::Xen));
        let mut cfg = SandboxConfig::new("/", vec!["true".into()]);
        cfg.xen = true;
        apply(&mut cfg, &plain.spec, Path::new("/t.yaml"), sizing);
        assert_eq!(cfg.provide, vec![Provide::Xen]);
    }

    /// dom0.yaml's eight Xen guests, scaled: 128 MiB each plus Xen's 16, dom0's 1 GiB and
    /// the slack; a spec without Xen guests, or unscaled, gets the default.
    #[test]
    fn a_xen_sandbox_is_sized_for_its_guests() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let l = crate::spec::load(&root.join("specs/dom0.yaml"), None).expect("dom0 loads");
        assert!(wants_xen(&l.spec));
        assert_eq!(l.spec.vms.len(), 8);
        assert_eq!(xen_memory_mib(&l.spec, 1000), 1024 + 8 * (128 + 16) + 128);
        assert_eq!(
            xen_memory_mib(&l.spec, 1),
            super::super::xen::DEFAULT_MEMORY_MIB
        );
        let m = crate::spec::load(&root.join("specs/minimal.yaml"), None).expect("loads");
        assert!(!wants_xen(&m.spec));
        assert_eq!(
            xen_memory_mib(&m.spec, 1000),
            super::super::xen::DEFAULT_MEMORY_MIB
        );
    }

    #[test]
    fn sizes_default_and_have_a_floor() {
        let l = crate::spec::load_str(
            "t.yaml",
            "host: h\ndisks:\n  a: { serial: SA }\n  b: { serial: SB, size: 1GiB }\n",
        )
        .expect("valid");
        let d = layout(
            &l.spec,
            Sizing {
                scale: 1_000_000,
                default_disk: 3 << 30,
            },
        );
        assert_eq!(d[0].serial, "SA");
        assert!(d[0].by_id_aliases.is_empty());
        assert_eq!(d[0].size_bytes, 3 << 30);
        assert_eq!(d[1].size_bytes, MIN_DISK);
    }
}
