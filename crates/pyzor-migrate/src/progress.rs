//! Progress: an indicatif bar with rate and estimate on a terminal, plain
//! periodic lines (the reference's "N records transferred...") otherwise;
//! both on stderr, whatever stdout carries.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressState, ProgressStyle};

/// Plain lines every this many records (the reference's print_interval).
const EVERY: u64 = 100_000;

pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    last_line: u64,
    start: Instant,
}

/// Records per second as people read them: whole numbers from 10 up,
/// one decimal below (`906370/s`, `3.5/s`), never indicatif's
/// `906,370.3155/s`.
pub(crate) fn rate_text(per_sec: f64) -> String {
    if !per_sec.is_finite() || per_sec < 0.0 {
        "-/s".to_owned()
    } else if per_sec < 10.0 {
        format!("{per_sec:.1}/s")
    } else {
        format!("{per_sec:.0}/s")
    }
}

impl Progress {
    pub fn new(total: Option<u64>) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let (bar, tpl) = match total {
                Some(n) => (
                    ProgressBar::new(n),
                    "{wide_bar} {human_pos}/{human_len} records, {rate}, {elapsed_precise} elapsed, ETA {eta}",
                ),
                None => (ProgressBar::new_spinner(), "{spinner} {human_pos} records, {rate}, {elapsed_precise} elapsed"),
            };
            let style = ProgressStyle::with_template(tpl)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .with_key("rate", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = w.write_str(&rate_text(s.per_sec()));
                });
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress {
            bar,
            last_line: 0,
            start: Instant::now(),
        }
    }

    pub fn set(&mut self, done: u64) {
        match &self.bar {
            Some(b) => b.set_position(done),
            None => {
                while done >= self.last_line + EVERY {
                    self.last_line += EVERY;
                    let rate = self.last_line as f64 / self.start.elapsed().as_secs_f64().max(1e-3);
                    eprintln!(
                        "{} records transferred... ({})",
                        self.last_line,
                        rate_text(rate)
                    );
                }
            }
        }
    }

    pub fn println(&self, s: &str) {
        match &self.bar {
            Some(b) => b.println(s),
            None => eprintln!("{s}"),
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

#[cfg(test)]
mod tests {
    use super::rate_text;

    #[test]
    fn rates_are_rounded_for_people() {
        assert_eq!(rate_text(906_370.315_5), "906370/s");
        assert_eq!(rate_text(12.49), "12/s");
        assert_eq!(rate_text(3.456), "3.5/s");
        assert_eq!(rate_text(0.0), "0.0/s");
        assert_eq!(rate_text(f64::NAN), "-/s");
        assert_eq!(rate_text(f64::INFINITY), "-/s");
    }
}
