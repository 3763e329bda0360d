//! `pyzord --check-config`: read everything pyzord reads at start (the
//! config file, already loaded by the caller, the passwd and access files),
//! open the engine and read from it once, and print what pyzord would run
//! with — or the problems, each naming the file (and line) and what to do.
//! Exit 0 when pyzord would start as configured, 1 otherwise. Nothing is
//! bound: it can run next to a live server (an LMDB environment held by
//! one is reported as such, naming its pid) and as systemd's
//! `ExecStartPre`.
//!
//! The DSN is shown masked (`EngineOptions::masked_dsn`): never the password.

use std::io::Write;
use std::path::Path;

use pyzor_config::server::DurabilityMode;
use pyzor_config::{load_access, load_passwd, ServerConfig};
use pyzor_protocol::auth::files::{parse_access, parse_passwd};
use pyzor_protocol::auth::Accounts;

use crate::daemon::privileges;

/// What to write instead of an invalid line of each file.
const PASSWD_FORM: &str = "write `user : key` (the key from `pyzor genkey`)";
const ACCESS_FORM: &str =
    "write `ops : users : allow` or `... : deny` (ops and users separated by spaces, or `all`)";

/// The longest line quoted from a file in a problem.
const MAX_QUOTE: usize = 120;
/// The most problems listed for one file; the rest are counted.
const MAX_PROBLEMS: usize = 20;

/// Run the check, writing the report to `out`; the exit status.
pub(crate) fn run(cfg: &ServerConfig, workers: usize, out: &mut dyn Write) -> i32 {
    let mut problems: Vec<String> = Vec::new();
    let mut show = |k: &str, v: String| {
        let _ = writeln!(out, "{k:<12} {v}");
    };
    let config = cfg.homedir.join("config");
    show(
        "config",
        if config.exists() {
            config.display().to_string()
        } else {
            format!("{} (not present: built-in defaults)", config.display())
        },
    );
    let opts = crate::engine_options(cfg, workers);
    show("engine", format!("{} {}", cfg.engine, opts.masked_dsn()));
    match crate::open_engine(cfg, workers) {
        Ok(engine) => match engine.get(&[b'0'; 40]) {
            Ok(_) => show("", "opened; a read answered".into()),
            Err(e) => problems.push(format!(
                "the {} engine ({}) opened but a read failed: {e}",
                cfg.engine,
                opts.masked_dsn()
            )),
        },
        Err(e) => problems.push(format!(
            "{e}; check that the database runs and answers, and the DSN (--dsn / DigestDB)"
        )),
    }
    show(
        "durability",
        match cfg.durability {
            DurabilityMode::Process => "process",
            DurabilityMode::Fsync => "fsync",
        }
        .into(),
    );
    show("workers", workers.to_string());
    match crate::net::listen_addr(&cfg.listen_address, cfg.port) {
        Ok(a) => show("udp", a.to_string()),
        Err(e) => problems.push(format!(
            "ListenAddress {:?} / Port {}: {e}; give an IP address (or a name that resolves)",
            cfg.listen_address, cfg.port
        )),
    }
    let h = &cfg.http;
    show(
        "http",
        match &h.address {
            None => "off".into(),
            Some(a) => format!(
                "{a}: /metrics{}{}",
                if h.api { ", lookup API /v1/" } else { "" },
                if h.requests {
                    ", whitelist-request page /"
                } else {
                    ""
                }
            ),
        },
    );
    let rl = &cfg.rate_limit;
    let per = |n: u32| {
        if n == 0 {
            "unlimited".to_owned()
        } else {
            format!("{n}/s")
        }
    };
    show(
        "rate limits",
        format!(
            "{} per network, reports/whitelists {}; networks IPv4 /{}, IPv6 /{}; {} network(s) exempt; {}",
            per(rl.read),
            per(rl.write),
            rl.v4_prefix,
            rl.v6_prefix,
            rl.allow.len(),
            if rl.log_only { "log only" } else { "enforced" }
        ),
    );
    for (name, file) in [("log", &cfg.log_file), ("usage log", &cfg.usage_log_file)] {
        match file {
            None => show(name, "none".into()),
            Some(p) => match std::fs::OpenOptions::new().create(true).append(true).open(p) {
                Ok(_) => show(name, p.display().to_string()),
                Err(e) => problems.push(format!(
                    "cannot open the {name} file {}: {e}; create its directory or fix its permissions",
                    p.display()
                )),
            },
        }
    }
    match privileges::resolve(cfg.user.as_deref(), cfg.group.as_deref()) {
        Ok(Some(id)) => show(
            "run as",
            format!("{} (uid {}, gid {})", id.label, id.uid, id.gid),
        ),
        Ok(None) => show("run as", "the user that starts pyzord".into()),
        Err(e) => problems.push(e.to_string()),
    }
    let accounts = check_passwd(cfg.passwd_file.as_deref(), &mut show, &mut problems);
    check_access(
        cfg.access_file.as_deref(),
        &accounts,
        &mut show,
        &mut problems,
    );
    if problems.is_empty() {
        let _ = writeln!(out, "OK: pyzord would start with these settings.");
        0
    } else {
        for p in &problems {
            let _ = writeln!(out, "PROBLEM: {p}");
        }
        1
    }
}

/// Problems of `path` found line by line with `parse` (the parser pyzord
/// uses, on one line at a time), as `path line N: warning; form`, then
/// the file-wide `warnings` no line produced.
fn line_problems(
    path: &Path,
    warnings: &[String],
    parse: &dyn Fn(&str) -> Vec<String>,
    form: &str,
    problems: &mut Vec<String>,
) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut seen = std::collections::HashSet::new();
    let mut found = Vec::new();
    for (n, line) in text.split_inclusive('\n').enumerate() {
        for w in parse(line) {
            let w = cut(&w);
            found.push(format!("{} line {}: {w}; {form}", path.display(), n + 1));
            seen.insert(w);
        }
    }
    for w in warnings {
        let w = cut(w);
        if !seen.contains(&w) {
            found.push(format!("{}: {w}", path.display()));
        }
    }
    let more = found.len().saturating_sub(MAX_PROBLEMS);
    found.truncate(MAX_PROBLEMS);
    problems.extend(found);
    if more > 0 {
        problems.push(format!("{}: {more} more problems", path.display()));
    }
}

/// `s` cut to `MAX_QUOTE` characters.
fn cut(s: &str) -> String {
    s.chars().take(MAX_QUOTE).collect()
}

fn check_passwd(
    path: Option<&Path>,
    show: &mut dyn FnMut(&str, String),
    problems: &mut Vec<String>,
) -> Accounts {
    match load_passwd(path) {
        Err(e) => {
            problems.push(e.to_string());
            Accounts::default()
        }
        Ok((accounts, existed, warnings)) => {
            let shown = path.map(|p| p.display().to_string()).unwrap_or_default();
            if existed {
                let users: Vec<&str> = accounts.users().collect();
                show(
                    "passwd",
                    format!("{shown}: {} account(s): {}", users.len(), users.join(", ")),
                );
                if let Some(p) = path {
                    line_problems(p, &warnings, &|l| parse_passwd(l).1, PASSWD_FORM, problems);
                }
            } else {
                show(
                    "passwd",
                    format!("{shown} (not present: the anonymous user only)"),
                );
            }
            accounts
        }
    }
}

fn check_access(
    path: Option<&Path>,
    accounts: &Accounts,
    show: &mut dyn FnMut(&str, String),
    problems: &mut Vec<String>,
) {
    match load_access(path, accounts) {
        Err(e) => problems.push(e.to_string()),
        Ok((acl, existed, warnings)) => {
            let shown = path.map(|p| p.display().to_string()).unwrap_or_default();
            let summary: Vec<String> = acl
                .summary()
                .into_iter()
                .map(|(user, ops)| {
                    if ops.is_empty() {
                        format!("{user}: nothing")
                    } else {
                        format!("{user}: {}", ops.join(" "))
                    }
                })
                .collect();
            let rules = if summary.is_empty() {
                "nothing is allowed to anybody (every request is refused with 403)".to_owned()
            } else {
                summary.join("; ")
            };
            if existed {
                show("access", format!("{shown}: {rules}"));
                if let Some(p) = path {
                    line_problems(
                        p,
                        &warnings,
                        &|l| parse_access(l, accounts).1,
                        ACCESS_FORM,
                        problems,
                    );
                }
            } else {
                show(
                    "access",
                    format!("{shown} (not present: the default ACL) {rules}"),
                );
            }
        }
    }
}
