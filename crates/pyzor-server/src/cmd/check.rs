//! `check`: the spam and whitelist counts of the **first** `Op-Digest`
//! (`RequestHandler.handle_check`; further digests are ignored, even ones
//! that are not keys). One read; an unknown digest counts 0. Not forwarded.
//! Under `IgnoreEmptyDigest` the empty-body digest counts 0 without a read.
//!
//! ```text
//! Op: check
//! Op-Digest: 2aedaac999d71421c9ee49b9d81f627a7bc570aa
//! Thread: 4451
//! PV: 2.1
//! ```
//!
//! ```text
//! Code: 200
//! Diag: OK
//! PV: 2.1
//! Thread: 4451
//! Count: 0
//! WL-Count: 0
//! ```

use pyzor_protocol::wire::server::{Failure, Parsed, ReplyBody};
use pyzor_protocol::wire::Op;
use pyzor_protocol::Record;

use super::{Command, Lookup, ParseOptions};

#[derive(Clone, Copy, Debug)]
pub(crate) struct Check<'a> {
    /// `digests[0]`.
    digest: Lookup<'a>,
}

impl<'a> Command<'a> for Check<'a> {
    const OP: Op = Op::Check;

    fn parse(req: &'a Parsed, opts: ParseOptions) -> Result<Self, Failure> {
        Ok(Check {
            digest: Lookup::parse(req, opts)?,
        })
    }

    fn store_ops(&self, batch: &mut Vec<pyzor_store::Op<'a>>) {
        self.digest.store_ops(batch);
    }

    fn reply(&self, records: &[Option<Record>]) -> ReplyBody {
        self.digest
            .record(records)
            .map_or(ReplyBody::Bare, |r| ReplyBody::Counts {
                count: r.r_count,
                wl_count: r.wl_count,
            })
    }

    fn ignored(&self) -> usize {
        self.digest.ignored()
    }
}
