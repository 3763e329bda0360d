//! Progress: an indicatif bar with rate and estimate on a terminal, plain
//! periodic lines (the reference's "N records transferred...") otherwise.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Plain lines every this many records (the reference's print_interval).
const EVERY: u64 = 100_000;

pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    last_line: u64,
    start: Instant,
    /// Plain lines go to stderr (records are on stdout).
    to_stderr: bool,
}

impl Progress {
    pub fn new(total: Option<u64>, to_stderr: bool) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let (bar, tpl) = match total {
                Some(n) => (
                    ProgressBar::new(n),
                    "{wide_bar} {human_pos}/{human_len} records, {per_sec}, {elapsed_precise} elapsed, ETA {eta}",
                ),
                None => (ProgressBar::new_spinner(), "{spinner} {human_pos} records, {per_sec}, {elapsed_precise} elapsed"),
            };
            bar.set_style(ProgressStyle::with_template(tpl).unwrap_or_else(|_| ProgressStyle::default_bar()));
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress {
            bar,
            last_line: 0,
            start: Instant::now(),
            to_stderr,
        }
    }

    pub fn set(&mut self, done: u64) {
        match &self.bar {
            Some(b) => b.set_position(done),
            None => {
                while done >= self.last_line + EVERY {
                    self.last_line += EVERY;
                    let rate = self.last_line as f64 / self.start.elapsed().as_secs_f64().max(1e-3);
                    self.line(&format!(
                        "{} records transferred... ({rate:.0}/s)",
                        self.last_line
                    ));
                }
            }
        }
    }

    fn line(&self, s: &str) {
        if self.to_stderr {
            eprintln!("{s}");
        } else {
            println!("{s}");
        }
    }

    pub fn println(&self, s: &str) {
        match &self.bar {
            Some(b) => b.println(s),
            None => self.line(s),
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish();
            // the bar leaves the cursor at the end of its line
            eprintln!();
        }
    }
}
