//! The resolved view of a spec: what the planner works from, written back in the spec language.
//! Loading already applies `include`, `vm-defaults`, `vm-templates` and `like` (`load.rs`);
//! this drops what they were written with, so that every guest and every disk stands on its
//! own, and a resolved spec loads again to the same spec (with nothing left to apply).

use super::types::Spec;

/// `spec` (as loaded) without `include`, `vm-defaults`, `vm-templates`, the guests'
/// `template` and the disks' `like`: what they brought is already in each guest and disk.
pub fn resolved(spec: &Spec) -> Spec {
    let mut s = spec.clone();
    s.include.clear();
    s.vm_defaults = None;
    s.vm_templates.clear();
    for vm in s.vms.values_mut() {
        vm.template = None;
    }
    for disk in s.disks.values_mut() {
        disk.like = None;
    }
    s
}

/// The resolved spec as YAML (the spec language), or the error of the YAML writer.
pub fn to_yaml(spec: &Spec) -> Result<String, String> {
    serde_saphyr::to_string(spec).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = "host: h
disks:
  a:
    serial: S1
    partitions:
      - { name: raid, size: rest, type: linux-raid }
  b: { serial: S2, like: a }
vm-defaults: { hypervisor: xen, memory: 1GiB }
vm-templates:
  small: { vcpus: 1 }
  big: { template: small, memory: 4GiB }
vms:
  g1: { template: big }
  g2: { memory: 2GiB }
";

    #[test]
    fn templates_defaults_and_like_are_applied_and_dropped() {
        let loaded = crate::spec::load_str("t.yaml", SPEC).unwrap();
        let r = resolved(&loaded.spec);
        let yaml = to_yaml(&r).unwrap();
        for gone in ["template", "vm-defaults", "vm-templates", "like"] {
            assert!(!yaml.contains(gone), "{gone} in {yaml}");
        }
        let again = crate::spec::load_str("r.yaml", &yaml)
            .unwrap_or_else(|f| panic!("{yaml}\n{:?}", f.diagnostics))
            .spec;
        let g1 = &again.vms["g1"];
        assert_eq!(g1.memory.as_ref().unwrap().value.0, 4 << 30);
        assert_eq!(g1.vcpus.as_ref().unwrap().value, 1);
        assert!(g1.hypervisor.is_some());
        assert_eq!(again.vms["g2"].memory.as_ref().unwrap().value.0, 2 << 30);
        assert!(again.vms["g2"].vcpus.is_none());
        assert_eq!(again.disks["b"].partitions.len(), 1);
        // Resolving the resolved spec changes nothing.
        assert_eq!(to_yaml(&resolved(&again)).unwrap(), yaml);
    }
}
