//! `check`: the spam and whitelist counts of the **first** `Op-Digest`
//! (`RequestHandler.handle_check`; further digests are ignored, even ones
//! that are not keys). One read; an unknown digest counts 0. Not forwarded.
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

use pyzor_protocol::wire::server::{db_key, Failure, Parsed, ReplyBody};
use pyzor_protocol::wire::Op;
use pyzor_protocol::Record;

use super::{Command, ParseOptions};
use crate::forward::ForwardQueue;
use crate::metrics::Metrics;

#[derive(Clone, Copy, Debug)]
pub(crate) struct Check<'a> {
    /// `digests[0]`; `None` without `Op-Digest` (then a bare 200).
    digest: Option<&'a [u8]>,
}

impl<'a> Command<'a> for Check<'a> {
    const OP: Op = Op::Check;

    fn parse(req: &'a Parsed, _: ParseOptions) -> Result<Self, Failure> {
        let digest = req.digests().next().map(db_key).transpose()?;
        Ok(Check { digest })
    }

    fn store_ops(&self, batch: &mut Vec<pyzor_store::Op<'a>>) {
        batch.extend(self.digest.map(pyzor_store::Op::Get));
    }

    fn reply(&self, records: &[Option<Record>]) -> ReplyBody {
        records.first().map_or(ReplyBody::Bare, |r| {
            let r = r.unwrap_or_default();
            ReplyBody::Counts {
                count: r.r_count,
                wl_count: r.wl_count,
            }
        })
    }

    fn forward(&self, _: &ForwardQueue, _: &Metrics) {}
}
