//! What the main log says about engine failures: one line when the engine
//! starts failing, a summary every `SUMMARY_EVERY` while it keeps
//! failing, and one line when it answers again — never one line per failed
//! batch (a Redis outage under load used to write thousands of lines a
//! second, burying everything else).
//!
//! Two kinds of failure reach it from the workers:
//! * a whole engine batch failed (`EngineHealth::batch_failed`): the
//!   engine is **down** until a batch succeeds again
//!   (`EngineHealth::batch_ok`, one relaxed atomic load while up);
//! * one request failed after the engine refused its batch and the batch
//!   was re-run request by request (`EngineHealth::request_failed`, e.g.
//!   a digest the engine cannot store): the engine is not down; the first
//!   such failure is logged, the next ones are counted and summarised at
//!   most once per `SUMMARY_EVERY`.
//!
//! Error texts are cut to `MAX_ERROR` bytes: they may quote a digest,
//! and no log line grows with client input. The state is also exported
//! as the `pyzord_engine_up` gauge ([`crate::metrics`]).

use std::fmt::Display;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use log::Level;

/// How often a failing engine's counts are logged.
pub(crate) const SUMMARY_EVERY: Duration = Duration::from_secs(60);
/// Longest error text quoted in a line (bytes).
pub(crate) const MAX_ERROR: usize = 200;

/// The engine's state as the log reports it; shared by all workers.
#[derive(Debug, Default)]
pub struct EngineHealth {
    /// Set while the engine is down (read on every successful batch).
    down: AtomicBool,
    state: Mutex<State>,
}

/// Counts of failures since some instant.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    batches: u64,
    operations: u64,
}

#[derive(Debug)]
struct Outage {
    since: Instant,
    total: Counts,
    /// Since the last line about this outage.
    recent: Counts,
    last_line: Instant,
    last_error: String,
}

/// Requests that failed on their own, since `since`.
#[derive(Debug)]
struct Isolated {
    since: Instant,
    count: u64,
    last_error: String,
}

#[derive(Debug, Default)]
struct State {
    outage: Option<Outage>,
    isolated: Option<Isolated>,
}

/// `text` cut to [`MAX_ERROR`] bytes at a character boundary.
fn bounded(text: impl Display) -> String {
    let mut s = text.to_string();
    if s.len() > MAX_ERROR {
        let mut end = MAX_ERROR;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

impl State {
    /// A batch of `operations` failed with `error` at `now`.
    fn batch_failed(
        &mut self,
        engine: &str,
        operations: usize,
        error: &dyn Display,
        now: Instant,
    ) -> Option<(Level, String)> {
        let ops = operations as u64;
        match &mut self.outage {
            None => {
                let error = bounded(error);
                let line = format!(
                    "Engine {engine} is failing: {error} (requests that need it are answered 500; further failures are summarised every {} s)",
                    SUMMARY_EVERY.as_secs()
                );
                let first = Counts {
                    batches: 1,
                    operations: ops,
                };
                self.outage = Some(Outage {
                    since: now,
                    total: first,
                    recent: Counts::default(),
                    last_line: now,
                    last_error: error,
                });
                Some((Level::Error, line))
            }
            Some(o) => {
                o.total.batches += 1;
                o.total.operations += ops;
                o.recent.batches += 1;
                o.recent.operations += ops;
                if now.duration_since(o.last_line) < SUMMARY_EVERY {
                    // Kept for the next summary, formatted only then.
                    o.last_error = bounded(error);
                    return None;
                }
                let line = format!(
                    "Engine {engine} still failing: {} operations in {} batches failed in the last {} s ({} s down); last error: {}",
                    o.recent.operations,
                    o.recent.batches,
                    now.duration_since(o.last_line).as_secs(),
                    now.duration_since(o.since).as_secs(),
                    bounded(error),
                );
                o.recent = Counts::default();
                o.last_line = now;
                Some((Level::Error, line))
            }
        }
    }

    /// A batch succeeded at `now`.
    fn batch_ok(&mut self, engine: &str, now: Instant) -> Option<(Level, String)> {
        let o = self.outage.take()?;
        Some((
            Level::Warn,
            format!(
                "Engine {engine} answers again after {:.1} s; {} operations in {} batches failed while it was down (last error: {})",
                now.duration_since(o.since).as_secs_f64(),
                o.total.operations,
                o.total.batches,
                o.last_error
            ),
        ))
    }

    /// One request failed on its own with `error` at `now`.
    fn request_failed(
        &mut self,
        engine: &str,
        error: &dyn Display,
        now: Instant,
    ) -> Option<(Level, String)> {
        match &mut self.isolated {
            Some(i) if now.duration_since(i.since) < SUMMARY_EVERY => {
                i.count += 1;
                i.last_error = bounded(error);
                None
            }
            Some(i) => {
                let line = format!(
                    "Engine {engine} failed {} more requests on their own in the last {} s; last error: {}",
                    i.count + 1,
                    now.duration_since(i.since).as_secs(),
                    bounded(error)
                );
                i.since = now;
                i.count = 0;
                Some((Level::Error, line))
            }
            None => {
                let error = bounded(error);
                let line = format!(
                    "Engine {engine} failed a request: {error} (further such failures are summarised every {} s)",
                    SUMMARY_EVERY.as_secs()
                );
                self.isolated = Some(Isolated {
                    since: now,
                    count: 0,
                    last_error: error,
                });
                Some((Level::Error, line))
            }
        }
    }
}

impl EngineHealth {
    /// Whether the engine is answering (no failed batch since the last
    /// successful one).
    pub(crate) fn is_up(&self) -> bool {
        !self.down.load(Relaxed)
    }

    fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut s)
    }

    /// A whole engine batch of `operations` failed.
    pub(crate) fn batch_failed(&self, engine: &str, operations: usize, error: &dyn Display) {
        self.down.store(true, Relaxed);
        let line = self.with_state(|s| s.batch_failed(engine, operations, error, Instant::now()));
        emit(line);
    }

    /// An engine batch succeeded: logs the recovery when the engine was
    /// down. Costs one relaxed load while the engine is up.
    #[inline]
    pub(crate) fn batch_ok(&self, engine: &str) {
        if self.down.load(Relaxed) {
            self.recovered(engine);
        }
    }

    #[cold]
    fn recovered(&self, engine: &str) {
        let line = self.with_state(|s| {
            let l = s.batch_ok(engine, Instant::now());
            self.down.store(false, Relaxed);
            l
        });
        emit(line);
    }

    /// One request of a batch re-run request by request failed.
    pub(crate) fn request_failed(&self, engine: &str, error: &dyn Display) {
        let line = self.with_state(|s| s.request_failed(engine, error, Instant::now()));
        emit(line);
    }
}

fn emit(line: Option<(Level, String)>) {
    if let Some((level, text)) = line {
        log::log!(level, "{text}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> Box<dyn Display> {
        Box::new(s.to_owned())
    }

    #[test]
    fn an_outage_is_one_line_down_a_summary_per_period_and_one_line_up() {
        let t0 = Instant::now();
        let mut s = State::default();
        let mut lines = Vec::new();
        // 3000 failed batches of 2 operations over 150 s.
        for i in 0..3000u64 {
            let now = t0 + Duration::from_millis(i * 50);
            let e = err(&format!("connection refused #{i}"));
            if let Some(l) = s.batch_failed("redis", 2, &e, now) {
                lines.push(l);
            }
        }
        assert_eq!(lines.len(), 3, "{lines:#?}");
        assert_eq!(lines[0].0, Level::Error);
        assert!(
            lines[0]
                .1
                .starts_with("Engine redis is failing: connection refused #0 "),
            "{}",
            lines[0].1
        );
        // The first summary, 60 s in: the 1200 failures after the first.
        assert!(
            lines[1].1.starts_with(
                "Engine redis still failing: 2400 operations in 1200 batches failed in the last 60 s (60 s down); last error: connection refused #1200"
            ),
            "{}",
            lines[1].1
        );
        assert!(
            lines[2].1.contains("in the last 60 s (120 s down)"),
            "{}",
            lines[2].1
        );
        let up = s
            .batch_ok("redis", t0 + Duration::from_secs(151))
            .expect("recovery line");
        assert_eq!(up.0, Level::Warn);
        assert_eq!(
            up.1,
            "Engine redis answers again after 151.0 s; 6000 operations in 3000 batches failed while it was down (last error: connection refused #2999)"
        );
        assert_eq!(s.batch_ok("redis", t0 + Duration::from_secs(152)), None);
        // A new outage is reported again.
        let again = s.batch_failed("redis", 1, &err("x"), t0 + Duration::from_secs(200));
        assert!(again.is_some_and(|l| l.1.starts_with("Engine redis is failing: x ")));
    }

    #[test]
    fn isolated_request_failures_are_rate_limited() {
        let t0 = Instant::now();
        let mut s = State::default();
        let mut lines = Vec::new();
        for i in 0..1000u64 {
            let now = t0 + Duration::from_millis(i * 100);
            if let Some(l) = s.request_failed("mysql", &err("digest too long"), now) {
                lines.push(l.1);
            }
        }
        assert_eq!(lines.len(), 2, "{lines:#?}");
        assert!(lines[0].starts_with("Engine mysql failed a request: digest too long ("));
        assert_eq!(
            lines[1],
            "Engine mysql failed 600 more requests on their own in the last 60 s; last error: digest too long"
        );
        assert!(s.outage.is_none(), "isolated failures are not an outage");
    }

    #[test]
    fn error_texts_are_bounded() {
        let long = "é".repeat(1000);
        let mut s = State::default();
        let l = s.batch_failed("lmdb", 1, &long, Instant::now()).unwrap().1;
        assert!(l.len() < MAX_ERROR + 200, "{}", l.len());
        let b = bounded(&long);
        assert!(b.len() <= MAX_ERROR + '…'.len_utf8());
    }

    #[test]
    fn shared_handle_tracks_up_and_down() {
        let h = EngineHealth::default();
        assert!(h.is_up());
        h.batch_ok("memory");
        h.batch_failed("memory", 3, &"down");
        assert!(!h.is_up());
        h.batch_ok("memory");
        assert!(h.is_up());
    }
}
