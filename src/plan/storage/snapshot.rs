//! LVM snapshots: created from their origin once it is ready, left alone when present.

use super::*;

/// The spec's snapshots of this VG's LVs: created after their origin's ops.
pub(super) fn snapshots(c: &mut Ctx, vgname: &Name, vg: &VolumeGroup, after_vg: &[OpId]) {
    for (sname, snap) in &vg.snapshots {
        let res = format!("snapshot {vgname}/{sname}");
        if snap.state == Presence::Absent {
            continue; // teardown
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
