//! Boots the sandbox with two 2 GiB disks (HF-DISK-A, HF-DISK-B) and one NIC
//! named eth0, runs a command in it (default: `lsblk`) and prints the exit
//! code and timings.
//!
//! ```text
//! cargo run --example sandbox_smoke -- [--keep DIR] [--writable] [--xen] [--timeout SECS]
//!     [--memory MIB] [--cpus N] [--workdir DIR] [--] [COMMAND ARGS...]
//! ```
//!
//! The command's output goes to stdout; the summary goes to stderr. The
//! process exits with the command's exit code (or 2 on a sandbox error,
//! 128+N when interrupted by signal N).

use std::path::PathBuf;
use std::time::Duration;

use hostform::sandbox::{self, SandboxConfig, SandboxDisk, SandboxError};

const GIB: u64 = 1 << 30;

fn usage() -> ! {
    eprintln!(
        "usage: sandbox_smoke [--keep DIR] [--writable] [--xen] [--timeout SECS] [--memory MIB] \
         [--cpus N] [--workdir DIR] [--] [COMMAND ARGS...]"
    );
    std::process::exit(2);
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut keep: Option<PathBuf> = None;
    let mut writable = false;
    let mut xen = false;
    let mut timeout = 300u64;
    let mut memory = 1024u32;
    let mut cpus = 1u32;
    let mut workdir: Option<PathBuf> = None;
    let mut command: Vec<String> = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--keep" => keep = Some(args.next().map(PathBuf::from).unwrap_or_else(|| usage())),
            "--writable" => writable = true,
            "--xen" => xen = true,
            "--timeout" => {
                timeout = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            "--memory" => {
                memory = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            "--cpus" => {
                cpus = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            "--workdir" => {
                workdir = Some(args.next().map(PathBuf::from).unwrap_or_else(|| usage()))
            }
            "--help" | "-h" => usage(),
            "--" => {
                command.extend(args.by_ref());
            }
            _ => {
                command.push(a);
                command.extend(args.by_ref());
            }
        }
    }
    if command.is_empty() {
        command.push("lsblk".into());
    }
    if let Err(e) = sandbox::preflight() {
        eprintln!("sandbox_smoke: {e}");
        std::process::exit(2);
    }
    let workdir = workdir
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_else(|| PathBuf::from("/"));
    let mut cfg = SandboxConfig::new(workdir, command);
    cfg.disks = vec![
        SandboxDisk {
            serial: "HF-DISK-A".into(),
            size_bytes: 2 * GIB,
            by_id_aliases: Vec::new(),
        },
        SandboxDisk {
            serial: "HF-DISK-B".into(),
            size_bytes: 2 * GIB,
            by_id_aliases: Vec::new(),
        },
    ];
    cfg.nics = vec!["eth0".into()];
    cfg.memory_mib = memory;
    cfg.cpus = cpus;
    cfg.keep = keep;
    cfg.workdir_writable = writable;
    cfg.timeout = Duration::from_secs(timeout);
    if xen {
        // Xen with the sandbox as dom0, the toolstack started (src/sandbox/xen.rs).
        cfg.xen = true;
        cfg.provide.push(sandbox::Provide::Xen);
    }

    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match sandbox::run(&cfg, &mut out) {
        Ok(o) => {
            for d in &o.disks {
                eprintln!(
                    "sandbox_smoke: disk {} -> {} ({}, {} bytes{})",
                    d.requested_serial,
                    d.guest_by_id,
                    d.image.display(),
                    d.size_bytes,
                    if d.reused {
                        ", re-used image adopted"
                    } else {
                        ""
                    }
                );
            }
            let up = o
                .guest_uptime_at_ready
                .map(|d| format!("{:.2}s", d.as_secs_f64()))
                .unwrap_or_else(|| "?".into());
            eprintln!(
                "sandbox_smoke: exit code {}; boot-to-ready {:.2}s (guest uptime {up}); total {:.2}s",
                o.exit_code,
                o.boot_ready.as_secs_f64(),
                o.total.as_secs_f64()
            );
            std::process::exit(o.exit_code.clamp(0, 255));
        }
        Err(SandboxError::Interrupted { signal }) => {
            eprintln!("sandbox_smoke: interrupted by signal {signal}; cleaned up");
            std::process::exit(128 + signal);
        }
        Err(e) => {
            eprintln!("sandbox_smoke: {e}");
            std::process::exit(2);
        }
    }
}
