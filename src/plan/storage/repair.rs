//! Repair of a degraded array (a member faulty or missing): the faulty member is removed
//! (`mdadm --manage --remove`, safe: md already stopped using it), and each spec member that
//! is not in the array is added (`--add`), once this plan has partitioned it when its disk is
//! a blank replacement. A member that carries another array's superblock, or other data, is
//! refused; an array that is already recovering is reported and left alone.

use super::*;
use crate::kinds::md::MdArray;

/// `[2/1] [U_]`-style health, with what is failed and any recovery under way.
pub(super) fn health(x: &MdArray) -> String {
    // As mdstat writes it: [devices the array should have/working].
    let mut h = format!("degraded [{}/{}]", x.raid_disks, x.working);
    let failed: Vec<&str> = x
        .members
        .iter()
        .filter(|m| m.failed)
        .map(|m| m.kname.as_str())
        .collect();
    if !failed.is_empty() {
        h.push_str(&format!(", {} faulty", failed.join(", ")));
    }
    if let Some(p) = &x.progress {
        h.push_str(&format!(", {} {:.1}%", p.action, p.percent));
    }
    h
}

/// Whether a device may not be added back to the degraded array `name` (in use, another
/// array's, carrying other data): refused, saying why.
fn cannot_add(
    c: &mut Ctx,
    res: &str,
    (name, state): (&str, &str),
    r: &str,
    b: &BlockDev,
    uuid: Option<&str>,
) -> bool {
    if let Some(why) = c.in_use(&b.kname) {
        c.refuse(
            res,
            format!("{state}; member {r} ({}) is in use ({why})", b.kname),
            "hostform never touches a device in use",
        );
        return true;
    }
    if let Some(other) = c
        .facts
        .arrays
        .values()
        .find(|o| o.kname != name && o.members.iter().any(|m| m.kname == b.kname))
    {
        c.refuse(
            res,
            format!(
                "{state}; member {r} ({}) belongs to the array {}",
                b.kname, other.kname
            ),
            "check the spec's member names: hostform never takes a device from another array",
        );
        return true;
    }
    match b.fstype.as_deref() {
        None => {}
        Some("linux_raid_member") if b.uuid.as_deref() == uuid && uuid.is_some() => {}
        Some("linux_raid_member") => {
            c.refuse(
                res,
                format!(
                    "{state}; member {r} ({}) carries the superblock of another array ({})",
                    b.kname,
                    b.uuid.as_deref().unwrap_or("unknown UUID")
                ),
                format!("check it with `mdadm --examine /dev/{}`; if it may go, clear it by hand (mdadm --zero-superblock) and plan again", b.kname),
            );
            return true;
        }
        Some(f) => {
            c.refuse(
                res,
                format!("{state}; member {r} ({}) carries a {f} signature", b.kname),
                "check that this is the replacement device; if its data may go, erase it by hand (wipefs -a) and plan again",
            );
            return true;
        }
    }
    false
}

/// Remove the array's faulty members: the op of each, by kernel name.
fn remove_faulty(c: &mut Ctx, res: &str, name: &str, x: &MdArray) -> BTreeMap<String, OpId> {
    let mut removes: BTreeMap<String, OpId> = BTreeMap::new();
    for m in x.members.iter().filter(|m| m.failed) {
        let dev = if c.block(&m.kname).is_some() {
            format!("/dev/{}", m.kname)
        } else {
            // Gone from /dev: mdadm's keyword for every failed member.
            s("failed")
        };
        let id = c.add(Op::run(
            OpId::new(
                21,
                Address::Array(name.to_string()),
                Verb::RemoveMember(m.kname.to_string()),
            ),
            res,
            format!("remove the faulty member {} from {name}", m.kname),
            vec![
                s("mdadm"),
                s("--manage"),
                crate::spec::names::array_path(name),
                s("--remove"),
                dev,
            ],
        ));
        removes.insert(m.kname.clone(), id);
    }
    removes
}

pub(super) fn degraded(
    c: &mut Ctx,
    name: &str,
    refs: &[&str],
    now: &[Option<&BlockDev>],
    paths: &[String],
    x: &MdArray,
) {
    let res = format!("array {name}");
    let state = health(x);
    if let Some(p) = &x.progress {
        c.change(
            &res,
            Action::NoOp,
            format!(
                "{state}: {} under way, left alone until it finishes",
                p.action
            ),
        );
        return;
    }
    // The array's identity, as its working members carry it.
    let uuid: Option<&str> = x
        .members
        .iter()
        .filter(|m| !m.failed)
        .filter_map(|m| c.block(&m.kname))
        .find_map(|b| b.uuid.as_deref());
    let removes = remove_faulty(c, &res, name, x);
    let mut added: Vec<String> = Vec::new();
    let mut refused = false;
    for ((r, b), path) in refs.iter().zip(now).zip(paths) {
        let mut after: Vec<OpId> = Vec::new();
        match b {
            Some(b) => {
                let member = x.members.iter().find(|m| m.kname == b.kname);
                match member {
                    Some(m) if !m.failed => continue, // working
                    Some(_) => after.extend(removes.get(&b.kname).cloned()),
                    None => {}
                }
                if cannot_add(c, &res, (name, &state), r, b, uuid) {
                    refused = true;
                    continue;
                }
            }
            None => match c.made_by.get(*r) {
                Some(id) => after.push(id.clone()),
                None => {
                    refused = true; // its disk was refused, and said why
                    continue;
                }
            },
        }
        c.add(
            Op::run(
                OpId::new(
                    22,
                    Address::Array(name.to_string()),
                    Verb::Add(r.to_string()),
                ),
                &res,
                format!("add {r} to {name}"),
                vec![
                    s("mdadm"),
                    s("--manage"),
                    crate::spec::names::array_path(name),
                    s("--add"),
                    path.clone(),
                ],
            )
            .after(after),
        );
        added.push(r.to_string());
    }
    if refused {
        return;
    }
    let mut what: Vec<String> = Vec::new();
    if !removes.is_empty() {
        what.push(format!(
            "{} removed",
            removes.keys().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    if !added.is_empty() {
        what.push(format!("{} added: recovery starts", added.join(", ")));
    }
    if what.is_empty() {
        c.change(
            &res,
            Action::NoOp,
            format!("{state}; the spec names no member to add"),
        );
    } else {
        c.change(
            &res,
            Action::Update,
            format!("{state}: {}", what.join(", ")),
        );
    }
}
