//! `whitelist`: count one whitelisting of **every** `Op-Digest`
//! (`RequestHandler.handle_whitelist`): one increment each, all in the
//! batch's transaction; a bare 200; then each digest is forwarded as a
//! whitelisting. A digest that is not a key (or, under `StrictDigests`,
//! not 40 lower-case hex digits) refuses the whole request. Under
//! `IgnoreEmptyDigest` the empty-body digest is neither counted nor
//! forwarded; under `DistinctWindow` a repeat from the same reporter is
//! not either (`crate::protect::DistinctReporters`).
//! (The default access file does not grant whitelist to anonymous; the
//! example assumes one that does.)
//!
//! ```text
//! Op: whitelist
//! Op-Digest: 2aedaac999d71421c9ee49b9d81f627a7bc570aa
//! Op-Spec: 20,3,60,3
//! Thread: 4454
//! PV: 2.1
//! ```
//!
//! ```text
//! Code: 200
//! Diag: OK
//! PV: 2.1
//! Thread: 4454
//! ```

use pyzor_protocol::wire::server::{Failure, Parsed, ReplyBody};
use pyzor_protocol::wire::Op;
use pyzor_protocol::Record;

use super::{counted, counted_digests, forward_writes, ignored_count, Command, ParseOptions};
use crate::forward::ForwardQueue;
use crate::metrics::Metrics;

#[derive(Clone, Copy, Debug)]
pub(crate) struct Whitelist<'a> {
    /// The request, for its `Op-Digest`s (none: a bare 200).
    req: &'a Parsed,
    opts: ParseOptions,
}

impl<'a> Command<'a> for Whitelist<'a> {
    const OP: Op = Op::Whitelist;

    fn parse(req: &'a Parsed, opts: ParseOptions) -> Result<Self, Failure> {
        counted_digests(req, opts)?;
        Ok(Whitelist { req, opts })
    }

    fn store_ops(&self, batch: &mut Vec<pyzor_store::Op<'a>>) {
        batch.extend(counted(self.req, self.opts).map(pyzor_store::Op::Whitelist));
    }

    fn reply(&self, _: &[Option<Record>]) -> ReplyBody {
        ReplyBody::Bare
    }

    fn forward(&self, ops: &[pyzor_store::Op<'_>], queue: &ForwardQueue, metrics: &Metrics) {
        forward_writes(ops, queue, metrics);
    }

    fn ignored(&self) -> usize {
        ignored_count(self.req, self.opts)
    }
}
