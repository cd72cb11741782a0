//! `hostform drain HOST SPEC` and `hostform undrain HOST SPEC`: an apply of the spec with a
//! cluster host's drain changed. The drain is a tag on the cluster's shared VG
//! (`hostform_drained_HOST`), so every host's plan places the drained host's guests elsewhere
//! (the first host of `cluster.hosts` that is not drained) until it is undrained; the moves
//! are the guests' ordinary moves (see `plan::guests`), one migration at a time.

use super::ColorChoice;
use crate::plan::Drain;

#[derive(clap::Args, Debug)]
pub struct DrainArgs {
    /// The cluster's host to drain, or to drain no more (a name of `cluster.hosts`).
    #[arg(value_name = "HOST")]
    pub target: String,
    #[command(flatten)]
    pub apply: super::apply::Args,
}

pub fn run(args: DrainArgs, on: bool, color: ColorChoice) -> i32 {
    let mut a = args.apply;
    a.drain = Some(if on {
        Drain::On(args.target)
    } else {
        Drain::Off(args.target)
    });
    super::apply::run(a, color)
}
