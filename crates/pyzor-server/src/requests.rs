//! Whitelist requests filed on pyzord's page (`WhitelistRequests`), kept
//! durably beside the engine's data: `pyzord.requests` in the directory
//! of `DigestDB` for lmdb and gdbm (`/var/lib/pyzor` in the package), in
//! the home directory for the network engines
//! (`pyzor_config::ServerConfig::data_dir`), one JSON object per line, appended and fsynced, never
//! rewritten in place.
//!
//! * A `request` line: the digest, the sender's reason and contact address,
//!   when and from which address it was filed. One per digest, ever, until
//!   the operator purges decided requests ([`RequestLog::purge`]).
//! * A `decision` line: approved or rejected, and when. The operator's
//!   command ([`operator`], the `pyzor-requests` binary) appends it; an
//!   approval first whitelists the digest through the running pyzord.
//!
//! Bounds, whatever senders do: fields are cut ([`MAX_REASON_CHARS`],
//! [`MAX_CONTACT_CHARS`], control characters dropped), the file holds at
//! most [`MAX_REQUESTS`] requests and [`MAX_FILE_BYTES`] bytes (a filing
//! beyond is refused until the operator purges), a line longer than
//! [`MAX_LINE`] is not read. Writers (pyzord and the operator's command)
//! take an exclusive `flock` on `pyzord.requests.lock` (a separate file,
//! so that a purge can replace the data file), waiting at most
//! [`LOCK_TIMEOUT`]. A line torn by a crash is skipped and counted
//! ([`Requests::unreadable`]); the next append starts on a new line.

pub mod operator;

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

/// The file's name in the home directory.
pub const FILE_NAME: &str = "pyzord.requests";
/// Requests in the file at most (decided ones included, until purged).
pub const MAX_REQUESTS: usize = 2000;
/// The file's size at most.
pub const MAX_FILE_BYTES: u64 = 16 << 20;
/// A reason is cut to this many characters.
pub const MAX_REASON_CHARS: usize = 1000;
/// A contact address is cut to this many characters (RFC 5321's path).
pub const MAX_CONTACT_CHARS: usize = 254;
/// Lines longer than this are not read (no line we write comes close).
pub const MAX_LINE: usize = 16 * 1024;
/// Longest wait for the lock.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(5);

/// `secs` since the epoch as ISO 8601 in UTC (`2026-12-06T07:00:00Z`);
/// `None` out of range.
pub(crate) fn iso8601(secs: i64) -> Option<String> {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// One line of the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Entry {
    Request {
        digest: String,
        reason: String,
        contact: String,
        /// Epoch seconds.
        at: i64,
        /// The sender's address.
        from: String,
    },
    Decision {
        digest: String,
        approved: bool,
        at: i64,
    },
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Approved,
    Rejected,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Rejected => "rejected",
        })
    }
}

/// A filed request and its decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WhitelistRequest {
    pub digest: String,
    pub reason: String,
    pub contact: String,
    /// When it was filed (epoch seconds).
    pub filed: i64,
    /// The sender's address.
    pub from: String,
    pub status: Status,
    /// When it was decided (epoch seconds).
    pub decided: Option<i64>,
}

/// A request to file: its fields cut to their bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRequest {
    digest: String,
    reason: String,
    contact: String,
    from: String,
}

impl NewRequest {
    /// `digest` (40 lower-case hex digits, checked by the caller), the
    /// reason (line breaks kept, other control characters dropped) and
    /// the contact (control characters and blanks dropped), each cut.
    pub fn new(digest: &str, reason: &str, contact: &str, from: &str) -> Self {
        let reason: String = reason
            .replace("\r\n", "\n")
            .chars()
            .filter(|c| *c == '\n' || !c.is_control())
            .take(MAX_REASON_CHARS)
            .collect();
        let contact: String = contact
            .chars()
            .filter(|c| !c.is_control() && !c.is_whitespace())
            .take(MAX_CONTACT_CHARS)
            .collect();
        NewRequest {
            digest: digest.chars().take(40).collect(),
            reason: reason.trim().to_owned(),
            contact,
            from: from.chars().take(64).collect(),
        }
    }

    /// The reason as it will be kept.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The contact as it will be kept.
    pub fn contact(&self) -> &str {
        &self.contact
    }
}

/// The requests of the file, in filing order.
#[derive(Debug, Default, Clone)]
pub struct Requests {
    list: Vec<WhitelistRequest>,
    index: HashMap<String, usize>,
    /// Lines that could not be read (torn by a crash, too long, edited).
    pub unreadable: usize,
    /// The file's size.
    bytes: u64,
}

impl Requests {
    /// The request for `digest`.
    pub fn get(&self, digest: &str) -> Option<&WhitelistRequest> {
        self.index.get(digest).map(|&i| &self.list[i])
    }

    /// Every request, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &WhitelistRequest> {
        self.list.iter()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    fn parse(text: &[u8]) -> Self {
        let mut r = Requests {
            bytes: text.len() as u64,
            ..Requests::default()
        };
        for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let entry = (line.len() <= MAX_LINE)
                .then(|| serde_json::from_slice::<Entry>(line).ok())
                .flatten();
            if !entry.is_some_and(|e| r.apply(e)) {
                r.unreadable += 1;
            }
        }
        r
    }

    /// Fold one line in; false when it makes no sense (a second request
    /// for a digest, a decision on an unknown or decided one).
    fn apply(&mut self, e: Entry) -> bool {
        match e {
            Entry::Request {
                digest,
                reason,
                contact,
                at,
                from,
            } => {
                if self.index.contains_key(&digest) {
                    return false;
                }
                self.index.insert(digest.clone(), self.list.len());
                self.list.push(WhitelistRequest {
                    digest,
                    reason,
                    contact,
                    filed: at,
                    from,
                    status: Status::Pending,
                    decided: None,
                });
                true
            }
            Entry::Decision {
                digest,
                approved,
                at,
            } => match self.index.get(&digest) {
                Some(&i) if self.list[i].status == Status::Pending => {
                    let r = &mut self.list[i];
                    r.status = if approved {
                        Status::Approved
                    } else {
                        Status::Rejected
                    };
                    r.decided = Some(at);
                    true
                }
                _ => false,
            },
        }
    }
}

/// Why a request could not be filed, decided or read.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("cannot use the whitelist-request file {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the whitelist-request file {} is locked by another process for more than {} s; try again", .0.display(), LOCK_TIMEOUT.as_secs())]
    Locked(PathBuf),
    #[error("a whitelist request for this digest was filed already ({0})")]
    Duplicate(Status),
    #[error("the whitelist-request file is full ({MAX_REQUESTS} requests or {MAX_FILE_BYTES} bytes); the operator must decide requests and run `pyzor-requests purge`")]
    Full,
    #[error("no whitelist request for digest {0}; `pyzor-requests list` shows them")]
    Unknown(String),
    #[error("the request for {digest} is {status} already")]
    Decided { digest: String, status: Status },
}

/// The file's identity and size: unchanged means the cache is current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i64,
}

/// The request file of a home directory.
#[derive(Debug)]
pub struct RequestLog {
    path: PathBuf,
    lock_path: PathBuf,
    cache: Mutex<Option<(Stamp, Arc<Requests>)>>,
}

impl RequestLog {
    /// `pyzord.requests` in `dir` (pyzord's `ServerConfig::data_dir`).
    pub fn in_dir(dir: &Path) -> Self {
        RequestLog {
            path: dir.join(FILE_NAME),
            lock_path: dir.join(format!("{FILE_NAME}.lock")),
            cache: Mutex::new(None),
        }
    }

    /// The data file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, source: std::io::Error) -> RequestError {
        RequestError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// The exclusive lock of writers, waited for at most [`LOCK_TIMEOUT`].
    fn lock(&self) -> Result<Flock<File>, RequestError> {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.lock_path)
            .map_err(|e| self.io(e))?;
        let deadline = Instant::now() + LOCK_TIMEOUT;
        loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(l) => return Ok(l),
                Err((f, nix::errno::Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                    file = f;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                    return Err(RequestError::Locked(self.lock_path.clone()))
                }
                Err((_, e)) => return Err(self.io(e.into())),
            }
        }
    }

    fn stamp(&self) -> Result<Option<Stamp>, RequestError> {
        match std::fs::metadata(&self.path) {
            Ok(m) => Ok(Some(Stamp {
                dev: m.dev(),
                ino: m.ino(),
                len: m.len(),
                mtime_ns: m.mtime().saturating_mul(1_000_000_000) + m.mtime_nsec(),
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io(e)),
        }
    }

    /// The requests now (read again only when the file changed).
    pub fn load(&self) -> Result<Arc<Requests>, RequestError> {
        let Some(stamp) = self.stamp()? else {
            return Ok(Arc::default());
        };
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((s, r)) = cache.as_ref() {
            if *s == stamp {
                return Ok(Arc::clone(r));
            }
        }
        let mut text = Vec::new();
        let f = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Arc::default()),
            Err(e) => return Err(self.io(e)),
        };
        // Bounded: a file grown beyond the bound by hand is read in part.
        f.take(MAX_FILE_BYTES + MAX_LINE as u64)
            .read_to_end(&mut text)
            .map_err(|e| self.io(e))?;
        let r = Arc::new(Requests::parse(&text));
        let stamp = Stamp {
            len: text.len() as u64,
            ..stamp
        };
        *cache = Some((stamp, Arc::clone(&r)));
        Ok(r)
    }

    /// Append `entry`, fsynced, under the lock held by the caller.
    fn append(&self, entry: &Entry) -> Result<(), RequestError> {
        use std::os::unix::fs::FileExt;
        let mut line = serde_json::to_vec(entry).map_err(|e| self.io(e.into()))?;
        line.push(b'\n');
        let mut f = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(|e| self.io(e))?;
        let len = f.metadata().map_err(|e| self.io(e))?.len();
        let mut last = [b'\n'];
        if len > 0 {
            f.read_exact_at(&mut last, len - 1)
                .map_err(|e| self.io(e))?;
        }
        if last[0] != b'\n' {
            // The last line was torn by a crash: start a new one.
            line.insert(0, b'\n');
        }
        f.write_all(&line).map_err(|e| self.io(e))?;
        f.sync_all().map_err(|e| self.io(e))
    }

    /// File `req` at `now`: refused when the digest has a request already
    /// or the file is full.
    pub fn file(&self, req: &NewRequest, now: i64) -> Result<(), RequestError> {
        let _lock = self.lock()?;
        let current = self.load()?;
        if let Some(r) = current.get(&req.digest) {
            return Err(RequestError::Duplicate(r.status));
        }
        if current.len() >= MAX_REQUESTS || current.bytes + MAX_LINE as u64 > MAX_FILE_BYTES {
            return Err(RequestError::Full);
        }
        self.append(&Entry::Request {
            digest: req.digest.clone(),
            reason: req.reason.clone(),
            contact: req.contact.clone(),
            at: now,
            from: req.from.clone(),
        })
    }

    /// Record the decision on `digest`'s pending request at `now`, after
    /// `act` (the approval's whitelisting) succeeded; when `act` fails,
    /// nothing is recorded and its error is returned. The lock is held
    /// throughout, so that two operators cannot both act on one request.
    pub fn decide<E: From<RequestError>>(
        &self,
        digest: &str,
        approved: bool,
        now: i64,
        act: impl FnOnce(&WhitelistRequest) -> Result<(), E>,
    ) -> Result<WhitelistRequest, E> {
        let _lock = self.lock()?;
        let current = self.load()?;
        let req = current
            .get(digest)
            .ok_or_else(|| RequestError::Unknown(digest.chars().take(40).collect()))?;
        if req.status != Status::Pending {
            return Err(RequestError::Decided {
                digest: req.digest.clone(),
                status: req.status,
            }
            .into());
        }
        act(req)?;
        self.append(&Entry::Decision {
            digest: req.digest.clone(),
            approved,
            at: now,
        })?;
        let mut done = req.clone();
        done.status = if approved {
            Status::Approved
        } else {
            Status::Rejected
        };
        done.decided = Some(now);
        Ok(done)
    }

    /// Drop decided requests (their digests may be requested again):
    /// the pending ones are written to a new file that replaces the old
    /// one. Returns how many went.
    pub fn purge(&self) -> Result<usize, RequestError> {
        let _lock = self.lock()?;
        let current = self.load()?;
        let mut text = Vec::new();
        for r in current.iter().filter(|r| r.status == Status::Pending) {
            let e = Entry::Request {
                digest: r.digest.clone(),
                reason: r.reason.clone(),
                contact: r.contact.clone(),
                at: r.filed,
                from: r.from.clone(),
            };
            text.extend(serde_json::to_vec(&e).map_err(|e| self.io(e.into()))?);
            text.push(b'\n');
        }
        let tmp = self.path.with_extension("requests.new");
        let mut f = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| self.io(e))?;
        f.write_all(&text).map_err(|e| self.io(e))?;
        f.sync_all().map_err(|e| self.io(e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| self.io(e))?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| self.io(e))?;
        }
        Ok(current.len()
            - current
                .iter()
                .filter(|r| r.status == Status::Pending)
                .count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "2aedaac999d71421c9ee49b9d81f627a7bc570aa";
    const D2: &str = "0123456789abcdef0123456789abcdef01234567";

    fn ok(_: &WhitelistRequest) -> Result<(), RequestError> {
        Ok(())
    }

    #[test]
    fn file_decide_survive_reopen_and_purge() {
        let home = tempfile::tempdir().unwrap();
        let log = RequestLog::in_dir(home.path());
        assert!(log.load().unwrap().is_empty());
        log.file(
            &NewRequest::new(D1, "our newsletter", "a@example.org", "192.0.2.1"),
            100,
        )
        .unwrap();
        log.file(
            &NewRequest::new(D2, "invoice", "b@example.org", "192.0.2.2"),
            101,
        )
        .unwrap();
        let dup = log.file(&NewRequest::new(D1, "again", "c@example.org", "x"), 102);
        assert!(matches!(dup, Err(RequestError::Duplicate(Status::Pending))));
        let done = log.decide(D1, true, 200, ok).unwrap();
        assert_eq!((done.status, done.decided), (Status::Approved, Some(200)));
        let again = log.decide(D1, false, 201, ok);
        assert!(matches!(again, Err(RequestError::Decided { .. })));
        // A failed action records nothing.
        let failed: Result<_, RequestError> =
            log.decide(D2, true, 202, |_| Err(RequestError::Full));
        assert!(matches!(failed, Err(RequestError::Full)));
        // A new reader (another process) sees the same.
        let r = RequestLog::in_dir(home.path()).load().unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r.get(D1).unwrap().status, Status::Approved);
        assert_eq!(r.get(D2).unwrap().status, Status::Pending);
        assert_eq!(r.get(D2).unwrap().reason, "invoice");
        assert_eq!(r.unreadable, 0);
        assert_eq!(log.purge().unwrap(), 1);
        let r = RequestLog::in_dir(home.path()).load().unwrap();
        assert_eq!(r.len(), 1);
        assert!(r.get(D1).is_none());
        // Purged: D1 may be requested again.
        log.file(&NewRequest::new(D1, "again", "c@example.org", "x"), 300)
            .unwrap();
        let mode = std::fs::metadata(log.path()).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn hostile_fields_are_cut_and_torn_lines_skipped() {
        let n = NewRequest::new(
            D1,
            &format!("a\r\nb\u{0}\u{1b}[31m{}", "x".repeat(5000)),
            &format!(" evil\n@x\u{7f}{}", "y".repeat(500)),
            "192.0.2.1",
        );
        assert!(n.reason().starts_with("a\nb[31m"));
        assert_eq!(n.reason().chars().count(), MAX_REASON_CHARS);
        assert!(n.contact().starts_with("evil@x"));
        assert_eq!(n.contact().chars().count(), MAX_CONTACT_CHARS);
        let home = tempfile::tempdir().unwrap();
        let log = RequestLog::in_dir(home.path());
        log.file(&n, 1).unwrap();
        // A crash tore the next line; an over-long line was added by hand.
        let mut f = OpenOptions::new().append(true).open(log.path()).unwrap();
        f.write_all(b"{\"kind\":\"request\",\"dig").unwrap();
        drop(f);
        log.file(&NewRequest::new(D2, "r", "c@d", "x"), 2).unwrap();
        let mut f = OpenOptions::new().append(true).open(log.path()).unwrap();
        f.write_all(&vec![b'{'; MAX_LINE + 1]).unwrap();
        f.write_all(b"\n").unwrap();
        drop(f);
        let r = RequestLog::in_dir(home.path()).load().unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r.unreadable, 2);
    }

    #[test]
    fn the_file_is_bounded_in_count() {
        let home = tempfile::tempdir().unwrap();
        let log = RequestLog::in_dir(home.path());
        // Filled by hand (one fsync per filing would make this slow).
        let mut text = String::new();
        for i in 0..MAX_REQUESTS {
            let e = Entry::Request {
                digest: format!("{i:040x}"),
                reason: "r".into(),
                contact: "c@d".into(),
                at: 1,
                from: "x".into(),
            };
            text.push_str(&serde_json::to_string(&e).unwrap());
            text.push('\n');
        }
        std::fs::write(log.path(), text).unwrap();
        assert_eq!(log.load().unwrap().len(), MAX_REQUESTS);
        let full = log.file(&NewRequest::new(D1, "r", "c@d", "x"), 1);
        assert!(matches!(full, Err(RequestError::Full)), "{full:?}");
        assert!(std::fs::metadata(log.path()).unwrap().len() <= MAX_FILE_BYTES);
    }
}
