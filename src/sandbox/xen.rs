//! Booting the sandbox under a real Xen hypervisor (Debian's `xen-hypervisor-4.17-amd64`).
//!
//! qemu loads Xen through multiboot: `-kernel` is the hypervisor (Debian ships it gzipped in
//! `/boot/xen-V-amd64.gz`; it is unpacked once into the kernel cache), the first `-initrd`
//! module is dom0's kernel with its command line and the second the sandbox's initramfs. dom0
//! is the same Debian kernel and the same 9p root as a plain sandbox; once it is ready, stage 2
//! runs Debian's own `/etc/init.d/xen start` (xenfs, xenstored, xen-init-dom0, xenconsoled)
//! through `guest/xen-up.sh`, so `xl` answers as on a Debian dom0.
//!
//! Under TCG only `-cpu qemu64` (or `Haswell-noTSX`) works: with `-cpu max` dom0 dies at its
//! first page fault. Xen is loaded by SeaBIOS (qboot has no multiboot loader).

use std::fs;
use std::path::{Path, PathBuf};

use super::SandboxError;
use super::host::{KERNEL_CACHE_DIR, find_exe};

/// Starts the Xen toolstack in dom0 (stage 2's `xen` provision).
pub const XEN_UP: &str = include_str!("guest/xen-up.sh");

/// CPU model qemu gives a Xen sandbox.
pub const CPU: &str = "qemu64";

/// The smallest guest memory a Xen sandbox accepts: dom0's share plus room for guests.
pub const MIN_MEMORY_MIB: u32 = 1024;

/// Memory of a Xen sandbox unless the caller asks for more: dom0 and a handful of small PV
/// guests (64-128 MiB each).
pub const DEFAULT_MEMORY_MIB: u32 = 2048;

/// Package that ships the hypervisor.
const PACKAGE: &str = "xen-hypervisor-4.17-amd64";

/// dom0's memory for a machine of `total_mib`: half of it, at least 512 MiB and at most
/// 1 GiB, the rest left to guests.
pub fn dom0_mem_mib(total_mib: u32) -> u32 {
    (total_mib / 2).clamp(512, 1024).min(total_mib)
}

/// Xen's own command line (the first serial port is its console and dom0's `hvc0`).
pub fn xen_cmdline(total_mib: u32) -> String {
    let d = dom0_mem_mib(total_mib);
    format!(
        "console=com1 com1=115200,8n1 dom0_mem={d}M,max:{d}M dom0_max_vcpus=1 loglvl=warning \
         guest_loglvl=warning noreboot"
    )
}

/// The newest `/boot/xen-*.gz` (Debian's `xen-4.17-amd64.gz`).
fn find_hypervisor_gz() -> Result<PathBuf, SandboxError> {
    let missing = || SandboxError::Missing {
        what: "the Xen hypervisor (/boot/xen-*-amd64.gz)".into(),
        searched: vec!["/boot/xen-*.gz".into()],
        package: PACKAGE,
    };
    let mut found: Vec<PathBuf> = fs::read_dir("/boot")
        .map_err(|_| missing())?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("xen-") && n.ends_with(".gz"))
        })
        .collect();
    found.sort();
    found.pop().ok_or_else(missing)
}

/// The toolstack in dom0 comes from the shared root: check it is installed before booting.
fn check_toolstack() -> Result<(), SandboxError> {
    for (what, path) in [
        ("xl", "/usr/sbin/xl"),
        ("Debian's Xen init script", "/etc/init.d/xen"),
    ] {
        if !Path::new(path).exists() {
            return Err(SandboxError::Missing {
                what: what.into(),
                searched: vec![path.into()],
                package: "xen-utils-4.17",
            });
        }
    }
    Ok(())
}

/// The hypervisor as an ELF qemu's multiboot loader accepts, unpacked from Debian's gzip
/// into the kernel cache on first use (keyed by the file's size and time).
pub fn hypervisor_elf() -> Result<PathBuf, SandboxError> {
    check_toolstack()?;
    let gz = find_hypervisor_gz()?;
    let meta = fs::metadata(&gz).map_err(|e| SandboxError::io("inspecting", &gz, e))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let stem = gz
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "xen".into());
    let dir = Path::new(KERNEL_CACHE_DIR);
    let cached = dir.join(format!("{stem}-{}-{mtime}.elf", meta.len()));
    if fs::metadata(&cached).is_ok_and(|m| m.is_file() && m.len() > 0) {
        return Ok(cached);
    }
    unpack(&gz, &cached)?;
    Ok(cached)
}

fn unpack(gz: &Path, dest: &Path) -> Result<(), SandboxError> {
    let gzip = find_exe("gzip").ok_or_else(|| SandboxError::Missing {
        what: "gzip".into(),
        searched: super::SYSTEM_DIRS
            .iter()
            .map(|d| format!("{d}/gzip"))
            .collect(),
        package: "gzip",
    })?;
    let dir = cache_dir()?;
    let tmp = dir.join(format!(".xen-{}", std::process::id()));
    let result = (|| {
        let input = fs::File::open(gz).map_err(|e| SandboxError::io("opening", gz, e))?;
        let output = fs::File::create(&tmp).map_err(|e| SandboxError::io("creating", &tmp, e))?;
        let argv = vec![gzip.to_string_lossy().into_owned(), "-dc".into()];
        let status = std::process::Command::new(&gzip)
            .arg("-dc")
            .stdin(input)
            .stdout(output)
            .stderr(std::process::Stdio::null())
            .status()
            .map_err(|e| SandboxError::Spawn {
                argv: argv.clone(),
                source: e,
            })?;
        if !status.success() {
            return Err(SandboxError::Config(format!(
                "unpacking {} failed: {argv:?} {status}",
                gz.display()
            )));
        }
        let head = fs::read(&tmp).map_err(|e| SandboxError::io("reading", &tmp, e))?;
        if !head.starts_with(b"\x7fELF") {
            return Err(SandboxError::Config(format!(
                "{} does not hold an ELF hypervisor",
                gz.display()
            )));
        }
        fs::rename(&tmp, dest).map_err(|e| SandboxError::io("renaming", &tmp, e))
    })();
    let _ = fs::remove_file(&tmp);
    result
}

/// The kernel cache, created if need be.
fn cache_dir() -> Result<&'static Path, SandboxError> {
    super::host::kernel_cache_dir()
        .map_err(|e| SandboxError::io("creating", Path::new(KERNEL_CACHE_DIR), e))
}

/// qemu's `-initrd` for multiboot: modules separated by `,` (a `,` inside one doubled), each
/// a path followed by its command line.
pub fn multiboot_modules(dom0_kernel: &str, dom0_args: &str, initrd: &str) -> String {
    let esc = |s: &str| s.replace(',', ",,");
    format!("{} {},{}", esc(dom0_kernel), esc(dom0_args), esc(initrd))
}

/// A kernel for PV guests in a Xen sandbox: the sandbox's own Debian kernel, uncompressed
/// (cached like dom0's), which `xl create` loads in about half the time the bzImage takes
/// under TCG; the bzImage when no uncompressed copy can be made. The path is on the build
/// machine's root, so dom0 sees it at the same place.
pub fn pv_guest_kernel() -> Result<PathBuf, SandboxError> {
    let k = super::host::find_kernel()?;
    Ok(super::host::pvh_kernel(&k).unwrap_or(k.image))
}

/// What a scaled Xen sandbox boots its spec's Xen guests from (`crate::spec::sandboxed::XenBoot`):
/// [`pv_guest_kernel`] and the initramfs that powers off when asked, written once into the
/// kernel cache (named by its content), where dom0 sees it at the same path.
pub fn sandbox_guest_boot() -> Result<(PathBuf, PathBuf), SandboxError> {
    use std::hash::{Hash, Hasher};
    let kernel = pv_guest_kernel()?;
    let cpio = pv_guest_initramfs(true)?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    cpio.hash(&mut h);
    let dir = cache_dir()?;
    let path = dir.join(format!("pv-guest-{:016x}.cpio", h.finish()));
    if fs::read(&path).is_ok_and(|b| b == cpio) {
        return Ok((kernel, path));
    }
    let tmp = dir.join(format!(".pv-guest-{}", std::process::id()));
    fs::write(&tmp, &cpio).map_err(|e| SandboxError::io("writing", &tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        SandboxError::io("renaming", &tmp, e)
    })?;
    Ok((kernel, path))
}

/// `/init` of the tiny PV guest: busybox, the API filesystems, a line on its console, then
/// it idles as PID 1 until the kernel powers it off.
const PV_INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "hostform-pv-guest: up on $(uname -r)" >/dev/console
while :; do sleep 3600; done
"#;

/// `/sbin/poweroff` of the PV guest that honours shutdown requests. Linux's Xen manage driver
/// runs it (orderly_poweroff) when the toolstack writes `poweroff` to `control/shutdown`.
const PV_POWEROFF: &str = "#!/bin/sh
exec /bin/busybox poweroff -f
";

/// A few-kilobyte initramfs (plus busybox) for a PV guest booted directly by the Debian
/// kernel under Xen (`kernel`/`ramdisk` in its xl config, `rdinit=/init`). With
/// `honours_shutdown` it powers off when `xl shutdown` asks; without it, it has no
/// `/sbin/poweroff`, so a shutdown request does nothing and only `xl destroy` ends it.
pub fn pv_guest_initramfs(honours_shutdown: bool) -> Result<Vec<u8>, SandboxError> {
    let busybox = find_exe("busybox").ok_or_else(|| SandboxError::Missing {
        what: "busybox".into(),
        searched: super::SYSTEM_DIRS
            .iter()
            .map(|d| format!("{d}/busybox"))
            .collect(),
        package: "busybox-static",
    })?;
    let bb = fs::read(&busybox).map_err(|e| SandboxError::io("reading", &busybox, e))?;
    let mut a = super::cpio::Archive::new();
    for d in ["bin", "sbin", "dev", "proc", "sys", "tmp"] {
        a.dir(d, 0o755);
    }
    a.char_dev("dev/console", 0o600, 5, 1);
    a.char_dev("dev/null", 0o666, 1, 3);
    a.file("bin/busybox", 0o755, &bb);
    a.symlink("bin/sh", "busybox");
    a.file("init", 0o755, PV_INIT.as_bytes());
    if honours_shutdown {
        a.file("sbin/poweroff", 0o755, PV_POWEROFF.as_bytes());
    }
    Ok(a.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_are_escaped_for_qemu() {
        assert_eq!(
            multiboot_modules(
                "/boot/vmlinuz",
                "console=hvc0 modprobe.blacklist=kvm,floppy",
                "/tmp/a,b/initrd"
            ),
            "/boot/vmlinuz console=hvc0 modprobe.blacklist=kvm,,floppy,/tmp/a,,b/initrd"
        );
    }

    /// The guest that honours shutdown has the `/sbin/poweroff` the kernel runs; the other
    /// has none, and both start from `/init`.
    #[test]
    fn pv_guests_differ_only_in_poweroff() {
        if find_exe("busybox").is_none() {
            return;
        }
        let names = |b: &[u8]| -> Vec<String> {
            let mut out = Vec::new();
            let mut off = 0;
            while off + 110 <= b.len() && &b[off..off + 6] == b"070701" {
                let hex = |i: usize| {
                    u32::from_str_radix(std::str::from_utf8(&b[off + i..off + i + 8]).unwrap(), 16)
                        .unwrap() as usize
                };
                let (size, namesize) = (hex(54), hex(94));
                let name = String::from_utf8_lossy(&b[off + 110..off + 110 + namesize - 1]);
                out.push(name.into_owned());
                let data = (off + 110 + namesize).div_ceil(4) * 4;
                off = (data + size).div_ceil(4) * 4;
            }
            out
        };
        let on = names(&pv_guest_initramfs(true).unwrap());
        let off = names(&pv_guest_initramfs(false).unwrap());
        assert!(on.contains(&"init".to_string()), "{on:?}");
        assert!(on.contains(&"sbin/poweroff".to_string()), "{on:?}");
        assert!(off.contains(&"init".to_string()), "{off:?}");
        assert!(!off.contains(&"sbin/poweroff".to_string()), "{off:?}");
    }

    #[test]
    fn dom0_keeps_room_for_guests() {
        assert_eq!(dom0_mem_mib(2048), 1024);
        assert_eq!(dom0_mem_mib(1536), 768);
        assert_eq!(dom0_mem_mib(1024), 512);
        assert_eq!(dom0_mem_mib(8192), 1024);
        assert!(xen_cmdline(2048).contains("dom0_mem=1024M,max:1024M"));
    }
}
