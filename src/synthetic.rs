//! Synthetic host specs of any size, for benchmarks and scaling tests. The shape follows
//! the domain's host: two disks, a RAID1, one VG holding every guest's LVs, a bridge,
//! and guests with templates and a dependency chain.

use std::fmt::Write as _;

/// A valid spec with `lvs` logical volumes and `vms` guests (each guest gets up to five of
/// the LVs as disks). Disk sizes grow with the LV count so the VG is never overcommitted.
pub fn spec(lvs: usize, vms: usize) -> String {
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
    s.push_str("bridges:\n  br0: { ports: [eth0], addresses: [10.0.0.2/16], gateway: 10.0.0.1 }\n");
    s.push_str("vm-defaults:\n  hypervisor: xen\n  memory: 1GiB\n  nics: [{ bridge: br0 }]\n");
    s.push_str("vm-templates:\n  debian: { boot: { loader: pygrub, root: /dev/xvda1 ro } }\n  big: { template: debian, memory: 4GiB, vcpus: 4 }\n");
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
            let _ = writeln!(s, "      - {{ lv: vg0/lv{lv:06}, target: xvda{} }}", k + 1);
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

#[cfg(test)]
mod tests {
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
