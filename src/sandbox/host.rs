//! Locating what the sandbox needs on the build machine: qemu, a Debian
//! kernel with its modules, a static busybox, and the tools the guest runs
//! from the shared root (udev, kmod, iproute2).
//!
//! Executables are looked up in fixed system directories only, never `$PATH`.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use super::SandboxError;

/// Directories searched for executables, in order.
pub const SYSTEM_DIRS: [&str; 4] = ["/usr/bin", "/usr/sbin", "/bin", "/sbin"];

/// Modules needed in the initramfs to reach the 9p root (dependencies are
/// added automatically from `modules.dep`).
pub const INITRAMFS_MODULES: [&str; 5] = [
    "virtio_pci",
    "9pnet_virtio",
    "9p",
    "overlay",
    "virtio_console",
];

/// Everything found on the build machine.
#[derive(Debug, Clone)]
pub struct HostTools {
    pub qemu: PathBuf,
    pub busybox: PathBuf,
    pub kernel: Kernel,
    /// SeaBIOS is used when this is `None`.
    pub qboot: Option<PathBuf>,
    /// Used inside the guest (same path, thanks to the shared root).
    pub udevd: PathBuf,
    pub udevadm: PathBuf,
    pub modprobe: PathBuf,
    pub ip: PathBuf,
    pub env: PathBuf,
}

/// A kernel image with a matching module tree.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub version: String,
    pub image: PathBuf,
    pub modules_dir: PathBuf,
}

/// Finds an executable by name in [`SYSTEM_DIRS`].
pub fn find_exe(name: &str) -> Option<PathBuf> {
    SYSTEM_DIRS
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn require_exe(name: &str, package: &'static str) -> Result<PathBuf, SandboxError> {
    find_exe(name).ok_or_else(|| SandboxError::Missing {
        what: name.to_string(),
        searched: SYSTEM_DIRS.iter().map(|d| format!("{d}/{name}")).collect(),
        package,
    })
}

fn require_one_of(
    what: &str,
    candidates: &[&str],
    package: &'static str,
) -> Result<PathBuf, SandboxError> {
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| is_executable(p))
        .ok_or_else(|| SandboxError::Missing {
            what: what.to_string(),
            searched: candidates.iter().map(|s| s.to_string()).collect(),
            package,
        })
}

impl HostTools {
    /// Locates everything, failing with the Debian package to install.
    pub fn locate() -> Result<Self, SandboxError> {
        let qemu = require_exe("qemu-system-x86_64", "qemu-system-x86")?;
        let busybox = require_exe("busybox", "busybox-static")?;
        if !is_static_elf(&busybox)? {
            return Err(SandboxError::Missing {
                what: format!(
                    "a statically linked busybox ({} is dynamic)",
                    busybox.display()
                ),
                searched: vec![busybox.display().to_string()],
                package: "busybox-static",
            });
        }
        let kernel = find_kernel()?;
        let qboot = ["/usr/share/qemu/qboot.rom", "/usr/share/qboot/bios.bin"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file());
        let udevd = require_one_of(
            "systemd-udevd",
            &[
                "/lib/systemd/systemd-udevd",
                "/usr/lib/systemd/systemd-udevd",
            ],
            "udev",
        )?;
        let udevadm = require_exe("udevadm", "udev")?;
        let modprobe = require_exe("modprobe", "kmod")?;
        let ip = require_exe("ip", "iproute2")?;
        let env = require_exe("env", "coreutils")?;
        Ok(Self {
            qemu,
            busybox,
            kernel,
            qboot,
            udevd,
            udevadm,
            modprobe,
            ip,
            env,
        })
    }
}

/// True when the ELF file has no `PT_INTERP` program header.
fn is_static_elf(path: &Path) -> Result<bool, SandboxError> {
    let data = fs::read(path).map_err(|e| SandboxError::io("reading", path, e))?;
    let bad = || SandboxError::Config(format!("{} is not a 64-bit ELF file", path.display()));
    if data.len() < 64 || &data[0..4] != b"\x7fELF" || data[4] != 2 || data[5] != 1 {
        return Err(bad());
    }
    let u16_at = |o: usize| data.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u64_at = |o: usize| {
        data.get(o..o + 8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_le_bytes)
    };
    let phoff = u64_at(0x20).ok_or_else(bad)? as usize;
    let phentsize = u16_at(0x36).ok_or_else(bad)? as usize;
    let phnum = u16_at(0x38).ok_or_else(bad)? as usize;
    for i in 0..phnum {
        let off = phoff + i * phentsize;
        let p_type = data
            .get(off..off + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(bad)?;
        if p_type == 3 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Picks the newest `/boot/vmlinuz-*` that has `/lib/modules/<version>/modules.dep`.
pub fn find_kernel() -> Result<Kernel, SandboxError> {
    let missing = || SandboxError::Missing {
        what: "a kernel image with modules (/boot/vmlinuz-V and /lib/modules/V)".into(),
        searched: vec!["/boot/vmlinuz-*".into()],
        package: "linux-image-amd64",
    };
    let entries = fs::read_dir("/boot").map_err(|_| missing())?;
    let mut best: Option<Kernel> = None;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(version) = name.strip_prefix("vmlinuz-") else {
            continue;
        };
        let modules_dir = Path::new("/lib/modules").join(version);
        if !modules_dir.join("modules.dep").is_file() {
            continue;
        }
        let cand = Kernel {
            version: version.to_string(),
            image: entry.path(),
            modules_dir,
        };
        if best
            .as_ref()
            .is_none_or(|b| version_cmp(&cand.version, &b.version).is_gt())
        {
            best = Some(cand);
        }
    }
    best.ok_or_else(missing)
}

/// Compares version strings chunk-wise, numbers numerically.
fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn chunks(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for (x, y) in ca.iter().zip(cb.iter()) {
        let ord = match (x, y) {
            ((true, x), (true, y)) => {
                let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                x.len().cmp(&y.len()).then_with(|| x.cmp(y))
            }
            ((_, x), (_, y)) => x.cmp(y),
        };
        if ord.is_ne() {
            return ord;
        }
    }
    ca.len().cmp(&cb.len())
}

/// Normalizes a module name the way kmod does (`-` and `_` are equivalent).
fn mod_name(s: &str) -> String {
    s.replace('-', "_")
}

/// Resolves `wanted` modules plus their dependencies into load order, as
/// paths of `.ko` files. Built-in modules are skipped.
pub fn resolve_modules(kernel: &Kernel, wanted: &[&str]) -> Result<Vec<PathBuf>, SandboxError> {
    let dep_path = kernel.modules_dir.join("modules.dep");
    let dep_text =
        fs::read_to_string(&dep_path).map_err(|e| SandboxError::io("reading", &dep_path, e))?;
    let builtin_path = kernel.modules_dir.join("modules.builtin");
    let builtin: HashSet<String> = fs::read_to_string(&builtin_path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.rsplit('/').next())
        .map(|f| mod_name(f.trim_end_matches(".ko")))
        .collect();

    // name -> (relative path, dependency paths)
    let mut deps: HashMap<String, (String, Vec<String>)> = HashMap::new();
    for line in dep_text.lines() {
        let Some((path, rest)) = line.split_once(':') else {
            continue;
        };
        let name = module_name_of(path);
        let ds = rest.split_whitespace().map(str::to_string).collect();
        deps.insert(name, (path.to_string(), ds));
    }

    let mut order = Vec::new();
    let mut seen = HashSet::new();
    for w in wanted {
        visit(
            &mod_name(w),
            &deps,
            &builtin,
            &mut seen,
            &mut order,
            kernel,
            0,
        )?;
    }
    Ok(order)
}

fn module_name_of(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let base = file.split(".ko").next().unwrap_or(file);
    mod_name(base)
}

fn visit(
    name: &str,
    deps: &HashMap<String, (String, Vec<String>)>,
    builtin: &HashSet<String>,
    seen: &mut HashSet<String>,
    order: &mut Vec<PathBuf>,
    kernel: &Kernel,
    depth: usize,
) -> Result<(), SandboxError> {
    if seen.contains(name) || depth > 64 {
        return Ok(());
    }
    seen.insert(name.to_string());
    let Some((path, ds)) = deps.get(name) else {
        if builtin.contains(name) {
            return Ok(());
        }
        return Err(SandboxError::Missing {
            what: format!("kernel module {name} for {}", kernel.version),
            searched: vec![kernel.modules_dir.join("modules.dep").display().to_string()],
            package: "linux-image-amd64",
        });
    };
    for d in ds {
        visit(
            &module_name_of(d),
            deps,
            builtin,
            seen,
            order,
            kernel,
            depth + 1,
        )?;
    }
    if !path.ends_with(".ko") {
        return Err(SandboxError::Config(format!(
            "kernel module {path} is compressed; the initramfs builder only handles plain .ko files"
        )));
    }
    order.push(kernel.modules_dir.join(path));
    Ok(())
}

/// Where decompressed kernels are cached between runs.
pub const KERNEL_CACHE_DIR: &str = "/var/tmp/hostform-sandbox-cache";

/// [`KERNEL_CACHE_DIR`], created (0755) if it is not there yet.
pub fn kernel_cache_dir() -> std::io::Result<&'static Path> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = Path::new(KERNEL_CACHE_DIR);
    fs::DirBuilder::new()
        .mode(0o755)
        .recursive(true)
        .create(dir)?;
    Ok(dir)
}

/// Where libvirtd's capability cache (one XML per qemu binary: what libvirtd probed of it) is
/// kept between sandbox VMs, created (0700) if need be. Each VM mounts it read-write
/// ([`super::initramfs::LIBVIRT_CAPS_MOUNT`]): probing the qemu binaries costs a libvirtd about
/// 5 s of its VM's CPU under TCG, and libvirtd checks each cached file itself (the binary's
/// ctime, its own version) and probes again when it is stale. `None` when it cannot be made,
/// or is not ours to read and write (another account made it): qemu does not start with a
/// share it cannot open.
pub fn libvirt_caps_dir() -> Option<PathBuf> {
    use nix::unistd::{AccessFlags, access};
    use std::os::unix::fs::DirBuilderExt;
    let dir = kernel_cache_dir().ok()?.join("libvirt-qemu-capabilities");
    fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(&dir)
        .ok()?;
    let rwx = AccessFlags::R_OK | AccessFlags::W_OK | AccessFlags::X_OK;
    access(&dir, rwx).ok()?;
    Some(dir)
}

/// Returns an uncompressed `vmlinux` for `kernel` that qemu can boot through
/// PVH, extracting and caching it on first use. Booting it skips the
/// in-guest decompression of the bzImage, which takes seconds under TCG.
/// `None` when the kernel lacks PVH support or extraction is not possible;
/// the caller then boots the bzImage.
pub fn pvh_kernel(kernel: &Kernel) -> Option<PathBuf> {
    let config = fs::read_to_string(format!("/boot/config-{}", kernel.version)).ok()?;
    if !config.lines().any(|l| l.trim() == "CONFIG_PVH=y") {
        return None;
    }
    let meta = fs::metadata(&kernel.image).ok()?;
    let mtime = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    let dir = Path::new(KERNEL_CACHE_DIR);
    let cached = dir.join(format!("vmlinux-{}-{}-{mtime}", kernel.version, meta.len()));
    if fs::metadata(&cached).is_ok_and(|m| m.is_file() && m.len() > 0) {
        return Some(cached);
    }
    extract_vmlinux(&kernel.image, &cached).ok()?;
    Some(cached)
}

fn extract_vmlinux(bzimage: &Path, dest: &Path) -> Result<(), String> {
    let data = fs::read(bzimage).map_err(|e| e.to_string())?;
    if data.get(0x202..0x206) != Some(b"HdrS".as_slice()) {
        return Err("not a bzImage".into());
    }
    let u32_at = |o: usize| {
        data.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let setup_sects = match data.get(0x1f1).copied() {
        Some(0) | None => 4,
        Some(n) => n as usize,
    };
    let off = (setup_sects + 1) * 512 + u32_at(0x248).ok_or("short header")? as usize;
    let len = u32_at(0x24c).ok_or("short header")? as usize;
    let payload = data.get(off..off + len).ok_or("payload out of range")?;
    let (tool, args): (&str, &[&str]) = if payload.starts_with(b"\xfd7zXZ\x00") {
        ("xz", &["-dc", "--single-stream"])
    } else if payload.starts_with(b"\x28\xb5\x2f\xfd") {
        ("zstd", &["-dcq"])
    } else {
        return Err("unsupported kernel compression".into());
    };
    let exe = find_exe(tool).ok_or_else(|| format!("{tool} not installed"))?;
    let dir = kernel_cache_dir().map_err(|e| e.to_string())?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let tag = format!("{}-{nanos:08x}", std::process::id());
    let tmp_in = dir.join(format!(".payload-{tag}"));
    let tmp_out = dir.join(format!(".vmlinux-{tag}"));
    let result = (|| {
        fs::write(&tmp_in, payload).map_err(|e| e.to_string())?;
        let input = fs::File::open(&tmp_in).map_err(|e| e.to_string())?;
        let output = fs::File::create(&tmp_out).map_err(|e| e.to_string())?;
        let status = std::process::Command::new(&exe)
            .args(args)
            .stdin(input)
            .stdout(output)
            .stderr(std::process::Stdio::null())
            .status()
            .map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("{} {args:?} failed: {status}", exe.display()));
        }
        let mut head = [0u8; 4];
        fs::File::open(&tmp_out)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
            .map_err(|e| e.to_string())?;
        if &head != b"\x7fELF" {
            return Err("decompressed kernel is not ELF".into());
        }
        fs::rename(&tmp_out, dest).map_err(|e| e.to_string())
    })();
    let _ = fs::remove_file(&tmp_in);
    let _ = fs::remove_file(&tmp_out);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        assert!(version_cmp("6.1.0-56-amd64", "6.1.0-9-amd64").is_gt());
        assert!(version_cmp("6.10.0-1-amd64", "6.9.0-1-amd64").is_gt());
        assert!(version_cmp("6.1.0", "6.1.0").is_eq());
    }

    #[test]
    fn module_names_normalize() {
        assert_eq!(module_name_of("kernel/drivers/md/md-mod.ko"), "md_mod");
        assert_eq!(module_name_of("kernel/fs/9p/9p.ko.xz"), "9p");
    }
}
