//! Synthetic hosts of any size, for benchmarks and scaling tests. The shape follows the
//! domain's host: two disks, a RAID1, one VG holding every guest's LVs, a bridge, and guests
//! with templates and a dependency chain.
//!
//! Two sides: [`spec`] writes the spec an operator would keep in git, and [`grown`] builds the
//! facts of a host that already has N LVs and guests, by cloning records that discovery read
//! from real captured tool output (tests/fixtures), so a plan against it must find nothing to do.

use std::fmt::Write as _;

use crate::discover::Facts;
use crate::kinds::guest::SeenDomain;
use crate::kinds::libvirt::Domain;
use crate::spec::types::Hypervisor;

/// A valid spec with `lvs` logical volumes and `vms` Xen guests (each guest gets up to five of
/// the LVs as disks). Disk sizes grow with the LV count so the VG is never overcommitted.
pub fn spec(lvs: usize, vms: usize) -> String {
    spec_for(lvs, vms, Hypervisor::Xen)
}

/// How many LVs and guests make a host of `resources` resources in these specs: the two disks,
/// the array, the VG and the bridge, then five LVs for each guest.
pub fn split(resources: usize) -> (usize, usize) {
    let rest = resources.saturating_sub(5);
    let vms = rest / 6;
    (rest - vms, vms)
}

/// [`spec`] with the guests on `hypervisor` (libvirt guests boot from their first disk).
pub fn spec_for(lvs: usize, vms: usize, hypervisor: Hypervisor) -> String {
    let mut s = String::with_capacity(lvs * 60 + vms * 300 + 1024);
    let disk_tib = (lvs as u64).div_ceil(1000) + 1;
    let _ = write!(
        s,
        "version: 1\nhost: synthetic\nroot: {{ readonly: true }}\ndisks:\n  sda:\n    id: /dev/disk/by-id/ata-SYNTH_A\n    size: {disk_tib}TiB\n    partitions:\n      - {{ name: bios, size: 2MiB, type: bios-boot }}\n      - {{ name: raid, size: rest, type: linux-raid }}\n  sdb:\n    id: /dev/disk/by-id/ata-SYNTH_B\n    size: {disk_tib}TiB\n    like: sda\narrays:\n  md0: {{ level: 1, devices: [sda/raid, sdb/raid], bootloader-on: [sda, sdb] }}\nvolume-groups:\n  vg0:\n    pvs: [md0]\n    lvs:\n"
    );
    for i in 0..lvs {
        let fs = ["ext4", "ext4", "swap", "xfs", "none"][i % 5];
        let _ = writeln!(s, "      lv{i:06}: {{ size: 1GiB, fs: {fs} }}");
    }
    // The address the captured `addressed` host has on eth0: the plan moves it to the bridge.
    s.push_str("network: { manager: networkd }\nbridges:\n  br0: { ports: [eth0], addresses: [192.0.2.10/24], gateway: 192.0.2.1 }\n");
    let (hv, boot, disk) = match hypervisor {
        Hypervisor::Xen => ("xen", "{ loader: pygrub, root: /dev/xvda1 ro }", "xvda"),
        Hypervisor::Libvirt => ("libvirt", "{ firmware: bios }", "vd"),
    };
    let _ = write!(
        s,
        "vm-defaults:\n  hypervisor: {hv}\n  memory: 1GiB\n  nics: [{{ bridge: br0 }}]\nvm-templates:\n  debian: {{ boot: {boot} }}\n  big: {{ template: debian, memory: 4GiB, vcpus: 4 }}\n"
    );
    s.push_str("vms:\n");
    for v in 0..vms {
        let _ = writeln!(s, "  vm{v:06}:");
        let _ = writeln!(
            s,
            "    template: {}",
            if v % 3 == 0 { "big" } else { "debian" }
        );
        s.push_str("    disks:\n");
        for (k, lv) in (v * 5..(v * 5 + 5).min(lvs)).enumerate() {
            let target = match hypervisor {
                Hypervisor::Xen => format!("{disk}{}", k + 1),
                Hypervisor::Libvirt => format!("{disk}{}", (b'a' + k as u8) as char),
            };
            let _ = writeln!(s, "      - {{ lv: vg0/lv{lv:06}, target: {target} }}");
        }
        let _ = writeln!(
            s,
            "    nics: [{{ bridge: br0, mac: \"00:16:3e:{:02x}:{:02x}:{:02x}\" }}]",
            (v >> 16) & 0xff,
            (v >> 8) & 0xff,
            v & 0xff
        );
        if v % 10 != 0 {
            let _ = writeln!(s, "    depends-on: [vm{:06}]", v - 1);
        }
    }
    s.push_str("shutdown: { timeout: 2m, on-timeout: destroy }\n");
    s
}

/// What the grown host's LVs and guests are made of: records discovery read from real tool
/// output (the captured `full` stack, a `bridge` network, a libvirt domain definition).
pub struct Base {
    /// A discovered storage stack with a RAID1 `md0` under a VG `vg0` holding LVs with
    /// filesystems (tests/fixtures/full).
    pub storage: Facts,
    /// A discovered network with a bridge (tests/fixtures/bridge).
    pub net: crate::kinds::net::NetFacts,
    /// A libvirt domain as libvirt stored it (tests/fixtures/guests, /etc/libvirt/qemu/g1.xml).
    pub domain: Domain,
}

impl Base {
    /// Read the base from captured fixtures (`tests/fixtures` of the source tree): `full/` for
    /// the storage, `bridge/` for the network, `guests/cat-etc-g1` for the domain.
    pub fn from_fixtures(dir: &std::path::Path) -> Result<Base, String> {
        let replay = |s: &str| {
            crate::runner::ReplayRunner::open(dir.join(s)).map_err(|e| format!("{s}: {e}"))
        };
        let storage = crate::discover::discover(&replay("full")?)?.facts;
        let net = crate::kinds::net::discover(&replay("bridge")?)?;
        let xml =
            std::fs::read_to_string(dir.join("guests/cat-etc-g1")).map_err(|e| e.to_string())?;
        let domain = crate::kinds::libvirt::parse_domain(&xml)?;
        Ok(Base {
            storage,
            net,
            domain,
        })
    }

    /// The facts of a blank host to create a [`spec_for`] host on: the captured blank disks
    /// (`blank/`), given the synthetic spec's ids and made big enough for `lvs` LVs, with the
    /// captured `addressed/` network (eth0 holds 192.0.2.10/24, the default route via
    /// 192.0.2.1) and a libvirt that has no guests yet.
    pub fn blank(dir: &std::path::Path) -> Result<Facts, String> {
        let replay = |s: &str| {
            crate::runner::ReplayRunner::open(dir.join(s)).map_err(|e| format!("{s}: {e}"))
        };
        let mut f = crate::discover::discover(&replay("blank")?)?.facts;
        f.by_id.insert("ata-SYNTH_A".into(), "vda".into());
        f.by_id.insert("ata-SYNTH_B".into(), "vdb".into());
        for d in ["vda", "vdb"] {
            f.blocks
                .devices
                .get_mut(d)
                .ok_or("the blank fixture has vda and vdb")?
                .size = 1 << 50;
        }
        f.net = crate::kinds::net::discover(&replay("addressed")?)?;
        // A host with GRUB's tools, booted from an ext4 /boot (the blank capture had none).
        f.boot.grub_install = true;
        f.boot.grub_images = true;
        f.boot.grub_home = Some(("/dev/mapper/vg0-dom0_root".into(), "ext4".into()));
        f.guests.libvirt = Some(crate::kinds::guest::LibvirtFacts {
            uri: crate::kinds::libvirt::DEFAULT_URI.to_string(),
            domains: Default::default(),
        });
        Ok(f)
    }
}

/// Size of each LV [`grown`] adds.
pub const GROWN_LV_SIZE: u64 = 8 << 20;

/// The facts of `base` grown by `lvs` LVs of [`GROWN_LV_SIZE`] on `vg0` (`lv000000`…, each a
/// clone of one of the base's own LVs with its filesystem, cycling through them) and `vms`
/// running libvirt guests (`vm000000`…, clones of the base's domain, each with five of the new
/// LVs as disks and a NIC on the base's first bridge), the disks, partitions, array, PV and VG
/// enlarged to hold them, and the network files hostform writes for the base's bridges. A
/// plan of the spec discovery makes of it (`discover::describe`) finds nothing to do.
pub fn grown(base: &Base, host: &str, lvs: usize, vms: usize) -> Facts {
    use crate::kinds::block::BlockDev;
    let mut f = base.storage.clone();
    let extra = lvs as u64 * GROWN_LV_SIZE;
    // Room for the new LVs, all the way down the stack.
    let md = f.arrays.get_mut("md0").expect("the base has md0");
    md.blocks += extra / 1024;
    let members: Vec<String> = md.members.iter().map(|m| m.kname.clone()).collect();
    let mut grow = vec!["md0".to_string()];
    for m in &members {
        grow.push(m.clone());
        if let Some(d) = f.blocks.devices.get(m).and_then(|b| b.parents.first()) {
            grow.push(d.clone());
        }
    }
    for k in &grow {
        if let Some(b) = f.blocks.devices.get_mut(k) {
            b.size += extra;
        }
    }
    for pv in f.lvm.pvs.iter_mut().filter(|p| p.vg == "vg0") {
        pv.size += extra;
    }
    if let Some(vg) = f.lvm.vgs.get_mut("vg0") {
        vg.size += extra;
    }
    // The LVs to clone: the base's plain LVs (no snapshot, not read-only) with their device.
    let dm = |lv: &str| format!("vg0-{}", lv.replace('-', "--"));
    let models: Vec<(crate::kinds::lvm::Lv, BlockDev)> = f
        .lvm
        .lvs
        .values()
        .filter(|l| l.vg == "vg0" && !l.internal && l.origin.is_none() && !l.readonly)
        .filter_map(|l| Some((l.clone(), f.blocks.by_name(&dm(&l.name))?.clone())))
        .collect();
    assert!(!models.is_empty(), "the base has LVs on vg0");
    for i in 0..lvs {
        let (lv, dev) = &models[i % models.len()];
        let name = format!("lv{i:06}");
        f.lvm.lvs.insert(
            format!("vg0/{name}"),
            crate::kinds::lvm::Lv {
                name: name.clone(),
                size: GROWN_LV_SIZE,
                path: format!("/dev/vg0/{name}"),
                active: true,
                open: false,
                tags: Vec::new(),
                ..lv.clone()
            },
        );
        let kname = format!("dm-{}", 1000 + i);
        f.blocks.devices.insert(
            kname.clone(),
            BlockDev {
                kname,
                name: dm(&name),
                path: format!("/dev/mapper/{}", dm(&name)),
                size: GROWN_LV_SIZE,
                uuid: None,
                mountpoints: Vec::new(),
                ..dev.clone()
            },
        );
    }
    f.blocks.index();
    // The guests, running and started with the host.
    let bridge = base
        .net
        .links
        .values()
        .find(|l| l.is_bridge())
        .map(|l| l.name.clone())
        .expect("the base network has a bridge");
    let libvirt = f
        .guests
        .libvirt
        .get_or_insert_with(crate::kinds::guest::LibvirtFacts::default);
    libvirt.uri = crate::kinds::libvirt::DEFAULT_URI.to_string();
    for v in 0..vms {
        let name = format!("vm{v:06}");
        let mut d = base.domain.clone();
        d.config.name = name.clone();
        d.uuid = Some(format!("00000000-0000-4000-8000-{v:012}"));
        d.config.disks = (v * 5..(v * 5 + 5).min(lvs))
            .enumerate()
            .map(|(k, lv)| crate::kinds::guest::GuestDisk {
                source: format!("/dev/vg0/lv{lv:06}"),
                target: format!("vd{}", (b'a' + k as u8) as char),
                readonly: false,
            })
            .collect();
        d.config.nics = vec![crate::kinds::guest::GuestNic {
            bridge: bridge.clone(),
            mac: Some(format!(
                "52:54:00:{:02x}:{:02x}:{:02x}",
                (v >> 16) & 0xff,
                (v >> 8) & 0xff,
                v & 0xff
            )),
        }];
        libvirt.domains.insert(
            name,
            SeenDomain {
                state: "running".into(),
                autostart: true,
                definition: Some(d),
                error: None,
            },
        );
    }
    // The network, persisted as hostform persists it.
    f.net = base.net.clone();
    let manager = crate::spec::types::NetManager::Networkd;
    f.net.manager = Some(manager);
    f.net.files = crate::kinds::netconf::render(host, &f.net.bridges(), manager);
    f
}

#[cfg(test)]
mod tests {
    fn fixtures() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
    }

    /// The premise of the converged scale benchmark: the spec discovery makes of a grown host
    /// validates, and a plan of it against the same facts has nothing to do.
    #[test]
    fn a_grown_host_adopted_as_its_spec_plans_nothing() {
        let base = super::Base::from_fixtures(&fixtures()).expect("fixtures");
        let mut facts = super::grown(&base, "synthetic", 60, 12);
        let spec = crate::discover::describe("synthetic", &mut facts);
        assert!(facts.notes.is_empty(), "{:?}", facts.notes);
        let yaml = serde_saphyr::to_string(&spec).expect("serializes");
        let loaded = match crate::spec::load_str("grown.yaml", &yaml) {
            Ok(l) => l,
            Err(f) => panic!("{:?}\n{yaml}", f.diagnostics),
        };
        let vg0 = &loaded.spec.volume_groups["vg0"];
        assert!(vg0.lvs.contains_key("lv000059"));
        assert_eq!(loaded.spec.vms.len(), 12);
        assert_eq!(loaded.spec.vms["vm000011"].disks.len(), 5);
        let plan = crate::plan::plan_host(&loaded.spec, &facts, &Default::default());
        assert!(plan.refusals.is_empty(), "{:?}", plan.refusals);
        assert!(plan.ops.is_empty(), "{}", crate::plan::render(&plan, false));
    }

    /// The premise of the create scale benchmark: the whole synthetic host (disks, array, VG,
    /// LVs, the bridge taking eth0's address, libvirt guests) plans on the blank fixture with
    /// no refusal.
    #[test]
    fn a_synthetic_host_plans_on_blank_disks() {
        let facts = super::Base::blank(&fixtures()).expect("fixtures");
        let text = super::spec_for(60, 10, crate::spec::types::Hypervisor::Libvirt);
        let loaded = crate::spec::load_str("s.yaml", &text).expect("valid");
        let plan = crate::plan::plan_host(&loaded.spec, &facts, &Default::default());
        assert!(plan.refusals.is_empty(), "{:?}", plan.refusals);
        let text = crate::plan::render(&plan, false);
        for want in ["lvcreate", "virsh", "ip link add name br0", "vm000009"] {
            assert!(text.contains(want), "{want} not in\n{text}");
        }
    }

    #[test]
    fn split_counts_every_resource() {
        for n in [1000, 10_000, 50_000] {
            let (lvs, vms) = super::split(n);
            assert_eq!(lvs + vms + 5, n);
            assert!(lvs >= vms * 5, "{n}: {lvs} LVs for {vms} guests");
        }
    }
    #[test]
    fn synthetic_specs_are_valid_at_every_size() {
        for (lvs, vms) in [(0, 0), (7, 1), (500, 100)] {
            let text = super::spec(lvs, vms);
            match crate::spec::load_str("synthetic.yaml", &text) {
                Ok(l) => {
                    assert_eq!(l.spec.volume_groups["vg0"].lvs.len(), lvs);
                    assert_eq!(l.spec.vms.len(), vms);
                }
                Err(f) => panic!("{:?}", f.diagnostics),
            }
        }
    }
}
