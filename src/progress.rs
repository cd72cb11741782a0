//! Progress of an apply, as it runs. Each finished, failed or skipped operation is one plain
//! line (`[3/11] ok (0.4s) create vg0/dom0_root (256MiB)`), the same on a terminal or not, so
//! logs and tests see stable output. On a terminal, a status line below them is redrawn four
//! times a second: how many are done and which operations are running, for how long. Off a
//! terminal, an operation still running after 30 s gets a line saying so, every 30 s.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::apply::Event;
use crate::runner::show_argv;

/// Off a terminal: how often a long operation is reported as still running.
const STILL_RUNNING_EVERY: Duration = Duration::from_secs(30);
const REDRAW_EVERY: Duration = Duration::from_millis(250);

#[derive(Default)]
struct State {
    /// op id → (summary, started, times reported as still running).
    running: BTreeMap<String, (String, Instant, u32)>,
    finished: usize,
    total: usize,
    /// A status line is on screen (terminal only) and must be erased before printing.
    shown: bool,
}

/// Where progress goes: stdout, or a buffer in tests.
type Out = Arc<Mutex<Box<dyn Write + Send>>>;

pub struct Progress {
    tty: bool,
    width: usize,
    out: Out,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    ticker: Option<std::thread::JoinHandle<()>>,
}

/// One status line, cut to `width` characters so that it never wraps (a wrapped line could
/// not be erased with `\r`).
fn status_line(st: &State, now: Instant, width: usize) -> String {
    let mut s = format!("[{}/{} done]", st.finished, st.total);
    if !st.running.is_empty() {
        s.push_str(" running: ");
        let parts: Vec<String> = st
            .running
            .values()
            .map(|(summary, t, _)| {
                format!(
                    "{summary} ({:.0}s)",
                    now.saturating_duration_since(*t).as_secs_f64()
                )
            })
            .collect();
        s.push_str(&parts.join(", "));
    }
    if s.chars().count() > width {
        s = s.chars().take(width.saturating_sub(1)).collect();
        s.push('…');
    }
    s
}

impl Progress {
    /// `tty`: stdout is a terminal (a refreshed status line) or not (plain lines only).
    pub fn new(tty: bool) -> Progress {
        let width = std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.parse::<usize>().ok())
            .filter(|w| *w >= 20)
            .unwrap_or(80)
            - 1;
        Progress::to(tty, width, Box::new(std::io::stdout()))
    }

    /// Progress written to `out`, as to a terminal `width` columns wide when `tty`.
    pub fn to(tty: bool, width: usize, out: Box<dyn Write + Send>) -> Progress {
        let out: Out = Arc::new(Mutex::new(out));
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let state = Arc::clone(&state);
            let stop = Arc::clone(&stop);
            let out = Arc::clone(&out);
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(REDRAW_EVERY);
                    let Ok(mut st) = state.lock() else { return };
                    let now = Instant::now();
                    let Ok(mut out) = out.lock() else { return };
                    if tty {
                        if !st.running.is_empty() {
                            let _ = write!(out, "\r\x1b[2K{}", status_line(&st, now, width));
                            st.shown = true;
                        }
                    } else {
                        for (summary, t, told) in st.running.values_mut() {
                            let took = now.saturating_duration_since(*t);
                            if took >= STILL_RUNNING_EVERY * (*told + 1) {
                                *told += 1;
                                let _ = writeln!(
                                    out,
                                    "[..] still running ({}s) {summary}",
                                    took.as_secs()
                                );
                            }
                        }
                    }
                    let _ = out.flush();
                }
            })
        };
        Progress {
            tty,
            width,
            out,
            state,
            stop,
            ticker: Some(ticker),
        }
    }

    /// A new round of operations starts (apply's follow-up rounds count from zero again).
    pub fn begin(&self, total: usize) {
        if let Ok(mut st) = self.state.lock() {
            st.finished = 0;
            st.total = total;
            st.running.clear();
        }
    }

    /// Print one line above the status line.
    fn line(&self, st: &mut State, text: &str) {
        let Ok(mut out) = self.out.lock() else {
            return;
        };
        if self.tty && st.shown {
            let _ = write!(out, "\r\x1b[2K");
            st.shown = false;
        }
        let _ = writeln!(out, "{text}");
        if self.tty && !st.running.is_empty() {
            let _ = write!(out, "{}", status_line(st, Instant::now(), self.width));
            st.shown = true;
        }
        let _ = out.flush();
    }

    /// Report one event of the executor.
    pub fn event(&self, e: Event) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        match e {
            Event::Start { total, op, .. } => {
                st.total = total;
                st.running
                    .insert(op.id.to_string(), (op.summary.clone(), Instant::now(), 0));
            }
            Event::Done { n, total, op, took } => {
                st.total = total;
                st.running.remove(op.id.as_str());
                st.finished += 1;
                self.line(
                    &mut st,
                    &format!(
                        "[{n}/{total}] ok ({:.1}s) {}",
                        took.as_secs_f64(),
                        op.summary
                    ),
                );
            }
            Event::Failed { op, error } => {
                st.running.remove(op.id.as_str());
                st.finished += 1;
                self.line(&mut st, &format!("[FAILED] {}", op.summary));
                eprintln!(
                    "apply: {} failed\n  command: {}\n  {}",
                    op.summary,
                    show_argv(&op.argv().iter().map(String::as_str).collect::<Vec<_>>()),
                    error.brief()
                );
            }
            Event::Skipped { op, because } => {
                st.finished += 1;
                self.line(
                    &mut st,
                    &format!("[skipped] {} (depends on failed {because})", op.summary),
                );
            }
            Event::Note(n) => self.line(&mut st, &n),
        }
    }

    /// Erase the status line and stop redrawing it.
    pub fn finish(mut self) {
        self.stop_ticker();
    }

    fn stop_ticker(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
        if let Ok(mut st) = self.state.lock()
            && st.shown
            && let Ok(mut out) = self.out.lock()
        {
            let _ = write!(out, "\r\x1b[2K");
            let _ = out.flush();
            st.shown = false;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop_ticker();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer the test can read back.
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn op(name: &str, summary: &str) -> crate::plan::Op {
        use crate::plan::{Address, OpId, Verb};
        crate::plan::Op::run(
            OpId::new(1, Address::Link(name.into()), Verb::Up),
            "r",
            summary,
            vec!["true".into()],
        )
    }

    /// The run of a three-operation plan where the second fails and the third is skipped.
    fn run(p: &Progress) {
        let (a, b, c) = (
            op("50:a", "create vg0/a (1GiB)"),
            op("50:b", "create vg0/b (1GiB)"),
            op("57:b", "create ext4 on vg0/b"),
        );
        let error = crate::runner::RunError::Failed {
            argv: "true".into(),
            status: 5,
            stderr: "boom".into(),
        };
        p.begin(3);
        p.event(Event::Start {
            n: 1,
            total: 3,
            op: &a,
        });
        p.event(Event::Start {
            n: 2,
            total: 3,
            op: &b,
        });
        p.event(Event::Done {
            n: 1,
            total: 3,
            op: &a,
            took: Duration::from_millis(400),
        });
        p.event(Event::Failed {
            op: &b,
            error: &error,
        });
        p.event(Event::Skipped {
            op: &c,
            because: "50:b",
        });
        p.event(Event::Note("/ remounted read-only".into()));
    }

    #[test]
    fn off_a_terminal_the_lines_are_plain_and_stable() {
        let buf = Buf::default();
        let p = Progress::to(false, 79, Box::new(buf.clone()));
        run(&p);
        p.finish();
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        insta::assert_snapshot!("progress_not_a_tty", out);
    }

    #[test]
    fn on_a_terminal_a_status_line_shows_what_runs_and_is_erased_before_each_line() {
        let buf = Buf::default();
        let p = Progress::to(true, 79, Box::new(buf.clone()));
        run(&p);
        p.finish();
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        // After `a` is done, `b` still runs: the status line says so, under the line.
        assert!(
            out.contains(
                "[1/3] ok (0.4s) create vg0/a (1GiB)\n[1/3 done] running: create vg0/b (1GiB) (0s)"
            ),
            "{out:?}"
        );
        // It is erased before the next line, and at the end.
        assert!(
            out.contains("(0s)\r\x1b[2K[FAILED] create vg0/b (1GiB)\n"),
            "{out:?}"
        );
        assert!(!out.contains("running: create ext4"), "{out:?}");
        let plain: String = out.replace("\r\x1b[2K", "");
        assert!(plain.ends_with("/ remounted read-only\n"), "{out:?}");
    }

    #[test]
    fn the_status_line_names_what_runs_and_never_wraps() {
        let t = Instant::now();
        let mut st = State {
            finished: 3,
            total: 11,
            ..State::default()
        };
        st.running
            .insert("50:a".into(), ("create vg0/a (1GiB)".into(), t, 0));
        st.running
            .insert("57:a".into(), ("create ext4 on vg0/b".into(), t, 0));
        let line = status_line(&st, t + Duration::from_millis(4200), 200);
        assert_eq!(
            line,
            "[3/11 done] running: create vg0/a (1GiB) (4s), create ext4 on vg0/b (4s)"
        );
        let short = status_line(&st, t, 30);
        assert_eq!(short.chars().count(), 30);
        assert!(short.ends_with('…'), "{short}");
    }
}
