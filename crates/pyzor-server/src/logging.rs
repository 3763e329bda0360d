//! The main log (`pyzord`, through the `log` facade) and the usage log
//! (`pyzord-usage`), in the reference's format
//! `YYYY-MM-DD HH:MM:SS,mmm (PID) LEVEL message` (local time), written by
//! one writer thread. Callers never block: lines go through a queue bounded
//! in bytes (`QUEUE_BYTES`) and in lines, and are counted as dropped when
//! it is full (a stalled stderr, a slow disk).
//!
//! No line grows with what a client sends (docs/security.md): every
//! message is cut to `MAX_LINE` bytes, and in usage-log lines every
//! quoted value (a digest, the header an error text quotes) is cut to
//! `MAX_QUOTED` characters and at most `MAX_VALUES` of them are shown
//! (`bound_usage`).
//!
//! Destinations (scripts/pyzord `setup_logging`, adapted for systemd):
//! * `LogFile` / `UsageLogFile`: INFO and above (DEBUG with `-d`), appended;
//! * stderr: the main log at INFO and above when running in the foreground
//!   (the reference shows only CRITICAL there; services under systemd want
//!   the log on stderr), nothing but CRITICAL when detached; with `-d`
//!   both logs at DEBUG, as the reference.

use std::borrow::Cow;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use log::{Level, LevelFilter, Log, Metadata, Record};

/// Bytes the queued lines may hold (their text plus the size of a queue
/// slot each). Without it a flood of long lines behind a stderr nobody
/// reads held 16384 lines of up to 32 KiB: RSS grew from 6.6 MB to 536 MB.
pub(crate) const QUEUE_BYTES: usize = 4 << 20;
/// Lines the queue may hold, whatever their size.
const QUEUE_LINES: usize = 16384;
/// Longest message of one line (bytes); the rest is replaced by
/// `… (N more bytes)`.
pub(crate) const MAX_LINE: usize = 8192;
/// Longest quoted value of a usage-log line (characters of the `repr`).
pub(crate) const MAX_QUOTED: usize = 200;
/// Quoted values shown in one usage-log line (digests of one request).
pub(crate) const MAX_VALUES: usize = 10;
/// Longest wait of [`Logs::flush`].
const FLUSH_WAIT: Duration = Duration::from_secs(5);

enum Msg {
    Line {
        usage: bool,
        level: Level,
        when: SystemTime,
        text: String,
        /// What it counts against `QUEUE_BYTES`.
        cost: usize,
    },
    Flush(SyncSender<()>),
    /// SIGHUP: close the log files and open them again by name (after
    /// logrotate renamed them); acknowledged like `Flush`.
    Reopen(SyncSender<()>),
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
    /// Bytes of the lines in the queue (see `QUEUE_BYTES`).
    queued: Arc<AtomicUsize>,
    dropped_main: Arc<AtomicU64>,
    dropped_usage: Arc<AtomicU64>,
}

impl std::fmt::Debug for Logs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logs").finish_non_exhaustive()
    }
}

struct Sink {
    /// The file's name, opened again on [`Logs::reopen`].
    path: Option<PathBuf>,
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
        Self::start_with(s, Box::new(std::io::stderr()))
    }

    /// [`Logs::start`] writing to `stderr` instead of the process's.
    fn start_with(s: &LogSettings, stderr: Box<dyn Write + Send>) -> std::io::Result<Self> {
        let file_level = if s.debug {
            LevelFilter::Debug
        } else {
            LevelFilter::Info
        };
        let main = Sink {
            path: s.main_file.clone(),
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
            path: s.usage_file.clone(),
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
        let (tx, rx) = sync_channel(QUEUE_LINES);
        let queued = Arc::new(AtomicUsize::new(0));
        let q = Arc::clone(&queued);
        std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || writer(rx, main, usage, stderr, &q))?;
        Ok(Logs {
            tx,
            usage_level,
            queued,
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

    /// Queue a usage-log line; its quoted values are cut
    /// (`bound_usage`).
    pub fn usage(&self, level: Level, text: String) {
        let text = match bound_usage(&text) {
            Cow::Borrowed(_) => text,
            Cow::Owned(cut) => cut,
        };
        self.send(true, level, text);
    }

    /// Queue a line (cut to `MAX_LINE`) if the queue has room for it in
    /// bytes and in lines, else count it as dropped.
    fn send(&self, usage: bool, level: Level, text: String) {
        let text = cap_line(text);
        let cost = text.capacity() + std::mem::size_of::<Msg>();
        let before = self.queued.fetch_add(cost, Relaxed);
        let queued = before + cost <= QUEUE_BYTES
            && self
                .tx
                .try_send(Msg::Line {
                    usage,
                    level,
                    when: SystemTime::now(),
                    text,
                    cost,
                })
                .is_ok();
        if !queued {
            self.queued.fetch_sub(cost, Relaxed);
            if usage {
                &self.dropped_usage
            } else {
                &self.dropped_main
            }
            .fetch_add(1, Relaxed);
        }
    }

    /// Bytes the queued lines hold now (at most `QUEUE_BYTES`).
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Relaxed)
    }

    /// Lines dropped so far: (main, usage).
    pub fn dropped(&self) -> (u64, u64) {
        (
            self.dropped_main.load(Relaxed),
            self.dropped_usage.load(Relaxed),
        )
    }

    /// Wait until every queued line is written (shutdown), at most about
    /// 5 s (a stderr nobody reads must not hang the shutdown).
    pub fn flush(&self) {
        self.control(Msg::Flush);
    }

    /// SIGHUP (logrotate): the writer closes `LogFile` and `UsageLogFile`
    /// and opens them again by name, creating them if they were renamed
    /// away. Lines queued before the call go to the old files. A file that
    /// cannot be opened again keeps its old descriptor, and the reason is
    /// written to both the old file and stderr. Waits like [`Logs::flush`].
    pub fn reopen(&self) {
        self.control(Msg::Reopen);
    }

    /// Queue a control message behind the lines already queued and wait
    /// for the writer's acknowledgement, at most `FLUSH_WAIT` in all.
    fn control(&self, make: fn(SyncSender<()>) -> Msg) {
        let deadline = Instant::now() + FLUSH_WAIT;
        let (ack_tx, ack_rx) = sync_channel(1);
        let mut msg = make(ack_tx);
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Full(m)) if Instant::now() < deadline => {
                    msg = m;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(_) => return,
            }
        }
        let _ = ack_rx.recv_timeout(deadline.saturating_duration_since(Instant::now()));
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

fn writer(
    rx: Receiver<Msg>,
    mut main: Sink,
    mut usage: Sink,
    mut stderr: Box<dyn Write + Send>,
    queued: &AtomicUsize,
) {
    let pid = std::process::id();
    for m in rx {
        match m {
            Msg::Line {
                usage: is_usage,
                level,
                when,
                text,
                cost,
            } => {
                let sink = if is_usage { &mut usage } else { &mut main };
                let line = format_line(when, pid, level_name(level), &text);
                if level <= sink.file_level {
                    if let Some(f) = sink.file.as_mut() {
                        let _ = f.write_all(line.as_bytes());
                    }
                }
                if level <= sink.stderr_level {
                    let _ = stderr.write_all(line.as_bytes());
                }
                drop(text);
                queued.fetch_sub(cost, Relaxed);
            }
            Msg::Flush(ack) => {
                for s in [&mut main, &mut usage] {
                    if let Some(f) = s.file.as_mut() {
                        let _ = f.flush();
                    }
                }
                let _ = ack.send(());
            }
            Msg::Reopen(ack) => {
                for s in [&mut main, &mut usage] {
                    s.reopen(pid, &mut stderr);
                }
                let _ = ack.send(());
            }
        }
    }
}

impl Sink {
    /// Open the file again by name (see [`Logs::reopen`]).
    fn reopen(&mut self, pid: u32, stderr: &mut Box<dyn Write + Send>) {
        let Some(path) = &self.path else { return };
        if let Some(f) = self.file.as_mut() {
            let _ = f.flush();
        }
        match open_append(path) {
            Ok(f) => self.file = Some(f),
            Err(e) => {
                let line = format_line(
                    SystemTime::now(),
                    pid,
                    "ERROR",
                    &format!(
                        "Cannot reopen {} after SIGHUP ({e}); still writing to the file open before. Check that the directory is writable by pyzord's user",
                        path.display()
                    ),
                );
                if let Some(f) = self.file.as_mut() {
                    let _ = f.write_all(line.as_bytes());
                }
                let _ = stderr.write_all(line.as_bytes());
            }
        }
    }
}

/// `text` cut to `MAX_LINE` bytes at a character boundary.
fn cap_line(mut text: String) -> String {
    if text.len() <= MAX_LINE {
        return text;
    }
    let mut end = MAX_LINE;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let more = text.len() - end;
    text.truncate(end);
    text.push_str(&format!("… ({more} more bytes)"));
    text.shrink_to_fit();
    text
}

/// Where the quoted value that opens at `b[start]` ends: after its closing
/// quote (a backslash escapes the next byte, as in a Python `repr`), or at
/// the end of the text.
fn quoted_end(b: &[u8], start: usize) -> usize {
    let q = b[start];
    let mut j = start + 1;
    while j < b.len() {
        match b[j] {
            b'\\' => j += 2,
            c if c == q => return j + 1,
            _ => j += 1,
        }
    }
    b.len()
}

/// The first `MAX_QUOTED` characters of the quoted value `b[start..end]`
/// (an escape such as `\\x00` is never split): the byte where they end
/// and how many characters follow, or `None` when it is not longer.
fn quoted_cut(b: &[u8], start: usize, end: usize) -> Option<(usize, usize)> {
    let closed = end - start >= 2 && b[end - 1] == b[start];
    let content_end = if closed { end - 1 } else { end };
    let (mut j, mut chars, mut cut) = (start + 1, 0usize, None);
    while j < content_end {
        let unit = match b[j] {
            b'\\' => match b.get(j + 1) {
                Some(b'x') => 4,
                Some(b'u') => 6,
                Some(b'U') => 10,
                _ => 2,
            },
            c if c < 0x80 => 1,
            c if c >= 0xF0 => 4,
            c if c >= 0xE0 => 3,
            _ => 2,
        };
        let width = if b[j] == b'\\' { unit } else { 1 };
        if cut.is_none() && chars + width > MAX_QUOTED {
            cut = Some((j, chars));
        }
        chars += width;
        j = (j + unit).min(content_end);
    }
    cut.map(|(at, shown)| (at, chars - shown))
}

/// A usage-log message with every quoted value (a Python `repr` of client
/// input: the digests of `user,ip,op,['digest', ...],code`, the header an
/// error text quotes) cut to `MAX_QUOTED` characters, followed by
/// `… (N more characters)`, and only the first `MAX_VALUES` values
/// shown, followed by `, … (N more)`. A quote opens a value only after a
/// space, `[`, `(`, `,` or `:` (so `o'brien` does not). Borrowed when
/// nothing is cut (the usual line).
pub(crate) fn bound_usage(text: &str) -> Cow<'_, str> {
    let b = text.as_bytes();
    let mut out: Option<String> = None;
    // `text[done..]` is not in `out` yet.
    let (mut done, mut values, mut omitted, mut i) = (0, 0usize, 0usize, 0);
    while i < b.len() {
        let c = b[i];
        if omitted > 0 && c != b',' && c != b' ' && c != b'\'' && c != b'"' {
            // The end of a run of values beyond MAX_VALUES.
            let o = out.get_or_insert_with(String::new);
            o.push_str(&format!(", … ({omitted} more)"));
            omitted = 0;
            done = i;
        }
        let opens = (c == b'\'' || c == b'"')
            && (i == 0 || matches!(b[i - 1], b' ' | b'[' | b'(' | b',' | b':'));
        if !opens {
            i += 1;
            continue;
        }
        let end = quoted_end(b, i);
        values += 1;
        if values > MAX_VALUES {
            let o = out.get_or_insert_with(String::new);
            let before = &text[done..i];
            o.push_str(before.strip_suffix(", ").unwrap_or(before));
            omitted += 1;
            done = end;
        } else if let Some((at, more)) = quoted_cut(b, i, end) {
            let o = out.get_or_insert_with(String::new);
            o.push_str(&text[done..at]);
            o.push(char::from(c));
            o.push_str(&format!("… ({more} more characters)"));
            done = end;
        }
        i = end;
    }
    match out {
        None => Cow::Borrowed(text),
        Some(mut o) => {
            if omitted > 0 {
                o.push_str(&format!(", … ({omitted} more)"));
            } else {
                o.push_str(&text[done..]);
            }
            Cow::Owned(o)
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

    /// A flood of long lines while nobody reads stderr (a pipe whose read
    /// end is never read): the queue holds at most QUEUE_BYTES, the rest
    /// is dropped and counted, and everything queued is accounted for.
    #[test]
    fn a_flood_behind_a_stalled_stderr_stays_within_the_byte_budget() {
        let (read_end, write_end) = nix::unistd::pipe().unwrap();
        let settings = LogSettings {
            main_file: None,
            usage_file: None,
            debug: true,
            stderr_info: true,
        };
        let logs = Logs::start_with(&settings, Box::new(File::from(write_end))).unwrap();
        let long = "x".repeat(64 * 1024);
        let mut peak = 0;
        for i in 0..2000 {
            logs.send(false, Level::Error, format!("{i} {long}"));
            logs.usage(
                Level::Info,
                format!("anonymous,192.0.2.1,check,['{long}'],200"),
            );
            peak = peak.max(logs.queued_bytes());
        }
        assert!(peak <= QUEUE_BYTES, "{peak} bytes queued");
        let (main, usage) = logs.dropped();
        assert!(main > 0 && usage > 0, "nothing dropped: {main} {usage}");
        // Bounded even though the writer is stuck.
        let t0 = Instant::now();
        logs.flush();
        assert!(t0.elapsed() < Duration::from_secs(30));
        drop(read_end); // the writer's writes now fail: it drains the queue
        logs.flush();
        assert_eq!(logs.queued_bytes(), 0);
    }

    /// Reopen after a rename (logrotate): lines before it stay in the
    /// renamed file, lines after it go to a new file of the old name; a
    /// file that cannot be opened again keeps the old one and says why.
    #[test]
    fn reopen_follows_a_rename_and_survives_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let (main, usage) = (dir.path().join("main.log"), dir.path().join("usage.log"));
        let settings = LogSettings {
            main_file: Some(main.clone()),
            usage_file: Some(usage.clone()),
            debug: false,
            stderr_info: false,
        };
        let logs = Logs::start_with(&settings, Box::new(std::io::sink())).unwrap();
        logs.send(false, Level::Info, "before".into());
        logs.usage(Level::Info, "u-before".into());
        std::fs::rename(&main, dir.path().join("main.log.1")).unwrap();
        std::fs::rename(&usage, dir.path().join("usage.log.1")).unwrap();
        logs.reopen();
        logs.send(false, Level::Info, "after".into());
        logs.usage(Level::Info, "u-after".into());
        logs.flush();
        let read = |n: &str| std::fs::read_to_string(dir.path().join(n)).unwrap();
        assert!(read("main.log.1").contains("INFO before\n"));
        assert!(!read("main.log.1").contains("after"));
        assert!(
            read("main.log").ends_with("INFO after\n"),
            "{}",
            read("main.log")
        );
        assert!(
            read("usage.log.1").contains("u-before") && !read("usage.log.1").contains("u-after")
        );
        assert!(read("usage.log").contains("u-after") && !read("usage.log").contains("u-before"));
        // The name now is a directory: the reopen fails, the old file stays.
        std::fs::rename(&main, dir.path().join("main.log.2")).unwrap();
        std::fs::create_dir(&main).unwrap();
        logs.reopen();
        logs.send(false, Level::Info, "still here".into());
        logs.flush();
        let kept = read("main.log.2");
        assert!(
            kept.contains("ERROR Cannot reopen") && kept.ends_with("INFO still here\n"),
            "{kept}"
        );
    }

    #[test]
    fn long_lines_are_cut() {
        let l = cap_line("é".repeat(MAX_LINE));
        assert!(l.len() < MAX_LINE + 40, "{}", l.len());
        assert!(
            l.ends_with(&format!("… ({MAX_LINE} more bytes)")),
            "{l:.40}"
        );
        assert_eq!(cap_line("short".into()), "short");
    }

    #[test]
    fn usage_lines_show_short_values_and_cut_long_ones() {
        let plain = "anonymous,127.0.0.1,report,['abc', \"it's\"],200";
        assert!(matches!(bound_usage(plain), Cow::Borrowed(_)));
        assert!(matches!(
            bound_usage("o'brien,127.0.0.1,ping,None,200"),
            Cow::Borrowed(_)
        ));

        let long = format!("u,1.2.3.4,check,['{}', 'b'],200", "d".repeat(250));
        assert_eq!(
            bound_usage(&long),
            format!(
                "u,1.2.3.4,check,['{}'… (50 more characters), 'b'],200",
                "d".repeat(200)
            )
        );
        // An escape is never split; escapes count as the characters shown.
        let esc = format!("500: x: '{}\\x00tail'", "a".repeat(198));
        assert_eq!(
            bound_usage(&esc),
            format!("500: x: '{}'… (8 more characters)", "a".repeat(198))
        );
        // Non-ASCII characters count once.
        let wide = format!("500: x: '{}'", "é".repeat(300));
        assert_eq!(
            bound_usage(&wide),
            format!("500: x: '{}'… (100 more characters)", "é".repeat(200))
        );
        // An unterminated value is cut all the same.
        let open = format!("500: x: '{}", "z".repeat(300));
        assert_eq!(
            bound_usage(&open),
            format!("500: x: '{}'… (100 more characters)", "z".repeat(200))
        );
    }

    #[test]
    fn usage_lines_show_at_most_max_values() {
        let digests: Vec<String> = (0..25).map(|i| format!("'d{i}'")).collect();
        let line = format!("u,::1,check,[{}],200", digests.join(", "));
        let shown = digests[..MAX_VALUES].join(", ");
        assert_eq!(
            bound_usage(&line),
            format!("u,::1,check,[{shown}, … (15 more)],200")
        );
        let exact = format!("u,::1,check,[{shown}],200");
        assert!(matches!(bound_usage(&exact), Cow::Borrowed(_)));
        // Values beyond the cap at the very end of the text.
        let tail = format!("x: {}", digests.join(", "));
        assert_eq!(bound_usage(&tail), format!("x: {shown}, … (15 more)"));
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
