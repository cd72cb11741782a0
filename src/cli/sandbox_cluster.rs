//! `hostform sandbox SPEC` for a host of a cluster (`cluster:` in the spec): every host of
//! `cluster.hosts` boots at once (`sandbox::cluster`), each from its own spec (SPEC, `--peer`,
//! or the spec next to SPEC whose `host:` it is), sharing the LUN of the shared VG and a private
//! link. By default the hosts plan and apply one after the other, in `cluster.hosts` order (the
//! first creates the shared VG), and each then plans again to nothing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{EXIT_FAIL, EXIT_OK};
use crate::sandbox::cluster::{self, LINK_NIC, Lun, Member};
use crate::sandbox::{SandboxConfig, SandboxError, from_spec};
use crate::spec::sandboxed::{self, LeftOut};
use crate::spec::units;
use crate::spec::{Loaded, Spec};

/// The address a host raises on the private link once its apply is over (host `i` waits for
/// the one of host `i - 1`). Once the next host has seen it, a host that is done powers off:
/// the next one needs none of its leases (each guest's LVs are its own host's).
fn done_address(i: usize) -> String {
    format!("10.254.0.{}", 101 + i)
}

/// The spec of each cluster host, in `cluster.hosts` order: the given one, the `--peer`s, or
/// the specs next to it.
fn member_specs(loaded: &Loaded, peers: &[PathBuf]) -> Result<Vec<(PathBuf, Loaded)>, String> {
    let Some(cl) = &loaded.spec.cluster else {
        return Err("the spec has no cluster".into());
    };
    let path = loaded.root.join(&loaded.rel);
    let mut candidates: Vec<PathBuf> = peers.to_vec();
    if let Some(dir) = path.parent()
        && let Ok(rd) = std::fs::read_dir(dir)
    {
        let mut v: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml") && *p != path)
            .collect();
        v.sort();
        candidates.extend(v);
    }
    let mut out = Vec::new();
    for host in cl.hosts.keys() {
        if host.value == loaded.spec.host.value {
            let again = crate::spec::load(&path, None)
                .map_err(|_| format!("{} no longer loads", path.display()))?;
            out.push((path.clone(), again));
            continue;
        }
        let found = candidates.iter().find_map(|c| {
            crate::spec::load(c, None)
                .ok()
                .filter(|l| l.spec.host.value == host.value)
                .map(|l| (c.clone(), l))
        });
        match found {
            Some(f) => out.push(f),
            None => {
                return Err(format!(
                    "no spec for cluster host {} next to {} (a .yaml whose `host:` is {}); name it with --peer SPEC",
                    host.value,
                    path.display(),
                    host.value
                ));
            }
        }
    }
    Ok(out)
}

/// The address host `i + 1` raises once it has seen host `i`'s [`done_address`]: host `i` stays
/// up until then (a VM that powered off at once could vanish before the next one looked).
fn seen_address(i: usize) -> String {
    format!("10.254.0.{}", 201 + i)
}

/// The names of the spec's disks that are PVs of its shared VGs: the LUN every host shares.
fn lun_disks(spec: &Spec) -> Vec<String> {
    let mut v: Vec<String> = spec
        .volume_groups
        .values()
        .filter(|vg| vg.shared)
        .flat_map(|vg| vg.pvs.iter())
        .map(|p| p.value.split('/').next().unwrap_or("").to_string())
        .collect();
    v.dedup();
    v
}

/// Writes each complete line with a `[host] ` prefix to stdout.
struct Prefixed {
    prefix: String,
    buf: Vec<u8>,
    out: Arc<Mutex<std::io::Stdout>>,
}

impl Write for Prefixed {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        while let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=i).collect();
            let out = self.out.lock().unwrap_or_else(|p| p.into_inner());
            let mut o = out.lock();
            o.write_all(self.prefix.as_bytes())?;
            o.write_all(&line)?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Prefixed {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            self.buf.push(b'\n');
            let _ = self.write(&[]);
        }
    }
}

pub(super) fn run(args: &super::sandbox::Args, loaded: &Loaded, exe: &Path) -> i32 {
    if args.rev.is_some() {
        eprintln!(
            "sandbox: a cluster sandbox reads its specs from the working tree; --rev is not supported here"
        );
        return EXIT_FAIL;
    }
    let members = match member_specs(loaded, &args.peers) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("sandbox: {e}");
            return EXIT_FAIL;
        }
    };
    let sizing = from_spec::Sizing {
        scale: args.scale,
        default_disk: args.disk_size.0,
    };
    let mut lun: Option<Lun> = None;
    let mut boot = Vec::new();
    for (i, (path, l)) in members.iter().enumerate() {
        let host_id = l
            .spec
            .cluster
            .as_ref()
            .and_then(|c| c.hosts.iter().find(|(k, _)| k.value == l.spec.host.value))
            .map(|(_, h)| h.host_id.value)
            .unwrap_or(0);
        let rel = path
            .strip_prefix(&loaded.root)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| path.to_string_lossy().into_owned());
        let command = if args.command.is_empty() {
            // One host after the other: host i waits for host i-1's address, applies, then
            // raises its own.
            let mut c = vec![
                "sh".to_string(),
                "-c".into(),
                r#"wait_for=$1 seen=$2 done=$3 ack=$4 nic=$5; shift 5
if [ -n "$wait_for" ]; then
  echo "== waiting for the previous host's apply ($wait_for)"
  until ping -q -c1 -w 900 "$wait_for" >/dev/null 2>&1; do sleep 1; done
  ip addr add "$seen/24" dev "$nic"
fi
rc=0; "$@" || rc=$?
ip addr add "$done/24" dev "$nic"
if [ -n "$ack" ]; then
  until ping -q -c1 -w 900 "$ack" >/dev/null 2>&1; do sleep 1; done
fi
exit $rc"#
                    .into(),
                "cluster-step".into(),
                if i == 0 {
                    String::new()
                } else {
                    done_address(i - 1)
                },
                if i == 0 {
                    String::new()
                } else {
                    seen_address(i - 1)
                },
                done_address(i),
                if i + 1 < members.len() {
                    seen_address(i)
                } else {
                    String::new()
                },
                LINK_NIC.into(),
            ];
            c.extend(super::sandbox::default_command(exe, &rel, None));
            c
        } else {
            args.command.clone()
        };
        let mut cfg = SandboxConfig::new(loaded.root.clone(), command);
        cfg.exe = Some(exe.to_path_buf());
        from_spec::apply(&mut cfg, &l.spec, path, sizing);
        // The shared LUN is one image for all; the hosts' own disks stay theirs.
        let shared = lun_disks(&l.spec);
        let names: Vec<String> = l.spec.disks.keys().map(|k| k.value.clone()).collect();
        let mut own = Vec::new();
        for (name, d) in names.iter().zip(cfg.disks.drain(..)) {
            if shared.contains(name) {
                if lun.is_none() {
                    lun = Some(Lun {
                        serial: d.serial.clone(),
                        size_bytes: d.size_bytes,
                        by_id_aliases: d.by_id_aliases.clone(),
                    });
                }
            } else {
                own.push(d);
            }
        }
        cfg.disks = own;
        // The cluster sandbox runs lvmlockd and sanlock: shared VGs are no longer left out.
        let others: Vec<LeftOut> = from_spec::left_out(&l.spec, false)
            .into_iter()
            .filter(|x| *x != LeftOut::SharedVg)
            .collect();
        cfg.env.retain(|(k, _)| k != sandboxed::LEAVE_OUT_ENV);
        if !others.is_empty() {
            let words: Vec<&str> = others.iter().map(|x| x.word()).collect();
            cfg.env
                .push((sandboxed::LEAVE_OUT_ENV.to_string(), words.join(",")));
        }
        cfg.provide = from_spec::provide(&sandboxed::leave_out(&l.spec, &others));
        cfg.memory_mib = args
            .memory
            .map(|m| (m.0 / units::MIB).clamp(256, 64 * 1024) as u32)
            .unwrap_or(1024);
        cfg.cpus = args.cpus.clamp(1, 8);
        cfg.timeout = Duration::from_secs(args.timeout.secs().max(30));
        eprintln!(
            "sandbox: booting {} as {} (sanlock host_id {host_id}; {} own disk{}; NICs: {})",
            l.label,
            l.spec.host.value,
            cfg.disks.len(),
            if cfg.disks.len() == 1 { "" } else { "s" },
            if cfg.nics.is_empty() {
                "none".to_string()
            } else {
                cfg.nics.join(", ")
            }
        );
        for part in others {
            eprintln!(
                "sandbox: {}: left out: {}",
                l.spec.host.value,
                part.describe()
            );
        }
        boot.push(Member {
            cfg,
            host_id: u16::try_from(host_id).unwrap_or(0),
        });
    }
    let Some(lun) = lun else {
        eprintln!("sandbox: the cluster has no shared VG, so no LUN to share");
        return EXIT_FAIL;
    };
    eprintln!(
        "sandbox: shared LUN {} {} attached to every host",
        lun.by_id_aliases.first().unwrap_or(&lun.serial),
        units::human(lun.size_bytes)
    );
    let stdout = Arc::new(Mutex::new(std::io::stdout()));
    let outputs: Vec<Box<dyn Write + Send>> = boot
        .iter()
        .map(|m| {
            Box::new(Prefixed {
                prefix: format!("[{}] ", m.cfg.hostname),
                buf: Vec::new(),
                out: stdout.clone(),
            }) as Box<dyn Write + Send>
        })
        .collect();
    let results = match cluster::run(&boot, &lun, args.keep.as_deref(), outputs) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sandbox: {e}");
            return EXIT_FAIL;
        }
    };
    let mut code = EXIT_OK;
    for (m, r) in boot.iter().zip(results) {
        match r {
            Ok(o) => {
                eprintln!(
                    "sandbox: {}: command exited with status {} (ready in {:.1}s, total {:.1}s)",
                    m.cfg.hostname,
                    o.exit_code,
                    o.boot_ready.as_secs_f64(),
                    o.total.as_secs_f64()
                );
                if o.exit_code != 0 && code == EXIT_OK {
                    code = o.exit_code;
                }
            }
            Err(SandboxError::Interrupted { signal }) => {
                eprintln!("sandbox: interrupted; qemu stopped and temporary files removed");
                return 128 + signal;
            }
            Err(e) => {
                eprintln!("sandbox: {}: {e}", m.cfg.hostname);
                code = EXIT_FAIL;
            }
        }
    }
    code
}
