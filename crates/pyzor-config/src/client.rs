//! The client's configuration: the `[client]` section of `<homedir>/config`
//! with the reference's defaults and precedence (docs/field-notes.md §5.1,
//! §5.2), and the client's own files: `servers`, `accounts` and the local
//! `whitelist` (§5.6, §5.7, §5.10) as pure functions over the file text,
//! read with [`read_client_file`].
//!
//! Deliberate differences from the reference (docs/compatibility.md,
//! "client"): inline `# comments` after a server are accepted (the
//! reference crashes, B12), `[v6]:port` servers and `[v6] : port : …`
//! accounts are accepted (B12, B13), warnings give 1-based line numbers
//! (B13), and a whitelist line starting with `#` is a comment (B14).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::home::expand_path;
use super::ini::{Ini, IniError};
use pyzor_protocol::py::{py_int, py_repr_str};

/// The reference client's `[client]` defaults (scripts/pyzor
/// `load_configuration`).
pub(crate) const CLIENT_DEFAULTS: &[(&str, &str)] = &[
    ("ServersFile", "servers"),
    ("AccountsFile", "accounts"),
    ("LocalWhitelist", "whitelist"),
    ("LogFile", ""),
    ("Timeout", "5"),
    ("Style", "msg"),
    ("ReportThreshold", "0"),
    ("WhitelistThreshold", "0"),
];

/// The `[client]` configuration cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClientConfigError {
    /// The config file is not valid INI, or a value has a bad `%`.
    #[error(transparent)]
    Ini(#[from] IniError),
    /// A value is not what the key needs.
    #[error("[client] {key} = {value:?} is not valid: expected {expected}; fix it in the config file or on the command line")]
    BadValue {
        /// The key (`Timeout`, `ReportThreshold`, …).
        key: &'static str,
        /// The value found.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
}

/// The `[client]` settings after defaults < config file < command line.
/// File names are expanded (`~`, relative to the home directory; empty =
/// unset). Numbers are kept as text and checked when used, as the
/// reference does (a bad `ReportThreshold` only matters to `check`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// The home directory.
    pub homedir: PathBuf,
    /// `ServersFile`.
    pub servers_file: Option<PathBuf>,
    /// `AccountsFile`.
    pub accounts_file: Option<PathBuf>,
    /// `LocalWhitelist`.
    pub local_whitelist: Option<PathBuf>,
    /// `LogFile`.
    pub log_file: Option<PathBuf>,
    /// `Timeout`, as written.
    pub timeout: String,
    /// `Style`, as written.
    pub style: String,
    /// `ReportThreshold`, as written.
    pub report_threshold: String,
    /// `WhitelistThreshold`, as written.
    pub whitelist_threshold: String,
}

impl ClientConfig {
    /// Layer defaults, the `[client]` section of `<homedir>/config` (if the
    /// file exists) and `overrides` (command-line options keyed by the
    /// reference's key names, e.g. `("Timeout", "3")`).
    pub fn load(homedir: &Path, overrides: &[(&str, String)]) -> Result<Self, ClientConfigError> {
        let mut ini = Ini::new();
        for (k, v) in CLIENT_DEFAULTS {
            ini.set("client", k, v);
        }
        ini.read_file(&homedir.join("config"))?;
        for (k, v) in overrides {
            ini.set("client", k, v);
        }
        Self::from_ini(&ini, homedir)
    }

    /// Typed settings from an [`Ini`] holding all layers.
    pub(crate) fn from_ini(ini: &Ini, homedir: &Path) -> Result<Self, ClientConfigError> {
        let get = |k: &str| -> Result<String, ClientConfigError> {
            Ok(ini.get("client", k)?.unwrap_or_default())
        };
        let file = |k: &str| -> Result<Option<PathBuf>, ClientConfigError> {
            Ok(expand_path(&get(k)?, homedir))
        };
        Ok(ClientConfig {
            homedir: homedir.to_path_buf(),
            servers_file: file("ServersFile")?,
            accounts_file: file("AccountsFile")?,
            local_whitelist: file("LocalWhitelist")?,
            log_file: file("LogFile")?,
            timeout: get("Timeout")?,
            style: get("Style")?,
            report_threshold: get("ReportThreshold")?,
            whitelist_threshold: get("WhitelistThreshold")?,
        })
    }

    /// `Timeout` in seconds. The reference takes `int()` only and crashes
    /// on `2.5`; we also accept a non-negative decimal fraction (B11).
    pub fn timeout(&self) -> Result<Duration, ClientConfigError> {
        let v = &self.timeout;
        let bad = || ClientConfigError::BadValue {
            key: "Timeout",
            value: v.clone(),
            expected: "a number of seconds (>= 0)",
        };
        let secs: f64 = match py_int(v) {
            Some(n) => n as f64,
            None => v.trim().parse().map_err(|_| bad())?,
        };
        if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
            return Err(bad());
        }
        Ok(Duration::from_secs_f64(secs))
    }

    /// `ReportThreshold` (`int()`).
    pub fn report_threshold(&self) -> Result<i64, ClientConfigError> {
        Self::int("ReportThreshold", &self.report_threshold)
    }

    /// `WhitelistThreshold` (`int()`).
    pub fn whitelist_threshold(&self) -> Result<i64, ClientConfigError> {
        Self::int("WhitelistThreshold", &self.whitelist_threshold)
    }

    fn int(key: &'static str, v: &str) -> Result<i64, ClientConfigError> {
        py_int(v).ok_or_else(|| ClientConfigError::BadValue {
            key,
            value: v.to_string(),
            expected: "an integer",
        })
    }
}

/// The server used when the servers file is missing or lists nothing.
pub const DEFAULT_SERVER: (&str, u16) = ("public.pyzor.org", 24441);

/// One server as written in the servers file (no DNS canonicalisation).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerAddr {
    /// Host name or address literal, without IPv6 brackets.
    pub host: String,
    /// UDP port.
    pub port: u16,
}

impl ServerAddr {
    /// A server address.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        ServerAddr {
            host: host.into(),
            port,
        }
    }
}

impl fmt::Display for ServerAddr {
    /// `host:port` as the reference prints it (`"%s:%s" % server`); IPv6
    /// literals get brackets so the line stays splittable.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A line of a client file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    /// A servers-file line has the shape `host:port` but the port is not a
    /// number in 0..=65535.
    #[error("servers file line {line}: invalid port in {text:?}; write one server per line as host:port (optionally followed by # comment)")]
    BadServerPort {
        /// 1-based line number.
        line: usize,
        /// The offending line.
        text: String,
    },
}

/// Strip a trailing ` # comment` (blank, then `#`) from a servers line.
fn strip_inline_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'#' && i > 0 && bytes[i - 1].is_ascii_whitespace() {
            return line[..i].trim_end();
        }
    }
    line
}

/// Whether `line` passes the reference's filter
/// `re.match(r"[^#][a-zA-Z0-9.-]+:[0-9]+", line)` (docs/field-notes.md §5.6):
/// one character that is not `#`, then at least one host character, a
/// colon and at least one digit, matched as a prefix.
fn matches_reference_server_regex(line: &str) -> bool {
    let mut chars = line.chars();
    match chars.next() {
        Some(c) if c != '#' => {}
        _ => return false,
    }
    let rest = chars.as_str().as_bytes();
    // Greedy host run with backtracking is equivalent to: some position k>=1
    // such that rest[..k] are host chars, rest[k] == ':' and rest[k+1] digit.
    let mut k = 0;
    while k < rest.len() && (rest[k].is_ascii_alphanumeric() || rest[k] == b'.' || rest[k] == b'-')
    {
        k += 1;
    }
    k >= 1 && rest.get(k) == Some(&b':') && rest.get(k + 1).is_some_and(u8::is_ascii_digit)
}

/// A port as the reference reads it, `int(port)` ([`py_int`]), limited to
/// the UDP range (the reference would take any integer and fail later).
fn parse_port(text: &str) -> Option<u16> {
    py_int(text).and_then(|n| u16::try_from(n).ok())
}

/// The text of one of the client's files (servers, accounts, local
/// whitelist): a missing file reads as empty, bytes that are not UTF-8 as
/// U+FFFD.
pub fn read_client_file(p: &Path) -> std::io::Result<String> {
    match std::fs::read(p) {
        Ok(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(e),
    }
}

/// A servers-file line that names no server: the reference skips it
/// without a word (and falls back to public.pyzor.org when nothing is
/// left); the client warns about it (docs/compatibility.md D33).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoredLine {
    /// 1-based line number.
    pub line: usize,
    /// The line, cut to [`MAX_SHOWN`] characters.
    pub text: String,
}

/// The longest part of an ignored line that a warning quotes.
pub const MAX_SHOWN: usize = 80;

/// Parse the servers file text (docs/field-notes.md §5.6).
///
/// Lines are stripped; blank lines and `#` lines are skipped. `[v6]:port`
/// is accepted. Otherwise a line is used only when it matches the
/// reference's regex (so one-letter hosts and `host: port` stay ignored, as
/// in the reference); the host is everything before the last colon. A
/// trailing ` # comment` is removed first. An empty result means
/// [`DEFAULT_SERVER`]. The lines skipped are returned too, for a warning.
pub fn parse_servers_noting(text: &str) -> Result<(Vec<ServerAddr>, Vec<IgnoredLine>), FileError> {
    let mut servers = Vec::new();
    let mut ignored = Vec::new();
    for (idx, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = strip_inline_comment(line);
        let mut ignore = || {
            ignored.push(IgnoredLine {
                line: idx + 1,
                text: line.chars().take(MAX_SHOWN).collect(),
            })
        };
        if let Some(rest) = line.strip_prefix('[') {
            match rest.split_once("]:") {
                Some((host, port)) if !host.is_empty() && host.contains(':') => {
                    let port = parse_port(port).ok_or_else(|| FileError::BadServerPort {
                        line: idx + 1,
                        text: raw.to_string(),
                    })?;
                    servers.push(ServerAddr::new(host, port));
                }
                _ => ignore(),
            }
            continue;
        }
        if !matches_reference_server_regex(line) {
            ignore();
            continue;
        }
        let (host, port) = line.rsplit_once(':').expect("regex guarantees a colon");
        let port = parse_port(port).ok_or_else(|| FileError::BadServerPort {
            line: idx + 1,
            text: raw.to_string(),
        })?;
        servers.push(ServerAddr::new(host, port));
    }
    Ok((servers, ignored))
}

/// [`parse_servers_noting`] without the skipped lines.
pub fn parse_servers(text: &str) -> Result<Vec<ServerAddr>, FileError> {
    parse_servers_noting(text).map(|(servers, _)| servers)
}

/// A client account: the user name and the key half of `salt,key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// User name sent in the `User` header.
    pub username: String,
    /// The salt (never sent on the wire; kept for completeness).
    pub salt: String,
    /// The key used for signing (lower-cased when hashed).
    pub key: String,
}

/// Accounts by server, keyed exactly as written in the accounts file.
pub type Accounts = HashMap<(String, u16), Account>;

/// Parse the accounts file text (docs/field-notes.md §5.7): lines
/// `host : port : username : salt,key`; `[v6] : port : …` also accepted.
/// Returns the accounts and the warnings the reference would log (1-based
/// line numbers). Later lines for the same server win, as in the reference.
pub fn parse_accounts(text: &str) -> (Accounts, Vec<String>) {
    let mut accounts = Accounts::new();
    let mut warnings = Vec::new();
    for (idx, raw) in text.lines().enumerate() {
        let lineno = idx + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (host, rest) = match line.strip_prefix('[').and_then(|r| r.split_once(']')) {
            Some((h, r)) => match r.trim_start().strip_prefix(':') {
                Some(r) => (h.trim().to_string(), r),
                None => {
                    warnings.push(format!(
                        "account file: invalid line {lineno}: wrong number of parts"
                    ));
                    continue;
                }
            },
            None => match line.split_once(':') {
                Some((h, r)) => (h.trim().to_string(), r),
                None => {
                    warnings.push(format!(
                        "account file: invalid line {lineno}: wrong number of parts"
                    ));
                    continue;
                }
            },
        };
        let parts: Vec<&str> = rest.split(':').map(str::trim).collect();
        let [port, username, keystuff] = parts[..] else {
            warnings.push(format!(
                "account file: invalid line {lineno}: wrong number of parts"
            ));
            continue;
        };
        let Some(port) = parse_port(port) else {
            warnings.push(format!(
                "account file: invalid line {lineno}: invalid literal for int() with base 10: {}",
                py_repr_str(port)
            ));
            continue;
        };
        let pieces: Vec<&str> = keystuff.split(',').collect();
        let [salt, key] = pieces[..] else {
            warnings.push(format!(
                "account file: invalid line {lineno}: Invalid number of parts for key; perhaps you forgot the comma at the beginning for the salt divider?"
            ));
            continue;
        };
        if salt.is_empty() && key.is_empty() {
            warnings.push(format!(
                "account file: invalid line {lineno}: keystuff can't be all None's"
            ));
            continue;
        }
        accounts.insert(
            (host, port),
            Account {
                username: username.to_string(),
                salt: salt.to_string(),
                key: key.to_string(),
            },
        );
    }
    (accounts, warnings)
}

/// The entry a local-whitelist line holds, if any (docs/field-notes.md §5.10).
///
/// Reference quirk kept: a `#` preceded by any character other than `\`
/// starts a comment (`((?<=[^\\])#.*)`), so `\#` stays literally in the
/// entry. Fixed (B14): a line whose first character is `#` is a comment
/// (the reference made it an entry).
pub(crate) fn whitelist_entry(line: &str) -> Option<&str> {
    if line.starts_with('#') {
        return None;
    }
    let bytes = line.as_bytes();
    let mut end = line.len();
    for i in 1..bytes.len() {
        if bytes[i] == b'#' && bytes[i - 1] != b'\\' {
            end = i;
            break;
        }
    }
    let entry = line[..end].trim();
    (!entry.is_empty()).then_some(entry)
}

/// All entries of a local whitelist file.
pub fn parse_local_whitelist(text: &str) -> std::collections::HashSet<String> {
    text.lines()
        .filter_map(whitelist_entry)
        .map(str::to_string)
        .collect()
}

/// Rewrite a local whitelist, keeping its lines (comments included) and
/// their order: `remove` drops every line whose entry is listed there, and
/// `add` entries not present yet are appended one per line (B14: the
/// reference rewrote the file as an unordered set without comments).
pub fn rewrite_local_whitelist(text: &str, add: &[String], remove: &[String]) -> String {
    let mut out = String::with_capacity(text.len() + add.len() * 41);
    let mut present = std::collections::HashSet::new();
    for line in text.lines() {
        match whitelist_entry(line) {
            Some(e) if remove.iter().any(|r| r == e) => continue,
            Some(e) => {
                present.insert(e.to_string());
            }
            None => {}
        }
        out.push_str(line);
        out.push('\n');
    }
    for a in add {
        if !a.is_empty() && present.insert(a.clone()) {
            out.push_str(a);
            out.push('\n');
        }
    }
    out
}

/// The signing credentials of `account`, anonymous without one (the
/// reference's `get_account` falling back to `AnonymousAccount`).
pub fn credentials(account: Option<&Account>) -> pyzor_protocol::wire::client::Credentials {
    use pyzor_protocol::wire::client::Credentials;
    match account {
        Some(a) => Credentials::new(&a.username, &a.key),
        None => Credentials::anonymous(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_reference_forms_and_fixes() {
        let text = "# comment\n\n  127.0.0.1:24441  \nlocalhost:1234 # note\n[::1]:24441\nx:1\nhost: 12\nab:12:34\n";
        let s = parse_servers(text).unwrap();
        assert_eq!(
            s,
            vec![
                ServerAddr::new("127.0.0.1", 24441),
                ServerAddr::new("localhost", 1234),
                ServerAddr::new("::1", 24441),
                ServerAddr::new("ab:12", 34),
            ]
        );
        assert_eq!(s[2].to_string(), "[::1]:24441");
        assert_eq!(s[0].to_string(), "127.0.0.1:24441");
        assert!(parse_servers("").unwrap().is_empty());
        assert_eq!(
            parse_servers("ok:1\nhost:24441x\n"),
            Err(FileError::BadServerPort {
                line: 2,
                text: "host:24441x".into()
            })
        );
        assert!(parse_servers("host:99999\n").is_err());
    }

    /// The lines the reference skips silently are reported, numbered from
    /// 1 and cut; comments and blank lines are not.
    #[test]
    fn servers_skipped_lines_are_noted() {
        let long = format!("{}\n", "h".repeat(500));
        let text = format!("# c\n\nx:1\n127.0.0.1:24441\nhost: 12\nlocalhost\n[::1]\n{long}");
        let (s, ignored) = parse_servers_noting(&text).unwrap();
        assert_eq!(s, vec![ServerAddr::new("127.0.0.1", 24441)]);
        let lines: Vec<usize> = ignored.iter().map(|i| i.line).collect();
        assert_eq!(lines, vec![3, 5, 6, 7, 8]);
        assert_eq!(ignored[1].text, "host: 12");
        assert_eq!(ignored[4].text.chars().count(), MAX_SHOWN);
    }

    #[test]
    fn accounts_parsing() {
        let text = "# c\n127.0.0.1 : 24441 : bob : salt,KEY\nbad line\nh : x : u : s,k\nh : 1 : u : nokey\nh : 2 : u : ,\n[::1] : 3 : v6 : ,k6\n";
        let (a, w) = parse_accounts(text);
        assert_eq!(a.len(), 2);
        let bob = &a[&("127.0.0.1".to_string(), 24441)];
        assert_eq!(
            (bob.username.as_str(), bob.salt.as_str(), bob.key.as_str()),
            ("bob", "salt", "KEY")
        );
        assert_eq!(a[&("::1".to_string(), 3)].key, "k6");
        assert_eq!(
            w,
            vec![
                "account file: invalid line 3: wrong number of parts".to_string(),
                "account file: invalid line 4: invalid literal for int() with base 10: 'x'".to_string(),
                "account file: invalid line 5: Invalid number of parts for key; perhaps you forgot the comma at the beginning for the salt divider?".to_string(),
                "account file: invalid line 6: keystuff can't be all None's".to_string(),
            ]
        );
    }

    #[test]
    fn config_precedence_and_paths() {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(
            home.path().join("config"),
            "[client]\ntimeout = 7\nSERVERSFILE = /abs/servers\nlogfile =\nstyle = %(timeout)s\n",
        )
        .unwrap();
        let c = ClientConfig::load(
            home.path(),
            &[("Timeout", "2.5".into()), ("AccountsFile", "acc".into())],
        )
        .unwrap();
        assert_eq!(c.timeout().unwrap(), Duration::from_millis(2500));
        assert_eq!(c.servers_file, Some(PathBuf::from("/abs/servers")));
        assert_eq!(c.accounts_file, Some(home.path().join("acc")));
        assert_eq!(c.local_whitelist, Some(home.path().join("whitelist")));
        assert_eq!(c.log_file, None);
        assert_eq!(c.style, "2.5", "interpolation sees the override");
        assert_eq!(c.report_threshold().unwrap(), 0);
        std::fs::write(
            home.path().join("config"),
            "[client]\nTimeout = 5 # seconds\nReportThreshold = x\n",
        )
        .unwrap();
        let c = ClientConfig::load(home.path(), &[]).unwrap();
        assert!(matches!(
            c.timeout(),
            Err(ClientConfigError::BadValue { key: "Timeout", .. })
        ));
        assert!(c.report_threshold().is_err());
        std::fs::write(home.path().join("config"), "[client]\nTimeout = 5%\n").unwrap();
        assert!(matches!(
            ClientConfig::load(home.path(), &[]),
            Err(ClientConfigError::Ini(_))
        ));
        let none = tempfile::tempdir().unwrap();
        let c = ClientConfig::load(none.path(), &[]).unwrap();
        assert_eq!((c.timeout.as_str(), c.style.as_str()), ("5", "msg"));
    }

    #[test]
    fn whitelist_comments() {
        assert_eq!(whitelist_entry("abc # c"), Some("abc"));
        assert_eq!(whitelist_entry("#abc"), None);
        assert_eq!(whitelist_entry("a\\#b"), Some("a\\#b"));
        assert_eq!(whitelist_entry("   #x"), None);
        assert_eq!(whitelist_entry("   "), None);
        let set = parse_local_whitelist("d1\n# c\nd2 # two\n");
        assert_eq!(set.len(), 2);
        assert!(set.contains("d1") && set.contains("d2"));
        let out = rewrite_local_whitelist(
            "# keep\nd1\nd2 # two\n",
            &["d3".into(), "d1".into()],
            &["d2".into()],
        );
        assert_eq!(out, "# keep\nd1\nd3\n");
    }
}
