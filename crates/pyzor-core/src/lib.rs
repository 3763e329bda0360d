//! # pyzor-core
//!
//! Everything of Pyzor that is pure computation: no sockets, no threads, no
//! async, no storage. The server, the client, the storage engines and the
//! tools all build on it.
//!
//! | module | concern |
//! | --- | --- |
//! | [`record`] | the stored record (counts and four timestamps) shared by every engine |
//! | [`wire`] | request/response datagrams exactly as Pyzor 1.1.2 reads and writes them |
//! | [`auth`] | account keys, signatures, `pyzord.passwd`, `pyzord.access` and the ACL |
//! | [`config`] | the ConfigParser-compatible INI reader, home-directory rules, client files |
//! | [`digest`] | the message digest, byte-identical to the reference's |
//!
//! Every Python quirk reproduced on purpose lives in one function with a comment
//! naming it; deliberate differences from the reference are listed in
//! `docs/compatibility.md`.

pub mod auth;
pub mod config;
pub mod digest;
pub mod record;
pub mod wire;

pub use record::{Record, Timestamp};
