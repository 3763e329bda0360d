//! `pyzord.passwd` and `pyzord.access` with the reference's real semantics
//! (docs/protocol.md §5, docs/field-notes.md §5.8–5.9).
//!
//! * passwd: `user : key` lines; blank lines and lines whose **first
//!   character** is `#` skipped; a line must split on `:` into exactly two
//!   parts (else a warning); both parts stripped; later lines override.
//! * access: `operations : users : allow|deny` lines, all three parts
//!   lower-cased and stripped, applied top to bottom (allow adds, deny
//!   removes: the last matching line wins); `all` operations = check report
//!   ping pong info whitelist; `all` users = every passwd user (original
//!   spelling, not `anonymous`); any other word is accepted as an operation
//!   name (that is how 501 is reachable).
//! * a missing access file gives the default ACL `anonymous: check report
//!   ping pong info`; an existing empty file denies everything.
//!
//! Reference quirk kept (not a security hole, it only denies): user names
//! named in the access file are lower-cased, passwd names are not, so a
//! mixed-case user is reached only through `all` lines. [`parse_access`]
//! warns about it.

use std::collections::HashMap;

use super::{hash_key, Hex40, ANONYMOUS};
use crate::py::{py_isspace, py_repr_str, py_strip};

/// The server's accounts: user → key (as written) and its `hash_key`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Accounts {
    map: HashMap<String, (String, Hex40)>,
}

impl Accounts {
    /// Add or replace an account.
    pub fn insert(&mut self, user: &str, key: &str) {
        self.map
            .insert(user.to_owned(), (key.to_owned(), hash_key(key, user)));
    }
    /// `hash_key(key, user)` of a known user (exact, case-sensitive name).
    pub(crate) fn hashed_key(&self, user: &[u8]) -> Option<&Hex40> {
        std::str::from_utf8(user)
            .ok()
            .and_then(|u| self.map.get(u))
            .map(|(_, h)| h)
    }
    /// The key as written in the passwd file.
    pub fn key(&self, user: &str) -> Option<&str> {
        self.map.get(user).map(|(k, _)| k.as_str())
    }
    pub fn contains(&self, user: &str) -> bool {
        self.map.contains_key(user)
    }
    pub fn users(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(String::as_str)
    }
    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// The six operations the server implements.
pub(crate) const KNOWN_OPS: [&str; 6] = ["check", "report", "ping", "pong", "info", "whitelist"];

/// The operations one user may request: the known ones as bits, any other
/// names the access file granted as strings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpSet {
    bits: u8,
    other: Vec<Box<[u8]>>,
}

fn known_bit(op: &[u8]) -> Option<u8> {
    KNOWN_OPS
        .iter()
        .position(|k| k.as_bytes() == op)
        .map(|i| 1u8 << i)
}

impl OpSet {
    pub fn contains(&self, op: &[u8]) -> bool {
        match known_bit(op) {
            Some(b) => self.bits & b != 0,
            None => self.other.iter().any(|o| &**o == op),
        }
    }
    fn add(&mut self, op: &str) {
        match known_bit(op.as_bytes()) {
            Some(b) => self.bits |= b,
            None => {
                if !self.contains(op.as_bytes()) {
                    self.other.push(op.as_bytes().into());
                }
            }
        }
    }
    fn remove(&mut self, op: &str) {
        match known_bit(op.as_bytes()) {
            Some(b) => self.bits &= !b,
            None => self.other.retain(|o| &**o != op.as_bytes()),
        }
    }
    /// The operations in a stable order (known ones first).
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = KNOWN_OPS
            .iter()
            .enumerate()
            .filter(|(i, _)| self.bits & (1 << i) != 0)
            .map(|(_, k)| k.to_string())
            .collect();
        v.extend(
            self.other
                .iter()
                .map(|o| String::from_utf8_lossy(o).into_owned()),
        );
        v
    }
}

/// The access control list: user → allowed operations. Users not listed
/// may do nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Acl {
    map: HashMap<Box<[u8]>, OpSet>,
}

impl Acl {
    /// The ACL used when the access file does not exist.
    pub fn reference_default() -> Self {
        let mut set = OpSet::default();
        for op in ["check", "report", "ping", "pong", "info"] {
            set.add(op);
        }
        let mut map = HashMap::new();
        map.insert(ANONYMOUS.as_bytes().into(), set);
        Acl { map }
    }
    /// Whether `user` may request `op` (both exact bytes).
    pub fn allows(&self, user: &[u8], op: &[u8]) -> bool {
        self.map.get(user).is_some_and(|s| s.contains(op))
    }
    /// The permissions of one user.
    pub fn ops(&self, user: &str) -> Option<&OpSet> {
        self.map.get(user.as_bytes())
    }
    /// `(user, operations)` pairs, sorted by user, for logging.
    pub fn summary(&self) -> Vec<(String, Vec<String>)> {
        let mut v: Vec<_> = self
            .map
            .iter()
            .map(|(u, s)| (String::from_utf8_lossy(u).into_owned(), s.names()))
            .collect();
        v.sort();
        v
    }
}

/// Lines as Python's text-mode iteration yields them (terminator kept):
/// `\n`, `\r\n` and `\r` end a line.
fn py_text_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = match rest.find(['\n', '\r']) {
            Some(i) if rest[i..].starts_with("\r\n") => i + 2,
            Some(i) => i + 1,
            None => rest.len(),
        };
        let (line, tail) = rest.split_at(end);
        rest = tail;
        Some(line)
    })
}

/// Skipped lines of both files: blank, or `#` as the very first character.
fn skipped(line: &str) -> bool {
    py_strip(line).is_empty() || line.starts_with('#')
}

/// Parse the text of `pyzord.passwd`; returns the accounts and one warning
/// per invalid line (the reference's `Invalid accounts line: %r`).
pub fn parse_passwd(text: &str) -> (Accounts, Vec<String>) {
    let mut acc = Accounts::default();
    let mut warnings = Vec::new();
    for line in py_text_lines(text) {
        if skipped(line) {
            continue;
        }
        let parts: Vec<&str> = line.split(':').collect();
        if parts.len() != 2 {
            warnings.push(format!("Invalid accounts line: {}", py_repr_str(line)));
            continue;
        }
        acc.insert(py_strip(parts[0]), py_strip(parts[1]));
    }
    (acc, warnings)
}

/// Parse the text of `pyzord.access` against the accounts (for `all`);
/// returns the ACL and warnings (invalid lines, unreachable mixed-case
/// users).
pub fn parse_access(text: &str, accounts: &Accounts) -> (Acl, Vec<String>) {
    let mut acl = Acl::default();
    let mut warnings = Vec::new();
    for line in py_text_lines(text) {
        if skipped(line) {
            continue;
        }
        let parts: Vec<String> = line
            .split(':')
            .map(|p| py_strip(&p.to_lowercase()).to_owned())
            .collect();
        if parts.len() != 3 {
            warnings.push(format!("Invalid ACL line: {}", py_repr_str(line)));
            continue;
        }
        let allow = match parts[2].as_str() {
            "allow" => true,
            "deny" => false,
            _ => {
                warnings.push(format!("Invalid ACL line: {}", py_repr_str(line)));
                continue;
            }
        };
        let ops: Vec<&str> = if parts[0] == "all" {
            KNOWN_OPS.to_vec()
        } else {
            parts[0]
                .split(py_isspace)
                .filter(|s| !s.is_empty())
                .collect()
        };
        let users: Vec<String> = if parts[1] == "all" {
            accounts.users().map(str::to_owned).collect()
        } else {
            parts[1]
                .split(py_isspace)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        };
        for user in users {
            let set = acl.map.entry(user.as_bytes().into()).or_default();
            for op in &ops {
                if allow {
                    set.add(op);
                } else {
                    set.remove(op);
                }
            }
        }
    }
    for user in accounts.users() {
        if user.to_lowercase() != user && text.to_lowercase().contains(&user.to_lowercase()) {
            warnings.push(format!(
                "User {user:?} has upper-case letters: access lines that name it are lower-cased and do not apply to it (only `all` lines do); rename the account in lower case"
            ));
        }
    }
    (acl, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts(users: &[&str]) -> Accounts {
        let mut a = Accounts::default();
        for u in users {
            a.insert(u, "k");
        }
        a
    }

    #[test]
    fn passwd_rules() {
        let (a, w) = parse_passwd(
            "alice : KEY1\n#bob: x\n  #carol : y\n\nbad line\nd:e:f\nalice:key2\r\nCarol :z",
        );
        assert_eq!(a.key("alice"), Some("key2"));
        assert!(!a.contains("bob"));
        assert!(a.contains("#carol"), "an indented # is not a comment");
        assert_eq!(a.key("Carol"), Some("z"));
        assert_eq!(w.len(), 2);
        assert_eq!(a.hashed_key(b"alice"), Some(&hash_key("KEY2", "alice")));
        assert_eq!(a.hashed_key(b"ALICE"), None);
    }

    #[test]
    fn default_acl_when_missing() {
        let acl = Acl::reference_default();
        for op in ["check", "report", "ping", "pong", "info"] {
            assert!(acl.allows(b"anonymous", op.as_bytes()));
        }
        assert!(!acl.allows(b"anonymous", b"whitelist"));
        assert!(!acl.allows(b"alice", b"ping"));
    }

    #[test]
    fn empty_file_denies_all() {
        let (acl, _) = parse_access("", &accounts(&["alice"]));
        assert!(!acl.allows(b"anonymous", b"check"));
        assert!(!acl.allows(b"alice", b"check"));
    }

    #[test]
    fn later_lines_override_and_all_means_passwd_users() {
        let acc = accounts(&["bob", "alice", "erin", "Carol"]);
        let text = "whitelist : bob : deny\nall : bob : allow\nping : all : allow\nall : alice : deny\ncheck : anonymous : ALLOW\nfoo : erin : allow\ncheck : carol : allow\n";
        let (acl, w) = parse_access(text, &acc);
        assert!(acl.allows(b"bob", b"whitelist"));
        assert!(!acl.allows(b"alice", b"ping"));
        assert!(acl.allows(b"erin", b"ping"));
        assert!(acl.allows(b"erin", b"foo"));
        assert!(!acl.allows(b"erin", b"check"));
        assert!(
            !acl.allows(b"anonymous", b"ping"),
            "`all` never includes anonymous"
        );
        assert!(acl.allows(b"anonymous", b"check"));
        assert!(acl.allows(b"Carol", b"ping"));
        assert!(
            !acl.allows(b"Carol", b"check"),
            "names in the access file are lower-cased"
        );
        assert!(w.iter().any(|m| m.contains("Carol")));
        assert!(!acl.allows(b"bob", b"PING"));
    }

    #[test]
    fn invalid_access_lines() {
        let (acl, w) = parse_access(
            "ping : anonymous\nping : anonymous : maybe\n #x : y : allow\n",
            &Accounts::default(),
        );
        assert_eq!(w.len(), 2);
        assert!(acl.allows(b"y", b"#x"));
    }
}
