//! `pyzor explain` (ours, docs/client.md "explain"): for each input
//! message, the lines the digest was made from, the digest, what each
//! configured server knows about it (check and info), whether the local
//! whitelist covers it, and warnings in plain words. `--json` gives one
//! object per message.
//!
//! Exit status: 0 when every message was explained and every server
//! answered both requests with code 200; 1 otherwise (a message that cannot
//! be digested, a server that did not answer or refused). Whether the
//! message is listed does not change it: the output says so.

use std::io::{BufReader, Read, Write};

use serde_json::{json, Value};

use super::output::{ctime, head_tuple, printable, quoted};
use super::{CommandError, Context, Format};
use crate::digester::{InputError, Style};
use crate::net::Outcome;
use pyzor_config::client::ServerAddr;
use pyzor_digest::explain::{explain, Explanation, Rule, Sampling, Warning};
use pyzor_digest::{digests_style_lines, DigestError, MboxReader};
use pyzor_protocol::wire::Op;

/// Longest text taken from a server reply (a diag) into the output.
const MAX_DIAG_CHARS: usize = 200;

/// One input item: a message, or a digest given as such.
enum Item {
    Message(Vec<u8>),
    Digest(String),
}

/// What one server said about a digest.
struct ServerView {
    server: ServerAddr,
    /// `Count`, `WL-Count` of the check reply, or why there are none.
    check: Result<(i64, i64), String>,
    /// The info record, or why there is none.
    info: Result<Record, String>,
}

/// The record an `info` reply holds (absent or invalid fields are `None`).
#[derive(Default)]
struct Record {
    count: Option<i64>,
    entered: Option<i64>,
    updated: Option<i64>,
    wl_count: Option<i64>,
    wl_entered: Option<i64>,
    wl_updated: Option<i64>,
}

impl ServerView {
    fn ok(&self) -> bool {
        self.check.is_ok() && self.info.is_ok()
    }

    /// The counts `check` decides with (info's when check failed).
    fn counts(&self) -> Option<(i64, i64)> {
        match (&self.check, &self.info) {
            (Ok(c), _) => Some(*c),
            (
                Err(_),
                Ok(Record {
                    count: Some(c),
                    wl_count: Some(w),
                    ..
                }),
            ) => Some((*c, *w)),
            _ => None,
        }
    }
}

/// A server answer that is not usable, as the reference's `(code, 'diag')`
/// with the diag cut and made printable.
fn failure(code: i64, diag: &str) -> String {
    head_tuple(code, &printable(diag, MAX_DIAG_CHARS))
}

fn check_view(o: &Outcome) -> Result<(i64, i64), String> {
    match o {
        Outcome::Error { code, diag } => Err(failure(*code, diag)),
        Outcome::Reply(r) if !r.is_ok() => Err(failure(r.code, &r.diag)),
        Outcome::Reply(r) => match (r.get_int("Count"), r.get_int("WL-Count")) {
            (Some(c), Some(w)) => Ok((c, w)),
            _ => Err(failure(400, "response has no valid Count and WL-Count")),
        },
    }
}

fn info_view(o: &Outcome) -> Result<Record, String> {
    match o {
        Outcome::Error { code, diag } => Err(failure(*code, diag)),
        Outcome::Reply(r) if !r.is_ok() => Err(failure(r.code, &r.diag)),
        Outcome::Reply(r) => Ok(Record {
            count: r.get_int("Count"),
            entered: r.get_int("Entered"),
            updated: r.get_int("Updated"),
            wl_count: r.get_int("WL-Count"),
            wl_entered: r.get_int("WL-Entered"),
            wl_updated: r.get_int("WL-Updated"),
        }),
    }
}

/// A record date for a person: `never` for the server's 0 or -1.
fn when(t: Option<i64>) -> String {
    match t {
        None => "unknown".into(),
        Some(t) if t <= 0 => "never".into(),
        Some(t) => ctime(t).unwrap_or_else(|| format!("{t} (out of range)")),
    }
}

/// Run `pyzor explain`.
pub(super) fn run(ctx: &mut Context<'_>) -> Result<bool, CommandError> {
    let r = ctx.settings.report_threshold()?;
    let w = ctx.settings.whitelist_threshold()?;
    let local = super::local_whitelist_entries(ctx)?;
    let style = ctx.style()?;
    let (client, format) = (ctx.client, ctx.format);
    let input: &mut dyn Read = &mut *ctx.input;
    let out: &mut dyn Write = &mut *ctx.out;
    let mut all_ok = true;
    let mut n = 0usize;
    let mut each = |item: Item| -> Result<(), CommandError> {
        n += 1;
        let (digest, expl) = match item {
            Item::Digest(d) => (d, None),
            Item::Message(m) => match explain(&m) {
                Ok(e) => (e.digest.to_string(), Some(Ok(e))),
                Err(e) => (String::new(), Some(Err(e))),
            },
        };
        let views = if digest.is_empty() {
            Vec::new()
        } else {
            let checks = client.query_all(Op::Check, Some(&digest));
            let infos = client.query_all(Op::Info, Some(&digest));
            client
                .servers
                .iter()
                .zip(checks.iter().zip(&infos))
                .map(|(s, (c, i))| ServerView {
                    server: s.clone(),
                    check: check_view(c),
                    info: info_view(i),
                })
                .collect()
        };
        all_ok &= views.iter().all(ServerView::ok) && !matches!(expl, Some(Err(_)));
        let report = Report {
            n,
            digest: &digest,
            expl: expl.as_ref(),
            views: &views,
            local: local.as_ref().map(|l| l.contains(&digest)),
            r,
            w,
        };
        let text = match format {
            Format::Text => report.text(),
            Format::Json => format!("{}\n", report.json()),
        };
        out.write_all(text.as_bytes()).map_err(CommandError::Output)
    };
    match style {
        Style::Msg => {
            let mut data = Vec::new();
            input.read_to_end(&mut data).map_err(InputError::Read)?;
            each(Item::Message(data))?;
        }
        Style::Mbox => {
            for msg in MboxReader::new(BufReader::with_capacity(1 << 16, input)) {
                each(Item::Message(msg.map_err(InputError::Read)?))?;
            }
        }
        Style::Digests => {
            for d in digests_style_lines(BufReader::new(input)) {
                let d = d.map_err(InputError::Read)?;
                if !d.is_empty() {
                    each(Item::Digest(d))?;
                }
            }
        }
    }
    Ok(all_ok)
}

/// Everything printed about one message.
struct Report<'a> {
    n: usize,
    digest: &'a str,
    expl: Option<&'a Result<Explanation, DigestError>>,
    views: &'a [ServerView],
    local: Option<bool>,
    r: i64,
    w: i64,
}

impl Report<'_> {
    fn text(&self) -> String {
        let mut t = format!("message {}\n", self.n);
        let push = |t: &mut String, s: String| {
            t.push_str("  ");
            t.push_str(&s);
            t.push('\n');
        };
        match self.expl {
            Some(Err(e)) => {
                push(&mut t, format!("error: cannot digest this message: {e}"));
                return t;
            }
            None => push(
                &mut t,
                format!(
                    "digest: {} (given as a digest: no message text to explain)",
                    printable(self.digest, 80)
                ),
            ),
            Some(Ok(e)) => {
                push(&mut t, format!("digest: {}", self.digest));
                self.text_lines(e, &mut t);
            }
        }
        for v in self.views {
            push(&mut t, server_text(v));
        }
        match self.local {
            Some(true) => push(
                &mut t,
                "local whitelist: listed (check answers 0 reports for it without asking the servers)"
                    .into(),
            ),
            Some(false) => push(&mut t, "local whitelist: not listed".into()),
            None => push(&mut t, "local whitelist: none configured".into()),
        }
        for w in self.warnings() {
            push(&mut t, format!("warning ({}): {}", w.code(), w.text()));
        }
        push(&mut t, format!("verdict: {}", self.verdict()));
        t.push('\n');
        t
    }

    fn text_lines(&self, e: &Explanation, t: &mut String) {
        let what = match &e.sampling {
            Sampling::Empty => format!(
                "no line hashed: no line of text ({} looked at) kept 8 or more characters",
                e.source_lines
            ),
            Sampling::All => format!(
                "all {} usable lines are hashed ({} lines of text)",
                e.kept, e.source_lines
            ),
            Sampling::Sampled { used, .. } => format!(
                "{} of {} usable lines are hashed ({} lines of text)",
                used.len(),
                e.kept,
                e.source_lines
            ),
        };
        let colon = if e.lines.is_empty() { "" } else { ":" };
        t.push_str(&format!("  {what}{colon}\n"));
        for l in &e.lines {
            t.push_str(&format!(
                "    usable line {}: part {} line {}: {}\n      hashed as {}\n",
                l.index + 1,
                l.part,
                l.line,
                quoted(&l.source, usize::MAX),
                quoted(&String::from_utf8_lossy(&l.normalized), usize::MAX)
            ));
        }
        if e.removed.total() > 0 {
            let rm = &e.removed;
            let mut parts = Vec::new();
            for (rule, n) in [
                (Rule::LongWord, rm.long_words),
                (Rule::Address, rm.addresses),
                (Rule::Url, rm.urls),
            ] {
                if n == 0 {
                    continue;
                }
                let what = match rule {
                    Rule::LongWord => "word(s) of 10+ characters",
                    Rule::Address => "address-like word(s) (x@y)",
                    Rule::Url => "URL-like word ending(s) (scheme:rest)",
                };
                let ex: Vec<String> = rm
                    .examples
                    .iter()
                    .filter(|x| x.rule == rule)
                    .map(|x| quoted(&x.text, usize::MAX))
                    .collect();
                parts.push(format!("{n} {what}, e.g. {}", ex.join(", ")));
            }
            t.push_str(&format!("  removed before hashing: {}\n", parts.join("; ")));
        }
    }

    /// The message's warnings; for a digest given as such, the one that
    /// needs no text (the empty digest).
    fn warnings(&self) -> Vec<Warning> {
        match self.expl {
            Some(Ok(e)) => e.warnings.clone(),
            None if self.digest == pyzor_digest::EMPTY_DIGEST => vec![Warning::EmptyDigest],
            _ => Vec::new(),
        }
    }

    /// One sentence a person can act on.
    fn verdict(&self) -> String {
        if matches!(self.expl, Some(Err(_))) {
            return "no digest: Pyzor 1.1.2 cannot digest this message either".into();
        }
        if self.local == Some(true) {
            return "covered by your local whitelist: `pyzor check` never reports it as spam here"
                .into();
        }
        let mut listed = Vec::new();
        let mut whitelisted = Vec::new();
        let mut failed = Vec::new();
        for v in self.views {
            match v.counts() {
                Some((_, wl)) if wl > self.w => whitelisted.push(v.server.to_string()),
                Some((c, _)) if c > self.r => listed.push(format!("{} ({c} reports)", v.server)),
                Some(_) => {}
                None => failed.push(v.server.to_string()),
            }
        }
        let empty = self.digest == pyzor_digest::EMPTY_DIGEST;
        let mut s = if !whitelisted.is_empty() {
            format!(
                "whitelisted on {} (WL-Count above {}): `pyzor check` treats it as not spam",
                whitelisted.join(", "),
                self.w
            )
        } else if !listed.is_empty() {
            format!(
                "listed as spam on {}, above the report threshold (-r {}): `pyzor check` flags it",
                listed.join(", "),
                self.r
            )
        } else {
            format!(
                "not listed on any server that answered (no server has more than {} reports)",
                self.r
            )
        };
        if empty && !listed.is_empty() {
            s.push_str("; but this is the empty-body digest, shared by every message without usable text: the reports are not about this message");
        } else if !listed.is_empty() {
            s.push_str("; if it is not spam, ask the server's operator to whitelist the digest, or add it to your local whitelist (`pyzor local_whitelist`)");
        }
        if !failed.is_empty() {
            s.push_str(&format!(
                "; no usable answer from {} (see `pyzor doctor`)",
                failed.join(", ")
            ));
        }
        s
    }

    fn json(&self) -> Value {
        let servers: Vec<Value> = self.views.iter().map(server_json).collect();
        let mut obj = json!({
            "message": self.n,
            "digest": if self.digest.is_empty() { Value::Null } else { Value::from(self.digest) },
            "servers": servers,
            "local_whitelist": self.local,
            "verdict": self.verdict(),
        });
        match self.expl {
            None => obj["input"] = "digest".into(),
            Some(Err(e)) => obj["error"] = e.to_string().into(),
            Some(Ok(e)) => {
                obj["input"] = "message".into();
                obj["lines"] = e
                    .lines
                    .iter()
                    .map(|l| {
                        json!({
                            "index": l.index,
                            "part": l.part,
                            "line": l.line,
                            "source": l.source,
                            "hashed": String::from_utf8_lossy(&l.normalized),
                        })
                    })
                    .collect();
                obj["kept_lines"] = e.kept.into();
                obj["text_lines"] = e.source_lines.into();
                obj["sampling"] = match &e.sampling {
                    Sampling::Empty => json!({"kind": "empty"}),
                    Sampling::All => json!({"kind": "all"}),
                    Sampling::Sampled { used, skipped } => {
                        json!({"kind": "sampled", "used": used, "skipped": skipped})
                    }
                };
                obj["removed"] = json!({
                    "long_word": e.removed.long_words,
                    "address": e.removed.addresses,
                    "url": e.removed.urls,
                    "examples": e.removed.examples.iter()
                        .map(|x| json!({"rule": x.rule.code(), "text": x.text}))
                        .collect::<Vec<_>>(),
                });
            }
        }
        obj["warnings"] = self
            .warnings()
            .iter()
            .map(|w| json!({"code": w.code().as_str(), "text": w.text()}))
            .collect();
        obj
    }
}

fn server_text(v: &ServerView) -> String {
    let s = &v.server;
    match (&v.check, &v.info) {
        (Err(c), Err(i)) if c == i => format!("{s}: no usable answer: {c}"),
        (Err(c), Err(i)) => format!("{s}: no usable answer: check {c}, info {i}"),
        (check, info) => {
            let (count, wl) = match (check, info) {
                (Ok((c, w)), _) => (Some(*c), Some(*w)),
                (Err(_), Ok(r)) => (r.count, r.wl_count),
                _ => (None, None),
            };
            let mut t = format!(
                "{s}: reported {} time(s), whitelisted {} time(s)",
                count.map_or("?".into(), |c| c.to_string()),
                wl.map_or("?".into(), |c| c.to_string())
            );
            match info {
                Ok(r) => t.push_str(&format!(
                    "; first report {}, last report {}; first whitelisting {}, last {}",
                    when(r.entered),
                    when(r.updated),
                    when(r.wl_entered),
                    when(r.wl_updated)
                )),
                Err(e) => t.push_str(&format!("; dates unknown: info failed {e}")),
            }
            if let Err(e) = check {
                t.push_str(&format!("; check failed {e}"));
            }
            t
        }
    }
}

fn server_json(v: &ServerView) -> Value {
    let mut o = json!({"server": v.server.to_string(), "ok": v.ok()});
    match &v.check {
        Ok((c, w)) => {
            o["count"] = (*c).into();
            o["wl_count"] = (*w).into();
        }
        Err(e) => o["check_error"] = e.clone().into(),
    }
    match &v.info {
        Ok(r) => {
            for (k, x) in [
                ("info_count", r.count),
                ("entered", r.entered),
                ("updated", r.updated),
                ("info_wl_count", r.wl_count),
                ("wl_entered", r.wl_entered),
                ("wl_updated", r.wl_updated),
            ] {
                o[k] = x.into();
            }
        }
        Err(e) => o["info_error"] = e.clone().into(),
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_for_people() {
        assert_eq!(when(Some(0)), "never");
        assert_eq!(when(Some(-1)), "never");
        assert_eq!(when(None), "unknown");
    }
}
