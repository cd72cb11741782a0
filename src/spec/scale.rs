//! A spec scaled down for the sandbox: every capacity divided by the same factor as the
//! sandbox's disks, so that the plan made inside a VM with 8 GB disks for a host with 8 TB
//! disks is the host's plan in miniature, with the same operations, checks and order.
//!
//! Only capacities scale: disks, partitions, LVs, thin pools and thin LVs, snapshots. Nothing
//! scales below what its tool needs: a size is divided, then raised to [`FLOOR`] (or kept as
//! it is when it was already smaller), an LV to its filesystem's minimum, a pool's metadata
//! to LVM's 2 MiB. Chunk and extent sizes, images, percentages and `rest`, memory and
//! everything else stay as written. The sandbox gives each disk the room the floors add
//! ([`headroom`]), so a spec that fits its disks still fits them scaled.
//!
//! hostform scales only inside a sandbox VM, where `hostform sandbox` sets [`ENV`]: the
//! variable is ignored anywhere else (a real host never gets a scaled plan), and the spec's
//! label says that its sizes were scaled, so every plan header shows it.

use super::types::{Filesystem, Spec};
use super::units::{LvSize, MIB, PartSize, Size};
use super::validate::fs_minimum;

/// Set by `hostform sandbox` in its VM: the factor the spec's capacities are divided by.
pub const ENV: &str = "HOSTFORM_SANDBOX_SCALE";

/// The directory the sandbox's guest scripts live in; it exists only inside a sandbox VM.
pub const SANDBOX_MARK: &str = "/.hostform-sandbox";

/// A scaled capacity is never below this (unless the spec's own value is).
pub const FLOOR: u64 = 4 * MIB;

/// The smallest disk worth booting: room for a GPT, a BIOS boot partition and md/LVM
/// metadata.
pub const MIN_DISK: u64 = 64 * MIB;

/// LVM's smallest thin-pool metadata.
const MIN_POOL_METADATA: u64 = 2 * MIB;

/// The factor to scale by, from [`ENV`] (a sandbox VM's: see `super::sandboxed`).
pub fn from_env() -> Option<u64> {
    let n: u64 = std::env::var(ENV).ok()?.trim().parse().ok()?;
    (n > 1).then_some(n)
}

/// A capacity divided by `n`: whole MiB, at least [`FLOOR`], never more than it was.
pub fn size(bytes: u64, n: u64) -> u64 {
    if n <= 1 || bytes <= FLOOR {
        return bytes;
    }
    (bytes / n).div_ceil(MIB).saturating_mul(MIB).max(FLOOR)
}

/// A disk's size in the sandbox: scaled, at least [`MIN_DISK`].
pub fn disk(bytes: u64, n: u64) -> u64 {
    if n <= 1 {
        return bytes.max(MIN_DISK);
    }
    (bytes / n).div_ceil(MIB).saturating_mul(MIB).max(MIN_DISK)
}

fn lv(bytes: u64, fs: Filesystem, n: u64) -> u64 {
    let min = fs_minimum(fs).map_or(0, |(_, m, _)| m);
    size(bytes, n).max(min.min(bytes))
}

/// The spec with its capacities divided by `n` (see the module's text).
pub fn scaled(spec: &Spec, n: u64) -> Spec {
    let mut s = spec.clone();
    if n <= 1 {
        return s;
    }
    for d in s.disks.values_mut() {
        if let Some(sz) = &mut d.size {
            sz.value = Size(disk(sz.value.0, n));
        }
        for p in &mut d.partitions {
            if let PartSize::Bytes(b) = &mut p.size.value {
                *b = Size(size(b.0, n));
            }
        }
    }
    for vg in s.volume_groups.values_mut() {
        for l in vg.lvs.values_mut() {
            if let Some(sz) = &mut l.size
                && let LvSize::Bytes(b) = &mut sz.value
            {
                *b = Size(lv(b.0, l.fs, n));
            }
        }
        for sn in vg.snapshots.values_mut() {
            sn.size.value = Size(size(sn.size.value.0, n));
        }
        for pool in vg.thin_pools.values_mut() {
            if let Some(sz) = &mut pool.size {
                sz.value = Size(size(sz.value.0, n));
            }
            if let Some(m) = &mut pool.metadata_size {
                m.value = Size(size(m.value.0, n).max(MIN_POOL_METADATA.min(m.value.0)));
            }
            for t in pool.lvs.values_mut() {
                if let Some(sz) = &mut t.size {
                    sz.value = Size(lv(sz.value.0, t.fs, n));
                }
            }
        }
    }
    s
}

/// What the floors add to the spec's capacities once scaled, plus a margin for metadata
/// and extent rounding: the room each sandbox disk gets beyond its scaled size (sparse
/// images cost only what is written). Every disk gets all of it, whichever VG lands there.
pub fn headroom(spec: &Spec, n: u64) -> u64 {
    if n <= 1 {
        return 0;
    }
    let scaled = scaled(spec, n);
    let mut extra = 0u64;
    let mut add = |orig: u64, new: u64| extra = extra.saturating_add(new.saturating_sub(orig / n));
    for (d, sd) in spec.disks.values().zip(scaled.disks.values()) {
        for (p, sp) in d.partitions.iter().zip(&sd.partitions) {
            if let (PartSize::Bytes(a), PartSize::Bytes(b)) = (&p.size.value, &sp.size.value) {
                add(a.0, b.0);
            }
        }
    }
    for (vg, svg) in spec
        .volume_groups
        .values()
        .zip(scaled.volume_groups.values())
    {
        let mut items = 0u64;
        for (l, sl) in vg.lvs.values().zip(svg.lvs.values()) {
            items += 1;
            if let (Some(a), Some(b)) = (&l.size, &sl.size)
                && let (LvSize::Bytes(a), LvSize::Bytes(b)) = (&a.value, &b.value)
            {
                add(a.0, b.0);
            }
        }
        for (a, b) in vg.snapshots.values().zip(svg.snapshots.values()) {
            items += 1;
            add(a.size.value.0, b.size.value.0);
        }
        for (p, sp) in vg.thin_pools.values().zip(svg.thin_pools.values()) {
            items += 2;
            if let (Some(a), Some(b)) = (&p.size, &sp.size) {
                add(a.value.0, b.value.0);
            }
            if let (Some(a), Some(b)) = (&p.metadata_size, &sp.metadata_size) {
                add(a.value.0, b.value.0);
            }
        }
        // One extent of rounding per LV (4 MiB unless the VG says more), and the VG's own
        // metadata.
        let extent = vg
            .extent_size
            .as_ref()
            .map_or(4 * MIB, |e| e.value.0.max(MIB));
        add(0, items.saturating_mul(extent) + 16 * MIB);
    }
    // LVs made from images keep the image's size, which only `qemu-img info` knows: room
    // for a small appliance each.
    let images = spec
        .volume_groups
        .values()
        .flat_map(|vg| vg.lvs.values())
        .filter(|l| l.image.is_some())
        .count() as u64;
    add(0, images.saturating_mul(1024 * MIB));
    extra.div_ceil(MIB).saturating_mul(MIB)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::units::GIB;

    fn dom0() -> Spec {
        crate::spec::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("specs/dom0.yaml"),
            None,
        )
        .expect("dom0 loads")
        .spec
    }

    #[test]
    fn sizes_divide_to_whole_mib_with_a_floor_and_never_grow() {
        assert_eq!(size(20 * GIB, 1000), 21 * MIB); // 20.48 MiB, rounded up
        assert_eq!(size(GIB, 1000), FLOOR);
        assert_eq!(size(2 * MIB, 1000), 2 * MIB); // a BIOS boot partition stays as it is
        assert_eq!(size(5 * MIB, 1000), FLOOR);
        assert_eq!(size(20 * GIB, 1), 20 * GIB);
        assert_eq!(
            disk(8_000_000_000_000, 1000),
            8_000_000_000u64.div_ceil(MIB) * MIB
        );
        assert_eq!(disk(20 * GIB, 1000), MIN_DISK);
    }

    #[test]
    fn an_lv_keeps_its_filesystems_minimum() {
        assert_eq!(lv(100 * GIB, Filesystem::Xfs, 1000), 300 * MIB);
        assert_eq!(lv(100 * GIB, Filesystem::Ext4, 1000), 103 * MIB);
        // An LV the spec already made smaller than the minimum is left to validate.
        assert_eq!(lv(3 * MIB, Filesystem::Xfs, 1000), 3 * MIB);
    }

    #[test]
    fn dom0_scales_every_capacity_and_nothing_else() {
        let s = dom0();
        let t = scaled(&s, 1000);
        let d = &t.disks["sda"];
        assert_eq!(
            d.size.as_ref().unwrap().value.0,
            disk(8_000_000_000_000, 1000)
        );
        assert!(matches!(d.partitions[0].size.value, PartSize::Bytes(Size(b)) if b == 2 * MIB));
        assert!(matches!(d.partitions[1].size.value, PartSize::Rest));
        let vg = &t.volume_groups["vg0"];
        let nas = vg.lvs["nas_home"].size.as_ref().unwrap();
        assert!(
            matches!(nas.value, LvSize::Bytes(Size(b)) if b == (4 * crate::spec::units::TIB / 1000).div_ceil(MIB) * MIB)
        );
        assert!(
            vg.lvs["firewall_root"].size.is_none(),
            "image LVs keep the image's size"
        );
        assert_eq!(t.vms.len(), s.vms.len());
        assert_eq!(
            serde_json::to_value(&t.vms).unwrap(),
            serde_json::to_value(&s.vms).unwrap()
        );
        // The scaled spec still validates.
        assert!(
            crate::spec::validate::validate(&t, &Default::default())
                .iter()
                .all(|d| !d.is_error())
        );
    }

    #[test]
    fn the_headroom_covers_what_the_floors_add() {
        let s = dom0();
        let h = headroom(&s, 1000);
        let t = scaled(&s, 1000);
        let vg = |sp: &Spec| -> u64 {
            sp.volume_groups["vg0"]
                .lvs
                .values()
                .filter_map(|l| match l.size.as_ref().map(|z| &z.value) {
                    Some(LvSize::Bytes(b)) => Some(b.0),
                    _ => None,
                })
                .sum()
        };
        assert!(
            vg(&t) <= vg(&s) / 1000 + h,
            "{} {} {h}",
            vg(&t),
            vg(&s) / 1000
        );
        assert_eq!(headroom(&s, 1), 0);
    }
}
