//! `hostform shutdown` and `hostform start`: stop the guests in dependency order (each with
//! its timeout, then the spec's policy), or start them in the reverse order.

use std::path::PathBuf;

use super::{ColorChoice, EXIT_FAIL, EXIT_OK, Format};
use crate::runner::RealRunner;
use crate::shutdown::{
    self,
    run::{Backends, Log, RunOptions, render_summary},
};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The spec; `hostform.yaml` by default.
    #[arg(value_name = "SPEC")]
    pub spec: Option<PathBuf>,
    /// Only list the running guests and what would be done, in order; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The summary at the end: a table, or JSON (with every guest's timestamps).
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Also append the log lines to this file.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    #[command(flatten)]
    pub host: super::plan::HostArg,
}

/// A host of a cluster runs the guests its `runs-on` names, and those of the drained hosts
/// placed on it (the drain tags on the shared VGs, as `plan` reads them): this host's view,
/// when some host is drained. LVM is read only for a spec with a cluster; when it cannot be
/// read (lvmlockd already gone at power-off), the spec is taken as written.
fn placed_by_drains(
    spec: &crate::spec::Spec,
    r: &dyn crate::runner::Runner,
) -> Option<crate::spec::Spec> {
    spec.cluster.as_ref()?;
    let lvm = crate::kinds::lvm::Lvm::discover(r).ok()?;
    placed_with_lvm(spec, lvm)
}

fn placed_with_lvm(
    spec: &crate::spec::Spec,
    lvm: crate::kinds::lvm::Lvm,
) -> Option<crate::spec::Spec> {
    let facts = crate::discover::Facts {
        lvm,
        ..Default::default()
    };
    let drained = crate::plan::guests::drained(spec, &facts, None);
    spec.placed_with(&drained)
}

/// The run must survive the terminal or SSH session that started it: ignore SIGHUP, and
/// SIGPIPE (writes to a vanished terminal then fail, and are ignored, instead of killing us).
#[allow(unsafe_code)]
fn survive_hangup() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: installing SIG_IGN runs no Rust code in signal context.
    unsafe {
        let _ = signal(Signal::SIGHUP, SigHandler::SigIgn);
        let _ = signal(Signal::SIGPIPE, SigHandler::SigIgn);
    }
}

pub fn run(args: Args, color: ColorChoice, start: bool) -> i32 {
    survive_hangup();
    let path = args
        .spec
        .clone()
        .unwrap_or_else(|| PathBuf::from("hostform.yaml"));
    let what = if start {
        "no guest started"
    } else {
        "no guest stopped"
    };
    let loaded = match super::load_spec(&path, None, color, what) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let runner = RealRunner::new();
    let placed = placed_by_drains(&loaded.spec, &runner);
    let spec = placed.as_ref().unwrap_or(&loaded.spec);
    // Which host the spec is for. `start` refuses another host's spec. `shutdown` says so and
    // goes on: it runs when the host powers off, and refusing would leave the guests to be
    // killed instead of stopped.
    {
        use crate::workflow::host::{self, Seen};
        let seen = Seen::Host(host::read_hostname(&RealRunner::new()));
        if let Err(d) = host::check(spec, &seen, args.host.name.as_deref()) {
            eprint!(
                "{}",
                crate::diag::render(&d, &loaded.sources, color.stderr())
            );
            if start {
                eprintln!("{}: refused by the host check; {what}", loaded.label);
                return EXIT_FAIL;
            }
            eprintln!(
                "{}: WARNING: this spec is not this host's; the guests it names are stopped anyway, since the host may be going down",
                loaded.label
            );
        }
    }
    let order = match shutdown::order(spec) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{}: {e}; {what}", loaded.label);
            return EXIT_FAIL;
        }
    };
    let file = match &args.log {
        Some(p) => match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
        {
            Ok(f) => Some(f),
            Err(e) => {
                eprintln!("cannot open the log file {}: {e}; {what}", p.display());
                return EXIT_FAIL;
            }
        },
        None => None,
    };
    let log = Log::new(file);
    let backends = Backends::for_spec(spec, &runner);
    let opts = RunOptions {
        dry_run: args.dry_run,
        ..RunOptions::default()
    };
    let summary = if start {
        shutdown::run::start(&runner, spec, &order, &backends, opts, &log)
    } else {
        shutdown::run::shutdown(spec, &order, &backends, opts, &log)
    };
    let out = match args.format {
        Format::Text => render_summary(&summary),
        Format::Json => serde_json::to_string_pretty(&summary).unwrap_or_default() + "\n",
    };
    {
        use std::io::Write;
        let _ = std::io::stdout().write_all(out.as_bytes());
        let _ = std::io::stdout().flush();
    }
    if summary.ok { EXIT_OK } else { EXIT_FAIL }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::fixtures::text;

    /// kvm1's spec of a cluster where kvm2 runs `web`; LVM as captured on kvm1
    /// (tests/fixtures/cluster-a), with kvm2's drain tag on vgshared or not.
    #[test]
    fn shutdown_and_start_see_the_guests_a_drain_placed_here() {
        let y = "host: kvm1
cluster: { hosts: { kvm1: { host-id: 1 }, kvm2: { host-id: 2 } } }
disks: { lun: { serial: HF-LUN0 } }
volume-groups:
  vgshared: { pvs: [lun], shared: true, lvs: { web: { size: 64MiB }, db: { size: 32MiB } } }
vms:
  db: { hypervisor: libvirt, memory: 64MiB, disks: [{ lv: vgshared/db, target: vda }], runs-on: kvm1 }
  web: { hypervisor: libvirt, memory: 64MiB, disks: [{ lv: vgshared/web, target: vda }], runs-on: kvm2, depends-on: [db] }
";
        let spec = crate::spec::load_str("t.yaml", y).expect("loads").spec;
        let d = |n: &str| text(&format!("cluster-a/{n}"));
        let lvm = crate::kinds::lvm::Lvm::parse(
            &d("pvs-created.json"),
            &d("vgs-created.json"),
            &d("lvs-created.json"),
        )
        .expect("the captured reports");
        assert!(placed_with_lvm(&spec, lvm.clone()).is_none());
        let names = |s: &crate::spec::Spec| -> Vec<String> {
            shutdown::order(s).expect("an order").batches.concat()
        };
        assert_eq!(names(&spec), ["db"]);
        let mut tagged = lvm;
        tagged
            .vgs
            .get_mut("vgshared")
            .expect("vgshared")
            .tags
            .push("hostform_drained_kvm2".into());
        let placed = placed_with_lvm(&spec, tagged).expect("kvm2 drained");
        // web runs here while kvm2 is drained: stopped first (it depends on db).
        assert_eq!(names(&placed), ["web", "db"]);
    }
}
