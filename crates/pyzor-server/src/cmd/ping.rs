//! `ping`: is the server there? The reference has no handler for it
//! (`dispatches["ping"] = None`): any `Op-Digest` is ignored, nothing is
//! stored, the reply is a bare 200, nothing is forwarded.
//!
//! ```text
//! Op: ping
//! Thread: 17
//! PV: 2.1
//! ```
//!
//! ```text
//! Code: 200
//! Diag: OK
//! PV: 2.1
//! Thread: 17
//! ```

use pyzor_protocol::wire::server::{Failure, Parsed, ReplyBody};
use pyzor_protocol::wire::Op;
use pyzor_protocol::Record;

use super::{Command, ParseOptions};

#[derive(Clone, Copy, Debug)]
pub(crate) struct Ping;

impl<'a> Command<'a> for Ping {
    const OP: Op = Op::Ping;

    fn parse(_: &'a Parsed, _: ParseOptions) -> Result<Self, Failure> {
        Ok(Ping)
    }

    fn store_ops(&self, _: &mut Vec<pyzor_store::Op<'a>>) {}

    fn reply(&self, _: &[Option<Record>]) -> ReplyBody {
        ReplyBody::Bare
    }
}
