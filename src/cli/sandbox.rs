//! `hostform sandbox`: boot a throwaway VM that looks like the spec's host (same disk ids, scaled
//! sizes, same NIC names) and run hostform, or any command, inside it on a real kernel.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use super::{ColorChoice, EXIT_FAIL, EXIT_OK};
use crate::sandbox::{self, SandboxConfig, SandboxError, from_spec};
use crate::spec::units::{self, Size};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The spec whose host to imitate; `hostform.yaml` by default.
    #[arg(value_name = "SPEC")]
    pub spec: Option<PathBuf>,
    /// Read the spec from this git revision (and plan and apply it at that revision inside).
    #[arg(long, value_name = "REV")]
    pub rev: Option<String>,
    /// Divide the spec's disk sizes by this (an 8 TB disk with --scale 1000 becomes 8 GB;
    /// images are sparse and cost only what is written). hostform inside divides the spec's
    /// capacities alike (never below what their tools need) and says so in every plan header.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub scale: u64,
    /// Size of disks whose size the spec does not give.
    #[arg(long, default_value = "8GiB", value_parser = parse_size, value_name = "SIZE")]
    pub disk_size: Size,
    /// Guest memory (the whole machine's under Xen, dom0 taking half of it up to 1 GiB);
    /// 1 GiB by default; under Xen 2 GiB, or what the scaled Xen guests need.
    #[arg(long, value_parser = parse_size, value_name = "SIZE")]
    pub memory: Option<Size>,
    /// `xen` boots a Xen hypervisor with the sandbox as its dom0 (Debian's xen-hypervisor
    /// package, the toolstack started as Debian starts it), and the spec's Xen guests are
    /// applied; `none` boots the plain kernel and leaves them out. By default: Xen when the
    /// spec has Xen guests.
    #[arg(long, value_enum, value_name = "HYPERVISOR")]
    pub hypervisor: Option<HypervisorArg>,
    /// Virtual CPUs (1 boots fastest on a busy 2-core machine).
    #[arg(long, default_value_t = 1)]
    pub cpus: u32,
    /// Keep the disk images in DIR after the run, and reuse images already there (a second
    /// run sees the disks as the first left them).
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
    /// Give up (and clean up) after this long.
    #[arg(long, default_value = "15m", value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: units::Duration,
    /// Only check that a sandbox can boot here (qemu, kernel, busybox); say what is missing.
    #[arg(long)]
    pub check: bool,
    /// The command to run inside, after `--`. By default: `hostform apply SPEC
    /// --auto-approve --confirm-within 10m` (its plan shown first), `confirm` when a network
    /// change waits for it, then a second `plan --detailed-exitcode` that must be empty.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
    /// The spec of another host of the spec's cluster, when it is not next to SPEC (each
    /// host of `cluster.hosts` boots, with the shared LUN; repeat for several).
    #[arg(long = "peer", value_name = "SPEC")]
    pub peers: Vec<PathBuf>,
}

/// By default: apply (which shows its plan first), and a second plan that must be empty. The binary and the spec
/// are passed as positional parameters, never spliced into the script.
pub(super) fn default_command(exe: &std::path::Path, rel: &str, rev: Option<&str>) -> Vec<String> {
    // "$@" is `--rev REV` or nothing.
    let mut c: Vec<String> = vec![
        "bash".into(),
        "-c".into(),
        // A change goes the safe way the docs ask of an operator: apply shows its plan, arms
        // a rollback and waits; `confirm` runs from another session once it says so. (No
        // `plan` before it: apply prints the same plan, and under TCG each discovery costs
        // seconds of the VM's one CPU.) Its output is read
        // line by line as it comes, not polled: under TCG, a `grep` and a `sleep` twice a
        // second took about a tenth of the VM's one CPU from the apply beside them.
        // A `confirm` that fails stops the apply at once rather than leaving it to wait.
        r#"set -e
exe=$0; spec=$1; shift
exec {out}< <(exec "$exe" apply "$spec" "$@" --auto-approve --confirm-within 10m 2>&1)
apply=$!
while IFS= read -r line <&$out; do
  printf '%s\n' "$line"
  case $line in *'for `hostform confirm`'*) "$exe" confirm || { kill $apply; exit 1; } ;; esac
done
rc=0; wait $apply || rc=$?
[ $rc = 0 ] || exit $rc
echo "== second plan (must be empty)"
"$exe" plan "$spec" "$@" --detailed-exitcode"#
            .into(),
        exe.to_string_lossy().into_owned(),
        rel.to_string(),
    ];
    if let Some(r) = rev {
        c.push("--rev".into());
        c.push(r.to_string());
    }
    c
}

/// What `--hypervisor` accepts.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum HypervisorArg {
    // Xen 4.17 from Debian, the sandbox as dom0. (No doc comments: clap would switch the
    // whole help to its long layout for documented values.)
    Xen,
    // The plain kernel, no hypervisor: Xen guests are left out, and named.
    #[value(name = "none")]
    Plain,
}

fn parse_size(s: &str) -> Result<Size, String> {
    Size::parse(s).map_err(|e| e.replace("\nhint: ", "; "))
}

fn parse_duration(s: &str) -> Result<units::Duration, String> {
    units::Duration::parse(s).map_err(|e| e.replace("\nhint: ", "; "))
}

pub fn run(args: Args, color: ColorChoice) -> i32 {
    if args.check {
        return match sandbox::preflight() {
            Ok(()) => {
                println!("sandbox: ready (qemu, a kernel with modules and busybox are installed)");
                EXIT_OK
            }
            Err(e) => {
                eprintln!("sandbox: cannot boot here: {e}");
                EXIT_FAIL
            }
        };
    }
    let spec_path = args
        .spec
        .clone()
        .unwrap_or_else(|| PathBuf::from("hostform.yaml"));
    let loaded =
        match super::load_spec(&spec_path, args.rev.as_deref(), color, "nothing was booted") {
            Ok(l) => l,
            Err(code) => return code,
        };
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("sandbox: cannot find the hostform binary: {e}");
            return EXIT_FAIL;
        }
    };
    if loaded.spec.cluster.is_some() {
        return super::sandbox_cluster::run(&args, &loaded, &exe);
    }
    let command = if args.command.is_empty() {
        default_command(&exe, &loaded.rel, args.rev.as_deref())
    } else {
        args.command.clone()
    };
    let mut cfg = SandboxConfig::new(loaded.root.clone(), command);
    // hostform itself runs inside from the path it has here, even under /tmp.
    cfg.exe = Some(exe);
    cfg.xen = match args.hypervisor {
        Some(HypervisorArg::Xen) => true,
        Some(HypervisorArg::Plain) => false,
        None => from_spec::wants_xen(&loaded.spec),
    };
    from_spec::apply(
        &mut cfg,
        &loaded.spec,
        &loaded.root.join(&loaded.rel),
        from_spec::Sizing {
            scale: args.scale,
            default_disk: args.disk_size.0,
        },
    );
    // A scaled run boots the spec's Xen guests small, from the sandbox's own kernel.
    if cfg.xen
        && args.scale > 1
        && let Err(e) = from_spec::xen_guest_boot(&mut cfg, &loaded.spec)
    {
        eprintln!(
            "sandbox: {e}; nothing was booted (`--hypervisor none` leaves the Xen guests out)"
        );
        return EXIT_FAIL;
    }
    let default_mib = if cfg.xen {
        from_spec::xen_memory_mib(&loaded.spec, args.scale)
    } else {
        1024
    };
    cfg.memory_mib = args
        .memory
        .map(|m| (m.0 / units::MIB).clamp(256, 64 * 1024) as u32)
        .unwrap_or(default_mib);
    cfg.cpus = args.cpus.clamp(1, 8);
    cfg.keep = args.keep.clone();
    cfg.timeout = Duration::from_secs(args.timeout.secs().max(30));
    eprintln!(
        "sandbox: booting {} ({} disk{}: {}; NICs: {})",
        loaded.label,
        cfg.disks.len(),
        if cfg.disks.len() == 1 { "" } else { "s" },
        cfg.disks
            .iter()
            .map(|d| format!(
                "{} {}",
                d.by_id_aliases.first().unwrap_or(&d.serial),
                units::human(d.size_bytes)
            ))
            .collect::<Vec<_>>()
            .join(", "),
        if cfg.nics.is_empty() {
            "none".to_string()
        } else {
            cfg.nics.join(", ")
        }
    );
    if cfg.xen {
        eprintln!(
            "sandbox: under Xen (dom0 {} MiB of {} MiB)",
            sandbox::xen_dom0_mem_mib(cfg.memory_mib),
            cfg.memory_mib
        );
    }
    for part in from_spec::left_out(&loaded.spec, cfg.xen) {
        eprintln!("sandbox: left out: {}", part.describe());
    }
    let mut out = std::io::stdout();
    let result = sandbox::run(&cfg, &mut out);
    let _ = out.flush();
    match result {
        Ok(o) => {
            let set_up = o
                .provided
                .map(|p| format!(", set up in {:.1}s", p.as_secs_f64()))
                .unwrap_or_default();
            eprintln!(
                "sandbox: command exited with status {} (ready in {:.1}s{set_up}, total {:.1}s)",
                o.exit_code,
                o.boot_ready.as_secs_f64(),
                o.total.as_secs_f64()
            );
            if let Some(dir) = &args.keep {
                eprintln!(
                    "sandbox: disk images kept in {}; boot them again with: hostform sandbox {} --keep {}",
                    dir.display(),
                    spec_path.display(),
                    dir.display()
                );
            }
            o.exit_code
        }
        Err(SandboxError::Interrupted { signal }) => {
            eprintln!("sandbox: interrupted; qemu stopped and temporary files removed");
            128 + signal
        }
        Err(e) => {
            eprintln!("sandbox: {e}");
            EXIT_FAIL
        }
    }
}
