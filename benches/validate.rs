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

/// Time and peak heap of one load of `text` (expected to fail or succeed, either way bounded).
fn measure(dir: &std::path::Path, name: &str, bytes: &[u8]) -> (f64, usize, bool) {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write");
    let base = CURRENT.load(Relaxed);
    PEAK.store(base, Relaxed);
    let t = Instant::now();
    let ok = hostform::spec::load(&path, None).is_ok();
    let dt = t.elapsed().as_secs_f64();
    (dt, PEAK.load(Relaxed) - base, ok)
}

/// In a smoke run the two 8 MiB inputs are left out (half a minute unoptimized); `cargo bench`
/// measures them.
fn hostile(dir: &std::path::Path, smoke: bool) {
    let mut laughs = String::from(
        "host: a\na: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let mut prev = 'a';
    for c in "bcdefghi".chars() {
        laughs.push_str(&format!(
            "{c}: &{c} [{}]\n",
            vec![format!("*{prev}"); 9].join(",")
        ));
        prev = c;
    }
    let deep = format!(
        "host: a\nx: {}{}\n",
        "[".repeat(1_000_000),
        "]".repeat(1_000_000)
    );
    // The largest file accepted: one VG full of valid LVs, up to the size limit.
    let mut max = String::from(
        "host: a\ndisks:\n  sda: { serial: S1 }\nvolume-groups:\n  vg0:\n    pvs: [sda]\n    lvs:\n",
    );
    let mut i = 0;
    loop {
        let line = format!("      x{i:07}: {{ size: 1GiB }}\n");
        if max.len() + line.len() > hostform::spec::yaml::MAX_SPEC_BYTES {
            break;
        }
        max.push_str(&line);
        i += 1;
    }
    // The densest YAML there is: a flow list of one-character values, up to the size limit.
    let dense = format!(
        "host: a\nx: [{}1]\n",
        "1,".repeat(hostform::spec::yaml::MAX_SPEC_BYTES / 2 - 16)
    );
    let mut too_big = vec![b'#'; 100 * 1024 * 1024];
    too_big[..8].copy_from_slice(b"host: a\n");
    println!();
    println!("| hostile input | size | time | peak heap | outcome |");
    println!("|---|---:|---:|---:|---|");
    for (name, bytes) in [
        ("billion laughs (9^8 aliases)", laughs.into_bytes()),
        ("1,000,000 nested lists", deep.into_bytes()),
        ("8 MiB of LVs (size limit)", max.into_bytes()),
        ("8 MiB flow list `[1,1,…]`", dense.into_bytes()),
        ("100 MB file", too_big),
    ] {
        if smoke && bytes.len() > 1 << 22 && bytes.len() < 1 << 26 {
            println!("| {name} | (measured by `cargo bench`) | | | |");
            continue;
        }
        let (t, peak, ok) = measure(dir, "hostile.yaml", &bytes);
        assert!(!ok, "{name} was loaded");
        println!(
            "| {name} | {:.1} MB | {:.0} ms | {:.1} MB | {} |",
            bytes.len() as f64 / 1e6,
            t * 1e3,
            peak as f64 / 1e6,
            if ok { "loaded" } else { "refused" }
        );
    }
}

fn main() {
    // `cargo test --benches` runs this without `--bench`: once, at the smallest size, so that
    // the benchmark cannot break unnoticed (scripts/test); `cargo bench` measures.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let quick = smoke || std::env::args().any(|a| a == "--quick");
    let dir = tempfile::tempdir().expect("tempdir");
    println!(
        "| LVs | guests | resources | spec size | median | min | max | peak heap | µs per resource |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let sizes: &[(usize, usize)] = if smoke {
        &[(1_000, 200)]
    } else {
        &[(1_000, 200), (10_000, 2_000), (50_000, 10_000)]
    };
    for &(lvs, vms) in sizes {
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
    hostile(dir.path(), smoke);
}
