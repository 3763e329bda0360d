//! The Pyzor message digest, byte-identical to Pyzor 1.1.2 on CPython 3.11
//! (`../shared/specs/digest-spec.md`). Work in progress: see the module
//! list below as it fills in.

pub mod codecs;
pub mod html;
pub mod text;
