//! # pyzor-protocol
//!
//! The Pyzor 1.1.2 protocol as pure code: bytes in, bytes out. No file,
//! socket, environment or clock access; time is passed in by the caller.
//! The server, the client, the storage engines and the tools build on it.
//!
//! | module | role |
//! | --- | --- |
//! | [`py`] | every CPython behaviour the protocol reproduces (`int()`, `float()`, `str.strip`, `repr`, ...), each in one function |
//! | [`record`] | the stored record (counts and four timestamps) shared by every engine, and its one expiry rule |
//! | [`wire`] | request and reply datagrams exactly as the reference reads and writes them |
//! | [`auth`] | account keys, signatures, the text of `pyzord.passwd` and `pyzord.access`, the ACL |
//!
//! Deliberate differences from the reference are listed in
//! `docs/compatibility.md`; the protocol itself is described in
//! `docs/protocol.md`.

pub mod auth;
pub mod py;
pub mod record;
pub mod wire;

pub use record::{Record, Timestamp};
