//! The client's commands and their output (docs/protocol.md §7,
//! docs/field-notes.md §5.13), mirroring the reference's `scripts/pyzor` and
//! the `ClientRunner` classes of `pyzor/client.py`.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::digester::{self, InputError, Style};
use crate::net::{self, Outcome};
use crate::output::{ctime, head_tuple};
use pyzor_config::client::{self as files, Accounts, ClientConfig, ClientConfigError, ServerAddr};
use pyzor_protocol::wire::client::parse_reply;
use pyzor_protocol::wire::Op;

/// A command could not run at all (the reference would crash with a
/// traceback; we print this message and exit 1).
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Bad input or input style.
    #[error(transparent)]
    Input(#[from] InputError),
    /// Bad setting.
    #[error(transparent)]
    Settings(#[from] ClientConfigError),
    /// Writing the output failed.
    #[error("cannot write output: {0}")]
    Output(std::io::Error),
    /// The local whitelist file cannot be read or written.
    #[error("local whitelist {path}: {source}")]
    Whitelist {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `LocalWhitelist` is set to an empty value (the reference crashes
    /// opening `""`).
    #[error("no local whitelist file: LocalWhitelist is empty; set it in the config file or with --local-whitelist")]
    NoLocalWhitelist,
    /// `genkey` failed.
    #[error(transparent)]
    Genkey(#[from] crate::genkey::GenkeyError),
}

/// The servers, accounts and timeout used for network commands.
#[derive(Debug, Clone)]
pub struct Client {
    /// Servers in servers-file order.
    pub servers: Vec<ServerAddr>,
    /// Accounts by (host, port) as written.
    pub accounts: Accounts,
    /// Reply timeout per request.
    pub timeout: Duration,
}

impl Client {
    /// Ask every server concurrently; results in servers order
    /// (B8: the reference prints in completion order — nondeterministic —
    /// we print in the servers file's order).
    pub fn query_all(&self, op: Op, digest: Option<&str>) -> Vec<Outcome> {
        let digests: Vec<&str> = digest.into_iter().collect();
        let one = |s: &ServerAddr| {
            let account = self.accounts.get(&(s.host.clone(), s.port));
            net::request(s, op, &digests, account, self.timeout)
        };
        if self.servers.len() == 1 {
            return vec![one(&self.servers[0])];
        }
        std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .servers
                .iter()
                .map(|s| scope.spawn(move || one(s)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| Outcome::Error {
                        code: 400,
                        diag: "internal error while querying the server".into(),
                    })
                })
                .collect()
        })
    }
}

/// Digests in flight at once for multi-message input (mbox, digests).
/// The reference sends one digest after the other; output order and exit
/// status do not depend on this.
pub const WINDOW: usize = 8;

impl Client {
    /// [`Client::query_all`] for several digests at once (up to [`WINDOW`]
    /// in parallel); one result vector per digest, in input order.
    pub fn query_many(&self, op: Op, digests: &[&str]) -> Vec<Vec<Outcome>> {
        if digests.len() <= 1 {
            return digests
                .iter()
                .map(|d| self.query_all(op, Some(d)))
                .collect();
        }
        let mut out = Vec::with_capacity(digests.len());
        for chunk in digests.chunks(WINDOW) {
            std::thread::scope(|scope| {
                let handles: Vec<_> = chunk
                    .iter()
                    .map(|d| scope.spawn(move || self.query_all(op, Some(d))))
                    .collect();
                for h in handles {
                    out.push(h.join().unwrap_or_else(|_| {
                        vec![
                            Outcome::Error {
                                code: 400,
                                diag: "internal error while querying the servers".into(),
                            };
                            self.servers.len()
                        ]
                    }));
                }
            });
        }
        out
    }
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The reference's text.
    Text,
    /// One JSON object per line (`--json`).
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Plain,
    Check,
    Info,
}

/// The reference's `ClientRunner`/`CheckClientRunner`/`InfoClientRunner`
/// state: per-reply output and the flags the exit status is computed from.
struct Runner {
    kind: Kind,
    op: Op,
    format: Format,
    all_ok: bool,
    found_hit: bool,
    whitelisted: bool,
    r_threshold: i64,
    w_threshold: i64,
}

fn json_int(v: i64) -> Value {
    Value::from(v)
}

const INFO_KEYS: [&str; 6] = [
    "Count",
    "Entered",
    "Updated",
    "WL-Count",
    "WL-Entered",
    "WL-Updated",
];

impl Runner {
    fn new(op: Op, format: Format, r: i64, w: i64) -> Runner {
        let kind = match op {
            Op::Check | Op::Pong => Kind::Check,
            Op::Info => Kind::Info,
            _ => Kind::Plain,
        };
        Runner {
            kind,
            op,
            format,
            all_ok: true,
            found_hit: false,
            whitelisted: false,
            r_threshold: r,
            w_threshold: w,
        }
    }

    /// Exit status rule for check/pong (docs/protocol.md §7).
    fn check_ok(&self) -> bool {
        self.all_ok && self.found_hit && !self.whitelisted
    }

    fn error_text(&mut self, server: &ServerAddr, code: i64, diag: &str) -> String {
        self.all_ok = false;
        log_error(server, code, diag);
        format!("{server}\t{}\n", head_tuple(code, diag))
    }

    /// Format one outcome; updates the flags.
    fn handle(
        &mut self,
        server: &ServerAddr,
        digest: Option<&str>,
        outcome: &Outcome,
        local: bool,
    ) -> String {
        match self.format {
            Format::Text => self.handle_text(server, outcome),
            Format::Json => {
                let mut obj = self.handle_json(server, outcome);
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

    fn handle_text(&mut self, server: &ServerAddr, outcome: &Outcome) -> String {
        let reply = match outcome {
            Outcome::Error { code, diag } => return self.error_text(server, *code, diag),
            Outcome::Reply(r) => r,
        };
        let ok = reply.is_ok();
        let head = head_tuple(reply.code, &reply.diag);
        match self.kind {
            Kind::Plain => {
                if !ok {
                    self.all_ok = false;
                }
                format!("{server}\t{head}\n")
            }
            Kind::Check => {
                if !ok {
                    self.all_ok = false;
                    return format!("{server}\t{head}\t\n");
                }
                // Reference crash (KeyError/ValueError → AttributeError)
                // on a 200 without usable counts: an error line instead.
                let (Some(count), Some(wl)) = (reply.get_int("Count"), reply.get_int("WL-Count"))
                else {
                    return self.error_text(
                        server,
                        400,
                        "response has no valid Count and WL-Count",
                    );
                };
                self.count_flags(count, wl);
                format!("{server}\t{head}\t{count}\t{wl}\n")
            }
            Kind::Info => {
                if !ok {
                    self.all_ok = false;
                    return format!("{server}\t{head}\n\n");
                }
                let mut text = format!("{server}\t{head}\n");
                for key in INFO_KEYS {
                    if reply.get(key).is_none() {
                        continue;
                    }
                    let Some(val) = reply.get_int(key) else {
                        return self.error_text(
                            server,
                            400,
                            &format!("response has an invalid {key}"),
                        );
                    };
                    let shown = if key.contains("Count") {
                        val.to_string()
                    } else if val == -1 {
                        "Never".to_string()
                    } else {
                        match ctime(val) {
                            Some(t) => t,
                            None => {
                                return self.error_text(
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
        }
    }

    fn count_flags(&mut self, count: i64, wl: i64) {
        if wl > self.w_threshold {
            self.whitelisted = true;
        } else if count > self.r_threshold {
            self.found_hit = true;
        }
    }

    fn handle_json(&mut self, server: &ServerAddr, outcome: &Outcome) -> Map<String, Value> {
        let mut obj = Map::new();
        let reply = match outcome {
            Outcome::Error { code, diag } => {
                self.all_ok = false;
                log_error(server, *code, diag);
                obj.insert("code".into(), json_int(*code));
                obj.insert("diag".into(), Value::from(diag.as_str()));
                return obj;
            }
            Outcome::Reply(r) => r,
        };
        obj.insert("code".into(), json_int(reply.code));
        obj.insert("diag".into(), Value::from(reply.diag.as_str()));
        if !reply.is_ok() {
            self.all_ok = false;
            return obj;
        }
        let keys: &[&str] = match self.kind {
            Kind::Plain => &[],
            Kind::Check => &INFO_KEYS[..0],
            Kind::Info => &INFO_KEYS,
        };
        if self.kind == Kind::Check {
            match (reply.get_int("Count"), reply.get_int("WL-Count")) {
                (Some(c), Some(w)) => {
                    self.count_flags(c, w);
                    obj.insert("count".into(), json_int(c));
                    obj.insert("wl_count".into(), json_int(w));
                }
                _ => {
                    self.all_ok = false;
                    obj.insert("code".into(), json_int(400));
                    obj.insert(
                        "diag".into(),
                        Value::from("response has no valid Count and WL-Count"),
                    );
                }
            }
        }
        for key in keys {
            if let Some(v) = reply.get_int(key) {
                obj.insert(key.to_ascii_lowercase().replace('-', "_"), json_int(v));
            }
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
        pyzor_protocol::py::py_repr_str(&server.host),
        server.port
    );
}

/// Digests read before an input error, and the error.
type Partial = (Vec<String>, Option<InputError>);

/// Everything a command needs.
pub struct Context<'a> {
    /// Resolved settings.
    pub settings: &'a ClientConfig,
    /// Network side.
    pub client: &'a Client,
    /// Standard input.
    pub input: &'a mut dyn Read,
    /// Standard output.
    pub out: &'a mut dyn Write,
    /// Output format.
    pub format: Format,
}

impl Context<'_> {
    fn style(&self) -> Result<Style, InputError> {
        Style::parse(&self.settings.style)
    }

    /// All digests of the input, or the error the reference would stop
    /// with (after handling the earlier messages: see [`Partial`]).
    fn digests(&mut self) -> Result<Vec<String>, InputError> {
        match self.digests_partial()? {
            (d, None) => Ok(d),
            (_, Some(e)) => Err(e),
        }
    }

    fn digests_partial(&mut self) -> Result<Partial, InputError> {
        let style = self.style()?;
        Ok(digester::read_digests(style, self.input))
    }

    fn write(&mut self, s: &str) -> Result<(), CommandError> {
        self.out
            .write_all(s.as_bytes())
            .map_err(CommandError::Output)
    }
}

/// Names of the reference's commands.
pub const COMMANDS: [&str; 11] = [
    "check",
    "report",
    "whitelist",
    "info",
    "ping",
    "pong",
    "digest",
    "predigest",
    "genkey",
    "local_whitelist",
    "local_unwhitelist",
];

/// Run one command. `Ok(None)` = unknown command (logged CRITICAL, as the
/// reference); `Ok(Some(ok))` = the command's success flag (false → exit 1).
pub fn dispatch(name: &str, ctx: &mut Context<'_>) -> Result<Option<bool>, CommandError> {
    let ok = match name {
        "ping" => ping(ctx)?,
        "pong" => check_like(ctx, Op::Pong)?,
        "check" => check_like(ctx, Op::Check)?,
        "info" => info(ctx)?,
        "report" => report_like(ctx, Op::Report)?,
        "whitelist" => report_like(ctx, Op::Whitelist)?,
        "digest" => digest(ctx)?,
        "predigest" => predigest(ctx)?,
        "genkey" => {
            let mut tty = crate::genkey::Prompter::from_stdin();
            match crate::genkey::genkey(&mut tty)? {
                Some(text) => {
                    ctx.write(&text)?;
                    true
                }
                None => false,
            }
        }
        "local_whitelist" => local_whitelist(ctx, true)?,
        "local_unwhitelist" => local_whitelist(ctx, false)?,
        _ => return Ok(None),
    };
    Ok(Some(ok))
}

fn ping(ctx: &mut Context<'_>) -> Result<bool, CommandError> {
    let mut runner = Runner::new(Op::Ping, ctx.format, 0, 0);
    let outcomes = ctx.client.query_all(Op::Ping, None);
    let mut text = String::new();
    for (server, o) in ctx.client.servers.iter().zip(&outcomes) {
        text.push_str(&runner.handle(server, None, o, false));
    }
    ctx.write(&text)?;
    Ok(runner.all_ok)
}

fn info(ctx: &mut Context<'_>) -> Result<bool, CommandError> {
    let digests = ctx.digests()?;
    let mut runner = Runner::new(Op::Info, ctx.format, 0, 0);
    let digests: Vec<&str> = digests
        .iter()
        .map(String::as_str)
        .filter(|d| !d.is_empty())
        .collect();
    for chunk in digests.chunks(WINDOW) {
        let results = ctx.client.query_many(Op::Info, chunk);
        let mut text = String::new();
        for (d, outcomes) in chunk.iter().zip(&results) {
            for (server, o) in ctx.client.servers.iter().zip(outcomes) {
                text.push_str(&runner.handle(server, Some(d), o, false));
            }
        }
        ctx.write(&text)?;
    }
    Ok(runner.all_ok)
}

/// `check` and `pong`. For check, digests in the local whitelist get the
/// reference's fake `(200, 'OK')\t0\t0` line per server (B9, kept: parsers
/// read it), printed before the real results as the reference does, and do
/// not count for the exit status.
fn check_like(ctx: &mut Context<'_>, op: Op) -> Result<bool, CommandError> {
    let r = ctx.settings.report_threshold()?;
    let w = ctx.settings.whitelist_threshold()?;
    let local = if op == Op::Check {
        match &ctx.settings.local_whitelist {
            Some(p) => files::read_client_file(p)
                .map(|t| files::parse_local_whitelist(&t))
                .map_err(|source| CommandError::Whitelist {
                    path: p.clone(),
                    source,
                })?,
            None => Default::default(),
        }
    } else {
        Default::default()
    };
    let digests = ctx.digests()?;
    let mut runner = Runner::new(op, ctx.format, r, w);
    let mut mock = Runner::new(op, ctx.format, r, w);
    let mut mock_text = String::new();
    let mut real_text = String::new();
    let mut remote: Vec<&str> = Vec::new();
    for d in digests.iter().map(String::as_str).filter(|d| !d.is_empty()) {
        if !local.contains(d) {
            remote.push(d);
            continue;
        }
        log::debug!("digest {d} is in the local whitelist");
        // The reference's `Client._mock_check` reply.
        let fake = match parse_reply(
            b"Code: 200\nDiag: OK\nPV: 2.1\nThread: 1024\nCount: 0\nWL-Count: 0",
            1024,
        ) {
            Ok(r) => Outcome::Reply(r),
            Err(e) => Outcome::Error {
                code: 400,
                diag: e.to_string(),
            },
        };
        for server in &ctx.client.servers {
            mock_text.push_str(&mock.handle(server, Some(d), &fake, true));
        }
    }
    // The reference prints all local answers before the real ones.
    for chunk in remote.chunks(WINDOW) {
        let results = ctx.client.query_many(op, chunk);
        for (d, outcomes) in chunk.iter().zip(&results) {
            for (server, o) in ctx.client.servers.iter().zip(outcomes) {
                real_text.push_str(&runner.handle(server, Some(d), o, false));
            }
        }
    }
    ctx.write(&mock_text)?;
    ctx.write(&real_text)?;
    Ok(runner.check_ok())
}

/// `report` and `whitelist` print per message, so on an undigestible
/// message the earlier messages' lines are out (and sent) before the
/// error, as in the reference.
fn report_like(ctx: &mut Context<'_>, op: Op) -> Result<bool, CommandError> {
    let (digests, failure) = ctx.digests_partial()?;
    let mut all_ok = true;
    let digests: Vec<&str> = digests
        .iter()
        .map(String::as_str)
        .filter(|d| !d.is_empty())
        .collect();
    for chunk in digests.chunks(WINDOW) {
        let results = ctx.client.query_many(op, chunk);
        let mut text = String::new();
        for (d, outcomes) in chunk.iter().zip(&results) {
            let mut runner = Runner::new(op, ctx.format, 0, 0);
            for (server, o) in ctx.client.servers.iter().zip(outcomes) {
                text.push_str(&runner.handle(server, Some(d), o, false));
            }
            all_ok &= runner.all_ok;
        }
        ctx.write(&text)?;
    }
    if let Some(e) = failure {
        return Err(e.into());
    }
    Ok(all_ok)
}

/// `digest` prints as it goes: the digests before an undigestible message
/// are printed, then the error (as the reference).
fn digest(ctx: &mut Context<'_>) -> Result<bool, CommandError> {
    let (digests, failure) = ctx.digests_partial()?;
    for d in digests {
        if !d.is_empty() {
            ctx.write(&format!("{d}\n"))?;
        }
    }
    match failure {
        Some(e) => Err(e.into()),
        None => Ok(true),
    }
}

/// `predigest` always reads one message (msg style), as the reference.
fn predigest(ctx: &mut Context<'_>) -> Result<bool, CommandError> {
    let mut data = Vec::new();
    ctx.input.read_to_end(&mut data).map_err(InputError::Read)?;
    let mut text = Vec::new();
    for line in digester::predigest_lines(&data)? {
        text.extend_from_slice(&line);
        text.push(b'\n');
    }
    ctx.out.write_all(&text).map_err(CommandError::Output)?;
    Ok(true)
}

/// `local_whitelist` / `local_unwhitelist`: the file keeps its other lines
/// and comments (B14).
fn local_whitelist(ctx: &mut Context<'_>, add: bool) -> Result<bool, CommandError> {
    let Some(path) = ctx.settings.local_whitelist.clone() else {
        return Err(CommandError::NoLocalWhitelist);
    };
    let err = |source| CommandError::Whitelist {
        path: path.clone(),
        source,
    };
    let text = files::read_client_file(&path).map_err(err)?;
    let current = files::parse_local_whitelist(&text);
    let digests: Vec<String> = ctx
        .digests()?
        .into_iter()
        .filter(|d| !d.is_empty())
        .collect();
    for d in &digests {
        match (add, current.contains(d)) {
            (true, true) => crate::critical!("Digest {d} already whitelisted locally"),
            (false, false) => crate::critical!("Digest {d} is not whitelisted."),
            _ => {}
        }
    }
    let new = if add {
        files::rewrite_local_whitelist(&text, &digests, &[])
    } else {
        files::rewrite_local_whitelist(&text, &[], &digests)
    };
    std::fs::write(&path, new).map_err(err)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(r.all_ok);
        let bad = reply("Code: 200\nDiag: OK\nPV: 2.1\nThread: 2000\nCount: x\n\n");
        assert!(r
            .handle(&server(), Some("d"), &bad, false)
            .starts_with("h:1\t(400, "));
        assert!(!r.all_ok);
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
}
