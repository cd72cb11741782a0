//! Where hostform's log events go: the systemd journal when it is there (each event with its
//! fields, `SYSLOG_IDENTIFIER=hostform`), and stderr with `-v` (`-vv`: every command run).
//! Without `-v` nothing is written to stderr, so a command's output is the same with or
//! without a journal. Events are emitted where things happen (the executor, drift); only
//! this module decides where they go.

use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;

/// journald's native socket: no socket, no journal (a container, a chroot, a test machine).
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// The identifier of every entry (`journalctl -t hostform`).
pub const SYSLOG_IDENTIFIER: &str = "hostform";

/// Whether to send events to the journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Journal {
    /// When its socket exists and takes an entry.
    Auto,
    /// Asked for (`drift --log journald`): say why when it cannot be reached.
    Required,
    Off,
}

/// What [`init`] set up, for the commands that fall back to stderr without a journal.
#[derive(Debug, Default)]
pub struct Logging {
    /// Events reach the journal.
    pub journal: bool,
    /// The journal was required and cannot be reached: why.
    pub journal_error: Option<String>,
    /// `-v` given: events are shown on stderr.
    pub verbose: u8,
}

/// The journal's layer: fields under their own names (no `F_` prefix), priorities as syslog
/// names them (info is 6, not tracing-journald's default 5).
fn journald() -> std::io::Result<tracing_journald::Layer> {
    use tracing_journald::{Priority, PriorityMappings};
    if !Path::new(JOURNAL_SOCKET).exists() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no {JOURNAL_SOCKET}"),
        ));
    }
    // Sends an empty datagram, which journald discards: a socket nobody reads fails here.
    let layer = tracing_journald::layer()?;
    Ok(layer
        .with_field_prefix(None)
        .with_syslog_identifier(SYSLOG_IDENTIFIER.into())
        .with_priority_mappings(PriorityMappings {
            info: Priority::Informational,
            debug: Priority::Debug,
            ..PriorityMappings::new()
        }))
}

/// `-v` as [`init`] was given it.
static VERBOSE: AtomicU8 = AtomicU8::new(0);

/// How many `-v`: 0 when nothing is shown on stderr.
pub fn verbose() -> u8 {
    VERBOSE.load(Ordering::Relaxed)
}

/// The level `-v` shows on stderr: nothing, the operations and summaries (`-v`), every
/// command run (`-vv`).
pub fn stderr_level(verbose: u8) -> LevelFilter {
    match verbose {
        0 => LevelFilter::OFF,
        1 => LevelFilter::INFO,
        _ => LevelFilter::DEBUG,
    }
}

/// Install the process's subscriber, once, from `main`. Never fails: a journal that cannot be
/// reached is left out (and said by the command that required it).
pub fn init(verbose: u8, journal: Journal) -> Logging {
    VERBOSE.store(verbose, Ordering::Relaxed);
    let mut logging = Logging {
        verbose,
        ..Logging::default()
    };
    let journald = match journal {
        Journal::Off => None,
        Journal::Auto | Journal::Required => match journald() {
            Ok(l) => Some(l),
            Err(e) => {
                if journal == Journal::Required {
                    logging.journal_error = Some(format!("the systemd journal: {e}"));
                }
                None
            }
        },
    };
    logging.journal = journald.is_some();
    let stderr = (verbose > 0).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .without_time()
            .with_target(false)
            .with_filter(stderr_level(verbose))
    });
    if journald.is_none() && stderr.is_none() {
        // No subscriber: every event is disabled at its call site, at no cost.
        return logging;
    }
    let subscriber = tracing_subscriber::registry()
        .with(journald.map(|l| l.with_filter(LevelFilter::INFO)))
        .with(stderr);
    if tracing::subscriber::set_global_default(subscriber).is_err() {
        logging.journal = false;
    }
    logging
}
