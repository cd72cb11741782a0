//! The committed JSON Schema must match the one the binary prints, and the examples must
//! satisfy it.

use crate::common::*;

#[test]
fn committed_schema_is_current() {
    let o = hostform(&root(), &["schema"]);
    assert_eq!(code(&o), 0);
    let committed = std::fs::read_to_string(root().join("docs/spec.schema.json"))
        .expect("docs/spec.schema.json");
    assert!(
        committed == stdout(&o),
        "docs/spec.schema.json is stale: run `cargo run -- schema > docs/spec.schema.json`"
    );
}

#[test]
fn every_example_validates_against_the_schema() {
    let schema: serde_json::Value =
        serde_json::from_str(&stdout(&hostform(&root(), &["schema"]))).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("a valid JSON Schema");
    for e in std::fs::read_dir(root().join("specs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "yaml") {
            continue;
        }
        // The file as written (what an editor's YAML language server checks)...
        let raw: serde_json::Value =
            serde_saphyr::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&raw)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", p.display());
        // ...and its resolved form (includes, templates and `like` applied).
        let loaded = hostform::spec::load(&p, None).expect("example loads");
        let as_json = serde_json::to_value(&loaded.spec).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&as_json)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", p.display());
    }
    // And the schema does reject things.
    let bad =
        serde_json::json!({ "host": "h", "disks": { "sda": { "serial": "S", "size": "20" } } });
    assert!(!validator.is_valid(&bad));
    let bad = serde_json::json!({ "host": "h", "bogus": 1 });
    assert!(!validator.is_valid(&bad));
}
