//! `pong`: answers like a check of a digest reported `sys.maxsize` times
//! (`RequestHandler.handle_pong`), whatever the digests: they are not
//! looked up, nor required to be keys. Nothing stored, not forwarded.
//!
//! ```text
//! Op: pong
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
//! Count: 9223372036854775807
//! WL-Count: 0
//! ```

use pyzor_protocol::wire::server::{Failure, Parsed, ReplyBody};
use pyzor_protocol::wire::{Op, PONG_COUNT};
use pyzor_protocol::Record;

use super::{Command, ParseOptions};

#[derive(Clone, Copy, Debug)]
pub(crate) struct Pong {
    /// Whether the request has an `Op-Digest` (the handler runs only then).
    has_digest: bool,
}

impl<'a> Command<'a> for Pong {
    const OP: Op = Op::Pong;

    fn parse(req: &'a Parsed, _: ParseOptions) -> Result<Self, Failure> {
        Ok(Pong {
            has_digest: req.digests().next().is_some(),
        })
    }

    fn store_ops(&self, _: &mut Vec<pyzor_store::Op<'a>>) {}

    fn reply(&self, _: &[Option<Record>]) -> ReplyBody {
        if self.has_digest {
            ReplyBody::Counts {
                count: PONG_COUNT,
                wl_count: 0,
            }
        } else {
            ReplyBody::Bare
        }
    }
}
