//! `info`: the whole record of the **first** `Op-Digest`
//! (`RequestHandler.handle_info`; further digests are ignored). One read;
//! an unknown digest gives zeros (and so does the empty-body digest under
//! `IgnoreEmptyDigest`, without a read). Not forwarded.
//!
//! ```text
//! Op: info
//! Op-Digest: 2aedaac999d71421c9ee49b9d81f627a7bc570aa
//! Thread: 4452
//! PV: 2.1
//! ```
//!
//! ```text
//! Code: 200
//! Diag: OK
//! PV: 2.1
//! Thread: 4452
//! Entered: 0
//! Updated: 0
//! WL-Entered: 0
//! WL-Updated: 0
//! Count: 0
//! WL-Count: 0
//! ```

use pyzor_protocol::record::Timestamp;
use pyzor_protocol::wire::server::{Failure, Parsed, ReplyBody};
use pyzor_protocol::wire::Op;
use pyzor_protocol::Record;

use super::{Command, Lookup, ParseOptions};

#[derive(Clone, Copy, Debug)]
pub(crate) struct Info<'a> {
    /// `digests[0]`.
    digest: Lookup<'a>,
}

impl<'a> Command<'a> for Info<'a> {
    const OP: Op = Op::Info;

    fn parse(req: &'a Parsed, opts: ParseOptions) -> Result<Self, Failure> {
        Ok(Info {
            digest: Lookup::parse(req, opts)?,
        })
    }

    fn store_ops(&self, batch: &mut Vec<pyzor_store::Op<'a>>) {
        self.digest.store_ops(batch);
    }

    fn reply(&self, records: &[Option<Record>]) -> ReplyBody {
        self.digest
            .record(records)
            .map_or(ReplyBody::Bare, |r| ReplyBody::Info {
                entered: time_output(r.r_entered),
                updated: time_output(r.r_updated),
                wl_entered: time_output(r.wl_entered),
                wl_updated: time_output(r.wl_updated),
                count: r.r_count,
                wl_count: r.wl_count,
            })
    }

    fn ignored(&self) -> usize {
        self.digest.ignored()
    }
}

/// `handle_info`'s `time_output`, written with `"%d"`:
/// `time.mktime(dt.timetuple())` of the stored local time, i.e. whole
/// epoch seconds; 0 when never set (docs/protocol.md §6).
fn time_output(t: Option<Timestamp>) -> i64 {
    t.map_or(0, |t| t.secs())
}
