//! The client's commands and their output (wire-protocol.md §7,
//! field-survey.md §5.13), mirroring the reference's `scripts/pyzor` and
//! the `ClientRunner` classes of `pyzor/client.py`.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::digester::{self, InputError, Style};
use crate::files::{self, Accounts, ServerAddr};
use crate::net::{self, Outcome};
use crate::output::{ctime, head_tuple};
use crate::proto::{py_int, Op};
use crate::settings::{Settings, SettingsError};

/// A command could not run at all (the reference would crash with a
/// traceback; we print this message and exit 1).
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Bad input or input style.
    #[error(transparent)]
    Input(#[from] InputError),
    /// Bad setting.
    #[error(transparent)]
    Settings(#[from] SettingsError),
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
    r_threshold: i128,
    w_threshold: i128,
}

fn json_int(v: i128) -> Value {
    i64::try_from(v)
        .map(Value::from)
        .unwrap_or_else(|_| Value::String(v.to_string()))
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
    fn new(op: Op, format: Format, r: i128, w: i128) -> Runner {
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

    /// Exit status rule for check/pong (wire-protocol.md §7).
    fn check_ok(&self) -> bool {
        self.all_ok && self.found_hit && !self.whitelisted
    }

    fn error_text(&mut self, server: &ServerAddr, code: i128, diag: &str) -> String {
        self.all_ok = false;
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
        let code = py_int(reply.get("Code").unwrap_or_default()).unwrap_or(0);
        let diag = reply.get("Diag").unwrap_or_default();
        let ok = code == 200;
        let head = head_tuple(code, diag);
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
                let (Some(count), Some(wl)) = (
                    reply.get("Count").and_then(py_int),
                    reply.get("WL-Count").and_then(py_int),
                ) else {
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
                    let Some(raw) = reply.get(key) else { continue };
                    let Some(val) = py_int(raw) else {
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

    fn count_flags(&mut self, count: i128, wl: i128) {
        if wl > self.w_threshold {
            self.whitelisted = true;
        } else if count > self.r_threshold {
            self.found_hit = true;
        }
    }

    fn handle_json(&mut self, _server: &ServerAddr, outcome: &Outcome) -> Map<String, Value> {
        let mut obj = Map::new();
        let reply = match outcome {
            Outcome::Error { code, diag } => {
                self.all_ok = false;
                obj.insert("code".into(), json_int(*code));
                obj.insert("diag".into(), Value::from(diag.as_str()));
                return obj;
            }
            Outcome::Reply(r) => r,
        };
        let code = py_int(reply.get("Code").unwrap_or_default()).unwrap_or(0);
        obj.insert("code".into(), json_int(code));
        obj.insert(
            "diag".into(),
            Value::from(reply.get("Diag").unwrap_or_default()),
        );
        if code != 200 {
            self.all_ok = false;
            return obj;
        }
        let keys: &[&str] = match self.kind {
            Kind::Plain => &[],
            Kind::Check => &INFO_KEYS[..0],
            Kind::Info => &INFO_KEYS,
        };
        if self.kind == Kind::Check {
            match (
                reply.get("Count").and_then(py_int),
                reply.get("WL-Count").and_then(py_int),
            ) {
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
            if let Some(v) = reply.get(key).and_then(py_int) {
                obj.insert(key.to_ascii_lowercase().replace('-', "_"), json_int(v));
            }
        }
        obj
    }
}

/// Everything a command needs.
pub struct Context<'a> {
    /// Resolved settings.
    pub settings: &'a Settings,
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
        Style::parse(self.settings.get("Style"))
    }

    fn digests(&mut self) -> Result<Vec<String>, InputError> {
        let style = self.style()?;
        digester::read_digests(style, self.input)
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
    for d in digests.iter().filter(|d| !d.is_empty()) {
        let outcomes = ctx.client.query_all(Op::Info, Some(d));
        let mut text = String::new();
        for (server, o) in ctx.client.servers.iter().zip(&outcomes) {
            text.push_str(&runner.handle(server, Some(d), o, false));
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
    let r = ctx.settings.threshold("ReportThreshold")?;
    let w = ctx.settings.threshold("WhitelistThreshold")?;
    let local = if op == Op::Check {
        match ctx.settings.file("LocalWhitelist") {
            Some(p) => read_optional(&p)
                .map(|t| files::parse_local_whitelist(&t))
                .map_err(|source| CommandError::Whitelist { path: p, source })?,
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
    for d in digests.iter().filter(|d| !d.is_empty()) {
        if local.contains(d.as_str()) {
            log::debug!("digest {d} is in the local whitelist");
            let fake = Outcome::Reply(crate::proto::Reply::parse(
                b"Code: 200\nDiag: OK\nPV: 2.1\nThread: 1024\nCount: 0\nWL-Count: 0",
            ));
            for server in &ctx.client.servers {
                mock_text.push_str(&mock.handle(server, Some(d), &fake, true));
            }
        } else {
            let outcomes = ctx.client.query_all(op, Some(d));
            for (server, o) in ctx.client.servers.iter().zip(&outcomes) {
                real_text.push_str(&runner.handle(server, Some(d), o, false));
            }
        }
    }
    ctx.write(&mock_text)?;
    ctx.write(&real_text)?;
    Ok(runner.check_ok())
}

fn report_like(ctx: &mut Context<'_>, op: Op) -> Result<bool, CommandError> {
    let digests = ctx.digests()?;
    let mut all_ok = true;
    for d in digests.iter().filter(|d| !d.is_empty()) {
        let mut runner = Runner::new(op, ctx.format, 0, 0);
        let outcomes = ctx.client.query_all(op, Some(d));
        let mut text = String::new();
        for (server, o) in ctx.client.servers.iter().zip(&outcomes) {
            text.push_str(&runner.handle(server, Some(d), o, false));
        }
        ctx.write(&text)?;
        all_ok &= runner.all_ok;
    }
    Ok(all_ok)
}

fn digest(ctx: &mut Context<'_>) -> Result<bool, CommandError> {
    for d in ctx.digests()? {
        if !d.is_empty() {
            ctx.write(&format!("{d}\n"))?;
        }
    }
    Ok(true)
}

/// `predigest` always reads one message (msg style), as the reference.
fn predigest(ctx: &mut Context<'_>) -> Result<bool, CommandError> {
    let mut data = Vec::new();
    ctx.input.read_to_end(&mut data).map_err(InputError::Read)?;
    for line in digester::predigest_lines(&data)? {
        ctx.write(&format!("{line}\n"))?;
    }
    Ok(true)
}

fn read_optional(p: &std::path::Path) -> std::io::Result<String> {
    match std::fs::read(p) {
        Ok(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(e),
    }
}

/// `local_whitelist` / `local_unwhitelist`: the file keeps its other lines
/// and comments (B14).
fn local_whitelist(ctx: &mut Context<'_>, add: bool) -> Result<bool, CommandError> {
    let Some(path) = ctx.settings.file("LocalWhitelist") else {
        return Ok(true);
    };
    let err = |source| CommandError::Whitelist {
        path: path.clone(),
        source,
    };
    let text = read_optional(&path).map_err(err)?;
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
