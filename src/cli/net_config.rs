//! `hostform net-config`: only generate the network configuration files of a spec (ifupdown or
//! systemd-networkd), for operators who deploy files with another tool. Reads nothing from the
//! host and changes nothing on it.

use std::path::PathBuf;

use super::{ColorChoice, EXIT_FAIL, EXIT_OK};
use crate::kinds::netconf;
use crate::spec::types::NetManager;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Manager {
    Ifupdown,
    Networkd,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub source: super::SpecSource,
    /// Write the files under DIR (as DIR/etc/...) instead of printing them.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// The format; the spec's `network.manager` by default (required when that is `auto`).
    #[arg(long, value_enum)]
    pub manager: Option<Manager>,
}

pub fn run(args: Args, color: ColorChoice) -> i32 {
    let spec_path = args.source.path();
    let loaded = match super::load_spec(
        &spec_path,
        args.source.rev.as_deref(),
        color,
        "no file was written",
    ) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let manager = match (args.manager, loaded.spec.network.manager) {
        (Some(Manager::Ifupdown), _) => NetManager::Ifupdown,
        (Some(Manager::Networkd), _) => NetManager::Networkd,
        (None, NetManager::Auto) => {
            eprintln!(
                "net-config: the spec's network.manager is `auto`, which needs a host to detect it; pass --manager ifupdown or --manager networkd"
            );
            return EXIT_FAIL;
        }
        (None, m) => m,
    };
    let files = netconf::render(&loaded.spec.host.value, &loaded.spec.bridges, manager);
    if files.is_empty() {
        eprintln!("net-config: the spec has no bridges: nothing to write");
        return EXIT_OK;
    }
    match &args.out {
        None => {
            for (path, content) in &files {
                println!("==> {path} <==");
                print!("{content}");
                println!();
            }
        }
        Some(dir) => {
            for (path, content) in &files {
                let target = dir.join(path.trim_start_matches('/'));
                if let Err(e) = crate::runner::write_atomically(&target, content.as_bytes(), 0o644)
                {
                    eprintln!("net-config: {}: {e}", target.display());
                    return EXIT_FAIL;
                }
                println!("wrote {}", target.display());
            }
        }
    }
    EXIT_OK
}
