//! Reconnection backoff shared by the network engines: after a failed
//! connection attempt, further attempts wait 50 ms, then twice as long each
//! time up to 2 s; meanwhile requests fail at once with
//! [`StoreError::Unavailable`] (the server's 500) instead of each waiting
//! for a connect timeout.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::{Result, StoreError};

const MIN: Duration = Duration::from_millis(50);
const MAX: Duration = Duration::from_secs(2);

struct State {
    next_try: Option<Instant>,
    delay: Duration,
}

pub(crate) struct Backoff {
    what: &'static str,
    state: Mutex<State>,
}

impl Backoff {
    pub(crate) fn new(what: &'static str) -> Self {
        Backoff {
            what,
            state: Mutex::new(State {
                next_try: None,
                delay: MIN,
            }),
        }
    }

    /// Forget past failures: the next attempt runs at once (the target
    /// changed, e.g. a Sentinel named a new master).
    #[cfg(feature = "redis")]
    pub(crate) fn reset(&self) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.next_try = None;
        s.delay = MIN;
    }

    /// Run the connection attempt `f` unless a previous failure is too
    /// recent; record its outcome.
    pub(crate) fn attempt<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        {
            let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(t) = s.next_try {
                if Instant::now() < t {
                    return Err(StoreError::Unavailable(format!(
                        "{} is unreachable; retrying shortly",
                        self.what
                    )));
                }
            }
        }
        let r = f();
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match &r {
            Ok(_) => {
                s.next_try = None;
                s.delay = MIN;
            }
            Err(StoreError::Unavailable(e)) => {
                log::error!("{e}");
                s.next_try = Some(Instant::now() + s.delay);
                s.delay = (s.delay * 2).min(MAX);
            }
            Err(_) => {}
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fails_fast_after_a_failure_then_retries() {
        let b = Backoff::new("X");
        let mut calls = 0;
        let r: Result<()> = b.attempt(|| {
            calls += 1;
            Err(StoreError::Unavailable("down".into()))
        });
        assert!(r.is_err());
        let r: Result<()> = b.attempt(|| {
            calls += 1;
            Ok(())
        });
        assert!(matches!(r, Err(StoreError::Unavailable(m)) if m.contains("retrying")));
        assert_eq!(calls, 1);
        std::thread::sleep(MIN + Duration::from_millis(20));
        assert!(b.attempt(|| Ok(())).is_ok());
        assert!(b.attempt(|| Ok(())).is_ok());
    }
}
