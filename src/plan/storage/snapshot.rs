//! LVM snapshots: created from their origin once it is ready, left alone when present, merged
//! back into their origin when the spec says `state: merged`.

use super::*;

/// The spec's snapshots of this VG's LVs: created after their origin's ops.
pub(super) fn snapshots(c: &mut Ctx, vgname: &Name, vg: &VolumeGroup, after_vg: &[OpId]) {
    for (sname, snap) in &vg.snapshots {
        let res = format!("snapshot {vgname}/{sname}");
        match snap.state {
            SnapshotState::Absent => continue, // teardown
            SnapshotState::Merged => {
                merge(c, vgname, sname, snap);
                continue;
            }
            SnapshotState::Present => {}
        }
        if c.facts.lvm.lvs.contains_key(&format!("{vgname}/{sname}")) {
            c.change(&res, Action::NoOp, "exists");
            continue;
        }
        let origin = format!("lv {vgname}/{}", snap.origin);
        let after: Vec<OpId> = c
            .ops
            .iter()
            .filter(|o| o.resource == origin)
            .map(|o| o.id.clone())
            .chain(after_vg.iter().cloned())
            .collect();
        c.add(
            Op::run(
                OpId::new(
                    60,
                    Address::Snapshot {
                        vg: vgname.to_string(),
                        name: sname.to_string(),
                    },
                    Verb::Create,
                ),
                &res,
                format!("snapshot {vgname}/{}", snap.origin),
                vec![
                    s("lvcreate"),
                    s("--quiet"),
                    s("--snapshot"),
                    s("-n"),
                    sname.value.clone(),
                    s("-L"),
                    format!("{}b", snap.size.value.0),
                    format!("{vgname}/{}", snap.origin),
                ],
            )
            .on_root()
            .after(after),
        );
        c.change(&res, Action::Create, "no such snapshot");
    }
}

/// `state: merged`: `lvconvert --merge VG/SNAP` once, while neither the snapshot nor its
/// origin is open (a running guest on either, a mount): LVM would otherwise defer the merge to
/// the origin's next activation, which a plan cannot show. The origin's later writes are lost,
/// so it needs `--allow-destroy`. A snapshot no longer on the host is merged already.
fn merge(c: &mut Ctx, vgname: &Name, sname: &Name, snap: &Snapshot) {
    let key = format!("{vgname}/{sname}");
    let origin = format!("{vgname}/{}", snap.origin);
    let res = format!("snapshot {key}");
    let Some(cur) = c.facts.lvm.lvs.get(&key) else {
        c.change(&res, Action::NoOp, "merged (no such snapshot)");
        return;
    };
    if cur.origin.as_deref() != Some(snap.origin.as_str()) {
        c.refuse(
            &res,
            format!("is not a snapshot of {origin} on this host: nothing to merge into it"),
            "check `lvs -o lv_name,origin`, and the snapshot's `origin` in the spec",
        );
        return;
    }
    let open: Vec<String> = [&key, &origin]
        .into_iter()
        .filter(|k| c.facts.lvm.lvs.get(k.as_str()).is_some_and(|l| l.open))
        .cloned()
        .collect();
    if !open.is_empty() {
        c.refuse(
            &res,
            format!(
                "{} open (mounted, or attached to a running guest): hostform merges a snapshot only while neither it nor its origin is in use",
                if open.len() == 1 {
                    format!("{} is", open[0])
                } else {
                    format!("{} are", open.join(" and "))
                }
            ),
            "stop the guest on it (`hostform shutdown`, or `state: stopped`) and unmount it, then plan again",
        );
        return;
    }
    if !c.may_destroy(
        &res,
        &format!(
            "marked `state: merged`: {origin} goes back to the snapshot, losing what it got since"
        ),
    ) {
        return;
    }
    c.add(
        Op::run(
            OpId::new(61, Address::lv_key(&origin), Verb::Merge),
            &res,
            format!("merge {key} back into {origin} (the snapshot is gone after)"),
            vec![s("lvconvert"), s("--quiet"), s("--merge"), key.clone()],
        )
        .destructive()
        .on_root(),
    );
    c.change(
        &res,
        Action::Delete,
        format!("state: merged: {origin} returns to the snapshot's content"),
    );
}
