//! One module per operation, one [`Request`] dispatching them (the layout
//! of mini-redis's `cmd`). What is common to every op stays in
//! `pyzor_protocol::wire::server`: `evaluate` (authentication, PV, ACL,
//! dispatch), `Failure` and the reply framing (`format_reply`). Each op's
//! file holds the rest, as its [`Command`] implementation:
//!
//! * what it reads from the request, and its own refusals ([`Command::parse`]);
//! * the store operations it adds to the batch's one engine call
//!   ([`Command::store_ops`]);
//! * its reply fields, from the results of those operations
//!   ([`Command::reply`]);
//! * whether it is forwarded ([`Command::forward`]).
//!
//! The reference calls an op's handler only `if dispatch and digests`
//! (`RequestHandler._really_handle`): ping never, the others only with at
//! least one `Op-Digest`. Without one an op pushes no store operation and
//! answers a bare 200, which falls out of each op's fields below.
//!
//! The examples in each file are anonymous requests (a client also sends
//! `User`, `Time` and `Sig`; anonymous ones are not verified) and their
//! replies on an empty database, with an access file that grants
//! anonymous every op; every datagram ends with an empty line, not shown.
//! A test runs them through [`crate::worker::Processor`].

mod check;
mod info;
mod ping;
mod pong;
mod report;
mod whitelist;

use pyzor_protocol::wire::server::{db_key, Failure, Parsed, ReplyBody};
use pyzor_protocol::wire::Op;
use pyzor_protocol::Record;

pub(crate) use check::Check;
pub(crate) use info::Info;
pub(crate) use ping::Ping;
pub(crate) use pong::Pong;
pub(crate) use report::Report;
pub(crate) use whitelist::Whitelist;

use crate::forward::ForwardQueue;
use crate::metrics::Metrics;

/// The server's settings that change what an op accepts.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ParseOptions {
    /// `StrictDigests` (docs/security.md, "Strict digests").
    pub(crate) strict_digests: bool,
    /// `IgnoreEmptyDigest` (docs/security.md, "The empty-body digest").
    pub(crate) ignore_empty_digest: bool,
}

/// The digest of an empty body: `sha1(b"").hexdigest()`, what the
/// reference's digester gives a message whose body normalises to nothing
/// (SpamExperts/pyzor issue 3: it matches every such message).
pub(crate) const EMPTY_DIGEST: &[u8] = b"da39a3ee5e6b4b0d3255bfef95601890afd80709";

/// Whether `IgnoreEmptyDigest` leaves `digest` alone: check and info
/// answer it as unknown without reading, report and whitelist do not
/// count (nor forward) it. The one place that rule lives.
fn ignored(digest: &[u8], opts: ParseOptions) -> bool {
    opts.ignore_empty_digest && digest == EMPTY_DIGEST
}

/// What check and info read: the **first** `Op-Digest` (further ones are
/// ignored, even ones that are not keys).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Lookup<'a> {
    /// No `Op-Digest`: a bare 200.
    Absent,
    /// The empty-body digest under `IgnoreEmptyDigest`: zeros, no read.
    Ignored,
    /// Read this key.
    Key(&'a [u8]),
}

impl<'a> Lookup<'a> {
    /// The first digest of `req`, which must be a database key.
    fn parse(req: &'a Parsed, opts: ParseOptions) -> Result<Self, Failure> {
        Ok(match req.digests().next().map(db_key).transpose()? {
            None => Lookup::Absent,
            Some(d) if ignored(d, opts) => Lookup::Ignored,
            Some(d) => Lookup::Key(d),
        })
    }

    fn store_ops(&self, batch: &mut Vec<pyzor_store::Op<'a>>) {
        if let Lookup::Key(d) = *self {
            batch.push(pyzor_store::Op::Get(d));
        }
    }

    /// The record to answer with (`None`: a bare 200): an unknown digest
    /// and an ignored one give zeros.
    fn record(&self, records: &[Option<Record>]) -> Option<Record> {
        match self {
            Lookup::Absent => None,
            Lookup::Ignored => Some(Record::default()),
            Lookup::Key(_) => records.first().map(|r| r.unwrap_or_default()),
        }
    }

    fn ignored(&self) -> usize {
        usize::from(matches!(self, Lookup::Ignored))
    }
}

/// The digests a report or whitelist counts: every `Op-Digest` but those
/// `IgnoreEmptyDigest` leaves alone.
fn counted<'a>(req: &'a Parsed, opts: ParseOptions) -> impl Iterator<Item = &'a [u8]> + 'a {
    req.digests().filter(move |d| !ignored(d, opts))
}

/// How many `Op-Digest`s of a report or whitelist `IgnoreEmptyDigest`
/// leaves alone.
fn ignored_count(req: &Parsed, opts: ParseOptions) -> usize {
    req.digests().filter(|d| ignored(d, opts)).count()
}

/// The reply to a report or whitelist with a digest that is not 40
/// lower-case hex digits under `StrictDigests`: the reference's 400 family
/// (`ProtocolError`, "Bad request: ..."); its text does not repeat the
/// digest.
pub(crate) const NOT_A_DIGEST: Failure = Failure {
    code: 400,
    diag: std::borrow::Cow::Borrowed("Bad request: Invalid digest."),
};

/// The keys report and whitelist count: every digest must be a database
/// key (`db_key`, the reference's engine), and under `StrictDigests` also
/// 40 lower-case hex digits (a SHA-1 as `hexdigest()` writes it, the only
/// digest a Pyzor client sends). Refuses the whole request.
fn counted_digests(req: &Parsed, opts: ParseOptions) -> Result<(), Failure> {
    // A digest that is not a key anywhere in the request answers as
    // without `StrictDigests` (500, compatibility.md D5).
    req.digests().try_for_each(|d| db_key(d).map(drop))?;
    if opts.strict_digests && !req.digests().all(is_sha1_hex) {
        return Err(NOT_A_DIGEST);
    }
    Ok(())
}

/// 40 lower-case hex digits: a SHA-1 as Python's `hexdigest()` writes it.
fn is_sha1_hex(d: &[u8]) -> bool {
    d.len() == 40 && d.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// What each op's module says about its op.
pub(crate) trait Command<'a>: Sized {
    /// The op's `Op` value.
    const OP: Op;
    /// The op's fields of a request `evaluate` accepted; `Err` is the
    /// reply when the op refuses the request.
    fn parse(req: &'a Parsed, opts: ParseOptions) -> Result<Self, Failure>;
    /// Push the op's store operations onto the batch.
    fn store_ops(&self, batch: &mut Vec<pyzor_store::Op<'a>>);
    /// The fields of the 200 reply; `records` are the results of exactly
    /// the operations [`Command::store_ops`] pushed, in order.
    fn reply(&self, records: &[Option<Record>]) -> ReplyBody;
    /// Queue the op for the `ForwardClientHomeDir` servers, once answered
    /// 200; `ops` are the request's store operations as run (a digest
    /// `IgnoreEmptyDigest` or `DistinctWindow` left out is not forwarded).
    fn forward(&self, ops: &[pyzor_store::Op<'_>], queue: &ForwardQueue, metrics: &Metrics) {
        let _ = (ops, queue, metrics);
    }
    /// How many of its digests `IgnoreEmptyDigest` left alone (metrics).
    fn ignored(&self) -> usize {
        0
    }
}

/// Forward the digests of a report's or whitelist's store operations.
fn forward_writes(ops: &[pyzor_store::Op<'_>], queue: &ForwardQueue, metrics: &Metrics) {
    for op in ops.iter().filter(|o| o.is_write()) {
        queue.push(
            matches!(op, pyzor_store::Op::Whitelist(_)),
            op.digest(),
            metrics,
        );
    }
}

/// An accepted request, by op.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Request<'a> {
    Ping(Ping),
    Pong(Pong),
    Check(Check<'a>),
    Info(Info<'a>),
    Report(Report<'a>),
    Whitelist(Whitelist<'a>),
}

/// `$body` with `$c` bound to the op of `$request`.
macro_rules! each_op {
    ($request:expr, $c:ident => $body:expr) => {
        match $request {
            Request::Ping($c) => $body,
            Request::Pong($c) => $body,
            Request::Check($c) => $body,
            Request::Info($c) => $body,
            Request::Report($c) => $body,
            Request::Whitelist($c) => $body,
        }
    };
}

impl<'a> Request<'a> {
    /// The request `req` for `op`, as `evaluate` accepted it.
    pub(crate) fn new(op: Op, req: &'a Parsed, opts: ParseOptions) -> Result<Self, Failure> {
        Ok(match op {
            Op::Ping => Request::Ping(Ping::parse(req, opts)?),
            Op::Pong => Request::Pong(Pong::parse(req, opts)?),
            Op::Check => Request::Check(Check::parse(req, opts)?),
            Op::Info => Request::Info(Info::parse(req, opts)?),
            Op::Report => Request::Report(Report::parse(req, opts)?),
            Op::Whitelist => Request::Whitelist(Whitelist::parse(req, opts)?),
        })
    }

    pub(crate) fn op(&self) -> Op {
        fn op_of<'a, C: Command<'a>>(_: &C) -> Op {
            C::OP
        }
        each_op!(self, c => op_of(c))
    }

    pub(crate) fn store_ops(&self, batch: &mut Vec<pyzor_store::Op<'a>>) {
        each_op!(self, c => c.store_ops(batch))
    }

    pub(crate) fn reply(&self, records: &[Option<Record>]) -> ReplyBody {
        each_op!(self, c => c.reply(records))
    }

    pub(crate) fn forward(
        &self,
        ops: &[pyzor_store::Op<'_>],
        queue: &ForwardQueue,
        metrics: &Metrics,
    ) {
        each_op!(self, c => c.forward(ops, queue, metrics))
    }

    /// How many of its digests `IgnoreEmptyDigest` left alone.
    pub(crate) fn ignored(&self) -> usize {
        each_op!(self, c => c.ignored())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use pyzor_protocol::auth::{parse_access, Accounts};
    use pyzor_store::memory::MemoryEngine;

    use crate::rules::Rules;
    use crate::worker::{Processor, Protection, Shared};

    /// A memory engine; anonymous may do everything.
    fn shared() -> Shared {
        let accounts = Accounts::default();
        let (acl, _) = parse_access("all : anonymous : allow\n", &accounts);
        Shared::standalone(Arc::new(MemoryEngine::new()), Rules { accounts, acl })
    }

    fn answer(sh: &Shared, request: &[u8]) -> Vec<u8> {
        let mut replies = vec![Vec::new()];
        Processor::new(sh).process(sh, 1, |_| (request, None), &mut replies);
        replies.pop().unwrap()
    }

    /// The reply to `request` under `protection`, as text.
    fn answer_with(sh: &Shared, protection: &Protection, request: &[u8]) -> String {
        let mut replies = vec![Vec::new()];
        Processor::with_protection(sh, protection).process(
            sh,
            1,
            |_| (request, None),
            &mut replies,
        );
        String::from_utf8(replies.pop().unwrap()).unwrap()
    }

    /// The ```text blocks of an op file's module comment, as datagrams.
    fn examples(source: &str) -> Vec<Vec<u8>> {
        let mut blocks = Vec::new();
        let mut block: Option<String> = None;
        for line in source.lines().map_while(|l| l.strip_prefix("//!")) {
            let line = line.strip_prefix(' ').unwrap_or(line);
            match (&mut block, line) {
                (None, "```text") => block = Some(String::new()),
                (Some(b), "```") => {
                    b.push('\n');
                    blocks.push(std::mem::take(b).into_bytes());
                    block = None;
                }
                (Some(b), l) => {
                    b.push_str(l);
                    b.push('\n');
                }
                (None, _) => {}
            }
        }
        blocks
    }

    #[test]
    fn each_op_doc_example_is_what_the_server_answers() {
        for (file, source) in [
            ("ping.rs", include_str!("ping.rs")),
            ("pong.rs", include_str!("pong.rs")),
            ("check.rs", include_str!("check.rs")),
            ("info.rs", include_str!("info.rs")),
            ("report.rs", include_str!("report.rs")),
            ("whitelist.rs", include_str!("whitelist.rs")),
        ] {
            let blocks = examples(source);
            assert!(
                !blocks.is_empty() && blocks.len() % 2 == 0,
                "{file}: request/reply pairs"
            );
            let sh = shared();
            for pair in blocks.chunks(2) {
                assert_eq!(
                    String::from_utf8_lossy(&answer(&sh, &pair[0])),
                    String::from_utf8_lossy(&pair[1]),
                    "{file}"
                );
            }
        }
    }

    /// Which digests must be database keys (`db_key`) is each op's rule:
    /// check and info look at the first digest only, report and whitelist
    /// at all of them, ping and pong at none.
    #[test]
    fn digests_that_are_not_keys() {
        let refused = "Code: 500\nDiag: Internal Server Error: a bytes-like object is required, not 'Header'\nPV: 2.1\nThread: \n\n";
        let sh = shared();
        let code = |r: &[u8]| String::from_utf8_lossy(&answer(&sh, r))[6..9].to_owned();
        for op in ["check", "info", "report", "whitelist"] {
            let mut bad = format!("Op: {op}\nPV: 2.1\nOp-Digest: ").into_bytes();
            bad.extend_from_slice(b"\xff\n");
            assert_eq!(String::from_utf8_lossy(&answer(&sh, &bad)), refused, "{op}");
        }
        assert_eq!(code(b"Op: pong\nOp-Digest: \xff\nPV: 2.1\n"), "200");
        assert_eq!(code(b"Op: ping\nOp-Digest: \xff\nPV: 2.1\n"), "200");
        assert_eq!(code(b"Op: check\nOp-Digest: \xff\nPV: 2.1\n"), "500");
        assert_eq!(
            code(b"Op: check\nOp-Digest: a\nOp-Digest: \xff\nPV: 2.1\n"),
            "200"
        );
        assert_eq!(
            code(b"Op: info\nOp-Digest: a\nOp-Digest: \xff\nPV: 2.1\n"),
            "200"
        );
        assert_eq!(
            code(b"Op: report\nOp-Digest: a\nOp-Digest: \xff\nPV: 2.1\n"),
            "500"
        );
        assert_eq!(
            code(b"Op: whitelist\nOp-Digest: a\nOp-Digest: \xff\nPV: 2.1\n"),
            "500"
        );
        // Refused whole: the good digest before it was not stored.
        assert_eq!(sh.engine.get(b"a").unwrap(), None);
    }

    /// `StrictDigests`: report and whitelist store only 40 lower-case hex
    /// digits; a request with any other digest is refused whole with
    /// [`super::NOT_A_DIGEST`], before anything is stored. Check and info
    /// are not concerned; off (the reference's behaviour), anything is
    /// counted.
    #[test]
    fn strict_digests_refuse_what_is_not_a_sha1() {
        let good = "2aedaac999d71421c9ee49b9d81f627a7bc570aa";
        let answer_with = |sh: &Shared, strict: bool, request: &[u8]| {
            let protection = Protection {
                strict_digests: strict,
                ..Protection::default()
            };
            answer_with(sh, &protection, request)
        };
        let refused = "Code: 400\nDiag: Bad request: Invalid digest.\nPV: 2.1\nThread: \n\n";
        let bad_digests = [
            "2AEDAAC999D71421C9EE49B9D81F627A7BC570AA",
            "2aedaac999d71421c9ee49b9d81f627a7bc570a",
            "2aedaac999d71421c9ee49b9d81f627a7bc570aa0",
            "2aedaac999d71421c9ee49b9d81f627a7bc570ag",
            " 2aedaac999d71421c9ee49b9d81f627a7bc570a",
            "x",
        ];
        for op in ["report", "whitelist"] {
            let sh = shared();
            for bad in bad_digests {
                let req = format!("Op: {op}\nPV: 2.1\nOp-Digest: {good}\nOp-Digest: {bad}\n");
                assert_eq!(
                    answer_with(&sh, true, req.as_bytes()),
                    refused,
                    "{op} {bad:?}"
                );
                // Off: the reference's counts.
                let req = format!("Op: {op}\nPV: 2.1\nOp-Digest: {bad}\n");
                assert!(answer_with(&sh, false, req.as_bytes()).starts_with("Code: 200\n"));
            }
            // Refused whole: the good digest was not stored.
            assert_eq!(sh.engine.get(good.as_bytes()).unwrap(), None, "{op}");
            let req = format!("Op: {op}\nPV: 2.1\nOp-Digest: {good}\n");
            assert!(answer_with(&sh, true, req.as_bytes()).starts_with("Code: 200\n"));
            assert!(sh.engine.get(good.as_bytes()).unwrap().is_some(), "{op}");
            // No digest: still a bare 200.
            let req = format!("Op: {op}\nPV: 2.1\n");
            assert!(answer_with(&sh, true, req.as_bytes()).starts_with("Code: 200\n"));
        }
        // A digest that is not a key comes first, wherever it is.
        let sh = shared();
        let req = b"Op: report\nPV: 2.1\nOp-Digest: x\nOp-Digest: \xff\n";
        assert!(answer_with(&sh, true, req).starts_with("Code: 500\n"));
        for op in ["check", "info"] {
            let req = format!("Op: {op}\nPV: 2.1\nOp-Digest: x\n");
            assert!(
                answer_with(&sh, true, req.as_bytes()).starts_with("Code: 200\n"),
                "{op}"
            );
        }
    }

    /// `IgnoreEmptyDigest`: check and info of the empty-body digest answer
    /// zeros without a read (as for an unknown digest), report and
    /// whitelist of it store nothing and answer 200; the other digests of
    /// the same request count. Off, the reference's counts.
    #[test]
    fn ignore_empty_digest_answers_zeros_and_stores_nothing() {
        use std::sync::atomic::Ordering::Relaxed;
        let empty = std::str::from_utf8(super::EMPTY_DIGEST).unwrap();
        let good = "2aedaac999d71421c9ee49b9d81f627a7bc570aa";
        for ignore in [false, true] {
            let sh = shared();
            let protection = Protection {
                ignore_empty_digest: ignore,
                ..Protection::default()
            };
            let ask = |req: String| answer_with(&sh, &protection, req.as_bytes());
            for op in ["report", "whitelist"] {
                let r = ask(format!(
                    "Op: {op}\nPV: 2.1\nOp-Digest: {empty}\nOp-Digest: {good}\nThread: 9\n"
                ));
                assert_eq!(r, "Code: 200\nDiag: OK\nPV: 2.1\nThread: 9\n\n", "{op}");
            }
            let r = ask(format!(
                "Op: check\nPV: 2.1\nOp-Digest: {empty}\nThread: 1\n"
            ));
            let n = u8::from(!ignore);
            let counts = format!("Count: {n}\nWL-Count: {n}\n\n");
            assert!(
                r.starts_with("Code: 200\n") && r.ends_with(&counts),
                "{ignore}: {r}"
            );
            let r = ask(format!(
                "Op: info\nPV: 2.1\nOp-Digest: {empty}\nThread: 1\n"
            ));
            assert!(r.ends_with(&counts), "{ignore}: {r}");
            if ignore {
                assert!(
                    r.contains("\nEntered: 0\nUpdated: 0\nWL-Entered: 0\nWL-Updated: 0\n"),
                    "{r}"
                );
            }
            // Only the first digest of a check is looked at.
            let r = ask(format!(
                "Op: check\nPV: 2.1\nOp-Digest: {good}\nOp-Digest: {empty}\n"
            ));
            assert!(r.ends_with("Count: 1\nWL-Count: 1\n\n"), "{r}");
            assert_eq!(sh.engine.get(empty.as_bytes()).unwrap().is_none(), ignore);
            assert_eq!(sh.engine.get(good.as_bytes()).unwrap().unwrap().r_count, 1);
            let ignored = sh.metrics.empty_digest_ignored.load(Relaxed);
            assert_eq!(ignored, if ignore { 4 } else { 0 });
        }
    }
}
