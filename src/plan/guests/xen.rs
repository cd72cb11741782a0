//! A Xen guest's configuration: the xl configuration file `xl create` starts it from,
//! written with its diff when it differs from the spec's rendering.

use super::{Ctx, Findings, Guest, Refused, Seen, class_word, lv_ops, op, unified};
use crate::kinds::guest::ChangeClass;
use crate::kinds::xen;
use crate::plan::{Action, Address, Effect, FileWrite, OpId, Verb};

/// What Xen has of the guest `name`: running, and whether its configuration file exists.
pub(super) fn seen<'a>(c: &Ctx<'a>, name: &str) -> Seen<'a> {
    let facts = c.facts;
    Seen {
        running: facts
            .guests
            .xen
            .as_ref()
            .is_some_and(|x| x.running.contains_key(name)),
        defined: facts.guests.xl_configs.contains_key(&c.xl_path(name)),
        ..Seen::default()
    }
}

/// Write the guest's xl configuration when it is missing or differs: the write's id, which
/// the start waits for. Refused when the spec's strings cannot be written as xl config.
pub(super) fn configure(c: &mut Ctx, g: &Guest, f: &mut Findings) -> Result<Option<OpId>, Refused> {
    let path = c.xl_path(g.name);
    if let Err(e) = xen::check_config(&g.want) {
        c.out.refuse(
            &g.res,
            format!("cannot write {path}: {e}"),
            "fix the spec; `hostform validate` names the string",
        );
        return Err(Refused);
    }
    let content = xen::render_config(&g.want);
    let now = c.facts.guests.xl_configs.get(&path);
    if now.map(String::as_str) == Some(content.as_str()) {
        return Ok(None);
    }
    let mut o = op(
        OpId::new(71, Address::Guest(g.name.to_string()), Verb::Config),
        &g.res,
        format!("write {path}"),
        Vec::new(),
    );
    o.effect = Effect::Write(FileWrite {
        path: path.clone(),
        content: content.clone(),
        mode: 0o644,
        diff: unified(now.map(String::as_str).unwrap_or(""), &content, &path),
    });
    o.after = lv_ops(&g.want);
    let id = o.id.clone();
    c.out.ops.push(o);
    if now.is_none() {
        f.configure(Action::Create, ["no xl config".to_string()]);
    } else {
        f.configure(
            Action::Update,
            [format!(
                "xl config differs: {}",
                class_word(ChangeClass::Restart, g.seen.running)
            )],
        );
    }
    Ok(Some(id))
}

#[cfg(test)]
mod tests {
    use crate::discover::Facts;
    use crate::plan::{Options, Plan};

    #[test]
    fn xen_guests_get_a_config_file_with_its_diff_and_xl_create() {
        let spec = crate::spec::load(
            std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/specs/dom0.yaml")),
            None,
        )
        .map(|l| l.spec)
        .unwrap();
        let mut f = Facts::default();
        // guest1's config exists with 1 GiB: the diff shows the memory line.
        let old = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/golden/xen/guest1.xl"
        ))
        .unwrap()
        .replace("memory = 2048", "memory = 1024");
        f.guests
            .xl_configs
            .insert("/etc/xen/guest/guest1.xl".into(), old);
        f.guests.xen = Some(Default::default());
        let mut p = Plan::default();
        crate::plan::guests::plan(&mut p, &spec, &f, &Options::default());
        let w = p
            .ops
            .iter()
            .find(|o| o.id == "71:guest:guest1:config")
            .and_then(|o| o.write().cloned())
            .unwrap();
        assert_eq!(w.path, "/etc/xen/guest/guest1.xl");
        assert!(
            w.diff.contains("-memory = 1024\n+memory = 2048\n"),
            "{}",
            w.diff
        );
        let start = p
            .ops
            .iter()
            .find(|o| o.id == "75:guest:guest1:start")
            .unwrap();
        assert_eq!(start.argv(), ["xl", "create", "/etc/xen/guest/guest1.xl"]);
        assert!(start.after.iter().any(|a| a == "75:guest:srvlan:start"));
    }
}
