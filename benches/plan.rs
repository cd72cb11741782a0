//! Planning cost against spec size: `cargo bench --bench plan`.
//!
//! The host is the captured blank two-disk sandbox (tests/fixtures/blank), its disks given the
//! synthetic spec's ids and made big enough, with the captured `addressed` network
//! (`synthetic::Base::blank`); the plan then creates the whole stack: two tables, the array,
//! the VG and every LV with its filesystem, and the bridge. Budget (issue 3): 10,000 LVs in
//! under 1 s.

use std::time::Instant;

fn main() {
    // `cargo test --benches` runs this without `--bench`: once, at the smallest size, so that
    // the benchmark cannot break unnoticed (scripts/test); `cargo bench` measures.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let quick = smoke || std::env::args().any(|a| a == "--quick");
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    // The blank disks with the synthetic spec's ids, and the captured addressed network.
    let facts = hostform::synthetic::Base::blank(std::path::Path::new(fixtures)).expect("fixtures");
    println!("| LVs | operations | median | min | max |");
    println!("|---:|---:|---:|---:|---:|");
    let sizes: &[usize] = if smoke {
        &[1_000]
    } else {
        &[1_000, 10_000, 50_000]
    };
    for &lvs in sizes {
        let spec = hostform::spec::load_str("s.yaml", &hostform::synthetic::spec(lvs, 0))
            .expect("valid")
            .spec;
        let runs = if quick { 1 } else { 7 };
        let mut times = Vec::new();
        let mut n = 0;
        for _ in 0..runs {
            let t = Instant::now();
            let p = hostform::plan::plan_host(&spec, &facts, &Default::default());
            times.push(t.elapsed().as_secs_f64());
            assert!(p.refusals.is_empty(), "{:?}", p.refusals);
            n = p.ops.len();
        }
        times.sort_by(f64::total_cmp);
        println!(
            "| {lvs} to create | {n} | {:.0} ms | {:.0} ms | {:.0} ms |",
            times[times.len() / 2] * 1e3,
            times[0] * 1e3,
            times[times.len() - 1] * 1e3
        );
    }
    adopt(quick, if smoke { &[1_000] } else { &[10_000, 50_000] });
}

/// A host that already has every LV (the captured full stack plus N more LVs with their
/// filesystems): the plan must find nothing to do, and its cost is the comparisons.
fn adopt(quick: bool, sizes: &[usize]) {
    use hostform::spec::de::Sp;
    use hostform::spec::types::{Filesystem, Lv};
    use hostform::spec::units::{LvSize, Size};
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/full");
    let runner = hostform::runner::ReplayRunner::open(fixtures).expect("fixtures");
    for &n in sizes {
        let mut d = hostform::discover::discover(&runner).expect("full host");
        let vg = d.spec.volume_groups.get_index_mut(0).expect("vg0").1;
        for i in 0..n {
            let name = format!("lv{i:06}");
            vg.lvs.insert(
                Sp::bare(name.clone()),
                Lv {
                    size: Some(Sp::bare(LvSize::Bytes(Size(1 << 30)))),
                    fs: Filesystem::Ext4,
                    ..Lv::default()
                },
            );
            d.facts.lvm.lvs.insert(
                format!("vg0/{name}"),
                hostform::kinds::lvm::Lv {
                    name: name.clone(),
                    vg: "vg0".into(),
                    size: 1 << 30,
                    path: format!("/dev/vg0/{name}"),
                    origin: None,
                    active: true,
                    readonly: false,
                    open: false,
                    devices: vec!["/dev/md0".into()],
                    internal: false,
                    tags: Vec::new(),
                    thin: None,
                    uuid: String::new(),
                },
            );
            let kname = format!("dm-{}", 100 + i);
            d.facts.blocks.devices.insert(
                kname.clone(),
                hostform::kinds::block::BlockDev {
                    kname,
                    name: format!("vg0-{name}"),
                    kind: "lvm".into(),
                    size: 1 << 30,
                    fstype: Some("ext4".into()),
                    parents: vec!["md0".into()],
                    ..Default::default()
                },
            );
        }
        d.facts.blocks.index();
        let runs = if quick { 1 } else { 7 };
        let mut times = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            let p = hostform::plan::plan_host(&d.spec, &d.facts, &Default::default());
            times.push(t.elapsed().as_secs_f64());
            assert!(
                p.refusals.is_empty() && p.ops.is_empty(),
                "{:?}",
                p.refusals
            );
        }
        times.sort_by(f64::total_cmp);
        println!(
            "| {n} existing, adopted | 0 | {:.0} ms | {:.0} ms | {:.0} ms |",
            times[times.len() / 2] * 1e3,
            times[0] * 1e3,
            times[times.len() - 1] * 1e3
        );
        // The fingerprint a saved plan records (and apply recomputes) of the same host.
        let mut times = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            let s = hostform::workflow::saved::state_id(&d.facts, "this host");
            times.push(t.elapsed().as_secs_f64());
            assert!(s.parts.len() > n);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "| {n} existing: state fingerprint (saved plans) | — | {:.0} ms | {:.0} ms | {:.0} ms |",
            times[times.len() / 2] * 1e3,
            times[0] * 1e3,
            times[times.len() - 1] * 1e3
        );
    }
}
