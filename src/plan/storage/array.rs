//! md arrays: created from blank members, assembled when stopped, or adopted as found.

use super::*;

pub(super) fn arrays(c: &mut Ctx) {
    for (name, a) in &c.spec.arrays {
        if a.state == Presence::Present {
            array(c, name, a);
        }
    }
}

/// One spec array: adopted (running on its members), repaired (degraded), assembled (its
/// members carry its superblock), created (blank members), or refused.
fn array<'a>(c: &mut Ctx<'a>, name: &'a Name, a: &'a Array) {
    let res = format!("array {name}");
    let refs: Vec<&str> = a
        .devices
        .iter()
        .chain(&a.spares)
        .map(|r| r.value.as_str())
        .collect();
    let Some(paths) = refs
        .iter()
        .map(|r| c.device_path(r))
        .collect::<Option<Vec<String>>>()
    else {
        return; // a member disk was not found: already refused
    };
    let now: Vec<Option<&BlockDev>> = refs.iter().map(|r| c.device_now(r)).collect();
    let knames: Vec<&str> = now.iter().flatten().map(|b| b.kname.as_str()).collect();
    if let Some(dup) = same_device_twice(&paths, &now, &knames) {
        c.refuse(
            &res,
            format!("names the same device twice: {dup}"),
            "each member must be a different device",
        );
        return;
    }
    // An array already running on these members?
    let running = c
        .facts
        .arrays
        .values()
        .find(|x| x.members.iter().any(|m| knames.contains(&m.kname.as_str())));
    if let Some(x) = running {
        let x = x.clone();
        let members = Members {
            refs: &refs,
            now: &now,
            paths: &paths,
            knames: &knames,
        };
        adopt(c, &res, (name, a), &members, &x);
        return;
    }
    if name_taken(c, &res, name) {
        return;
    }
    // Not running: members either carry its superblock (assemble) or are blank (create).
    let uuids: Vec<Option<&str>> = now
        .iter()
        .map(|b| {
            b.and_then(|b| {
                (b.fstype.as_deref() == Some("linux_raid_member"))
                    .then_some(b.uuid.as_deref().unwrap_or(""))
            })
        })
        .collect();
    let Some(wiped) = wipe_foreign(c, &res, name, a, &now) else {
        return;
    };
    // Every member must exist and have been inspected, or be made by this plan.
    let unknown: Vec<&str> = refs
        .iter()
        .zip(&now)
        .filter(|(r, b)| b.is_none() && !c.made_by.contains_key(**r))
        .map(|(r, _)| *r)
        .collect();
    if !unknown.is_empty() {
        c.refuse(&res, format!("member(s) {} are not on the host under those names, and this plan does not create them", unknown.join(", ")), "see the refusals above for their disks");
        return;
    }
    let after: Vec<OpId> = refs
        .iter()
        .filter_map(|r| c.made_by.get(*r).cloned())
        .chain(wiped)
        .collect();
    if uuids.iter().any(Option::is_some) {
        let set: std::collections::BTreeSet<&str> = uuids.iter().flatten().copied().collect();
        if set.len() > 1 || uuids.iter().any(Option::is_none) {
            c.refuse(
                &res,
                "its members carry different md superblocks (or some none)",
                "inspect with `mdadm --examine`; hostform assembles only members of one array",
            );
            return;
        }
        assemble(c, &res, name, &paths, after);
        return;
    }
    create(c, &res, name, a, &refs, &paths, after);
}

/// The same device named twice: two references, or a disk and one of its partitions.
fn same_device_twice(
    paths: &[String],
    now: &[Option<&BlockDev>],
    knames: &[&str],
) -> Option<String> {
    paths
        .iter()
        .enumerate()
        .find(|(i, p)| paths[..*i].contains(p))
        .map(|(_, p)| p.clone())
        .or_else(|| {
            knames
                .iter()
                .enumerate()
                .find(|(i, k)| knames[..*i].contains(k))
                .map(|(_, k)| k.to_string())
        })
        .or_else(|| {
            now.iter().flatten().find_map(|b| {
                now.iter()
                    .flatten()
                    .find(|o| b.parents.contains(&o.kname))
                    .map(|o| format!("{} and its partition {}", o.kname, b.kname))
            })
        })
}

/// The spec array's members: as the spec names them, their paths, the devices they are now
/// (if any), and those devices' kernel names.
struct Members<'m> {
    refs: &'m [&'m str],
    now: &'m [Option<&'m BlockDev>],
    paths: &'m [String],
    knames: &'m [&'m str],
}

/// An array running on the spec's members: adopted when its level, name and members match,
/// repaired when degraded, refused otherwise.
fn adopt(
    c: &mut Ctx,
    res: &str,
    (name, a): (&Name, &Array),
    m: &Members,
    x: &crate::kinds::md::MdArray,
) {
    let Members {
        refs,
        now,
        paths,
        knames,
    } = *m;
    let level = u8::from(a.level.value);
    if x.level_number() != Some(level) {
        c.refuse(
            res,
            format!(
                "{} on these members is {}, the spec says RAID{level}",
                x.kname, x.level
            ),
            "hostform does not change RAID levels",
        );
    } else if x.kname != name.value {
        c.refuse(
            res,
            format!("its members form {}, the spec names it {name}", x.kname),
            format!("rename the array in the spec to `{}`", x.kname),
        );
    } else if x.degraded() || x.members.iter().any(|m| m.failed) {
        repair::degraded(c, name, refs, now, paths, x);
    } else {
        let spec_set: BTreeSet<&str> = knames.iter().copied().collect();
        let host_set: BTreeSet<&str> = x.members.iter().map(|m| m.kname.as_str()).collect();
        let missing: Vec<&str> = spec_set.difference(&host_set).copied().collect();
        let extra: Vec<&str> = host_set.difference(&spec_set).copied().collect();
        if missing.is_empty() && extra.is_empty() {
            c.change(res, Action::NoOp, "running with the spec's members");
        } else {
            c.refuse(
                res,
                format!(
                    "{} is running with members that differ from the spec: not in the array {}; in the array, not in the spec {}",
                    x.kname,
                    if missing.is_empty() { "(none)".into() } else { missing.join(", ") },
                    if extra.is_empty() { "(none)".into() } else { extra.join(", ") },
                ),
                "check which devices are the array's members (`mdadm --detail`), and fix the spec; hostform does not move members between devices",
            );
        }
    }
}

/// Whether a running array on other members has the spec array's name (then refused).
fn name_taken(c: &mut Ctx, res: &str, name: &Name) -> bool {
    if let Some(x) = c.facts.arrays.values().find(|x| {
        x.kname == name.value
            || c.facts
                .blocks
                .get(&x.kname)
                .is_some_and(|b| b.name == name.value)
    }) {
        c.refuse(
            res,
            format!(
                "the name is taken by the running array {} on other members ({})",
                x.kname,
                x.members
                    .iter()
                    .map(|m| m.kname.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "check which disks the spec names: they are not that array's members",
        );
        return true;
    }
    false
}

/// `wipe: true`: the ops erasing members' other signatures (none when there are none);
/// `None` when refused (not allowed, or a member in use).
fn wipe_foreign(
    c: &mut Ctx,
    res: &str,
    name: &Name,
    a: &Array,
    now: &[Option<&BlockDev>],
) -> Option<Vec<OpId>> {
    let foreign: Vec<String> = now
        .iter()
        .flatten()
        .filter(|b| b.fstype.is_some() && b.fstype.as_deref() != Some("linux_raid_member"))
        .map(|b| format!("{} ({})", b.kname, b.fstype.as_deref().unwrap_or("")))
        .collect();
    let mut wiped: Vec<OpId> = Vec::new();
    if !foreign.is_empty() {
        if !a.wipe {
            c.refuse(
                res,
                format!("members carry other data: {}", foreign.join(", ")),
                "check them; set `wipe: true` on the array if that data may go",
            );
            return None;
        }
        // `wipe: true`: erase those signatures first (never on a device in use).
        let targets: Vec<&BlockDev> = now
            .iter()
            .flatten()
            .copied()
            .filter(|b| b.fstype.is_some() && b.fstype.as_deref() != Some("linux_raid_member"))
            .collect();
        if let Some(why) = targets.iter().find_map(|b| c.in_use(&b.kname)) {
            c.refuse(
                res,
                format!("a member is in use ({why}); `wipe: true` never erases a device in use"),
                "hostform never touches a device in use",
            );
            return None;
        }
        if !c.may_destroy(
            res,
            &format!(
                "members carry other data ({}); `wipe: true` erases it",
                foreign.join(", ")
            ),
        ) {
            return None;
        }
        for b in targets {
            wiped.push(
                c.add(
                    Op::run(
                        OpId::new(
                            19,
                            Address::Array(name.to_string()),
                            Verb::Wipe(Some(b.kname.to_string())),
                        ),
                        res,
                        format!(
                            "erase the {} signature on {}",
                            b.fstype.as_deref().unwrap_or(""),
                            b.kname
                        ),
                        vec![s("wipefs"), s("--all"), format!("/dev/{}", b.kname)],
                    )
                    .destructive(),
                ),
            );
        }
    }
    Some(wiped)
}

/// Assemble a stopped array from members carrying its superblock.
fn assemble(c: &mut Ctx, res: &str, name: &Name, paths: &[String], after: Vec<OpId>) {
    let mut argv = vec![
        s("mdadm"),
        s("--assemble"),
        crate::spec::names::array_path(name),
    ];
    argv.extend(paths.iter().cloned());
    c.add(
        Op::run(
            OpId::new(20, Address::Array(name.to_string()), Verb::Assemble),
            res,
            format!("assemble {name} from its members (they carry its superblock)"),
            argv,
        )
        .after(after),
    );
    c.reappearing.insert(name.value.clone());
    c.change(
        res,
        Action::Create,
        "members carry its superblock: assembled, not created",
    );
}

/// Create the array over blank members (or members this plan makes).
fn create(
    c: &mut Ctx,
    res: &str,
    name: &Name,
    a: &Array,
    refs: &[&str],
    paths: &[String],
    after: Vec<OpId>,
) {
    let n = a.devices.len();
    let mut argv = vec![
        s("mdadm"),
        s("--create"),
        crate::spec::names::array_path(name),
        s("--run"),
        format!("--level={}", u8::from(a.level.value)),
        format!("--raid-devices={n}"),
        format!("--metadata={}", a.metadata.as_str()),
    ];
    if !a.spares.is_empty() {
        argv.push(format!("--spare-devices={}", a.spares.len()));
    }
    argv.extend(paths.iter().cloned());
    let id = c.add(
        Op::run(
            OpId::new(20, Address::Array(name.to_string()), Verb::Create),
            res,
            format!(
                "create RAID{} {name} over {}",
                u8::from(a.level.value),
                refs.join(", ")
            ),
            argv,
        )
        .after(after),
    );
    c.made_by.insert(name.value.clone(), id);
    c.change(res, Action::Create, "no array on these members");
}
