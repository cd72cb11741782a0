//! `HOSTFORM_TIMINGS=1`: where a command's time went, as one line on stderr, e.g.
//! `timings: spec 2.1 ms, host 912.4 ms, plan 0.6 ms, output 0.3 ms; total 915.7 ms, of which
//! 880.2 ms waiting for 9 processes` (the wall time during which at least one ran). For an operator asking why a plan or an hourly drift check
//! is slow, and for the benchmarks, which compare hostform's own cost with its tools'.

use std::time::{Duration, Instant};

pub(crate) struct Timings {
    on: bool,
    start: Instant,
    last: Instant,
    stages: Vec<(&'static str, Duration)>,
}

impl Timings {
    pub(crate) fn start() -> Timings {
        let now = Instant::now();
        Timings {
            on: std::env::var_os("HOSTFORM_TIMINGS").is_some_and(|v| !v.is_empty() && v != "0"),
            start: now,
            last: now,
            stages: Vec::new(),
        }
    }

    /// The stage that ends now, named.
    pub(crate) fn mark(&mut self, stage: &'static str) {
        let now = Instant::now();
        self.stages.push((stage, now - self.last));
        self.last = now;
    }

    pub(crate) fn report(&self) {
        if !self.on {
            return;
        }
        let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
        let stages: Vec<String> = self
            .stages
            .iter()
            .map(|(n, d)| format!("{n} {}", ms(*d)))
            .collect();
        let (count, waited) = crate::runner::spawn_totals();
        eprintln!(
            "timings: {}; total {}, of which {} waiting for {count} processes",
            stages.join(", "),
            ms(self.start.elapsed()),
            ms(waited)
        );
    }
}
