//! Scaling of validate + plan from snapshots: `cargo bench --bench scale` (`-- --quick` for one
//! run per size).
//!
//! For 1,000, 10,000 and 50,000 resources (disks, array, VG, LVs, bridge, guests: five LVs
//! per guest, see `synthetic::split`), two hosts:
//! - create: the synthetic spec (templates, libvirt guests, a bridge taking eth0's address)
//!   against the captured blank disks and addressed network: everything is to be made;
//! - converged: a host that already has every LV and guest (`synthetic::grown`: real captured
//!   records cloned) and the spec `hostform discover` makes of it: nothing is to be done, which
//!   is what the hourly drift check and every plan of a settled host cost.
//!
//! Each is written to files (the spec as YAML, the snapshot as `hostform discover --format
//! json` writes it) and measured twice:
//! - the binary, as an operator or CI runs it: `hostform plan SPEC --against SNAPSHOT
//!   --detailed-exitcode`, wall time and peak RSS (each run under a fresh wrapper process of
//!   this benchmark, so `getrusage(RUSAGE_CHILDREN)` is that run's alone);
//! - in this process, by stage (load and validate the spec, read the snapshot, plan, render the
//!   text), with the peak heap from a counting allocator.
//!
//! Also the executor's own cost over the create plan (its commands run by nothing).
//!
//! Budget (issue 8): linear growth up to 50,000 resources, 10,000 under 1 s.

// A counting global allocator is the one place that needs `unsafe`: it only forwards to
// the system allocator and keeps a running total.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

use hostform::spec::types::Hypervisor;

struct Counting;
static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(l.size(), Relaxed) + l.size();
            PEAK.fetch_max(now, Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        CURRENT.fetch_sub(l.size(), Relaxed);
    }
}

#[global_allocator]
static A: Counting = Counting;

const SIZES: [usize; 3] = [1_000, 10_000, 50_000];

#[derive(Clone, Copy, PartialEq)]
enum Scenario {
    Create,
    Converged,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Create => "create",
            Scenario::Converged => "converged",
        }
    }
    /// `--detailed-exitcode`: changes (2) or none (0).
    fn exit(self) -> i32 {
        match self {
            Scenario::Create => 2,
            Scenario::Converged => 0,
        }
    }
}

struct Stats {
    median: f64,
    min: f64,
    max: f64,
}

fn stats(mut v: Vec<f64>) -> Stats {
    v.sort_by(f64::total_cmp);
    Stats {
        median: v[v.len() / 2],
        min: v[0],
        max: v[v.len() - 1],
    }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// Child mode: run the command once, print its wall time (s) and peak RSS (KiB).
fn rss_child(argv: &[String]) -> ! {
    let t = Instant::now();
    let status = Command::new(&argv[0])
        .args(&argv[1..])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("spawn hostform");
    let wall = t.elapsed().as_secs_f64();
    let ru = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .expect("getrusage");
    println!("{} {wall} {}", status.code().unwrap_or(-1), ru.max_rss());
    std::process::exit(0)
}

/// One run of the binary: (exit status, wall s, peak RSS bytes).
fn run_binary(spec: &Path, snap: &Path) -> (i32, f64, u64) {
    let me = std::env::current_exe().expect("current exe");
    let out = Command::new(me)
        .arg("--rss")
        .arg(env!("CARGO_BIN_EXE_hostform"))
        .args(["plan", "--detailed-exitcode", "--against"])
        .arg(snap)
        .arg(spec)
        .env("NO_COLOR", "1")
        .output()
        .expect("run the wrapper");
    let line = String::from_utf8_lossy(&out.stdout);
    let f: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(f.len(), 3, "wrapper said {line:?}");
    (
        f[0].parse().expect("status"),
        f[1].parse().expect("wall"),
        f[2].parse::<u64>().expect("rss") * 1024,
    )
}

struct Files {
    spec: PathBuf,
    snap: PathBuf,
    spec_bytes: u64,
    snap_bytes: u64,
}

/// Write the scenario's spec and snapshot for `resources` resources.
fn write(dir: &Path, fixtures: &Path, sc: Scenario, resources: usize) -> Files {
    let (lvs, vms) = hostform::synthetic::split(resources);
    let (spec_text, snapshot) = match sc {
        Scenario::Create => {
            let facts = hostform::synthetic::Base::blank(fixtures).expect("blank fixtures");
            let mut f = facts.clone();
            let spec = hostform::discover::describe("synthetic", &mut f);
            (
                hostform::synthetic::spec_for(lvs, vms, Hypervisor::Libvirt),
                serde_json::json!({ "format_version": 1, "spec": spec, "facts": facts }),
            )
        }
        Scenario::Converged => {
            let base = hostform::synthetic::Base::from_fixtures(fixtures).expect("fixtures");
            let mut facts = hostform::synthetic::grown(&base, "synthetic", lvs, vms);
            let spec = hostform::discover::describe("synthetic", &mut facts);
            (
                serde_saphyr::to_string(&spec).expect("spec as YAML"),
                serde_json::json!({ "format_version": 1, "spec": spec, "facts": facts }),
            )
        }
    };
    let spec = dir.join(format!("{}-{resources}.yaml", sc.name()));
    let snap = dir.join(format!("{}-{resources}.json", sc.name()));
    std::fs::write(&spec, &spec_text).expect("write spec");
    let snap_text = serde_json::to_string_pretty(&snapshot).expect("snapshot");
    std::fs::write(&snap, &snap_text).expect("write snapshot");
    Files {
        spec,
        snap,
        spec_bytes: spec_text.len() as u64,
        snap_bytes: snap_text.len() as u64,
    }
}

/// A runner that runs nothing and succeeds: the executor's own cost (scheduling, events) over a
/// plan's operations, without the host. It imitates no tool: nothing reads its output.
struct Nothing;

impl hostform::runner::Runner for Nothing {
    fn run_input(
        &self,
        _: &[&str],
        _: Option<&str>,
    ) -> Result<hostform::runner::Output, hostform::runner::RunError> {
        Ok(hostform::runner::Output {
            status: 0,
            stdout: String::new(),
            stderr: String::new(),
        })
    }
    fn read(&self, _: &str) -> Option<String> {
        None
    }
    fn list(&self, _: &str) -> Vec<String> {
        Vec::new()
    }
    fn resolve_link(&self, _: &str) -> Option<String> {
        None
    }
    fn write_file(&self, _: &str, _: &str, _: u32) -> Result<(), hostform::runner::RunError> {
        Ok(())
    }
}

/// The executor over the create plan with [`Nothing`] for a host, at the default parallelism:
/// seconds, and the operations it ran.
fn executor(files: &Files) -> (f64, usize) {
    let loaded = hostform::spec::load(&files.spec, None).expect("the spec is valid");
    let text = std::fs::read_to_string(&files.snap).expect("read snapshot");
    let mut d: hostform::discover::Discovered = serde_json::from_str(&text).expect("snapshot");
    d.facts.blocks.index();
    let plan = hostform::plan::plan_host(&loaded.spec, &d.facts, &Default::default());
    let t = Instant::now();
    let out = hostform::apply::execute(&plan, &Nothing, 4, &mut |_| {});
    let dt = t.elapsed().as_secs_f64();
    assert!(out.ok(), "{:?}", out.failed.first());
    (dt, out.done.len())
}

/// The stages in this process, once: seconds for load, snapshot, plan, render; peak heap
/// (bytes above what was allocated before); the number of operations.
fn stages(files: &Files) -> ([f64; 4], usize, usize) {
    let base = CURRENT.load(Relaxed);
    PEAK.store(base, Relaxed);
    let t = Instant::now();
    let loaded = hostform::spec::load(&files.spec, None).expect("the spec is valid");
    let t_load = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let text = std::fs::read_to_string(&files.snap).expect("read snapshot");
    let mut d: hostform::discover::Discovered = serde_json::from_str(&text).expect("snapshot");
    d.facts.blocks.index();
    drop(text);
    let t_snap = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let plan = hostform::plan::plan_host(&loaded.spec, &d.facts, &Default::default());
    let t_plan = t.elapsed().as_secs_f64();
    assert!(plan.refusals.is_empty(), "{:?}", plan.refusals);
    let t = Instant::now();
    let out = hostform::plan::render(&plan, false);
    let t_render = t.elapsed().as_secs_f64();
    assert!(!out.is_empty());
    let peak = PEAK.load(Relaxed) - base;
    ([t_load, t_snap, t_plan, t_render], peak, plan.ops.len())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--rss") {
        rss_child(&args[2..]);
    }
    // `cargo test --benches` runs this without `--bench`: once, at the smallest size, so that
    // the benchmark cannot break unnoticed (scripts/test); `cargo bench` measures.
    let smoke = !args.iter().any(|a| a == "--bench");
    let quick = smoke || args.iter().any(|a| a == "--quick");
    let sizes: &[usize] = if smoke { &SIZES[..1] } else { &SIZES };
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let dir = tempfile::tempdir().expect("temporary directory");

    let mut binary_rows = Vec::new();
    let mut stage_rows = Vec::new();
    let mut growth_rows = Vec::new();
    let mut executor_rows = Vec::new();
    for sc in [Scenario::Create, Scenario::Converged] {
        let mut medians = Vec::new();
        for &n in sizes {
            let files = write(dir.path(), &fixtures, sc, n);
            let (lvs, vms) = hostform::synthetic::split(n);
            let runs = if quick {
                1
            } else {
                match n {
                    0..=1_000 => 11,
                    1_001..=10_000 => 7,
                    _ => 5,
                }
            };
            // The binary, as an operator runs it (one warm-up run for the page cache).
            let _ = run_binary(&files.spec, &files.snap);
            let mut walls = Vec::new();
            let mut rss = 0;
            for _ in 0..runs {
                let (code, wall, r) = run_binary(&files.spec, &files.snap);
                assert_eq!(
                    code,
                    sc.exit(),
                    "{} {n}: hostform plan exited {code}",
                    sc.name()
                );
                walls.push(wall);
                rss = rss.max(r);
            }
            let w = stats(walls);
            medians.push(w.median);
            // The stages, in this process.
            let mut per: [Vec<f64>; 4] = Default::default();
            let mut heap = 0;
            let mut ops = 0;
            for _ in 0..runs.min(5) {
                let (t, h, o) = stages(&files);
                for (v, x) in per.iter_mut().zip(t) {
                    v.push(x);
                }
                heap = heap.max(h);
                ops = o;
            }
            let st: Vec<Stats> = per.into_iter().map(stats).collect();
            binary_rows.push(format!(
                "| {} | {n} | {lvs} | {vms} | {:.1} MB | {:.1} MB | {ops} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} MB | {:.1} |",
                sc.name(),
                mb(files.spec_bytes),
                mb(files.snap_bytes),
                w.median * 1e3,
                w.min * 1e3,
                w.max * 1e3,
                mb(rss),
                w.median * 1e6 / n as f64,
            ));
            if sc == Scenario::Create {
                let (t, n_ops) = executor(&files);
                executor_rows.push(format!(
                    "| {n} | {n_ops} | {:.0} ms | {:.1} µs |",
                    t * 1e3,
                    t * 1e6 / n_ops.max(1) as f64
                ));
            }
            stage_rows.push(format!(
                "| {} | {n} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} MB |",
                sc.name(),
                st[0].median * 1e3,
                st[1].median * 1e3,
                st[2].median * 1e3,
                st[3].median * 1e3,
                mb(heap as u64),
            ));
        }
        if medians.len() == 3 {
            growth_rows.push(format!(
                "| {} | {:.1}x (10x is linear) | {:.1}x (5x is linear) |",
                sc.name(),
                medians[1] / medians[0],
                medians[2] / medians[1],
            ));
        }
    }
    println!("`hostform plan SPEC --against SNAPSHOT --detailed-exitcode` (the binary):\n");
    println!(
        "| host | resources | LVs | guests | spec | snapshot | operations | median | min | max | peak RSS | µs per resource |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &binary_rows {
        println!("{r}");
    }
    println!("\nBy stage, in one process (medians; peak heap of the four stages together):\n");
    println!("| host | resources | load + validate | read snapshot | plan | render | peak heap |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for r in &stage_rows {
        println!("{r}");
    }
    println!(
        "\nThe executor over the create plan, its commands run by nothing (scheduling and events only; parallelism 4):\n"
    );
    println!("| resources | operations | executor | per operation |");
    println!("|---:|---:|---:|---:|");
    for r in &executor_rows {
        println!("{r}");
    }
    if growth_rows.is_empty() {
        return;
    }
    println!("\nGrowth of the binary's median time:\n");
    println!("| host | 1k → 10k | 10k → 50k |");
    println!("|---|---:|---:|");
    for r in &growth_rows {
        println!("{r}");
    }
}
