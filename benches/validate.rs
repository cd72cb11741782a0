//! Validation cost against spec size: `cargo bench --bench validate`.
//!
//! Loads generated specs (file read + parse + decode + resolve + every check), reporting
//! the median, min and max wall time over several runs and the peak heap, so the growth
//! rate can be read off. Budget (issue 2): 10,000 LVs + 2,000 guests under 1 s and 200 MB.

// A counting global allocator is the one place that needs `unsafe`: it only forwards to
// the system allocator and keeps a running total.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

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

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let dir = tempfile::tempdir().expect("tempdir");
    println!(
        "| LVs | guests | resources | spec size | median | min | max | peak heap | µs per resource |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (lvs, vms) in [(1_000, 200), (10_000, 2_000), (50_000, 10_000)] {
        let text = hostform::synthetic::spec(lvs, vms);
        let path = dir.path().join(format!("s{lvs}.yaml"));
        std::fs::write(&path, &text).expect("write");
        let runs = if quick {
            1
        } else if lvs >= 50_000 {
            5
        } else {
            11
        };
        let mut times = Vec::new();
        let mut peak = 0;
        for _ in 0..runs {
            let base = CURRENT.load(Relaxed);
            PEAK.store(base, Relaxed);
            let t = Instant::now();
            let loaded = hostform::spec::load(&path, None).expect("synthetic spec is valid");
            let dt = t.elapsed();
            assert_eq!(loaded.spec.vms.len(), vms);
            drop(loaded);
            peak = peak.max(PEAK.load(Relaxed) - base);
            times.push(dt.as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        let med = times[times.len() / 2];
        let resources = lvs + vms + 6;
        println!(
            "| {lvs} | {vms} | {resources} | {:.1} MB | {:.0} ms | {:.0} ms | {:.0} ms | {:.1} MB | {:.1} |",
            text.len() as f64 / 1e6,
            med * 1e3,
            times[0] * 1e3,
            times[times.len() - 1] * 1e3,
            peak as f64 / 1e6,
            med * 1e6 / resources as f64
        );
    }
}
