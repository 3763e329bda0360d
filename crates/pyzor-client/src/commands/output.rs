//! What the commands print for each server's answer: the reference's text
//! byte for byte (docs/protocol.md §7, docs/field-notes.md §5.13) or one
//! JSON object per line (`--json`), mirroring the `ClientRunner` classes of
//! `pyzor/client.py`.

use serde_json::{Map, Value};

use super::exit::ExitFlags;
use crate::net::Outcome;
use pyzor_config::client::ServerAddr;
use pyzor_protocol::py::py_repr_str;
use pyzor_protocol::wire::client::Reply;
use pyzor_protocol::wire::Op;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The reference's text.
    Text,
    /// One JSON object per line (`--json`).
    Json,
}

/// Which of the reference's runners prints the answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `ClientRunner`: the status line.
    Plain,
    /// `CheckClientRunner`: status, Count and WL-Count.
    Check,
    /// `InfoClientRunner`: status and the record block.
    Info,
}

const INFO_KEYS: [&str; 6] = [
    "Count",
    "Entered",
    "Updated",
    "WL-Count",
    "WL-Entered",
    "WL-Updated",
];

/// The error a check reply without counts gets instead of the reference's
/// crash (KeyError/ValueError → AttributeError).
const NO_COUNTS: &str = "response has no valid Count and WL-Count";

/// One server's answer as both formats print it; deciding it updates the
/// exit flags (once, whatever the format).
enum Answer<'a> {
    /// No usable reply (timeout, malformed reply, …).
    Failed { code: i64, diag: &'a str },
    /// A reply that is not OK.
    Refused(&'a Reply),
    /// An OK check/pong reply with its Count and WL-Count.
    Counts(&'a Reply, i64, i64),
    /// An OK check/pong reply without usable counts.
    NoCounts(&'a Reply),
    /// Any other OK reply.
    Ok(&'a Reply),
}

/// The reference's `ClientRunner`/`CheckClientRunner`/`InfoClientRunner`:
/// per-answer output and the exit flags.
pub(crate) struct Runner {
    kind: Kind,
    op: Op,
    format: Format,
    flags: ExitFlags,
}

impl Runner {
    /// A runner for `op`; `r`/`w` are the check thresholds (`-r`/`-w`).
    pub(crate) fn new(op: Op, format: Format, r: i64, w: i64) -> Runner {
        let kind = match op {
            Op::Check | Op::Pong => Kind::Check,
            Op::Info => Kind::Info,
            _ => Kind::Plain,
        };
        Runner {
            kind,
            op,
            format,
            flags: ExitFlags::new(r, w),
        }
    }

    /// Success of every command but check/pong.
    pub(crate) fn all_ok(&self) -> bool {
        self.flags.all_ok()
    }

    /// Success of check/pong.
    pub(crate) fn check_ok(&self) -> bool {
        self.flags.check_ok()
    }

    /// Append the output for the answers of every server (in `servers`
    /// order) about `digest`.
    pub(crate) fn handle_all(
        &mut self,
        servers: &[ServerAddr],
        digest: Option<&str>,
        outcomes: &[Outcome],
        local: bool,
        text: &mut String,
    ) {
        for (server, o) in servers.iter().zip(outcomes) {
            text.push_str(&self.handle(server, digest, o, local));
        }
    }

    /// Format one outcome; updates the flags.
    pub(crate) fn handle(
        &mut self,
        server: &ServerAddr,
        digest: Option<&str>,
        outcome: &Outcome,
        local: bool,
    ) -> String {
        let answer = self.judge(server, outcome);
        match self.format {
            Format::Text => self.text(server, answer),
            Format::Json => {
                let mut obj = self.json(answer);
                obj.insert("command".into(), Value::from(self.op.as_str()));
                obj.insert("server".into(), Value::from(server.to_string()));
                if let Some(d) = digest {
                    obj.insert("digest".into(), Value::from(d));
                }
                if local {
                    obj.insert("local_whitelist".into(), Value::Bool(true));
                }
                format!("{}\n", Value::Object(obj))
            }
        }
    }

    /// What the answer means, and its effect on the exit flags.
    fn judge<'a>(&mut self, server: &ServerAddr, outcome: &'a Outcome) -> Answer<'a> {
        let reply = match outcome {
            Outcome::Error { code, diag } => {
                self.flags.fail();
                log_error(server, *code, diag);
                return Answer::Failed { code: *code, diag };
            }
            Outcome::Reply(r) => r,
        };
        if !reply.is_ok() {
            self.flags.fail();
            return Answer::Refused(reply);
        }
        if self.kind != Kind::Check {
            return Answer::Ok(reply);
        }
        match (reply.get_int("Count"), reply.get_int("WL-Count")) {
            (Some(count), Some(wl)) => {
                self.flags.counts(count, wl);
                Answer::Counts(reply, count, wl)
            }
            _ => {
                self.flags.fail();
                Answer::NoCounts(reply)
            }
        }
    }

    /// The reference's error line for a failed request (also logged).
    fn error_line(&mut self, server: &ServerAddr, code: i64, diag: &str) -> String {
        self.flags.fail();
        log_error(server, code, diag);
        format!("{server}\t{}\n", head_tuple(code, diag))
    }

    fn text(&mut self, server: &ServerAddr, answer: Answer<'_>) -> String {
        let head = |r: &Reply| head_tuple(r.code, &r.diag);
        match answer {
            Answer::Failed { code, diag } => format!("{server}\t{}\n", head_tuple(code, diag)),
            Answer::Refused(r) => match self.kind {
                Kind::Plain => format!("{server}\t{}\n", head(r)),
                Kind::Check => format!("{server}\t{}\t\n", head(r)),
                Kind::Info => format!("{server}\t{}\n\n", head(r)),
            },
            Answer::Counts(r, count, wl) => format!("{server}\t{}\t{count}\t{wl}\n", head(r)),
            Answer::NoCounts(_) => self.error_line(server, 400, NO_COUNTS),
            Answer::Ok(r) if self.kind == Kind::Info => self.info_block(server, r),
            Answer::Ok(r) => format!("{server}\t{}\n", head(r)),
        }
    }

    /// The `info` block: status line, the record's fields, a blank line.
    fn info_block(&mut self, server: &ServerAddr, reply: &Reply) -> String {
        let mut text = format!("{server}\t{}\n", head_tuple(reply.code, &reply.diag));
        for key in INFO_KEYS {
            if reply.get(key).is_none() {
                continue;
            }
            let Some(val) = reply.get_int(key) else {
                return self.error_line(server, 400, &format!("response has an invalid {key}"));
            };
            let shown = if key.contains("Count") {
                val.to_string()
            } else if val == -1 {
                "Never".to_string()
            } else {
                match ctime(val) {
                    Some(t) => t,
                    None => {
                        return self.error_line(
                            server,
                            400,
                            &format!("response has an out-of-range {key}"),
                        )
                    }
                }
            };
            text.push_str(&format!("\t{key}: {shown}\n"));
        }
        text.push('\n');
        text
    }

    fn json(&self, answer: Answer<'_>) -> Map<String, Value> {
        let mut obj = Map::new();
        let (code, diag) = match &answer {
            Answer::Failed { code, diag } => (*code, *diag),
            Answer::Refused(r) | Answer::Counts(r, ..) | Answer::NoCounts(r) | Answer::Ok(r) => {
                (r.code, r.diag.as_str())
            }
        };
        obj.insert("code".into(), Value::from(code));
        obj.insert("diag".into(), Value::from(diag));
        match answer {
            Answer::Counts(_, count, wl) => {
                obj.insert("count".into(), Value::from(count));
                obj.insert("wl_count".into(), Value::from(wl));
            }
            Answer::NoCounts(_) => {
                obj.insert("code".into(), Value::from(400));
                obj.insert("diag".into(), Value::from(NO_COUNTS));
            }
            Answer::Ok(r) if self.kind == Kind::Info => {
                for key in INFO_KEYS {
                    if let Some(v) = r.get_int(key) {
                        obj.insert(key.to_ascii_lowercase().replace('-', "_"), Value::from(v));
                    }
                }
            }
            Answer::Failed { .. } | Answer::Refused(_) | Answer::Ok(_) => {}
        }
        obj
    }
}

/// The reference's `log.error("%s\t%s: %s", server, e.__class__.__name__, e)`
/// for a failed request (goes to the log file; to stderr only with `-d`).
fn log_error(server: &ServerAddr, code: i64, diag: &str) {
    let class = if code == 504 {
        "TimeoutError"
    } else {
        "CommError"
    };
    log::error!(
        "({}, {})\t{class}: {diag}",
        py_repr_str(&server.host),
        server.port
    );
}

/// `s` cut to `max` characters (then ending with `…`), control and other
/// non-printable characters escaped as Rust's `escape_debug` does: text
/// from a message or a server shown to a person (`explain`, `doctor`) can
/// neither drive the terminal nor flood the output.
pub(crate) fn printable(s: &str, max: usize) -> String {
    let mut out: String = s.chars().take(max).flat_map(char::escape_debug).collect();
    if s.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

/// [`printable`] in double quotes.
pub(crate) fn quoted(s: &str, max: usize) -> String {
    format!("\"{}\"", printable(s, max))
}

/// `str((code, diag))` as the reference prints it, e.g. `(200, 'OK')`.
pub(crate) use pyzor_protocol::py::py_str_int_str_tuple as head_tuple;

/// Python's `time.ctime(t)` in the process's local time zone (the
/// reference's info output, docs/protocol.md §7): `Thu Jan  1 00:00:00 1970`.
/// Returns `None` when the C library cannot represent `t` (the reference
/// then crashes with OverflowError/OSError).
pub(crate) fn ctime(t: i64) -> Option<String> {
    pyzor_protocol::py::py_ctime(&pyzor_config::localtime::localtime(t)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyzor_protocol::wire::client::parse_reply;

    fn reply(text: &str) -> Outcome {
        Outcome::Reply(parse_reply(text.as_bytes(), 2000).unwrap())
    }

    fn server() -> ServerAddr {
        ServerAddr::new("h", 1)
    }

    #[test]
    fn check_lines_and_flags() {
        let mut r = Runner::new(Op::Check, Format::Text, 0, 0);
        let ok = reply("Code: 200\nDiag: OK\nPV: 2.1\nThread: 2000\nCount: 5\nWL-Count: 0\n\n");
        assert_eq!(
            r.handle(&server(), Some("d"), &ok, false),
            "h:1\t(200, 'OK')\t5\t0\n"
        );
        assert!(r.check_ok());
        let denied = reply("Code: 403\nDiag: Forbidden\nPV: 2.1\nThread: 2000\n\n");
        assert_eq!(
            r.handle(&server(), Some("d"), &denied, false),
            "h:1\t(403, 'Forbidden')\t\n"
        );
        assert!(!r.check_ok());
        let mut r = Runner::new(Op::Check, Format::Text, 0, 0);
        let wl = reply("Code: 200\nDiag: OK\nPV: 2.1\nThread: 2000\nCount: 5\nWL-Count: 1\n\n");
        r.handle(&server(), Some("d"), &wl, false);
        r.handle(&server(), Some("d"), &ok, false);
        assert!(!r.check_ok(), "any whitelisted reply clears the hit");
        let mut r = Runner::new(Op::Check, Format::Text, 5, 0);
        r.handle(&server(), Some("d"), &ok, false);
        assert!(!r.check_ok(), "count must exceed -r");
        let timeout = Outcome::Error {
            code: 504,
            diag: "Reading response timed-out.".into(),
        };
        assert_eq!(
            r.handle(&server(), Some("d"), &timeout, false),
            "h:1\t(504, 'Reading response timed-out.')\n"
        );
    }

    #[test]
    fn info_block() {
        let mut r = Runner::new(Op::Info, Format::Text, 0, 0);
        let ok = reply(
            "Code: 200\nDiag: OK\nPV: 2.1\nThread: 2000\nEntered: -1\nCount: 2\nWL-Count: 0\n\n",
        );
        assert_eq!(
            r.handle(&server(), Some("d"), &ok, false),
            "h:1\t(200, 'OK')\n\tCount: 2\n\tEntered: Never\n\tWL-Count: 0\n\n"
        );
        assert!(r.all_ok());
        let bad = reply("Code: 200\nDiag: OK\nPV: 2.1\nThread: 2000\nCount: x\n\n");
        assert!(r
            .handle(&server(), Some("d"), &bad, false)
            .starts_with("h:1\t(400, "));
        assert!(!r.all_ok());
        let mut r = Runner::new(Op::Info, Format::Text, 0, 0);
        let denied = reply("Code: 403\nDiag: no\nPV: 2.1\nThread: 2000\n\n");
        assert_eq!(
            r.handle(&server(), Some("d"), &denied, false),
            "h:1\t(403, 'no')\n\n"
        );
    }

    #[test]
    fn json_lines() {
        let mut r = Runner::new(Op::Check, Format::Json, 0, 0);
        let ok = reply("Code: 200\nDiag: OK\nPV: 2.1\nThread: 2000\nCount: 5\nWL-Count: 0\n\n");
        let line = r.handle(&server(), Some("d"), &ok, true);
        let v: Value = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(v["count"], 5);
        assert_eq!(v["local_whitelist"], true);
        assert_eq!(v["server"], "h:1");
        assert!(r.check_ok());
    }

    #[test]
    fn printable_escapes_and_cuts() {
        assert_eq!(printable("a\x1b[31mb\r", 100), "a\\u{1b}[31mb\\r");
        assert_eq!(printable("abcdef", 3), "abc…");
        assert_eq!(quoted("x\"y", 10), "\"x\\\"y\"");
    }

    #[test]
    fn head_tuple_like_python() {
        assert_eq!(
            head_tuple(504, "Reading response timed-out."),
            "(504, 'Reading response timed-out.')"
        );
        assert_eq!(
            head_tuple(400, "doesn't have fields for a Response"),
            "(400, \"doesn't have fields for a Response\")"
        );
    }

    #[test]
    fn ctime_epoch_in_utc() {
        // The test process may run in any zone; compare against libc's own
        // rendering through a known UTC offset only when TZ is unset/UTC.
        if std::env::var("TZ")
            .map(|v| v.is_empty() || v == "UTC")
            .unwrap_or(true)
        {
            assert_eq!(ctime(0).unwrap(), "Thu Jan  1 00:00:00 1970");
            assert_eq!(ctime(1_700_000_000).unwrap(), "Tue Nov 14 22:13:20 2023");
        }
    }
}
