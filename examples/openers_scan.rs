//! Times discovery's scan for block devices held open by processes (every /proc/PID/fd link,
//! `kinds::block::openers`) on the machine it runs on. Run by scripts/bench-openers.sh.
//!
//! Usage: openers_scan [RUNS]   (default 31)
use hostform::kinds::block::{Inventory, openers};
use hostform::runner::{RealRunner, Runner};
use std::time::Instant;

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(31);
    let r = RealRunner::new();
    let lsblk = r.check(&["lsblk", "-J", "-b", "-O"]).expect("lsblk");
    let inv = Inventory::parse_lsblk(&lsblk.stdout).expect("lsblk JSON");
    let pids: Vec<String> = r
        .list("/proc")
        .into_iter()
        .filter(|p| p.bytes().all(|c| c.is_ascii_digit()))
        .collect();
    let fds: usize = pids
        .iter()
        .map(|p| r.list(&format!("/proc/{p}/fd")).len())
        .sum();
    let mut times = Vec::with_capacity(runs);
    let mut found = Default::default();
    for _ in 0..runs {
        let t = Instant::now();
        found = openers(&r, &inv);
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{} processes, {fds} descriptors, {} block devices; {} held open",
        pids.len(),
        inv.devices.len(),
        found.len()
    );
    println!(
        "scan over {runs} runs: median {:.2} ms, min {:.2} ms, max {:.2} ms",
        times[runs / 2],
        times[0],
        times[runs - 1]
    );
    for (k, v) in &found {
        let who: Vec<String> = v.iter().map(ToString::to_string).collect();
        println!("  {k}: {}", who.join(", "));
    }
}
