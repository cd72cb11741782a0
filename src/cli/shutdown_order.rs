//! `hostform shutdown-order`: print the order in which the guests stop (batches computed from
//! depends-on), or the files that make the host use it (xendomains list, systemd unit).

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{ColorChoice, EXIT_FAIL, EXIT_OK, EXIT_USAGE};
use crate::kinds::xen::Xl;
use crate::runner::RealRunner;
use crate::shutdown;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OrderFormat {
    /// The batches, for people.
    #[default]
    Text,
    /// The batches and timeouts as JSON.
    Json,
    /// `id name` lines of the running Xen domains in stop order, for a replacement
    /// `xen-list-domains` script of /etc/init.d/xendomains (runs `xl list -l`).
    Xendomains,
    /// A systemd unit that runs `hostform shutdown` at host shutdown.
    Systemd,
    /// The batches and the dependencies in Graphviz's DOT language, for `dot -Tsvg`.
    Dot,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The spec; `hostform.yaml` by default.
    #[arg(value_name = "SPEC")]
    pub spec: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: OrderFormat,
    /// With `--format systemd`: the absolute path of the hostform the unit runs (by default this
    /// executable when installed, /usr/bin/hostform when it runs from a build tree).
    #[arg(long, value_name = "PATH")]
    pub exe: Option<String>,
}

pub fn run(args: Args, color: ColorChoice) -> i32 {
    let path = args
        .spec
        .clone()
        .unwrap_or_else(|| PathBuf::from("hostform.yaml"));
    let loaded = match super::load_spec(&path, None, color, "no order computed") {
        Ok(l) => l,
        Err(code) => return code,
    };
    let spec = &loaded.spec;
    let order = match shutdown::order(spec) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{}: {e}", loaded.label);
            return EXIT_FAIL;
        }
    };
    match args.format {
        OrderFormat::Text => print!("{}", shutdown::render_text(spec, &order)),
        OrderFormat::Json => print!("{}", shutdown::render_json(spec, &order)),
        OrderFormat::Dot => print!("{}", shutdown::render_dot(spec, &order)),
        OrderFormat::Xendomains => {
            let runner = RealRunner::new();
            let xl = Xl::new(&runner, None);
            match xl.list() {
                Ok(doms) => {
                    let running: BTreeMap<String, u32> =
                        doms.into_iter().map(|d| (d.name, d.domid)).collect();
                    print!("{}", shutdown::render_xendomains(spec, &order, &running));
                }
                Err(e) => {
                    eprintln!("cannot list the running Xen domains: {e}");
                    return EXIT_FAIL;
                }
            }
        }
        OrderFormat::Systemd => {
            let exe = args.exe.clone().unwrap_or_else(|| {
                shutdown::installed_exe(std::env::current_exe().ok().as_deref())
            });
            if !exe.starts_with('/') {
                eprintln!("--exe {exe:?}: give hostform's absolute path");
                return EXIT_USAGE;
            }
            let spec_path = match std::fs::canonicalize(&path) {
                Ok(p) => p.display().to_string(),
                Err(e) => {
                    eprintln!("{}: {e}", path.display());
                    return EXIT_FAIL;
                }
            };
            match shutdown::render_systemd(spec, &order, &exe, &spec_path) {
                Ok(unit) => print!("{unit}"),
                Err(e) => {
                    eprintln!("cannot write a systemd unit: {e}");
                    return EXIT_FAIL;
                }
            }
        }
    }
    EXIT_OK
}
