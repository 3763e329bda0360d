//! The client's commands (docs/protocol.md §7), mirroring the reference's
//! `scripts/pyzor`: [`dispatch`] runs one by name.
//!
//! | module | concern |
//! | --- | --- |
//! | this one | the commands: input, requests, local whitelist |
//! | `query` | asking every server, several digests at once |
//! | `output` | what is printed per answer (text or JSON), Python reprs, `ctime` |
//! | `exit` | the flags the exit status is computed from |
//! | `explain` | `pyzor explain` (ours): why a message has its digest and counts |
//! | `doctor` | `pyzor doctor` (ours): servers, account, clock skew, files |

mod doctor;
mod exit;
mod explain;
mod output;
mod query;

use std::io::{Read, Write};
use std::path::PathBuf;

use crate::digester::{self, InputError, Style};
use crate::net::Outcome;
pub use output::Format;
use output::Runner;
use pyzor_config::client::{self as files, ClientConfig, ClientConfigError};
use pyzor_protocol::wire::client::parse_reply;
use pyzor_protocol::wire::Op;
pub use query::Client;
use query::WINDOW;

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
        "explain" => explain::run(ctx)?,
        "doctor" => doctor::run(ctx)?,
        _ => return Ok(None),
    };
    Ok(Some(ok))
}

fn ping(ctx: &mut Context<'_>) -> Result<bool, CommandError> {
    let mut runner = Runner::new(Op::Ping, ctx.format, 0, 0);
    let outcomes = ctx.client.query_all(Op::Ping, None);
    let mut text = String::new();
    runner.handle_all(&ctx.client.servers, None, &outcomes, false, &mut text);
    ctx.write(&text)?;
    Ok(runner.all_ok())
}

fn info(ctx: &mut Context<'_>) -> Result<bool, CommandError> {
    let digests = ctx.digests()?;
    let mut runner = Runner::new(Op::Info, ctx.format, 0, 0);
    let digests = non_empty(&digests);
    for chunk in digests.chunks(WINDOW) {
        let results = ctx.client.query_many(Op::Info, chunk);
        let mut text = String::new();
        for (d, outcomes) in chunk.iter().zip(&results) {
            runner.handle_all(&ctx.client.servers, Some(d), outcomes, false, &mut text);
        }
        ctx.write(&text)?;
    }
    Ok(runner.all_ok())
}

/// `check` and `pong`. For check, digests in the local whitelist get the
/// reference's fake `(200, 'OK')\t0\t0` line per server (B9, kept: parsers
/// read it), printed before the real results as the reference does, and do
/// not count for the exit status.
fn check_like(ctx: &mut Context<'_>, op: Op) -> Result<bool, CommandError> {
    let r = ctx.settings.report_threshold()?;
    let w = ctx.settings.whitelist_threshold()?;
    let local = if op == Op::Check {
        local_whitelist_entries(ctx)?.unwrap_or_default()
    } else {
        Default::default()
    };
    let digests = ctx.digests()?;
    let mut runner = Runner::new(op, ctx.format, r, w);
    let mut mock = Runner::new(op, ctx.format, r, w);
    let mut mock_text = String::new();
    let mut real_text = String::new();
    let mut remote: Vec<&str> = Vec::new();
    for d in non_empty(&digests) {
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
            runner.handle_all(
                &ctx.client.servers,
                Some(d),
                outcomes,
                false,
                &mut real_text,
            );
        }
    }
    ctx.write(&mock_text)?;
    ctx.write(&real_text)?;
    Ok(runner.check_ok())
}

/// The entries of the local whitelist file (`None` when `LocalWhitelist`
/// is unset; a missing file has none), as the reference's `check` reads
/// them.
fn local_whitelist_entries(
    ctx: &Context<'_>,
) -> Result<Option<std::collections::HashSet<String>>, CommandError> {
    let Some(p) = &ctx.settings.local_whitelist else {
        return Ok(None);
    };
    pyzor_config::client::read_client_file(p)
        .map(|t| Some(files::parse_local_whitelist(&t)))
        .map_err(|source| CommandError::Whitelist {
            path: p.clone(),
            source,
        })
}

/// `report` and `whitelist` print per message, so on an undigestible
/// message the earlier messages' lines are out (and sent) before the
/// error, as in the reference.
fn report_like(ctx: &mut Context<'_>, op: Op) -> Result<bool, CommandError> {
    let (digests, failure) = ctx.digests_partial()?;
    let mut all_ok = true;
    let digests = non_empty(&digests);
    for chunk in digests.chunks(WINDOW) {
        let results = ctx.client.query_many(op, chunk);
        let mut text = String::new();
        for (d, outcomes) in chunk.iter().zip(&results) {
            let mut runner = Runner::new(op, ctx.format, 0, 0);
            runner.handle_all(&ctx.client.servers, Some(d), outcomes, false, &mut text);
            all_ok &= runner.all_ok();
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
    let text = pyzor_config::client::read_client_file(&path).map_err(err)?;
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
/// The digests to ask for: the reference skips empty input lines.
fn non_empty(digests: &[String]) -> Vec<&str> {
    digests
        .iter()
        .map(String::as_str)
        .filter(|d| !d.is_empty())
        .collect()
}
