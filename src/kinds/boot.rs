//! Boot sectors: what a disk's first sector and its BIOS boot partition hold (nothing, GRUB,
//! another boot loader), and whether the GRUB there is what this machine's GRUB would install.
//! Read as bytes from the device files (one `read(2)` each, no process per disk), and compared
//! with this machine's GRUB images under `/usr/lib/grub/i386-pc` (grub-pc-bin).
//!
//! "Current" means: the boot sector's code is this machine's `boot.img`, and the BIOS boot
//! partition starts with this machine's `diskboot.img` and `lzma_decompress.img`, outside the
//! fields `grub-install` fills in (the sector numbers, the drive check, the block list, the
//! sizes). Modules compressed inside core.img cannot be compared without running GRUB's tools:
//! a GRUB upgrade that changes only those is not seen (Debian's grub-pc reinstalls on upgrade).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::block::Inventory;
use crate::runner::Runner;

/// Where this machine's GRUB for BIOS keeps the images it installs (package grub-pc-bin).
pub const GRUB_DIR: &str = "/usr/lib/grub/i386-pc";
/// grub-install (package grub2-common).
pub const GRUB_INSTALL: &str = "/usr/sbin/grub-install";
/// The GPT type of a BIOS boot partition, as lsblk reports it.
pub const BIOS_BOOT_GUID: &str = "21686148-6449-6e6f-744e-656564454649";
/// Where GRUB keeps its modules and grub.cfg; the filesystem under it must be one GRUB reads.
pub const GRUB_HOME: &str = "/boot/grub";

/// mdadm's configuration, which the initramfs copies.
pub const MDADM_CONF: &str = "/etc/mdadm/mdadm.conf";
/// The filesystems mounted at boot.
pub const FSTAB: &str = "/etc/fstab";
/// The lines around hostform's own section of a file it shares with the operator.
pub const SECTION_BEGIN: &str = "# BEGIN hostform (managed: edits inside are overwritten)";
pub const SECTION_END: &str = "# END hostform";

const SECTOR: usize = 512;

/// What a boot sector (or a BIOS boot partition) holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BootCode {
    /// Zeros where boot code goes: nothing boots from it.
    Empty,
    /// GRUB's; `current` when it is what this machine's GRUB installs.
    Grub { current: bool },
    /// Something else: what was recognised, in words.
    Other(String),
}

/// This machine's GRUB images, as read (their first sector each).
#[derive(Debug, Clone, Default)]
pub struct GrubImages {
    pub boot: Option<Vec<u8>>,
    pub diskboot: Option<Vec<u8>>,
    pub lzma: Option<Vec<u8>>,
}

impl GrubImages {
    pub fn read(r: &dyn Runner) -> GrubImages {
        let img = |n: &str| r.read_bytes(&format!("{GRUB_DIR}/{n}"), SECTOR);
        GrubImages {
            boot: img("boot.img"),
            diskboot: img("diskboot.img"),
            lzma: img("lzma_decompress.img"),
        }
    }
}

/// What discovery read of the boot chain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootFacts {
    /// grub-install is here (grub2-common).
    #[serde(default)]
    pub grub_install: bool,
    /// GRUB's BIOS images are here (grub-pc-bin).
    #[serde(default)]
    pub grub_images: bool,
    /// Disk (kernel name) → what its first sector holds.
    #[serde(default)]
    pub sectors: BTreeMap<String, BootCode>,
    /// BIOS boot partition (kernel name) → what its first two sectors hold.
    #[serde(default)]
    pub cores: BTreeMap<String, BootCode>,
    /// The filesystem GRUB's directory (/boot/grub) is on: `(source, fstype)` from the mount
    /// table.
    #[serde(default)]
    pub grub_home: Option<(String, String)>,
    /// /etc/mdadm/mdadm.conf, when it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mdadm_conf: Option<String>,
    /// /etc/fstab, when it could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fstab: Option<String>,
}

impl BootFacts {
    pub fn is_empty(&self) -> bool {
        *self == BootFacts::default()
    }

    /// Whether this reading includes the boot chain: some disk's boot sector was read. Not so
    /// in a snapshot or capture made before hostform read boot sectors, or without the right
    /// to read the disks.
    pub fn read(&self) -> bool {
        !self.sectors.is_empty() || !self.cores.is_empty()
    }
}

/// Whether `a` and `b` agree on every byte of `ranges` (both long enough).
fn same(a: &[u8], b: &[u8], ranges: &[(usize, usize)]) -> bool {
    ranges
        .iter()
        .all(|&(s, e)| a.get(s..e).is_some_and(|x| b.get(s..e) == Some(x)))
}

/// boot.img's bytes that grub-install does not fill in: the jump, the code between the BPB and
/// the kernel sector, the boot drive, and the code and messages up to the disk signature.
const BOOT_IMG_FIXED: &[(usize, usize)] = &[(0, 3), (0x5a, 0x5c), (0x64, 0x66), (0x68, 0x1b8)];
/// diskboot.img before its block list (which grows down from 0x1f4).
const DISKBOOT_FIXED: &[(usize, usize)] = &[(0, 0x180)];
/// lzma_decompress.img after its size fields.
const LZMA_FIXED: &[(usize, usize)] = &[(0x14, SECTOR)];

/// What a disk's first sector holds. `None` when fewer than 512 bytes were read.
pub fn classify_sector(sector: &[u8], grub: &GrubImages) -> Option<BootCode> {
    let code = sector.get(..0x1b8)?;
    if sector.len() < SECTOR {
        return None;
    }
    if code.iter().all(|&b| b == 0) {
        return Some(BootCode::Empty);
    }
    if find(code, b"GRUB ") {
        let current = grub
            .boot
            .as_deref()
            .is_some_and(|img| same(sector, img, BOOT_IMG_FIXED));
        return Some(BootCode::Grub { current });
    }
    Some(BootCode::Other(describe(code)))
}

/// What a BIOS boot partition's first two sectors hold. `None` when fewer were read.
pub fn classify_core(start: &[u8], grub: &GrubImages) -> Option<BootCode> {
    if start.len() < 2 * SECTOR {
        return None;
    }
    if start.iter().all(|&b| b == 0) {
        return Some(BootCode::Empty);
    }
    let (first, second) = start.split_at(SECTOR);
    let Some(diskboot) = grub.diskboot.as_deref() else {
        // Nothing to compare with: GRUB's core starts with the "Loading" message's code and
        // the string itself; without the images, say only that something is there.
        return Some(BootCode::Other(describe(first)));
    };
    if same(first, diskboot, DISKBOOT_FIXED) {
        let current = grub
            .lzma
            .as_deref()
            .is_some_and(|l| same(second, l, LZMA_FIXED));
        return Some(BootCode::Grub { current });
    }
    if find(first, b"GRUB") || find(second, b"GRUB") {
        // An older GRUB's core image.
        return Some(BootCode::Grub { current: false });
    }
    Some(BootCode::Other(describe(first)))
}

fn find(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Boot code that is not GRUB's, in words: the loaders whose messages are known, else its
/// first bytes.
fn describe(code: &[u8]) -> String {
    const KNOWN: &[(&[u8], &str)] = &[
        (b"SYSLINUX", "SYSLINUX's boot code"),
        (b"ISOLINUX", "ISOLINUX's boot code"),
        (b"EXTLINUX", "EXTLINUX's boot code"),
        (b"LILO", "LILO's boot code"),
        (b"BOOTMGR", "a Windows boot sector"),
        (b"NTLDR", "a Windows boot sector"),
        (b"Invalid partition table", "a DOS/Windows MBR"),
        (b"Missing operating system", "a DOS/Windows MBR"),
        (b"Missing OS", "SYSLINUX's MBR (\"Missing OS\")"),
        (b"1234F", "install-mbr's boot code (Debian's mbr package)"),
        (b"Boot error", "a boot loader's code (\"Boot error\")"),
    ];
    if let Some((_, what)) = KNOWN.iter().find(|(k, _)| find(code, k)) {
        return what.to_string();
    }
    let head: Vec<String> = code.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("boot code not from GRUB (it starts {})", head.join(" "))
}

/// Which filesystem holds `dir`: the mount whose mount point is the longest prefix of it, as
/// `(source, fstype)`, from a `/proc/self/mounts` text.
pub fn filesystem_of(mounts: &str, dir: &str) -> Option<(String, String)> {
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (src, at, fs) = (f.next()?, f.next()?, f.next()?);
            let at = at.replace("\\040", " ");
            let under = at == "/"
                || dir == at
                || dir
                    .strip_prefix(at.as_str())
                    .is_some_and(|r| r.starts_with('/'));
            under.then(|| (at.len(), src.to_string(), fs.to_string()))
        })
        // The last of equal length wins: a later mount on the same point hides the earlier.
        .fold(
            None,
            |best: Option<(usize, String, String)>, m| match best {
                Some(b) if b.0 > m.0 => Some(b),
                _ => Some(m),
            },
        )
        .map(|(_, s, f)| (s, f))
}

/// Filesystems GRUB reads its directory from (`grub-probe` knows them).
pub fn grub_reads(fstype: &str) -> bool {
    matches!(
        fstype,
        "ext2" | "ext3" | "ext4" | "xfs" | "btrfs" | "vfat" | "jfs" | "reiserfs" | "f2fs"
    )
}

/// Read the boot sector of every disk and the start of every BIOS boot partition: one read
/// per device, no process.
pub fn discover(r: &dyn Runner, blocks: &Inventory) -> BootFacts {
    let grub = GrubImages::read(r);
    let mut facts = BootFacts {
        grub_install: r.read_bytes(GRUB_INSTALL, 4).is_some_and(|b| !b.is_empty()),
        grub_images: grub.boot.is_some() && grub.diskboot.is_some(),
        ..Default::default()
    };
    for b in blocks.devices.values() {
        if b.is_disk() && b.size > 0 {
            if ["zram", "ram", "loop", "nbd", "sr"]
                .iter()
                .any(|p| b.kname.starts_with(p))
            {
                continue;
            }
            if let Some(c) = r
                .read_bytes(&format!("/dev/{}", b.kname), SECTOR)
                .and_then(|s| classify_sector(&s, &grub))
            {
                facts.sectors.insert(b.kname.clone(), c);
            }
        } else if b.is_partition()
            && b.parttype
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case(BIOS_BOOT_GUID))
            && let Some(c) = r
                .read_bytes(&format!("/dev/{}", b.kname), 2 * SECTOR)
                .and_then(|s| classify_core(&s, &grub))
        {
            facts.cores.insert(b.kname.clone(), c);
        }
    }
    facts.mdadm_conf = r.read(MDADM_CONF);
    facts.fstab = r.read(FSTAB);
    if !facts.sectors.is_empty() || !facts.cores.is_empty() {
        facts.grub_home = r
            .read("/proc/self/mounts")
            .and_then(|m| filesystem_of(&m, GRUB_HOME));
    }
    facts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/boot/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn images() -> GrubImages {
        GrubImages {
            boot: Some(fixture("boot.img")),
            diskboot: Some(fixture("diskboot.img")),
            lzma: Some(fixture("lzma_decompress.img")),
        }
    }

    #[test]
    fn grub_installed_by_grub_install_is_current() {
        let g = images();
        assert_eq!(
            classify_sector(&fixture("mbr-grub"), &g),
            Some(BootCode::Grub { current: true })
        );
        assert_eq!(
            classify_core(&fixture("core-grub"), &g),
            Some(BootCode::Grub { current: true })
        );
    }

    #[test]
    fn grub_of_other_images_is_grub_but_not_current() {
        // Another GRUB build: one byte of the code differs.
        let mut g = images();
        if let Some(b) = g.boot.as_mut() {
            b[0x100] ^= 0xff;
        }
        if let Some(l) = g.lzma.as_mut() {
            l[0x100] ^= 0xff;
        }
        assert_eq!(
            classify_sector(&fixture("mbr-grub"), &g),
            Some(BootCode::Grub { current: false })
        );
        assert_eq!(
            classify_core(&fixture("core-grub"), &g),
            Some(BootCode::Grub { current: false })
        );
        // No images at all: still GRUB, never current.
        assert_eq!(
            classify_sector(&fixture("mbr-grub"), &GrubImages::default()),
            Some(BootCode::Grub { current: false })
        );
    }

    #[test]
    fn a_protective_mbr_of_sfdisk_is_empty() {
        assert_eq!(
            classify_sector(&fixture("mbr-sfdisk"), &images()),
            Some(BootCode::Empty)
        );
    }

    #[test]
    fn other_loaders_are_named() {
        let g = images();
        assert_eq!(
            classify_sector(&fixture("mbr-syslinux-gpt"), &g),
            Some(BootCode::Other("SYSLINUX's MBR (\"Missing OS\")".into()))
        );
        assert_eq!(
            classify_sector(&fixture("mbr-install-mbr"), &g),
            Some(BootCode::Other(
                "install-mbr's boot code (Debian's mbr package)".into()
            ))
        );
        // Not GRUB's core in a BIOS boot partition: an ext4 superblock's neighbourhood.
        let mut junk = vec![0u8; 1024];
        junk[0] = 0xeb;
        assert!(matches!(
            classify_core(&junk, &g),
            Some(BootCode::Other(w)) if w.contains("eb 00")
        ));
    }

    #[test]
    fn short_reads_say_nothing() {
        assert_eq!(classify_sector(&[0u8; 100], &images()), None);
        assert_eq!(classify_core(&[0u8; 600], &images()), None);
    }

    #[test]
    fn grubs_directory_is_on_the_longest_mount() {
        let m = "overlay / overlay rw 0 0\n/dev/mapper/vg0-boot /boot ext4 rw 0 0\n/dev/sda9 /bootx ext4 rw 0 0\n";
        assert_eq!(
            filesystem_of(m, GRUB_HOME),
            Some(("/dev/mapper/vg0-boot".into(), "ext4".into()))
        );
        let m = "rootfs / 9p ro 0 0\nnone /boot/grubby tmpfs rw 0 0\n";
        assert_eq!(
            filesystem_of(m, GRUB_HOME),
            Some(("rootfs".into(), "9p".into()))
        );
        assert!(grub_reads("ext4") && !grub_reads("9p") && !grub_reads("overlay"));
    }
}
