//! The reference client's logging (`pyzor.config.setup_logging`): records
//! formatted `YYYY-MM-DD HH:MM:SS,mmm (PID) LEVEL message`; standard error
//! shows only CRITICAL (everything with `-d`), the log file INFO and above
//! (everything with `-d`). Standard error therefore stays silent in normal
//! use, which matters because SpamAssassin merges it into stdout.

use std::fs::File;
use std::io::Write;
use std::sync::{Mutex, OnceLock};

/// `log` target marking a record as CRITICAL (the `log` crate has no such
/// level; it is logged at `Error` with this target).
pub(crate) const CRITICAL_TARGET: &str = "pyzor::critical";

/// Log a CRITICAL record.
#[macro_export]
macro_rules! critical {
    ($($arg:tt)+) => { ::log::error!(target: $crate::logging::CRITICAL_TARGET, $($arg)+) };
}

struct Sink {
    debug: bool,
    file: Option<File>,
}

struct Logger {
    sink: Mutex<Sink>,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

fn level_name(record: &log::Record<'_>) -> &'static str {
    if record.target() == CRITICAL_TARGET {
        return "CRITICAL";
    }
    match record.level() {
        log::Level::Error => "ERROR",
        log::Level::Warn => "WARNING",
        log::Level::Info => "INFO",
        log::Level::Debug | log::Level::Trace => "DEBUG",
    }
}

impl log::Log for Logger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let Ok(mut sink) = self.sink.lock() else {
            return;
        };
        let name = level_name(record);
        let critical = name == "CRITICAL";
        let to_stderr = sink.debug || critical;
        let to_file = sink.debug || record.level() <= log::Level::Info;
        if !(to_stderr || (to_file && sink.file.is_some())) {
            return;
        }
        let line = pyzor_config::localtime::log_line(
            std::time::SystemTime::now(),
            std::process::id(),
            name,
            record.args(),
        );
        if to_stderr {
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
        if to_file {
            if let Some(f) = sink.file.as_mut() {
                let _ = f.write_all(line.as_bytes());
            }
        }
    }

    fn flush(&self) {}
}

/// Install (or reconfigure) the client's logger. A log file that cannot be
/// opened is an error (the reference crashes on it).
pub fn setup(debug: bool, file: Option<&std::path::Path>) -> std::io::Result<()> {
    let file = match file {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)?,
        ),
        None => None,
    };
    let logger = LOGGER.get_or_init(|| Logger {
        sink: Mutex::new(Sink {
            debug: false,
            file: None,
        }),
    });
    if let Ok(mut s) = logger.sink.lock() {
        s.debug = debug;
        s.file = file;
    }
    if log::set_logger(logger).is_ok() {
        log::set_max_level(log::LevelFilter::Trace);
    }
    Ok(())
}
