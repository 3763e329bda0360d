//! The main log (`pyzord`, through the `log` facade) and the usage log
//! (`pyzord-usage`), in the reference's format
//! `YYYY-MM-DD HH:MM:SS,mmm (PID) LEVEL message` (local time), written by
//! one writer thread. Callers never block: lines go through a bounded
//! channel and are counted as dropped when it is full.
//!
//! Destinations (scripts/pyzord `setup_logging`, adapted for systemd):
//! * `LogFile` / `UsageLogFile`: INFO and above (DEBUG with `-d`), appended;
//! * stderr: the main log at INFO and above when running in the foreground
//!   (the reference shows only CRITICAL there; services under systemd want
//!   the log on stderr), nothing but CRITICAL when detached; with `-d`
//!   both logs at DEBUG, as the reference.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::SystemTime;

use log::{Level, LevelFilter, Log, Metadata, Record};

const QUEUE: usize = 16384;

enum Msg {
    Line {
        usage: bool,
        level: Level,
        when: SystemTime,
        text: String,
    },
    Flush(SyncSender<()>),
}

/// Settings of both logs.
#[derive(Clone, Debug)]
pub struct LogSettings {
    pub main_file: Option<PathBuf>,
    pub usage_file: Option<PathBuf>,
    pub debug: bool,
    /// Main log at INFO on stderr (foreground).
    pub stderr_info: bool,
}

/// Handle to the writer thread; cheap to clone.
#[derive(Clone)]
pub struct Logs {
    tx: SyncSender<Msg>,
    usage_level: LevelFilter,
    dropped_main: Arc<AtomicU64>,
    dropped_usage: Arc<AtomicU64>,
}

impl std::fmt::Debug for Logs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logs").finish_non_exhaustive()
    }
}

struct Sink {
    file: Option<File>,
    file_level: LevelFilter,
    stderr_level: LevelFilter,
}

fn open_append(p: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(p)
}

/// Python's `levelname`.
fn level_name(l: Level) -> &'static str {
    match l {
        Level::Error => "ERROR",
        Level::Warn => "WARNING",
        Level::Info => "INFO",
        Level::Debug | Level::Trace => "DEBUG",
    }
}

/// One formatted line, `%(asctime)s (%(process)d) %(levelname)s %(message)s`.
pub(crate) fn format_line(when: SystemTime, pid: u32, level: &str, text: &str) -> String {
    pyzor_config::localtime::log_line(when, pid, level, &text)
}

impl Logs {
    /// Open the files and start the writer thread. The usage log's own
    /// counters are returned through [`Logs::dropped`].
    pub fn start(s: &LogSettings) -> std::io::Result<Self> {
        let file_level = if s.debug {
            LevelFilter::Debug
        } else {
            LevelFilter::Info
        };
        let main = Sink {
            file: s.main_file.as_deref().map(open_append).transpose()?,
            file_level,
            stderr_level: if s.debug {
                LevelFilter::Debug
            } else if s.stderr_info {
                LevelFilter::Info
            } else {
                LevelFilter::Error
            },
        };
        let usage = Sink {
            file: s.usage_file.as_deref().map(open_append).transpose()?,
            file_level,
            stderr_level: if s.debug {
                LevelFilter::Debug
            } else {
                LevelFilter::Off
            },
        };
        let usage_level = if usage.file.is_some() || s.debug {
            file_level
        } else {
            LevelFilter::Off
        };
        let (tx, rx) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || writer(rx, main, usage))?;
        Ok(Logs {
            tx,
            usage_level,
            dropped_main: Arc::new(AtomicU64::new(0)),
            dropped_usage: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Install as the `log` facade's logger (the main log).
    pub fn install(&self, debug: bool) {
        let level = if debug {
            LevelFilter::Debug
        } else {
            LevelFilter::Info
        };
        let logger = MainLogger {
            logs: self.clone(),
            level,
        };
        if log::set_boxed_logger(Box::new(logger)).is_ok() {
            log::set_max_level(level);
        }
    }

    /// Whether the usage log takes lines of `level` (check before
    /// formatting a line: no work when it is off).
    #[inline]
    pub(crate) fn usage_enabled(&self, level: Level) -> bool {
        level <= self.usage_level
    }

    /// Queue a usage-log line.
    pub fn usage(&self, level: Level, text: String) {
        self.send(true, level, text);
    }

    fn send(&self, usage: bool, level: Level, text: String) {
        let m = Msg::Line {
            usage,
            level,
            when: SystemTime::now(),
            text,
        };
        if let Err(TrySendError::Full(_)) = self.tx.try_send(m) {
            if usage {
                &self.dropped_usage
            } else {
                &self.dropped_main
            }
            .fetch_add(1, Relaxed);
        }
    }

    /// Lines dropped so far: (main, usage).
    pub fn dropped(&self) -> (u64, u64) {
        (
            self.dropped_main.load(Relaxed),
            self.dropped_usage.load(Relaxed),
        )
    }

    /// Wait until every queued line is written (shutdown).
    pub fn flush(&self) {
        let (ack_tx, ack_rx) = sync_channel(1);
        if self.tx.send(Msg::Flush(ack_tx)).is_ok() {
            let _ = ack_rx.recv_timeout(std::time::Duration::from_secs(5));
        }
    }
}

struct MainLogger {
    logs: Logs,
    level: LevelFilter,
}

impl Log for MainLogger {
    fn enabled(&self, m: &Metadata) -> bool {
        m.level() <= self.level
    }
    fn log(&self, r: &Record) {
        if self.enabled(r.metadata()) {
            self.logs.send(false, r.level(), r.args().to_string());
        }
    }
    fn flush(&self) {
        self.logs.flush();
    }
}

fn writer(rx: Receiver<Msg>, mut main: Sink, mut usage: Sink) {
    let pid = std::process::id();
    for m in rx {
        match m {
            Msg::Line {
                usage: is_usage,
                level,
                when,
                text,
            } => {
                let sink = if is_usage { &mut usage } else { &mut main };
                let line = format_line(when, pid, level_name(level), &text);
                if level <= sink.file_level {
                    if let Some(f) = sink.file.as_mut() {
                        let _ = f.write_all(line.as_bytes());
                    }
                }
                if level <= sink.stderr_level {
                    let _ = std::io::stderr().write_all(line.as_bytes());
                }
            }
            Msg::Flush(ack) => {
                for s in [&mut main, &mut usage] {
                    if let Some(f) = s.file.as_mut() {
                        let _ = f.flush();
                    }
                }
                let _ = ack.send(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_format() {
        let l = format_line(
            SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123),
            42,
            "INFO",
            "hello",
        );
        // Local time zone varies; check the shape.
        let re = regex_lite(&l);
        assert!(re, "{l:?}");
        assert!(l.ends_with(",123 (42) INFO hello\n"), "{l:?}");
    }

    fn regex_lite(l: &str) -> bool {
        let b = l.as_bytes();
        b.len() > 24
            && b[4] == b'-'
            && b[7] == b'-'
            && b[10] == b' '
            && b[13] == b':'
            && b[16] == b':'
            && b[19] == b','
            && b[..4].iter().all(u8::is_ascii_digit)
    }
}
