//! docs/plan-format.md documents `hostform plan --format json`: its example is exactly what
//! hostform prints for tests/specs/plan-format/dom0.yaml against the `full` fixture scenario, and
//! every other JSON block there parses as the part of a plan it shows. The docs cannot drift.

use crate::common::*;

fn doc() -> String {
    std::fs::read_to_string(root().join("docs/plan-format.md")).expect("docs/plan-format.md")
}

/// The fenced ```json blocks of the document, in order.
fn json_blocks(doc: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for l in doc.lines() {
        match &mut cur {
            None if l.trim_start() == "```json" => cur = Some(String::new()),
            Some(b) if l.trim_start() == "```" => {
                out.push(std::mem::take(b));
                cur = None;
            }
            Some(b) => {
                b.push_str(l);
                b.push('\n');
            }
            None => {}
        }
    }
    out
}

#[test]
fn the_documented_example_is_what_plan_prints() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        root().join("tests/specs/plan-format/dom0.yaml"),
        dir.path().join("dom0.yaml"),
    )
    .unwrap();
    // What `hostform discover --format json` printed on dom0.
    snapshot_of(dir.path(), "full", "dom0");
    let o = hostform(
        dir.path(),
        &[
            "plan",
            "dom0.yaml",
            "--against",
            "full.json",
            "--format",
            "json",
        ],
    );
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let blocks = json_blocks(&doc());
    assert!(
        !blocks.is_empty(),
        "no ```json block in docs/plan-format.md"
    );
    assert_eq!(
        blocks[0],
        stdout(&o),
        "docs/plan-format.md's example differs from what `hostform plan dom0.yaml --against full.json --format json` prints now: update the document"
    );
}

#[test]
fn every_documented_fragment_parses_as_what_it_shows() {
    let blocks = json_blocks(&doc());
    for b in &blocks[1..] {
        let v: serde_json::Value = serde_json::from_str(b).unwrap_or_else(|e| panic!("{e}: {b}"));
        // Fragments are one plan's `refusals` or `deferred` entries.
        if let Some(r) = v.get("refusals") {
            serde_json::from_value::<Vec<hostform::plan::Refusal>>(r.clone())
                .unwrap_or_else(|e| panic!("{e}: {b}"));
        } else if let Some(r) = v.get("deferred") {
            serde_json::from_value::<Vec<hostform::plan::Deferred>>(r.clone())
                .unwrap_or_else(|e| panic!("{e}: {b}"));
        } else if let Some(r) = v.get("ops") {
            serde_json::from_value::<Vec<hostform::plan::Op>>(r.clone())
                .unwrap_or_else(|e| panic!("{e}: {b}"));
        } else {
            panic!("a JSON block of docs/plan-format.md shows nothing this test knows: {b}");
        }
    }
    assert!(
        blocks.len() >= 3,
        "the refusals and deferred fragments are documented"
    );
}
