//! Linux software RAID as the kernel reports it: /proc/mdstat for the arrays, their level,
//! members and health, and /sys/block/mdN/md/ for the details mdstat leaves out. Files only:
//! no process, whatever the number of arrays.

use std::collections::BTreeMap;

use crate::runner::Runner;

/// A member's role in an array.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Member {
    /// Kernel name of the member device: `vda2`.
    pub kname: String,
    /// Slot number in brackets in mdstat.
    pub slot: u32,
    /// `(F)`: failed; `(S)`: spare; `(W)`: write-mostly.
    pub failed: bool,
    pub spare: bool,
}

/// Resync/recovery in progress.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Progress {
    /// `resync`, `recovery`, `reshape` or `check`.
    pub action: String,
    pub percent: f64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MdArray {
    /// `md0`.
    pub kname: String,
    /// `raid1`, `raid5`…; empty for an inactive array.
    pub level: String,
    pub active: bool,
    /// `(auto-read-only)`: assembled at boot and not written to since.
    pub auto_read_only: bool,
    pub members: Vec<Member>,
    /// Usable size in 1 KiB blocks, from mdstat.
    pub blocks: u64,
    /// Superblock format: `1.2`.
    pub metadata: Option<String>,
    /// `[2/1]`: devices the array should have, and has working.
    pub raid_disks: u32,
    pub working: u32,
    pub progress: Option<Progress>,
}

impl MdArray {
    pub fn degraded(&self) -> bool {
        self.working < self.raid_disks
    }
    pub fn level_number(&self) -> Option<u8> {
        self.level.strip_prefix("raid")?.parse().ok()
    }
}

/// Parse /proc/mdstat.
pub fn parse_mdstat(text: &str) -> BTreeMap<String, MdArray> {
    let mut out = BTreeMap::new();
    let mut current: Option<MdArray> = None;
    for line in text.lines() {
        if let Some((name, rest)) = line.split_once(" : ")
            && name.starts_with("md")
            && !name.contains(' ')
        {
            if let Some(a) = current.take() {
                out.insert(a.kname.clone(), a);
            }
            let mut words: Vec<&str> = rest.split_whitespace().collect();
            let active = words.first() == Some(&"active");
            if !words.is_empty() {
                words.remove(0);
            }
            let auto_read_only =
                words.first() == Some(&"(auto-read-only)") || words.first() == Some(&"(read-only)");
            if auto_read_only {
                words.remove(0);
            }
            let level = match words.first() {
                Some(w) if w.starts_with("raid") || *w == "linear" => words.remove(0).to_string(),
                _ => String::new(),
            };
            let members = words.iter().filter_map(|w| parse_member(w)).collect();
            current = Some(MdArray {
                kname: name.trim().to_string(),
                level,
                active,
                auto_read_only,
                members,
                blocks: 0,
                metadata: None,
                raid_disks: 0,
                working: 0,
                progress: None,
            });
            continue;
        }
        let Some(a) = current.as_mut() else { continue };
        let t = line.trim();
        if t.contains(" blocks") {
            let w: Vec<&str> = t.split_whitespace().collect();
            a.blocks = w.first().and_then(|b| b.parse().ok()).unwrap_or(0);
            if let Some(i) = w.iter().position(|x| *x == "super") {
                a.metadata = w.get(i + 1).map(|s| s.to_string());
            }
            if let Some(counts) = w.iter().find(|x| x.starts_with('[') && x.contains('/')) {
                let inner = counts.trim_matches(|c| c == '[' || c == ']');
                if let Some((n, m)) = inner.split_once('/') {
                    a.raid_disks = n.parse().unwrap_or(0);
                    a.working = m.parse().unwrap_or(0);
                }
            }
        } else if let Some(eq) = t.find(" = ")
            && t.contains('%')
        {
            let action = t[..eq].split_whitespace().last().unwrap_or("").to_string();
            let pct = t[eq + 3..]
                .split('%')
                .next()
                .and_then(|p| p.trim().parse().ok())
                .unwrap_or(0.0);
            a.progress = Some(Progress {
                action,
                percent: pct,
            });
        }
    }
    if let Some(a) = current.take() {
        out.insert(a.kname.clone(), a);
    }
    out
}

fn parse_member(w: &str) -> Option<Member> {
    let (name, rest) = w.split_once('[')?;
    let (slot, flags) = rest.split_once(']')?;
    Some(Member {
        kname: name.to_string(),
        slot: slot.parse().ok()?,
        failed: flags.contains("(F)"),
        spare: flags.contains("(S)"),
    })
}

/// Arrays of the host: mdstat, completed from sysfs (`sync_action` catches a resync that
/// mdstat shows only while it runs). No mdstat (no md driver) means no arrays.
pub fn discover(r: &dyn Runner) -> BTreeMap<String, MdArray> {
    let Some(text) = r.read("/proc/mdstat") else {
        return BTreeMap::new();
    };
    let mut arrays = parse_mdstat(&text);
    for a in arrays.values_mut() {
        let sys = |f: &str| {
            r.read(&format!("/sys/block/{}/md/{f}", a.kname))
                .map(|s| s.trim().to_string())
        };
        if a.metadata.is_none() {
            a.metadata = sys("metadata_version");
        }
        if a.progress.is_none()
            && let Some(action) = sys("sync_action")
            && action != "idle"
            && !action.is_empty()
        {
            a.progress = Some(Progress {
                action,
                percent: 0.0,
            });
        }
    }
    arrays
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::runner::fixtures::text as fixture;

    #[test]
    fn a_clean_mirror() {
        let a = &parse_mdstat(&fixture("full/mdstat"))["md0"];
        assert_eq!(a.level, "raid1");
        assert_eq!(a.level_number(), Some(1));
        assert!(a.active && !a.auto_read_only && !a.degraded());
        assert_eq!(a.metadata.as_deref(), Some("1.2"));
        assert_eq!(a.blocks, 2091008);
        let names: Vec<&str> = a.members.iter().map(|m| m.kname.as_str()).collect();
        assert_eq!(names, ["vdb2", "vda2"]);
        assert!(a.progress.is_none());
    }

    #[test]
    fn initial_resync_and_recovery_are_seen() {
        let a = &parse_mdstat(&fixture("full/mdstat-initial-resync"))["md0"];
        let p = a.progress.as_ref().unwrap();
        assert_eq!((p.action.as_str(), p.percent), ("resync", 5.6));
        let r = &parse_mdstat(&fixture("degraded/recovering-mdstat"))["md0"];
        assert!(r.degraded());
        assert_eq!(r.progress.as_ref().unwrap().action, "recovery");
    }

    #[test]
    fn failed_and_removed_members() {
        let f = &parse_mdstat(&fixture("degraded/failed-mdstat"))["md0"];
        assert!(f.degraded() && f.auto_read_only);
        assert!(f.members.iter().any(|m| m.kname == "vdb2" && m.failed));
        let r = &parse_mdstat(&fixture("degraded/removed-mdstat"))["md0"];
        assert_eq!(r.members.len(), 1);
        assert_eq!((r.raid_disks, r.working), (2, 1));
    }

    #[test]
    fn no_arrays() {
        assert!(parse_mdstat(&fixture("blank/mdstat")).is_empty());
        assert!(parse_mdstat("").is_empty());
        assert!(parse_mdstat("md0 : garbage\n  x blocks\n").contains_key("md0"));
    }

    #[test]
    fn discovery_reads_files_only() {
        let r = crate::runner::fixtures::runner("full");
        let arrays = discover(&r);
        assert_eq!(arrays.len(), 1);
        assert!(r.asked.lock().unwrap().is_empty(), "no process spawned");
    }
}
