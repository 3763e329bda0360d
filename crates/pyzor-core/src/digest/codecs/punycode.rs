//! `punycode` (encodings/punycode.py). Not yet implemented exactly: see
//! docs/codecs.md.

use super::{CodecError, Out};

pub(crate) fn decode(_input: &[u8], _out: &mut Out) -> Result<(), CodecError> {
    Err(CodecError::Unsupported("punycode".into()))
}
