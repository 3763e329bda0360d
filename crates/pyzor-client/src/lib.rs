//! # pyzor-client
//!
//! The `pyzor` client, a drop-in replacement for Pyzor 1.1.2's: same
//! commands, options, files and output (docs/client.md), plus the
//!
//! Configuration and file formats live in `pyzor_config::client`;
//! request building and reply parsing in `pyzor_protocol::wire::client`.
//!
//! | module | concern |
//! | --- | --- |
//! | [`app`] | the program: options, home directory, files, commands, exit status |
//! | [`cli`] | optparse-compatible command line |
//! | [`net`] | one request/reply over UDP with a timeout |
//! | [`commands`] | the commands, their output (text, JSON) and exit flags |
//! | [`genkey`] | account key generation |
//! | `digester` | input styles to digests |
//! | [`logging`] | the reference's log format and levels |

pub mod app;
pub mod cli;
pub mod commands;
pub(crate) mod digester;
pub mod genkey;
pub mod logging;
pub mod net;
