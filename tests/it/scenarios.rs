//! One snapshot of the rendered plans per captured scenario: every spec of tests/specs/e2e and
//! specs/ planned against the scenario's real captures, without and with --allow-destroy, as
//! text and as the plan's JSON. A change to any room shows here as a diff of what operators
//! see; a refactoring shows none.

use super::common::root;
use hostform::plan::{Options, plan_host, render};

/// Scenarios replayed by `ReplayRunner` whole (`guests/` is scripted and `degraded/` holds the
/// arrays' captures only: their own tests replay them).
const SCENARIOS: &[&str] = &[
    "blank", "full", "reused", "failed", "replaced", "tagged", "opened", "thin",
];

/// Network-only captures: planned on the blank scenario's disks, with the network read from
/// them, as an ifupdown Debian host has it (the sandbox has no /etc/network; the same
/// completion as the network room's own tests).
const NET_SCENARIOS: &[&str] = &["bridge", "addressed", "tapped"];

fn specs() -> Vec<std::path::PathBuf> {
    let mut v = Vec::new();
    for dir in ["tests/specs/e2e", "specs"] {
        let mut here: Vec<_> = std::fs::read_dir(root().join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        here.sort();
        v.extend(here);
    }
    v
}

fn runner(scenario: &str) -> hostform::runner::ReplayRunner {
    hostform::runner::ReplayRunner::open(root().join("tests/fixtures").join(scenario)).unwrap()
}

fn facts_of(scenario: &str) -> hostform::discover::Facts {
    if !NET_SCENARIOS.contains(&scenario) {
        return hostform::discover::discover(&runner(scenario))
            .unwrap()
            .facts;
    }
    use hostform::kinds::net::IFUPDOWN_MAIN;
    use hostform::spec::types::NetManager;
    let mut facts = hostform::discover::discover(&runner("blank"))
        .unwrap()
        .facts;
    let mut net = hostform::kinds::net::discover(&runner(scenario)).unwrap();
    net.ssh_local = None;
    net.files.insert(
        IFUPDOWN_MAIN.into(),
        "auto lo\niface lo inet loopback\n\nsource /etc/network/interfaces.d/*\n".into(),
    );
    net.manager = Some(NetManager::Ifupdown);
    net.ifupdown_bridges = true;
    facts.net = net;
    facts
}

fn plans_of(scenario: &str) -> String {
    let facts = facts_of(scenario);
    let mut out = String::new();
    for path in specs() {
        let name = path.strip_prefix(root()).unwrap().display().to_string();
        let Ok(loaded) = hostform::spec::load::load(&path, None) else {
            panic!("{name} does not load")
        };
        for allow_destroy in [false, true] {
            let p = plan_host(
                &loaded.spec,
                &facts,
                &Options {
                    allow_destroy,
                    ..Default::default()
                },
            );
            out.push_str(&format!(
                "==== {name}{}\n{}\n---- json\n{}\n\n",
                if allow_destroy {
                    " --allow-destroy"
                } else {
                    ""
                },
                render(&p, false),
                serde_json::to_string_pretty(&p).unwrap()
            ));
        }
    }
    out
}

#[test]
fn every_spec_against_every_captured_scenario() {
    for s in SCENARIOS.iter().chain(NET_SCENARIOS) {
        insta::assert_snapshot!(format!("scenario_{s}"), plans_of(s));
    }
}
