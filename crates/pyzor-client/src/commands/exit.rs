//! The flags a command's exit status is computed from, as the reference's
//! `ClientRunner` (`all_ok`) and `CheckClientRunner` (`found_hit`,
//! `whitelisted`) keep them (docs/protocol.md §7).

/// Updated once per server answer; read when the command ends.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ExitFlags {
    all_ok: bool,
    found_hit: bool,
    whitelisted: bool,
    /// `-r`: a count above it is a hit.
    r_threshold: i64,
    /// `-w`: a whitelist count above it clears every hit.
    w_threshold: i64,
}

impl ExitFlags {
    /// Nothing failed yet, nothing found.
    pub(crate) fn new(r_threshold: i64, w_threshold: i64) -> ExitFlags {
        ExitFlags {
            all_ok: true,
            found_hit: false,
            whitelisted: false,
            r_threshold,
            w_threshold,
        }
    }

    /// A request failed or a reply was not OK.
    pub(crate) fn fail(&mut self) {
        self.all_ok = false;
    }

    /// A check reply's counts (`CheckClientRunner.handle_response`).
    pub(crate) fn counts(&mut self, count: i64, wl_count: i64) {
        if wl_count > self.w_threshold {
            self.whitelisted = true;
        } else if count > self.r_threshold {
            self.found_hit = true;
        }
    }

    /// Success of every command but check/pong.
    pub(crate) fn all_ok(&self) -> bool {
        self.all_ok
    }

    /// Success of check/pong (docs/protocol.md §7): every answer OK, at
    /// least one hit, and no whitelisted answer.
    pub(crate) fn check_ok(&self) -> bool {
        self.all_ok && self.found_hit && !self.whitelisted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_rule() {
        let mut f = ExitFlags::new(0, 0);
        assert!(f.all_ok() && !f.check_ok(), "no hit yet");
        f.counts(1, 0);
        assert!(f.check_ok());
        f.counts(0, 1);
        assert!(!f.check_ok(), "a whitelisted answer clears the hit");
        let mut f = ExitFlags::new(0, 0);
        f.counts(1, 0);
        f.fail();
        assert!(!f.all_ok() && !f.check_ok());
    }
}
