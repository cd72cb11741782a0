//! A throwaway Linux VM for exercising real storage and network tools.
//!
//! The build machine's kernel cannot run mdadm or LVM, so [`run`] boots the
//! Debian kernel under qemu (TCG) with:
//!
//! * the build machine's `/` shared read-only over 9p, with a tmpfs overlay
//!   on top, so the guest has every tool the build machine has;
//! * the configured `workdir` shared again at the same path (read-only, or
//!   read-write when [`SandboxConfig::workdir_writable`] is set);
//! * the executable [`SandboxConfig::exe`] (hostform's own binary) at its own path, whatever
//!   that path: its directory is shared read-only and the file bind-mounted over that path once
//!   the guest's tmpfs mounts and the workdir are in place, so a binary under `/tmp` (hidden by
//!   the guest's own `/tmp`) runs too;
//! * libvirtd's capability cache ([`host::libvirt_caps_dir`]) shared read-write, so that what
//!   one VM's libvirtd probed of the qemu binaries the next one finds (see
//!   scripts/sandbox/libvirt-up.sh);
//! * one blank sparse raw image per [`SandboxDisk`], attached as virtio-blk
//!   with the sanitized serial (see [`sanitize_serial`]), so the guest has
//!   `/dev/vdX` and `/dev/disk/by-id/virtio-<serial>`;
//! * one isolated virtio-net NIC per entry in [`SandboxConfig::nics`],
//!   renamed inside the guest to the given name.
//!
//! The command runs as root once udev has settled. Its stdout and stderr go
//! to a dedicated virtio-serial port that is streamed to the `output`
//! writer; its exit status comes back on a second (control) port. Kernel
//! messages go to the emulated serial console, which is only kept in a log
//! file and quoted in errors.
//!
//! qemu runs in its own process group with a parent-death signal; SIGINT,
//! SIGTERM and SIGHUP received during a run kill it, remove the temporary
//! files and make [`run`] return [`SandboxError::Interrupted`]. The guest also
//! powers itself off after the timeout in case the host side vanished.

pub mod cluster;
mod cpio;
pub mod from_spec;
mod host;
mod initramfs;
mod signals;
pub mod xen;

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub use host::{HostTools, Kernel, SYSTEM_DIRS, find_exe};
pub use xen::{DEFAULT_MEMORY_MIB as XEN_DEFAULT_MEMORY_MIB, dom0_mem_mib as xen_dom0_mem_mib};

/// Modules loaded in the guest once udev runs (in addition to what udev
/// loads by itself).
pub const GUEST_MODULES: [&str; 16] = [
    "virtio_blk",
    "virtio_net",
    "md_mod",
    "raid0",
    "raid1",
    "raid456",
    "raid10",
    "dm_mod",
    "dm_snapshot",
    "dm_mirror",
    "dm_thin_pool",
    "bridge",
    "tun",
    "dummy",
    "loop",
    "8021q",
];

/// qemu machine type (q35 sets up PCI interrupts quicker than i440fx).
const MACHINE: &str = "q35";
/// CPU model for TCG.
const CPU: &str = "max";

/// Kernel command line. Everything after `rdinit` only buys speed in a
/// throwaway TCG guest (crypto self-tests alone took 0.8 s of boot).
const KERNEL_ARGS: &[&str] = &[
    "console=ttyS0",
    "quiet",
    "loglevel=3",
    "panic=-1",
    "rdinit=/init",
    "8250.nr_uarts=1",
    "no_timer_check",
    "random.trust_cpu=on",
    "cryptomgr.notests",
    "mitigations=off",
    "audit=0",
    "apparmor=0",
    // No address-space randomisation: TCG keys the code it translated by virtual address, so
    // with ASLR every process's libc, loader and binary sit elsewhere and are translated anew;
    // without it the next run of a tool reuses the last one's translation (measured: a batch
    // of plans and discovery tools took 30% less of the VM's CPU).
    "norandmaps",
    // kvm would offer nested KVM to tools in the guest, which cannot work.
    "modprobe.blacklist=kvm,kvm_amd,kvm_intel,floppy,pcspkr",
];

/// Longest serial qemu passes to a virtio-blk guest (VIRTIO_BLK_ID_BYTES).
pub const MAX_SERIAL_LEN: usize = 20;

/// Hostname of a guest not booted from a spec (it is also mdadm's homehost there).
pub const GUEST_HOSTNAME: &str = "hostform-sandbox";

/// A blank disk for the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxDisk {
    /// Serial number; sanitized with [`sanitize_serial`].
    pub serial: String,
    /// Size of the sparse image (multiple of 512).
    pub size_bytes: u64,
    /// Extra names under /dev/disk/by-id/ for this disk (and `NAME-partN` for its
    /// partitions), so a spec's `id: /dev/disk/by-id/ata-…` resolves in the guest as on the
    /// real host. Made by a udev rule in the guest.
    pub by_id_aliases: Vec<String>,
}

/// Whether a by-id alias is safe to put in a udev rule and a shell word.
fn valid_alias(a: &str) -> bool {
    !a.is_empty()
        && a.len() <= 200
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._:+-".contains(c))
}

/// What to boot and what to run.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Blank sparse raw images, one virtio-blk device each, in order
    /// (`/dev/vda`, `/dev/vdb`, ...).
    pub disks: Vec<SandboxDisk>,
    /// Names the guest's NICs get (one isolated virtio-net NIC each).
    pub nics: Vec<String>,
    /// Guest memory.
    pub memory_mib: u32,
    /// Virtual CPUs. 1 boots fastest on a busy 2-core machine: with 2, a
    /// vCPU often spins waiting for the other one while the host has
    /// descheduled it.
    pub cpus: u32,
    /// Host directory shared at the same path in the guest; the command
    /// starts there.
    pub workdir: PathBuf,
    /// Whether the guest may write to `workdir` (writes reach the host).
    pub workdir_writable: bool,
    /// An executable of the host (hostform's own binary) made available in the guest at the
    /// same absolute path, whatever that path is: the root share alone does not show a file
    /// under `/tmp`, `/run` or `/dev/shm`, which the guest mounts afresh.
    pub exe: Option<PathBuf>,
    /// argv run in the guest as root.
    pub command: Vec<String>,
    /// Keep the disk images in this directory (created if needed) instead of
    /// a temporary one; images already there are reused as they are.
    pub keep: Option<PathBuf>,
    /// Bound on the whole run (boot, command, power-off).
    pub timeout: Duration,
    /// The guest's hostname (also mdadm's homehost there): the spec's host when booted from a
    /// spec, so that hostform inside takes the VM for that host.
    pub hostname: String,
    /// What the guest sets up before the command, as a Debian host would have it.
    pub provide: Vec<Provide>,
    /// Variables the command gets (`HOSTFORM_SANDBOX_SCALE`).
    pub env: Vec<(String, String)>,
    /// Boot a Xen hypervisor with the guest as its dom0 (`xen.rs`); pair it with
    /// [`Provide::Xen`] for the toolstack.
    pub xen: bool,
    /// Images other VMs attach too (a cluster's shared LUN), after [`Self::disks`]: opened
    /// with `share-rw=on` and no image locking, never created or removed by this run.
    pub shared_disks: Vec<SharedDisk>,
    /// NICs on a link to other VMs (a cluster's private network), after [`Self::nics`].
    pub links: Vec<Link>,
}

/// An existing raw image attached to several VMs at once (see [`SandboxConfig::shared_disks`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedDisk {
    pub image: PathBuf,
    /// The serial every VM sees (the same on all, like a LUN's).
    pub serial: String,
    pub by_id_aliases: Vec<String>,
}

/// A NIC whose qemu backend joins other VMs (see [`SandboxConfig::links`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The name the NIC gets in the guest.
    pub name: String,
    /// Its MAC, distinct on the link.
    pub mac: String,
    /// qemu's `-netdev` backend options, without the id (`dgram,local.type=unix,...`).
    pub netdev: String,
}

/// Services and files a sandbox guest sets up after boot, before the command: what a spec
/// needs from its host that a bare sandbox lacks (`from_spec::provide` chooses them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Provide {
    /// `/etc/network/interfaces` as Debian installs it, sourcing `interfaces.d`.
    Ifupdown,
    /// systemd-networkd enabled (its `multi-user.target.wants` link) and `/etc/systemd/network`.
    Networkd,
    /// libvirtd with the qemu driver (`scripts/sandbox/libvirt-up.sh`).
    Libvirtd,
    /// md resync and recovery throttled to 1 MB/s: a new mirror of the sandbox's large sparse
    /// disks would otherwise copy gigabytes under emulation, which a real host does in the
    /// background anyway.
    ThrottleResync,
    /// The Xen toolstack in dom0 (Debian's `/etc/init.d/xen start`), in a Xen sandbox.
    Xen,
}

impl Provide {
    /// The word stage 2 reads in `HF_PROVIDE`.
    pub fn word(self) -> &'static str {
        match self {
            Provide::Ifupdown => "ifupdown",
            Provide::Networkd => "networkd",
            Provide::Libvirtd => "libvirtd",
            Provide::ThrottleResync => "throttle-resync",
            Provide::Xen => "xen",
        }
    }
}

impl SandboxConfig {
    /// A configuration with no disks or NICs, 1024 MiB, one vCPU, a
    /// read-only workdir and a 5-minute timeout.
    pub fn new(workdir: impl Into<PathBuf>, command: Vec<String>) -> Self {
        Self {
            disks: Vec::new(),
            nics: Vec::new(),
            memory_mib: 1024,
            cpus: 1,
            workdir: workdir.into(),
            workdir_writable: false,
            exe: None,
            command,
            keep: None,
            timeout: Duration::from_secs(300),
            hostname: GUEST_HOSTNAME.into(),
            provide: Vec::new(),
            env: Vec::new(),
            xen: false,
            shared_disks: Vec::new(),
            links: Vec::new(),
        }
    }
}

/// A disk image as attached to the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxDiskImage {
    /// Serial as given in the configuration.
    pub requested_serial: String,
    /// Serial the guest sees.
    pub serial: String,
    /// Stable path in the guest: `/dev/disk/by-id/virtio-<serial>`.
    pub guest_by_id: String,
    /// Image file on the host (gone after the run unless kept).
    pub image: PathBuf,
    /// The image existed in the keep directory and was adopted as it was.
    pub reused: bool,
    /// Size of the image as attached.
    pub size_bytes: u64,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct SandboxOutcome {
    /// Exit status of the command in the guest (128+N when killed by signal N).
    pub exit_code: i32,
    /// From starting qemu to the guest being ready to run the command.
    pub boot_ready: Duration,
    /// The guest's own uptime when it was ready (excludes firmware/qemu start).
    pub guest_uptime_at_ready: Option<Duration>,
    /// From ready to the end of what the guest set up for the spec (`Provide`).
    pub provided: Option<Duration>,
    /// Whole run, including image creation and power-off.
    pub total: Duration,
    /// The disks as attached.
    pub disks: Vec<SandboxDiskImage>,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "{what} not found (looked at {}): install the Debian package `{package}`",
        searched.join(", ")
    )]
    Missing {
        what: String,
        searched: Vec<String>,
        package: &'static str,
    },
    #[error("invalid sandbox configuration: {0}")]
    Config(String),
    #[error("{context} {}: {source}", path.display())]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("could not start {argv:?}: {source}")]
    Spawn {
        argv: Vec<String>,
        #[source]
        source: io::Error,
    },
    #[error(
        "qemu ended ({status}) before the command reported an exit status\n\
         argv: {argv:?}\nqemu stderr:\n{stderr}\nguest console (tail):\n{console}"
    )]
    QemuFailed {
        argv: Vec<String>,
        status: String,
        stderr: String,
        console: String,
    },
    #[error("guest setup failed: {message}\nguest console (tail):\n{console}")]
    Guest { message: String, console: String },
    #[error(
        "sandbox timed out after {after:?} while {phase}\nqemu argv: {argv:?}\n\
         guest console (tail):\n{console}"
    )]
    Timeout {
        after: Duration,
        phase: &'static str,
        argv: Vec<String>,
        console: String,
    },
    #[error("interrupted by signal {signal}; qemu was stopped and temporary files removed")]
    Interrupted { signal: i32 },
    #[error("writing the command output failed: {0}")]
    Output(#[source] io::Error),
    #[error("signal handling: {0}")]
    Signal(String),
}

impl SandboxError {
    pub(crate) fn io(context: &'static str, path: &Path, source: io::Error) -> Self {
        SandboxError::Io {
            context,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Checks that qemu, a kernel with modules, a static busybox and the
/// in-guest tools are installed; the error names the Debian package.
pub fn preflight() -> Result<(), SandboxError> {
    let host = HostTools::locate()?;
    host::resolve_modules(&host.kernel, &host::INITRAMFS_MODULES)?;
    Ok(())
}

/// Maps a requested serial to what the guest sees: ASCII letters, digits,
/// `-`, `_` and `.` are kept, every other character becomes `_`, and the
/// result is cut to [`MAX_SERIAL_LEN`] bytes. These characters survive both
/// qemu's option parser and udev's symlink escaping unchanged, so the guest's
/// `/dev/disk/by-id/virtio-<serial>` uses exactly this string.
pub fn sanitize_serial(serial: &str) -> String {
    serial
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(MAX_SERIAL_LEN)
        .collect()
}

/// Name of an image file for a (sanitized) serial.
fn image_name(serial: &str) -> String {
    format!("{serial}.img")
}

/// MAC address given to the NIC with this index.
pub fn nic_mac(index: usize) -> String {
    format!("52:54:00:48:46:{:02x}", index & 0xff)
}

fn validate(cfg: &SandboxConfig) -> Result<(), SandboxError> {
    let bad = |m: String| Err(SandboxError::Config(m));
    if cfg.command.is_empty() {
        return bad("the command is empty".into());
    }
    if cfg.command.iter().any(|a| a.contains('\0')) {
        return bad("command arguments cannot contain NUL bytes".into());
    }
    if cfg.memory_mib < 256 {
        return bad(format!("memory_mib {} is below 256", cfg.memory_mib));
    }
    if cfg.xen && cfg.memory_mib < xen::MIN_MEMORY_MIB {
        return bad(format!(
            "memory_mib {} is below {} (dom0 and its guests under Xen)",
            cfg.memory_mib,
            xen::MIN_MEMORY_MIB
        ));
    }
    if !(1..=8).contains(&cfg.cpus) {
        return bad(format!("cpus {} is not within 1..=8", cfg.cpus));
    }
    if cfg.timeout.is_zero() {
        return bad("the timeout is zero".into());
    }
    let mut serials = HashSet::new();
    for d in &cfg.disks {
        let s = sanitize_serial(&d.serial);
        if s.is_empty() {
            return bad(format!("disk serial {:?} is empty", d.serial));
        }
        if !serials.insert(s.clone()) {
            return bad(format!(
                "disk serial {:?} collides with another disk once sanitized ({s:?})",
                d.serial
            ));
        }
        if d.size_bytes == 0 || !d.size_bytes.is_multiple_of(512) {
            return bad(format!(
                "disk {:?}: size {} is not a positive multiple of 512",
                d.serial, d.size_bytes
            ));
        }
    }
    if cfg.nics.len() > 64 {
        return bad("at most 64 NICs".into());
    }
    let mut names = HashSet::new();
    for n in &cfg.nics {
        let ok = !n.is_empty()
            && n.len() <= 15
            && n != "."
            && n != ".."
            && !n.starts_with("hfnic")
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            return bad(format!(
                "NIC name {n:?} must be 1-15 characters of [A-Za-z0-9._-] and not start with hfnic"
            ));
        }
        if !names.insert(n.as_str()) {
            return bad(format!("NIC name {n:?} is used twice"));
        }
    }
    Ok(())
}

/// A private temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn create() -> Result<Self, SandboxError> {
        use std::os::unix::fs::DirBuilderExt;
        use std::sync::atomic::{AtomicU32, Ordering};
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let base = std::env::temp_dir();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        for _ in 0..16 {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let p = base.join(format!(
                "hostform-sandbox-{}-{nanos:08x}-{n}",
                std::process::id()
            ));
            match fs::DirBuilder::new().mode(0o700).create(&p) {
                Ok(()) => return Ok(TempDir(p)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(SandboxError::io("creating", &p, e)),
            }
        }
        Err(SandboxError::Config(format!(
            "could not create a temporary directory in {}",
            base.display()
        )))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The qemu process; killed and reaped on drop.
struct Qemu {
    child: Child,
    status: Option<ExitStatus>,
}

impl Qemu {
    fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none()
            && let Ok(Some(s)) = self.child.try_wait()
        {
            self.status = Some(s);
        }
        self.status
    }

    fn kill(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            let _ = self.child.kill();
            if let Ok(s) = self.child.wait() {
                self.status = Some(s);
            }
        }
        self.status
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        self.kill();
    }
}

fn prepare_disks(cfg: &SandboxConfig, tmp: &Path) -> Result<Vec<SandboxDiskImage>, SandboxError> {
    let dir = match &cfg.keep {
        Some(k) => {
            fs::create_dir_all(k).map_err(|e| SandboxError::io("creating", k, e))?;
            k.clone()
        }
        None => tmp.to_path_buf(),
    };
    let mut out = Vec::new();
    for d in &cfg.disks {
        let serial = sanitize_serial(&d.serial);
        let image = dir.join(image_name(&serial));
        let (reused, size_bytes) = match fs::metadata(&image) {
            Ok(m) if cfg.keep.is_some() && m.is_file() => (true, m.len()),
            Ok(_) => {
                return Err(SandboxError::Config(format!(
                    "{} exists and is not a reusable image",
                    image.display()
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let f = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&image)
                    .map_err(|e| SandboxError::io("creating", &image, e))?;
                // set_len on a new file makes it sparse, like truncate(1).
                f.set_len(d.size_bytes)
                    .map_err(|e| SandboxError::io("sizing", &image, e))?;
                (false, d.size_bytes)
            }
            Err(e) => return Err(SandboxError::io("inspecting", &image, e)),
        };
        out.push(SandboxDiskImage {
            requested_serial: d.serial.clone(),
            guest_by_id: format!("/dev/disk/by-id/virtio-{serial}"),
            serial,
            image,
            reused,
            size_bytes,
        });
    }
    Ok(out)
}

/// Escapes a value for qemu's `key=value,...` option syntax.
fn qopt(s: &str) -> String {
    s.replace(',', ",,")
}

/// [`SandboxConfig::exe`] resolved: the file and the directory shared to reach it.
struct Exe {
    path: PathBuf,
    dir: PathBuf,
}

/// Resolves the executable to an absolute path without symlinks (the guest binds exactly that
/// file) and checks that it is a regular file with a UTF-8 path.
fn resolve_exe(exe: &Path) -> Result<Exe, SandboxError> {
    let path =
        fs::canonicalize(exe).map_err(|e| SandboxError::io("resolving the executable", exe, e))?;
    if !path.is_file() {
        return Err(SandboxError::Config(format!(
            "executable {} is not a regular file",
            path.display()
        )));
    }
    path_str(&path)?;
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    Ok(Exe { path, dir })
}

fn path_str(p: &Path) -> Result<&str, SandboxError> {
    p.to_str()
        .ok_or_else(|| SandboxError::Config(format!("path {} is not UTF-8", p.display())))
}

struct QemuPlan {
    argv: Vec<String>,
    out_sock: PathBuf,
    ctl_sock: PathBuf,
    console_log: PathBuf,
    stderr_log: PathBuf,
}

/// The build machine's directories a VM sees besides its root.
struct Shares<'a> {
    /// The workdir (`hfwork`), unless it is `/`.
    workdir: &'a Path,
    /// The executable's directory (`hfexe`), read-only.
    exe_dir: Option<&'a Path>,
    /// libvirtd's capability cache (`hfcaps`), read-write: [`host::libvirt_caps_dir`].
    caps: Option<&'a Path>,
}

fn qemu_plan(
    cfg: &SandboxConfig,
    host: &HostTools,
    tmp: &Path,
    initrd: &Path,
    disks: &[SandboxDiskImage],
    shares: &Shares,
) -> Result<QemuPlan, SandboxError> {
    let (workdir, exe_dir) = (shares.workdir, shares.exe_dir);
    let out_sock = tmp.join("out.sock");
    let ctl_sock = tmp.join("ctl.sock");
    // sun_path holds 108 bytes including the NUL.
    if path_str(&ctl_sock)?.len() > 107 {
        return Err(SandboxError::Config(format!(
            "temporary directory path {} is too long for a unix socket; set TMPDIR to a shorter path",
            tmp.display()
        )));
    }
    let console_log = tmp.join("console.log");
    let stderr_log = tmp.join("qemu.stderr");
    let mut a: Vec<String> = vec![path_str(&host.qemu)?.to_string()];
    let mut push = |xs: &[&str]| a.extend(xs.iter().map(|s| s.to_string()));
    push(&["-nodefaults", "-no-user-config", "-nographic", "-no-reboot"]);
    push(&[
        "-machine",
        MACHINE,
        "-accel",
        "tcg,thread=multi",
        "-cpu",
        if cfg.xen { xen::CPU } else { CPU },
    ]);
    let smp = cfg.cpus.to_string();
    push(&["-smp", &smp]);
    let mem = cfg.memory_mib.to_string();
    push(&["-m", &mem]);
    let kernel_image = host::pvh_kernel(&host.kernel).unwrap_or_else(|| host.kernel.image.clone());
    if cfg.xen {
        // Xen through multiboot (SeaBIOS): the hypervisor, then dom0's kernel and initramfs.
        let elf = xen::hypervisor_elf()?;
        push(&["-kernel", path_str(&elf)?]);
        let dom0_args = KERNEL_ARGS
            .join(" ")
            .replace("console=ttyS0", "console=hvc0");
        let modules =
            xen::multiboot_modules(path_str(&kernel_image)?, &dom0_args, path_str(initrd)?);
        push(&["-initrd", &modules]);
        push(&["-append", &xen::xen_cmdline(cfg.memory_mib)]);
    } else {
        if let Some(q) = &host.qboot {
            push(&["-bios", path_str(q)?]);
        }
        push(&["-kernel", path_str(&kernel_image)?]);
        push(&["-initrd", path_str(initrd)?]);
        let append = KERNEL_ARGS.join(" ");
        push(&["-append", &append]);
    }
    let console = format!("file:{}", path_str(&console_log)?);
    push(&["-serial", &console]);
    push(&["-monitor", "none"]);
    // Root of the build machine, read-only.
    push(&[
        "-virtfs",
        "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
    ]);
    if workdir != Path::new("/") {
        let mut v = format!(
            "local,path={},mount_tag=hfwork,security_model=none,multidevs=remap",
            qopt(path_str(workdir)?)
        );
        if !cfg.workdir_writable {
            v.push_str(",readonly=on");
        }
        push(&["-virtfs", &v]);
    }
    // The directory of the executable, read-only; the guest binds the one file from it.
    if let Some(dir) = exe_dir {
        let v = format!(
            "local,path={},mount_tag=hfexe,security_model=none,readonly=on,multidevs=remap",
            qopt(path_str(dir)?)
        );
        push(&["-virtfs", &v]);
    }
    if let Some(dir) = shares.caps {
        let v = format!(
            "local,path={},mount_tag=hfcaps,security_model=none,multidevs=remap",
            qopt(path_str(dir)?)
        );
        push(&["-virtfs", &v]);
    }
    // Output and control channels; qemu waits for us to connect to both.
    push(&["-device", "virtio-serial-pci,id=vser0"]);
    for (id, sock, name) in [
        ("hfout", &out_sock, "org.hostform.out"),
        ("hfctl", &ctl_sock, "org.hostform.ctl"),
    ] {
        let c = format!(
            "socket,id={id},path={},server=on,wait=on",
            qopt(path_str(sock)?)
        );
        push(&["-chardev", &c]);
        let d = format!("virtserialport,bus=vser0.0,chardev={id},name={name}");
        push(&["-device", &d]);
    }
    for (i, d) in disks.iter().enumerate() {
        let drive = format!(
            "file={},if=none,format=raw,id=d{i},cache=unsafe,discard=unmap",
            qopt(path_str(&d.image)?)
        );
        push(&["-drive", &drive]);
        let dev = format!("virtio-blk-pci,drive=d{i},serial={}", d.serial);
        push(&["-device", &dev]);
    }
    for i in 0..cfg.nics.len() {
        let nd = format!("user,id=n{i},restrict=on");
        push(&["-netdev", &nd]);
        let dev = format!("virtio-net-pci,netdev=n{i},mac={}", nic_mac(i));
        push(&["-device", &dev]);
    }
    for (i, d) in cfg.shared_disks.iter().enumerate() {
        let drive = format!(
            "file.filename={},file.driver=file,file.locking=off,if=none,format=raw,id=s{i},cache=unsafe",
            qopt(path_str(&d.image)?)
        );
        push(&["-drive", &drive]);
        let dev = format!(
            "virtio-blk-pci,drive=s{i},serial={},share-rw=on",
            sanitize_serial(&d.serial)
        );
        push(&["-device", &dev]);
    }
    for (i, l) in cfg.links.iter().enumerate() {
        let nd = format!("{},id=l{i}", l.netdev);
        push(&["-netdev", &nd]);
        let dev = format!("virtio-net-pci,netdev=l{i},mac={}", l.mac);
        push(&["-device", &dev]);
    }
    Ok(QemuPlan {
        argv: a,
        out_sock,
        ctl_sock,
        console_log,
        stderr_log,
    })
}

fn tail(path: &Path, max: usize) -> String {
    let data = fs::read(path).unwrap_or_default();
    let start = data.len().saturating_sub(max);
    String::from_utf8_lossy(&data[start..]).into_owned()
}

#[derive(Debug, Clone, Copy)]
enum Chan {
    Out,
    Ctl,
}

enum Event {
    Data(Chan, Vec<u8>),
    Eof(Chan),
}

fn spawn_reader(mut s: UnixStream, chan: Chan, tx: mpsc::Sender<Event>) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 16384];
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if tx.send(Event::Data(chan, buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        let _ = tx.send(Event::Eof(chan));
    });
}

/// Boots the sandbox, runs `cfg.command` in it and streams its output to
/// `output`. Returns once the guest has powered off (or on error, after
/// killing qemu). Temporary images are always removed; kept ones stay.
pub fn run(cfg: &SandboxConfig, output: &mut dyn Write) -> Result<SandboxOutcome, SandboxError> {
    let started = Instant::now();
    let deadline = started + cfg.timeout;
    validate(cfg)?;
    let host = HostTools::locate()?;
    let workdir = fs::canonicalize(&cfg.workdir)
        .map_err(|e| SandboxError::io("resolving the workdir", &cfg.workdir, e))?;
    if !workdir.is_dir() {
        return Err(SandboxError::Config(format!(
            "workdir {} is not a directory",
            workdir.display()
        )));
    }
    let workdir_str = path_str(&workdir)?.to_string();
    let exe = cfg.exe.as_deref().map(resolve_exe).transpose()?;
    // A cache that cannot be made costs each libvirtd its probe, nothing else.
    let caps = host::libvirt_caps_dir();

    if let Some(bad) = cfg
        .disks
        .iter()
        .flat_map(|d| &d.by_id_aliases)
        .find(|a| !valid_alias(a))
    {
        return Err(SandboxError::Config(format!(
            "disk alias `{bad}`: by-id names may contain only letters, digits and . _ : + -"
        )));
    }
    if cfg.disks.len() + cfg.shared_disks.len() > 26 {
        return Err(SandboxError::Config("at most 26 disks (vda to vdz)".into()));
    }
    let signals = signals::Guard::install()?;
    let tmp = TempDir::create()?;
    let disks = prepare_disks(cfg, tmp.path())?;

    let guest = initramfs::GuestConfig {
        hostname: cfg.hostname.clone(),
        // The largest msize the virtio transport accepts.
        msize: 512_000,
        root_cache: "loose".into(),
        watchdog_secs: cfg.timeout.as_secs() + 30,
        share_path: if workdir == Path::new("/") {
            String::new()
        } else {
            workdir_str.clone()
        },
        share_mode: if cfg.workdir_writable { "rw" } else { "ro" },
        caps: if caps.is_some() {
            initramfs::LIBVIRT_CAPS_MOUNT.into()
        } else {
            String::new()
        },
        cwd: workdir_str,
        exe: exe
            .as_ref()
            .map(|e| path_str(&e.path).map(str::to_string))
            .transpose()?
            .unwrap_or_default(),
        modules: GUEST_MODULES.iter().map(|s| s.to_string()).collect(),
        nics: cfg
            .nics
            .iter()
            .enumerate()
            .map(|(i, n)| (nic_mac(i), n.clone()))
            .chain(cfg.links.iter().map(|l| (l.mac.clone(), l.name.clone())))
            .collect(),
        command: cfg.command.clone(),
        provide: cfg.provide.iter().map(|p| p.word()).collect(),
        env: cfg.env.clone(),
        by_id: cfg
            .disks
            .iter()
            .map(|d| &d.by_id_aliases)
            .chain(cfg.shared_disks.iter().map(|d| &d.by_id_aliases))
            .enumerate()
            .flat_map(|(i, aliases)| {
                let dev = format!("vd{}", (b'a' + i as u8) as char);
                aliases.iter().map(move |a| (dev.clone(), a.clone()))
            })
            .collect(),
    };
    let initrd = tmp.path().join("initrd.cpio");
    initramfs::build(&host, &guest.render(&host), &initrd)?;

    let plan = qemu_plan(
        cfg,
        &host,
        tmp.path(),
        &initrd,
        &disks,
        &Shares {
            workdir: &workdir,
            exe_dir: exe.as_ref().map(|e| e.dir.as_path()),
            caps: caps.as_deref(),
        },
    )?;
    let stderr_file = fs::File::create(&plan.stderr_log)
        .map_err(|e| SandboxError::io("creating", &plan.stderr_log, e))?;
    let mut cmd = Command::new(&plan.argv[0]);
    cmd.args(&plan.argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(stderr_file))
        .env_clear()
        .env("PATH", "/usr/bin:/usr/sbin:/bin:/sbin")
        .process_group(0);
    // SAFETY: prctl is async-signal-safe; nothing else runs in the child.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(io::Error::from)
        });
    }
    let spawned_at = Instant::now();
    let child = cmd.spawn().map_err(|e| SandboxError::Spawn {
        argv: plan.argv.clone(),
        source: e,
    })?;
    let mut qemu = Qemu {
        child,
        status: None,
    };

    let console = |plan: &QemuPlan| tail(&plan.console_log, 6000);
    let qemu_failed = |qemu: &mut Qemu, plan: &QemuPlan| {
        let status = qemu
            .kill()
            .map(|s| s.to_string())
            .unwrap_or_else(|| "unknown status".into());
        SandboxError::QemuFailed {
            argv: plan.argv.clone(),
            status,
            stderr: tail(&plan.stderr_log, 4000),
            console: console(plan),
        }
    };
    let check = |qemu: &mut Qemu, plan: &QemuPlan, phase: &'static str| {
        if let Some(sig) = signals.pending() {
            qemu.kill();
            return Err(SandboxError::Interrupted { signal: sig });
        }
        if Instant::now() >= deadline {
            qemu.kill();
            return Err(SandboxError::Timeout {
                after: started.elapsed(),
                phase,
                argv: plan.argv.clone(),
                console: console(plan),
            });
        }
        Ok(())
    };

    // qemu creates each socket and waits for a client, one after the other.
    let mut socks = Vec::new();
    for path in [&plan.out_sock, &plan.ctl_sock] {
        let s = loop {
            check(&mut qemu, &plan, "starting qemu")?;
            if qemu.try_wait().is_some() {
                return Err(qemu_failed(&mut qemu, &plan));
            }
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        };
        socks.push(s);
    }
    let shutdown_handles: Vec<UnixStream> =
        socks.iter().filter_map(|s| s.try_clone().ok()).collect();
    let (tx, rx) = mpsc::channel();
    let mut it = socks.into_iter();
    if let (Some(out), Some(ctl)) = (it.next(), it.next()) {
        spawn_reader(out, Chan::Out, tx.clone());
        spawn_reader(ctl, Chan::Ctl, tx);
    }
    let result = event_loop(
        &rx,
        output,
        &mut qemu,
        &plan,
        spawned_at,
        &|q: &mut Qemu, p: &QemuPlan, phase| check(q, p, phase),
    );
    for s in &shutdown_handles {
        let _ = s.shutdown(std::net::Shutdown::Both);
    }
    let loop_result = match result {
        Ok(r) => r,
        Err(e) => {
            qemu.kill();
            return Err(e);
        }
    };
    qemu.kill();
    match loop_result {
        LoopEnd::Exited {
            exit_code,
            boot_ready,
            guest_uptime,
            provided,
        } => Ok(SandboxOutcome {
            exit_code,
            boot_ready,
            guest_uptime_at_ready: guest_uptime,
            provided,
            total: started.elapsed(),
            disks,
        }),
        LoopEnd::GuestError(message) => Err(SandboxError::Guest {
            message,
            console: console(&plan),
        }),
        LoopEnd::NoStatus => Err(qemu_failed(&mut qemu, &plan)),
    }
}

enum LoopEnd {
    Exited {
        exit_code: i32,
        boot_ready: Duration,
        guest_uptime: Option<Duration>,
        provided: Option<Duration>,
    },
    GuestError(String),
    NoStatus,
}

type CheckFn<'a> = dyn Fn(&mut Qemu, &QemuPlan, &'static str) -> Result<(), SandboxError> + 'a;

fn event_loop(
    rx: &mpsc::Receiver<Event>,
    output: &mut dyn Write,
    qemu: &mut Qemu,
    plan: &QemuPlan,
    spawned_at: Instant,
    check: &CheckFn<'_>,
) -> Result<LoopEnd, SandboxError> {
    let mut ctl_buf: Vec<u8> = Vec::new();
    let mut ready: Option<(Duration, Option<Duration>)> = None;
    let mut provided: Option<Duration> = None;
    let mut exit_code: Option<i32> = None;
    let mut guest_error: Option<String> = None;
    let (mut out_eof, mut ctl_eof) = (false, false);
    let mut exited_at: Option<Instant> = None;
    let mut status_at: Option<Instant> = None;
    loop {
        let phase = if ready.is_none() {
            "booting the guest"
        } else if exit_code.is_none() {
            "running the command"
        } else {
            "powering off"
        };
        check(qemu, plan, phase)?;
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(Event::Data(Chan::Out, data)) => {
                output.write_all(&data).map_err(SandboxError::Output)?;
                output.flush().map_err(SandboxError::Output)?;
            }
            Ok(Event::Data(Chan::Ctl, data)) => {
                ctl_buf.extend_from_slice(&data);
                while let Some(pos) = ctl_buf.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = ctl_buf.drain(..=pos).collect();
                    let line = String::from_utf8_lossy(&line).trim().to_string();
                    if line.starts_with("provided") {
                        provided = Some(spawned_at.elapsed());
                    } else if let Some(rest) = line.strip_prefix("ready") {
                        let up = rest
                            .trim()
                            .parse::<f64>()
                            .ok()
                            .filter(|f| f.is_finite() && *f >= 0.0)
                            .map(Duration::from_secs_f64);
                        ready = Some((spawned_at.elapsed(), up));
                    } else if let Some(rest) = line.strip_prefix("exit ") {
                        exit_code = rest.trim().parse().ok();
                        if exit_code.is_none() {
                            guest_error = Some(format!("malformed exit report {line:?}"));
                        }
                        status_at = Some(Instant::now());
                    } else if let Some(rest) = line.strip_prefix("error ") {
                        guest_error = Some(rest.to_string());
                        status_at = Some(Instant::now());
                    }
                }
            }
            Ok(Event::Eof(Chan::Out)) => out_eof = true,
            Ok(Event::Eof(Chan::Ctl)) => ctl_eof = true,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                out_eof = true;
                ctl_eof = true;
            }
        }
        if exited_at.is_none() && qemu.try_wait().is_some() {
            exited_at = Some(Instant::now());
        }
        // After a status report the guest powers off by itself; force it if
        // that takes unreasonably long.
        if let Some(t) = status_at
            && exited_at.is_none()
            && t.elapsed() > Duration::from_secs(15)
        {
            qemu.kill();
            exited_at = Some(Instant::now());
        }
        let drained = out_eof && ctl_eof;
        let grace_over = exited_at.is_some_and(|t| t.elapsed() > Duration::from_secs(3));
        if exited_at.is_some() && (drained || grace_over) {
            break;
        }
    }
    if let Some(msg) = guest_error {
        return Ok(LoopEnd::GuestError(msg));
    }
    match (exit_code, ready) {
        (Some(exit_code), Some((boot_ready, guest_uptime))) => Ok(LoopEnd::Exited {
            exit_code,
            boot_ready,
            guest_uptime,
            provided: provided.map(|p| p.saturating_sub(boot_ready)),
        }),
        (Some(exit_code), None) => Ok(LoopEnd::Exited {
            exit_code,
            boot_ready: spawned_at.elapsed(),
            guest_uptime: None,
            provided: None,
        }),
        _ => Ok(LoopEnd::NoStatus),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_sanitized() {
        assert_eq!(sanitize_serial("HF-DISK-A"), "HF-DISK-A");
        assert_eq!(sanitize_serial("a b,c/d"), "a_b_c_d");
        assert_eq!(sanitize_serial("é"), "_");
        assert_eq!(
            sanitize_serial("0123456789abcdefghijKLMN"),
            "0123456789abcdefghij"
        );
    }

    #[test]
    fn config_validation() {
        let mut c = SandboxConfig::new("/", vec!["true".into()]);
        assert!(validate(&c).is_ok());
        c.nics = vec!["eth0".into(), "eth0".into()];
        assert!(validate(&c).is_err());
        c.nics = vec!["this-name-is-too-long".into()];
        assert!(validate(&c).is_err());
        c.nics = vec!["eth0".into()];
        c.disks = vec![
            SandboxDisk {
                serial: "a b".into(),
                size_bytes: 1 << 20,
                by_id_aliases: Vec::new(),
            },
            SandboxDisk {
                serial: "a,b".into(),
                size_bytes: 1 << 20,
                by_id_aliases: Vec::new(),
            },
        ];
        assert!(validate(&c).is_err());
        c.disks.pop();
        assert!(validate(&c).is_ok());
        c.disks[0].size_bytes = 1000;
        assert!(validate(&c).is_err());
        c.disks.clear();
        c.command.clear();
        assert!(validate(&c).is_err());
    }

    #[test]
    fn missing_package_is_named() {
        let e = SandboxError::Missing {
            what: "qemu-system-x86_64".into(),
            searched: vec!["/usr/bin/qemu-system-x86_64".into()],
            package: "qemu-system-x86",
        };
        let msg = e.to_string();
        assert!(
            msg.contains("install the Debian package `qemu-system-x86`"),
            "{msg}"
        );
        assert!(msg.contains("/usr/bin/qemu-system-x86_64"), "{msg}");
    }

    #[test]
    fn guest_config_quotes_the_command() {
        let host = test_host();
        let g = initramfs::GuestConfig {
            hostname: GUEST_HOSTNAME.into(),
            msize: 512_000,
            root_cache: "loose".into(),
            watchdog_secs: 60,
            share_path: "/work/it's here".into(),
            share_mode: "ro",
            caps: String::new(),
            cwd: "/work/it's here".into(),
            exe: "/tmp/ci $(x), 'y'/hostform".into(),
            modules: vec!["md_mod".into(), "dm_mod".into()],
            nics: vec![(nic_mac(0), "eth0".into())],
            command: vec!["sh".into(), "-c".into(), "echo $HOME; exit 3".into()],
            provide: vec!["ifupdown", "libvirtd"],
            env: vec![("HOSTFORM_SANDBOX_SCALE".into(), "1000".into())],
            by_id: vec![("vda".into(), "ata-WDC_WD80EFAX_7SGK1234".into())],
        };
        let text = g.render(&host);
        assert!(text.contains("HF_CAPS=''\n"), "{text}");
        assert!(
            text.contains("HF_BYID='vda=ata-WDC_WD80EFAX_7SGK1234'\n"),
            "{text}"
        );
        assert!(text.contains("HF_CWD='/work/it'\\''s here'\n"), "{text}");
        assert!(
            text.contains("HF_EXE='/tmp/ci $(x), '\\''y'\\''/hostform'\n"),
            "{text}"
        );
        assert!(
            text.contains("HF_NICS='52:54:00:48:46:00=eth0'\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "hf_command() { exec '/usr/bin/env' -- 'HOSTFORM_SANDBOX_SCALE=1000' 'sh' '-c' 'echo $HOME; exit 3'; }"
            ),
            "{text}"
        );
        assert!(text.contains("HF_PROVIDE='ifupdown libvirtd'\n"), "{text}");
    }

    fn test_host() -> HostTools {
        HostTools {
            qemu: "/usr/bin/qemu-system-x86_64".into(),
            busybox: "/usr/bin/busybox".into(),
            // No such kernel: qemu_plan finds no /boot/config for it and boots the image as is.
            kernel: Kernel {
                version: "0.0.0-hostform-test".into(),
                image: "/boot/vmlinuz-0.0.0-hostform-test".into(),
                modules_dir: "/lib/modules/0.0.0-hostform-test".into(),
            },
            qboot: None,
            udevd: "/lib/systemd/systemd-udevd".into(),
            udevadm: "/usr/bin/udevadm".into(),
            modprobe: "/usr/sbin/modprobe".into(),
            ip: "/usr/sbin/ip".into(),
            env: "/usr/bin/env".into(),
        }
    }

    /// The `-virtfs` values of a VM whose workdir is /work, with these two shares.
    fn virtfs(exe_dir: Option<&Path>, caps: Option<&Path>) -> Vec<String> {
        let cfg = SandboxConfig::new("/work", vec!["true".into()]);
        let tmp = Path::new("/tmp/hf-test");
        let shares = Shares {
            workdir: Path::new("/work"),
            exe_dir,
            caps,
        };
        qemu_plan(&cfg, &test_host(), tmp, &tmp.join("initrd"), &[], &shares)
            .unwrap()
            .argv
            .windows(2)
            .filter(|w| w[0] == "-virtfs")
            .map(|w| w[1].clone())
            .collect()
    }

    /// The executable's directory is a read-only share of its own, its path escaped for qemu.
    #[test]
    fn the_executables_directory_is_shared_read_only() {
        let with = virtfs(Some(Path::new("/tmp/ci,clone/bin")), None);
        assert_eq!(with.len(), 3, "{with:?}");
        assert_eq!(
            with[2],
            "local,path=/tmp/ci,,clone/bin,mount_tag=hfexe,security_model=none,readonly=on,multidevs=remap"
        );
        let without = virtfs(None, None);
        assert_eq!(without.len(), 2, "{without:?}");
        assert!(without.iter().all(|v| !v.contains("hfexe")), "{without:?}");
    }

    /// libvirtd's capability cache is the one share a VM writes besides a writable workdir;
    /// without one, no `hfcaps`. The script that starts libvirtd looks where stage 2 mounts it.
    #[test]
    fn libvirts_capability_cache_is_shared_read_write() {
        let with = virtfs(None, Some(Path::new("/var/tmp/c,d")));
        assert_eq!(
            with.last().map(String::as_str),
            Some("local,path=/var/tmp/c,,d,mount_tag=hfcaps,security_model=none,multidevs=remap")
        );
        assert!(virtfs(None, None).iter().all(|v| !v.contains("hfcaps")));
        assert!(
            initramfs::LIBVIRT_UP.contains(&format!("shared={}\n", initramfs::LIBVIRT_CAPS_MOUNT))
        );
        assert!(initramfs::STAGE2.contains("hfcaps \"$HF_CAPS\""));
    }

    /// The guest binds exactly the file the path names: symlinks are resolved on the host, and
    /// a directory or a missing file is refused before anything boots.
    #[test]
    fn the_executable_is_resolved_to_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("bin dir").join("hostform");
        fs::create_dir(real.parent().unwrap()).unwrap();
        fs::write(&real, b"#!/bin/sh\n").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let e = resolve_exe(&link).unwrap();
        assert_eq!(e.path, fs::canonicalize(&real).unwrap());
        assert_eq!(e.dir, fs::canonicalize(real.parent().unwrap()).unwrap());
        let err = resolve_exe(dir.path()).err().unwrap().to_string();
        assert!(err.contains("is not a regular file"), "{err}");
        let err = resolve_exe(&dir.path().join("missing"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("resolving the executable"), "{err}");
    }

    #[test]
    fn qemu_option_escaping() {
        assert_eq!(qopt("/a,b"), "/a,,b");
    }
}

#[cfg(test)]
mod vm_and_fixture_tests;
