//! `pyzor doctor` (ours, docs/client.md "doctor"): is the client set up
//! right? The home directory's files (permissions, lines the client
//! ignores, unknown config keys, the silent fallback to public.pyzor.org),
//! then for each configured server: reachable or not, round-trip time,
//! whether our account's signed requests are accepted, and the clock skew
//! between us and the server, estimated from signed pings whose `Time` is
//! moved against the server's ±300 s window.
//!
//! Exit status: 0 when nothing is wrong (notes are fine), 1 when anything
//! is reported as a warning or an error.

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use super::output::{printable, quoted};
use super::{CommandError, Context, Format};
use crate::net::{self, Outcome};
use pyzor_config::client::{self as files, Account, ServerAddr, DEFAULT_SERVER};
use pyzor_config::ini::Ini;
use pyzor_protocol::wire::Op;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    /// As it should be.
    Ok,
    /// Worth knowing, not wrong.
    Note,
    /// Something the client ignores or that weakens security.
    Warn,
    /// Something that does not work.
    Error,
}

impl Level {
    fn label(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Note => "note",
            Level::Warn => "WARNING",
            Level::Error => "ERROR",
        }
    }
}

/// One line of the report.
struct Finding {
    level: Level,
    /// What it is about: `home`, a file name, or `host:port`.
    topic: String,
    text: String,
    /// Extra fields for `--json`.
    data: serde_json::Value,
}

#[derive(Default)]
struct Findings(Vec<Finding>);

impl Findings {
    fn add(&mut self, level: Level, topic: impl Into<String>, text: impl Into<String>) {
        self.add_with(level, topic, text, serde_json::Value::Null);
    }

    fn add_with(
        &mut self,
        level: Level,
        topic: impl Into<String>,
        text: impl Into<String>,
        data: serde_json::Value,
    ) {
        self.0.push(Finding {
            level,
            topic: topic.into(),
            text: text.into(),
            data,
        });
    }
}

/// Findings of one kind listed per file; the rest are counted (a file of a
/// million bad lines gives a bounded report).
const MAX_LISTED: usize = 20;

impl Findings {
    /// Keep the first [`MAX_LISTED`] warnings about `topic`, then one line
    /// saying how many more there are.
    fn cap(&mut self, topic: &str) {
        let mut seen = 0usize;
        self.0.retain(|x| {
            if x.topic != topic || x.level != Level::Warn {
                return true;
            }
            seen += 1;
            seen <= MAX_LISTED
        });
        if seen > MAX_LISTED {
            self.add(
                Level::Warn,
                topic,
                format!("… and {} more such lines", seen - MAX_LISTED),
            );
        }
    }
}

/// The `[client]` keys the client reads (`scripts/pyzor`
/// `load_configuration` defaults; configparser lower-cases option names).
const CLIENT_KEYS: [&str; 8] = [
    "serversfile",
    "accountsfile",
    "localwhitelist",
    "logfile",
    "timeout",
    "style",
    "reportthreshold",
    "whitelistthreshold",
];

/// Longest piece of file text quoted in a finding.
const MAX_QUOTE: usize = 80;

fn quote(s: &str) -> String {
    quoted(s, MAX_QUOTE)
}

fn cut(s: &str) -> String {
    printable(s, MAX_QUOTE)
}

/// Run `pyzor doctor`.
pub(super) fn run(ctx: &mut Context<'_>) -> Result<bool, CommandError> {
    let mut f = Findings::default();
    home(ctx.settings.homedir.as_path(), &mut f);
    config(&ctx.settings.homedir.join("config"), &mut f);
    let servers_ok = servers_file(ctx.settings.servers_file.as_deref(), &mut f);
    accounts_file(
        ctx.settings.accounts_file.as_deref(),
        &ctx.client.servers,
        &mut f,
    );
    whitelist_file(ctx.settings.local_whitelist.as_deref(), &mut f);
    for topic in ["config", "servers", "accounts", "whitelist"] {
        f.cap(topic);
    }
    if servers_ok {
        for s in &ctx.client.servers {
            let account = ctx.client.accounts.get(&(s.host.clone(), s.port));
            server(s, account, ctx.client.timeout, &mut f);
        }
    }
    let worst = f.0.iter().map(|x| x.level).max().unwrap_or(Level::Ok);
    let mut text = String::new();
    for x in &f.0 {
        match ctx.format {
            Format::Text => {
                text.push_str(&format!("[{}] {}: {}\n", x.level.label(), x.topic, x.text))
            }
            Format::Json => {
                let mut o = json!({
                    "level": x.level.label().to_ascii_lowercase(),
                    "topic": x.topic,
                    "text": x.text,
                });
                if let serde_json::Value::Object(extra) = &x.data {
                    for (k, v) in extra {
                        o[k] = v.clone();
                    }
                }
                text.push_str(&format!("{o}\n"));
            }
        }
    }
    if ctx.format == Format::Text {
        text.push_str(&match worst {
            Level::Ok | Level::Note => "doctor: nothing wrong found\n".to_string(),
            _ => format!(
                "doctor: {} problem(s) found\n",
                f.0.iter().filter(|x| x.level >= Level::Warn).count()
            ),
        });
    }
    ctx.write(&text)?;
    Ok(worst < Level::Warn)
}

#[cfg(unix)]
fn mode(p: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .ok()
        .map(|m| m.permissions().mode() & 0o7777)
}

#[cfg(not(unix))]
fn mode(_: &Path) -> Option<u32> {
    None
}

/// The text of a client file, or `None` after reporting why it cannot be
/// read (`effect`: what that breaks).
fn read_or_report(path: &Path, topic: &str, effect: &str, f: &mut Findings) -> Option<String> {
    match files::read_client_file(path) {
        Ok(t) => Some(t),
        Err(e) => {
            f.add(
                Level::Error,
                topic,
                format!("{} cannot be read: {e}{effect}", path.display()),
            );
            None
        }
    }
}

fn home(dir: &Path, f: &mut Findings) {
    let topic = "home";
    match mode(dir) {
        None => f.add(
            Level::Error,
            topic,
            format!("{} cannot be read", dir.display()),
        ),
        Some(m) if m & 0o022 != 0 => f.add(
            Level::Warn,
            topic,
            format!(
                "{} is writable by other users (mode {m:04o}): they can replace your servers and accounts files; run chmod go-w {}",
                dir.display(),
                dir.display()
            ),
        ),
        Some(m) => f.add(
            Level::Ok,
            topic,
            format!("{} (mode {m:04o})", dir.display()),
        ),
    }
}

fn config(path: &Path, f: &mut Findings) {
    let topic = "config";
    let Some(text) = read_or_report(path, topic, "", f) else {
        return;
    };
    if !path.exists() {
        f.add(
            Level::Note,
            topic,
            format!("no {}: built-in defaults apply", path.display()),
        );
        return;
    }
    let ini = match Ini::parse(&text, &path.to_string_lossy()) {
        Ok(i) => i,
        Err(e) => {
            f.add(Level::Error, topic, e.to_string());
            return;
        }
    };
    let mut unknown = 0;
    if let Ok(opts) = ini.options("client") {
        for (k, _) in opts {
            if !CLIENT_KEYS.contains(&k) {
                unknown += 1;
                f.add(
                    Level::Warn,
                    topic,
                    format!(
                        "[client] key {} is not a client setting and is ignored (known keys: ServersFile, AccountsFile, LocalWhitelist, LogFile, Timeout, Style, ReportThreshold, WhitelistThreshold)",
                        quote(k)
                    ),
                );
            }
        }
    }
    for s in ini.sections() {
        if s != "client" && s != "server" {
            f.add(
                Level::Note,
                topic,
                format!("section [{}] is not read by the client or pyzord", cut(s)),
            );
        }
    }
    if unknown == 0 {
        f.add(Level::Ok, topic, format!("{} read", path.display()));
    }
}

/// Check the servers file; false when the client cannot run with it.
fn servers_file(path: Option<&Path>, f: &mut Findings) -> bool {
    let topic = "servers";
    let default = format!("{}:{}", DEFAULT_SERVER.0, DEFAULT_SERVER.1);
    let Some(path) = path else {
        f.add(
            Level::Note,
            topic,
            format!("ServersFile is empty: the client asks {default}"),
        );
        return true;
    };
    if !path.exists() {
        f.add(
            Level::Note,
            topic,
            format!("no {}: the client asks {default}", path.display()),
        );
        return true;
    }
    let Some(text) = read_or_report(path, topic, "; every network command fails", f) else {
        return false;
    };
    let mut used = 0;
    let mut ignored = 0;
    let mut fatal = false;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        // The client's own parser, one line at a time.
        match files::parse_servers(line) {
            Ok(v) if v.is_empty() => {
                ignored += 1;
                f.add(
                    Level::Warn,
                    topic,
                    format!(
                        "{} line {}: {} is ignored by the client: write host:port (a host of two or more characters, a port number), [v6addr]:port for IPv6",
                        path.display(),
                        i + 1,
                        quote(t)
                    ),
                );
            }
            Ok(_) => used += 1,
            Err(_) => {
                fatal = true;
                f.add(
                    Level::Error,
                    topic,
                    format!(
                        "{} line {}: {} has an invalid port: every network command fails until it is fixed",
                        path.display(),
                        i + 1,
                        quote(t)
                    ),
                );
            }
        }
    }
    if fatal {
        return false;
    }
    if used == 0 {
        let level = if ignored > 0 {
            Level::Error
        } else {
            Level::Note
        };
        f.add(
            level,
            topic,
            format!(
                "{} lists no usable server{}: the client SILENTLY falls back to {default}, the public server, for every request",
                path.display(),
                if ignored > 0 {
                    format!(" ({ignored} line(s) ignored)")
                } else {
                    String::new()
                }
            ),
        );
    } else {
        f.add(
            Level::Ok,
            topic,
            format!("{}: {used} server(s)", path.display()),
        );
    }
    true
}

fn accounts_file(path: Option<&Path>, servers: &[ServerAddr], f: &mut Findings) {
    let topic = "accounts";
    let Some(path) = path.filter(|p| p.exists()) else {
        f.add(
            Level::Note,
            topic,
            "no accounts file: every request is anonymous (check, report and ping work on most servers; whitelist needs an account)",
        );
        return;
    };
    if let Some(m) = mode(path) {
        if m & 0o077 != 0 {
            let what = match (m & 0o044 != 0, m & 0o022 != 0) {
                (true, true) => "readable and writable",
                (true, false) => "readable",
                _ => "writable",
            };
            f.add(
                Level::Warn,
                topic,
                format!(
                    "{} is {what} by other users (mode {m:04o}): it holds your account keys, and anyone who can read it can sign reports and whitelistings as you; run chmod 600 {}",
                    path.display(),
                    path.display()
                ),
            );
        }
    }
    let Some(text) = read_or_report(path, topic, "; every command fails", f) else {
        return;
    };
    let (accounts, warnings) = files::parse_accounts(&text);
    for w in &warnings {
        f.add(
            Level::Warn,
            topic,
            format!(
                "{}: {w}; the line is ignored (write host : port : user : salt,key)",
                path.display()
            ),
        );
    }
    let mut unused: Vec<String> = accounts
        .keys()
        .filter(|(h, p)| !servers.iter().any(|s| &s.host == h && s.port == *p))
        .map(|(h, p)| ServerAddr::new(h.clone(), *p).to_string())
        .collect();
    unused.sort();
    for u in unused {
        f.add(
            Level::Note,
            topic,
            format!("the account for {u} is not used: no such server in the servers file (host and port must be written the same way)"),
        );
    }
    if warnings.is_empty() {
        f.add(
            Level::Ok,
            topic,
            format!("{}: {} account(s)", path.display(), accounts.len()),
        );
    }
}

fn whitelist_file(path: Option<&Path>, f: &mut Findings) {
    let topic = "whitelist";
    let Some(path) = path.filter(|p| p.exists()) else {
        f.add(Level::Note, topic, "no local whitelist file");
        return;
    };
    let Some(text) = read_or_report(path, topic, "; check fails", f) else {
        return;
    };
    let mut bad = 0;
    let mut good = 0;
    for (i, line) in text.lines().enumerate() {
        // The client's own reading of the line.
        for e in files::parse_local_whitelist(line) {
            if e.len() == 40 && e.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                good += 1;
            } else {
                bad += 1;
                f.add(
                    Level::Warn,
                    topic,
                    format!(
                        "{} line {}: {} never matches: a digest is 40 lower-case hex digits",
                        path.display(),
                        i + 1,
                        quote(&e)
                    ),
                );
            }
        }
    }
    if bad == 0 {
        f.add(
            Level::Ok,
            topic,
            format!("{}: {good} digest(s)", path.display()),
        );
    }
}

/// The diag of a reply that refuses a request for its `Time`.
const BAD_TIME_DIAG: &str = "Timestamp not within allowed range";
/// The server's window: `pyzor.MAX_TIMESTAMP_DIFFERENCE` (inclusive).
const WINDOW: i64 = 300;

/// What one signed ping at a moved `Time` said about the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Probe {
    /// The `Time` passed the server's window check (the request was
    /// accepted, or refused for a reason checked after the time).
    In,
    /// Refused: "Timestamp not within allowed range".
    Out,
    /// No answer, or an answer that says nothing about the window.
    Failed(String),
}

fn classify(o: &Outcome) -> Probe {
    match o {
        Outcome::Reply(r) if r.code == 401 && r.diag.contains(BAD_TIME_DIAG) => Probe::Out,
        // The reference and pyzord check the time before the signature
        // and the ACL: a bad signature or a forbidden op passed it.
        Outcome::Reply(r)
            if r.code == 200
                || r.code == 403
                || (r.code == 401 && r.diag.contains("Invalid signature")) =>
        {
            Probe::In
        }
        Outcome::Reply(r) => Probe::Failed(super::output::head_tuple(r.code, &cut(&r.diag))),
        Outcome::Error { code, diag } => {
            Probe::Failed(super::output::head_tuple(*code, &cut(diag)))
        }
    }
}

/// The clock skew estimate: the server's clock minus ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Skew {
    /// Seconds (server − us).
    pub(crate) seconds: i64,
    /// The estimate is within ± this many seconds (plus half the
    /// round-trip time).
    pub(crate) precision: i64,
    /// Datagrams sent for the estimate.
    pub(crate) probes: usize,
}

/// Largest number of probes looking for the window when the first ping
/// was out of it: ±600 s steps up to ±3600 s.
const SEARCH_STEPS: i64 = 6;
/// Largest number of probes of the binary search on the window's upper
/// edge (601 candidates: 10 halvings find it to the second).
const EDGE_PROBES: usize = 10;

/// Estimate the skew. `probe(offset)` sends a signed ping with
/// `Time = now + offset`; `first` is what the ping at offset 0 said.
///
/// The server accepts `Time = T` when `|server_now − T| ≤ 300`; with
/// `d` = server_now − our_now, offset `o` passes when `d − 300 ≤ o ≤ d + 300`.
/// A passing offset `a` is found (0, else ±600, ±1200, … ±3600: the window
/// is 601 s wide, so no skew up to 3900 s is missed), then the largest
/// passing offset in `[a, a + 600]` by binary search: `d` = that − 300.
pub(crate) fn estimate_skew(
    first: &Probe,
    probe: &mut dyn FnMut(i64) -> Probe,
) -> Result<Skew, String> {
    let mut probes = 0usize;
    let anchor = match first {
        Probe::In => 0,
        Probe::Failed(e) => return Err(format!("the first ping failed: {e}")),
        Probe::Out => {
            let mut found = None;
            'search: for k in 1..=SEARCH_STEPS {
                for o in [2 * WINDOW * k, -2 * WINDOW * k] {
                    probes += 1;
                    match probe(o) {
                        Probe::In => {
                            found = Some(o);
                            break 'search;
                        }
                        Probe::Out => {}
                        Probe::Failed(e) => return Err(format!("a probe at {o:+} s failed: {e}")),
                    }
                }
            }
            match found {
                Some(a) => a,
                None => {
                    return Err(format!(
                        "the clocks differ by more than {} s (no Time within ±{} s of ours was accepted; {probes} probes)",
                        2 * WINDOW * SEARCH_STEPS + WINDOW,
                        2 * WINDOW * SEARCH_STEPS
                    ))
                }
            }
        }
    };
    // lo passes; hi = anchor + 601 cannot (anchor ≥ d − 300).
    let (mut lo, mut hi) = (anchor, anchor + 2 * WINDOW + 1);
    for _ in 0..EDGE_PROBES {
        if hi - lo <= 1 {
            break;
        }
        let mid = lo + (hi - lo) / 2;
        probes += 1;
        match probe(mid) {
            Probe::In => lo = mid,
            Probe::Out => hi = mid,
            Probe::Failed(e) => return Err(format!("a probe at {mid:+} s failed: {e}")),
        }
    }
    // The edge is in [lo, hi): d ∈ [lo − 300, hi − 300); our clock is read
    // in whole seconds, which adds up to 1 s.
    let seconds = (lo + hi - 1) / 2 - WINDOW;
    let precision = (hi - lo) / 2 + 1;
    Ok(Skew {
        seconds,
        precision,
        probes,
    })
}

fn server(s: &ServerAddr, account: Option<&Account>, timeout: Duration, f: &mut Findings) {
    let topic = s.to_string();
    let who = match account {
        Some(a) => format!("user {}", quote(&a.username)),
        None => "anonymous (no account for this server in the accounts file)".to_string(),
    };
    let now = net::now_secs();
    let (first, rtt) = net::request_at(s, Op::Ping, &[], account, timeout, now);
    let rtt_ms = rtt.as_secs_f64() * 1000.0;
    let reply = match &first {
        Outcome::Error { code, diag }
            if *code == 504
                || diag.starts_with("Socket error")
                || diag.starts_with("Unable to send") =>
        {
            let why = if *code == 504 {
                format!("no answer within {:.1} s", timeout.as_secs_f64())
            } else {
                cut(diag)
            };
            f.add_with(
                Level::Error,
                topic,
                format!("unreachable: {why}; check the host and port, that pyzord runs there, and that UDP is not filtered"),
                json!({"reachable": false, "code": code}),
            );
            return;
        }
        Outcome::Error { code, diag } => {
            f.add_with(
                Level::Error,
                topic,
                format!(
                    "something answers after {rtt_ms:.1} ms, but not with a valid Pyzor reply: {}; is this port a Pyzor server?",
                    super::output::head_tuple(*code, &cut(diag))
                ),
                json!({"reachable": true, "valid_reply": false, "code": code}),
            );
            return;
        }
        Outcome::Reply(r) => r,
    };
    let reach = json!({"reachable": true, "rtt_ms": (rtt_ms * 10.0).round() / 10.0});
    let p = classify(&first);
    match reply.code {
        200 => f.add_with(
            Level::Ok,
            topic.clone(),
            format!("reachable, round trip {rtt_ms:.1} ms; signed ping accepted as {who}"),
            merge(&reach, json!({"auth": "accepted", "user": account.map(|a| a.username.clone())})),
        ),
        403 => f.add_with(
            Level::Warn,
            topic.clone(),
            format!("reachable, round trip {rtt_ms:.1} ms; the signature of {who} is accepted, but the server's ACL does not allow it to ping"),
            merge(&reach, json!({"auth": "accepted", "ping": "forbidden"})),
        ),
        _ => {
            let advice = if reply.diag.contains(BAD_TIME_DIAG) {
                "our clock and the server's differ by more than 300 s (see the skew below); set the clock with NTP".to_string()
            } else if reply.diag.contains("Unknown user") {
                "the server has no such user: check the user name in the accounts file, or ask the operator to add it to pyzord.passwd".to_string()
            } else if reply.diag.contains("Invalid signature") {
                "the key does not match the server's: check the key (after the comma) in the accounts file".to_string()
            } else {
                "the server refused the ping".to_string()
            };
            f.add_with(
                Level::Error,
                topic.clone(),
                format!(
                    "reachable, round trip {rtt_ms:.1} ms; signed ping as {who} refused: {}: {advice}",
                    super::output::head_tuple(reply.code, &cut(&reply.diag))
                ),
                merge(&reach, json!({"auth": "refused", "code": reply.code})),
            );
        }
    }
    if account.is_none() {
        f.add(
            Level::Note,
            topic,
            "clock skew not measured: the server checks the Time of signed requests only, and this server has no account",
        );
        return;
    }
    if reply.diag.contains("Unknown user") {
        f.add(
            Level::Note,
            topic,
            "clock skew not measured: the server does not know the user",
        );
        return;
    }
    let mut probe = |o: i64| {
        classify(&net::request_at(s, Op::Ping, &[], account, timeout, net::now_secs() + o).0)
    };
    match estimate_skew(&p, &mut probe) {
        Ok(k) => {
            let level = match k.seconds.abs() {
                x if x + k.precision <= 60 => Level::Ok,
                x if x <= WINDOW => Level::Warn,
                _ => Level::Error,
            };
            let advice = match level {
                Level::Ok => "",
                Level::Warn => ": within the server's 300 s window, but signed requests fail once it grows past it; set the clock with NTP",
                _ => ": outside the server's 300 s window, so signed requests fail; set the clock with NTP",
            };
            let how = match k.seconds {
                0 => "agrees with ours".to_string(),
                x if x > 0 => format!("is {x} s ahead of ours"),
                x => format!("is {} s behind ours", -x),
            };
            f.add_with(
                level,
                topic,
                format!(
                    "clock skew: the server's clock {how} (±{} s, {} extra pings){advice}",
                    k.precision,
                    k.probes
                ),
                json!({"skew_s": k.seconds, "skew_precision_s": k.precision, "skew_probes": k.probes}),
            );
        }
        Err(e) => f.add(Level::Warn, topic, format!("clock skew not measured: {e}")),
    }
}

fn merge(a: &serde_json::Value, b: serde_json::Value) -> serde_json::Value {
    let mut o = a.clone();
    if let serde_json::Value::Object(m) = b {
        for (k, v) in m {
            o[k] = v;
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A simulated server at `d` seconds (fractional: tenths) from us,
    /// whose window is inclusive.
    fn sim(d_tenths: i64) -> impl FnMut(i64) -> Probe {
        move |o: i64| {
            let o = o * 10;
            if (d_tenths - o).abs() <= WINDOW * 10 {
                Probe::In
            } else {
                Probe::Out
            }
        }
    }

    #[test]
    fn skew_estimates_are_within_the_stated_precision() {
        for d in [
            0, 7, -7, 1234, -1234, 2999, -2999, 3000, 6000, -6000, 12_345, -29_999, 38_995, -38_995,
        ] {
            let mut p = sim(d);
            let first = p(0);
            let k = estimate_skew(&first, &mut p).unwrap_or_else(|e| panic!("{d}: {e}"));
            let est = k.seconds * 10;
            assert!(
                (est - d).abs() <= k.precision * 10,
                "d = {d}/10 s: estimate {} ± {}",
                k.seconds,
                k.precision
            );
            assert!(k.precision <= 1, "{k:?}");
            assert!(k.probes <= EDGE_PROBES + 2 * SEARCH_STEPS as usize, "{k:?}");
        }
    }

    #[test]
    fn skew_beyond_the_search_is_reported_not_guessed() {
        let mut p = sim(40_000 * 10);
        let first = p(0);
        let e = estimate_skew(&first, &mut p).unwrap_err();
        assert!(e.contains("more than 3900 s"), "{e}");
        let e = estimate_skew(&Probe::Failed("(504, 'x')".into()), &mut p).unwrap_err();
        assert!(e.contains("first ping failed"), "{e}");
        let mut dead = |_| Probe::Failed("(504, 'timeout')".into());
        let e = estimate_skew(&Probe::In, &mut dead).unwrap_err();
        assert!(e.contains("failed"), "{e}");
    }
}
