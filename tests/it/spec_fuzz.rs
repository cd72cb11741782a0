//! Property tests: the loader never panics on arbitrary bytes or on mutated real specs,
//! and always either loads or explains itself with at least one located error.

use hostform::spec::load_str;
use proptest::prelude::*;

const DOM0: &str = include_str!("../../specs/dom0.yaml");
const KVM1: &str = include_str!("../../specs/kvm1.yaml");
const KVM_CLUSTER: &str = include_str!("../../specs/common/kvm-cluster.yaml");

fn check(text: &str) {
    match load_str("fuzz.yaml", text) {
        Ok(_) => {}
        Err(f) => {
            assert!(!f.diagnostics.is_empty(), "a failure must say why");
            for d in &f.diagnostics {
                let _ =
                    hostform::diag::render(d, &f.sources, hostform::diag::Style { color: false });
                let _ = hostform::diag::to_json(d, &f.sources);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(s in ".{0,400}") {
        check(&s);
    }

    #[test]
    fn yaml_like_text_never_panics(s in "[a-z:{}\\[\\], \\n&*<>'\"|-]{0,300}") {
        check(&s);
    }

    #[test]
    fn mutated_specs_never_panic(
        which in 0..3usize,
        cut in 0usize..8000,
        len in 0usize..40,
        insert in "[ -~\\n\\t]{0,12}",
    ) {
        let base = [DOM0, KVM1, KVM_CLUSTER][which];
        let mut cut = cut.min(base.len());
        while !base.is_char_boundary(cut) { cut -= 1; }
        let mut end = (cut + len).min(base.len());
        while !base.is_char_boundary(end) { end -= 1; }
        let mutated = format!("{}{}{}", &base[..cut], insert, &base[end..]);
        check(&mutated);
    }

    #[test]
    fn scalar_values_swapped_never_panic(
        value in prop_oneof![
            Just("-1".to_string()), Just("0".to_string()), Just("1e400".to_string()),
            Just("99999999999999999999999999".to_string()), Just("~".to_string()),
            Just("[]".to_string()), Just("{}".to_string()), Just("\"\"".to_string()),
            Just("!!binary aGk=".to_string()), Just("0x1F".to_string()), Just(".nan".to_string()),
            "[a-zA-Z0-9%./:_-]{0,12}",
        ],
        line in 0usize..200,
    ) {
        let lines: Vec<&str> = DOM0.lines().collect();
        let idx = line % lines.len();
        let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        if let Some((k, _)) = lines[idx].split_once(": ") {
            out[idx] = format!("{k}: {value}");
        }
        check(&out.join("\n"));
    }
}
