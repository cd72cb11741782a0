//! A sandbox of several hosts: one VM per host, each with its own disks, plus one raw image
//! attached to every VM (`share-rw=on`, no image locking, the same serial everywhere: the
//! cluster's shared LUN) and a private link between them (qemu `-netdev dgram` over unix
//! sockets). Before its command, each VM runs `scripts/sandbox/cluster-up.sh`: the link's
//! address, the peers in `/etc/hosts`, `use_lvmlockd = 1` and its own sanlock `host_id`, then
//! sanlock and lvmlockd started as Debian's packages start them.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Link, SandboxConfig, SandboxError, SandboxOutcome, SharedDisk};

/// Sets up the cluster's pieces in each VM, then `exec`s the command.
pub const CLUSTER_UP: &str = include_str!("../../scripts/sandbox/cluster-up.sh");

/// Name of the private link's NIC in each VM.
pub const LINK_NIC: &str = "hfpeer0";

/// One host of the cluster sandbox.
#[derive(Debug, Clone)]
pub struct Member {
    /// The VM as a lone sandbox would boot it (disks, NICs, command, hostname).
    pub cfg: SandboxConfig,
    /// sanlock's host_id for this host (1-2000, distinct).
    pub host_id: u16,
}

/// The shared LUN.
#[derive(Debug, Clone)]
pub struct Lun {
    pub serial: String,
    pub size_bytes: u64,
    /// Extra by-id names (the spec's `wwn-…`).
    pub by_id_aliases: Vec<String>,
}

/// The address of member `i` on the private link (10.254.0.(i+1)/24).
pub fn link_address(i: usize) -> String {
    format!("10.254.0.{}", i + 1)
}

/// The MAC of member `i` on the private link.
fn link_mac(i: usize) -> String {
    format!("52:54:00:48:50:{:02x}", (i + 1) & 0xff)
}

/// Checks what a cluster sandbox needs: 2 hosts (a dgram link joins two), distinct
/// hostnames and host_ids within sanlock's 1-2000.
fn validate(members: &[Member]) -> Result<(), SandboxError> {
    let bad = |m: String| Err(SandboxError::Config(m));
    if members.len() != 2 {
        return bad(format!(
            "a cluster sandbox has 2 hosts (its private link joins two VMs); {} given",
            members.len()
        ));
    }
    for (i, m) in members.iter().enumerate() {
        if !(1..=2000).contains(&m.host_id) {
            return bad(format!(
                "host {}: host_id {} is outside sanlock's 1-2000",
                m.cfg.hostname, m.host_id
            ));
        }
        for o in &members[..i] {
            if o.host_id == m.host_id {
                return bad(format!(
                    "hosts {} and {} both have host_id {}",
                    o.cfg.hostname, m.cfg.hostname, m.host_id
                ));
            }
            if o.cfg.hostname == m.cfg.hostname {
                return bad(format!("host {} is given twice", m.cfg.hostname));
            }
        }
    }
    Ok(())
}

/// The members' configurations as booted: the LUN, the link and the setup script added.
fn shape(
    members: &[Member],
    lun: &SharedDisk,
    dir: &Path,
) -> Result<Vec<SandboxConfig>, SandboxError> {
    let sock = |i: usize| dir.join(format!("link{i}.sock"));
    let peers: Vec<String> = members
        .iter()
        .enumerate()
        .map(|(i, m)| format!("{}={}", m.cfg.hostname, link_address(i)))
        .collect();
    let mut out = Vec::new();
    for (i, m) in members.iter().enumerate() {
        let mut cfg = m.cfg.clone();
        cfg.shared_disks.push(lun.clone());
        let (local, remote) = (sock(i), sock(1 - i));
        let path = |p: &Path| {
            p.to_str()
                .map(|s| s.replace(',', ",,"))
                .ok_or_else(|| SandboxError::Config(format!("{} is not UTF-8", p.display())))
        };
        cfg.links.push(Link {
            name: LINK_NIC.into(),
            mac: link_mac(i),
            netdev: format!(
                "dgram,local.type=unix,local.path={},remote.type=unix,remote.path={}",
                path(&local)?,
                path(&remote)?
            ),
        });
        let mut command = vec![
            "sh".to_string(),
            "-c".into(),
            CLUSTER_UP.into(),
            "cluster-up".into(),
            m.host_id.to_string(),
            LINK_NIC.into(),
            format!("{}/24", link_address(i)),
        ];
        command.extend(peers.iter().cloned());
        command.push("--".into());
        command.extend(cfg.command.iter().cloned());
        cfg.command = command;
        out.push(cfg);
    }
    Ok(out)
}

/// A temporary directory for the LUN and the link's sockets, removed when dropped.
struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Boots every member at once, each running its command, and returns each one's outcome in
/// order once all have powered off. `outputs[i]` receives member i's output. The LUN is a
/// blank sparse image (or `keep/<serial>.img`, adopted as it is when it exists).
pub fn run(
    members: &[Member],
    lun: &Lun,
    keep: Option<&Path>,
    outputs: Vec<Box<dyn Write + Send>>,
) -> Result<Vec<Result<SandboxOutcome, SandboxError>>, SandboxError> {
    validate(members)?;
    if outputs.len() != members.len() {
        return Err(SandboxError::Config("one output per host".into()));
    }
    let base = std::env::temp_dir().join(format!(
        "hostform-cluster-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    ));
    fs::create_dir(&base).map_err(|e| SandboxError::io("creating", &base, e))?;
    let dir = Dir(base);
    let serial = super::sanitize_serial(&lun.serial);
    let image = match keep {
        Some(k) => {
            fs::create_dir_all(k).map_err(|e| SandboxError::io("creating", k, e))?;
            k.join(format!("{serial}.img"))
        }
        None => dir.0.join(format!("{serial}.img")),
    };
    if !image.exists() {
        let f = fs::File::create(&image).map_err(|e| SandboxError::io("creating", &image, e))?;
        f.set_len(lun.size_bytes)
            .map_err(|e| SandboxError::io("sizing", &image, e))?;
    }
    let shared = SharedDisk {
        image,
        serial,
        by_id_aliases: lun.by_id_aliases.clone(),
    };
    let cfgs = shape(members, &shared, &dir.0)?;
    let results = std::thread::scope(|s| {
        let handles: Vec<_> = cfgs
            .iter()
            .zip(outputs)
            .map(|(cfg, mut out)| s.spawn(move || super::run(cfg, &mut out)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(SandboxError::Config(
                        "a host's sandbox thread panicked".into(),
                    ))
                })
            })
            .collect::<Vec<_>>()
    });
    drop(dir);
    Ok(results)
}

/// How long to give a cluster run: the longest member's timeout.
pub fn timeout(members: &[Member]) -> Duration {
    members
        .iter()
        .map(|m| m.cfg.timeout)
        .max()
        .unwrap_or(Duration::from_secs(300))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, id: u16) -> Member {
        let mut cfg = SandboxConfig::new("/", vec!["true".into()]);
        cfg.hostname = name.into();
        Member { cfg, host_id: id }
    }

    #[test]
    fn host_ids_and_names_must_differ() {
        assert!(validate(&[member("a", 1), member("b", 2)]).is_ok());
        let e = validate(&[member("a", 1), member("b", 1)]).unwrap_err();
        assert!(e.to_string().contains("both have host_id 1"), "{e}");
        assert!(validate(&[member("a", 1), member("a", 2)]).is_err());
        assert!(validate(&[member("a", 0), member("b", 2)]).is_err());
        assert!(validate(&[member("a", 1)]).is_err());
    }

    #[test]
    fn each_member_gets_the_lun_the_link_and_the_setup() {
        let lun = SharedDisk {
            image: "/x/lun.img".into(),
            serial: "LUN0".into(),
            by_id_aliases: vec![],
        };
        let c = shape(&[member("a", 1), member("b", 2)], &lun, Path::new("/d")).unwrap();
        assert_eq!(c[0].shared_disks, vec![lun.clone()]);
        assert_eq!(c[1].shared_disks, vec![lun]);
        assert!(c[0].links[0].netdev.contains("local.path=/d/link0.sock"));
        assert!(c[0].links[0].netdev.contains("remote.path=/d/link1.sock"));
        assert!(c[1].links[0].netdev.contains("local.path=/d/link1.sock"));
        assert_ne!(c[0].links[0].mac, c[1].links[0].mac);
        let cmd = &c[1].command;
        assert_eq!(&cmd[4..7], &["2", LINK_NIC, "10.254.0.2/24"]);
        assert!(cmd.contains(&"a=10.254.0.1".to_string()));
        assert_eq!(cmd.last().map(String::as_str), Some("true"));
    }
}
