//! # pyzor-client
//!
//! The `pyzor` client, a drop-in replacement for Pyzor 1.1.2's: same
//! commands, options, files and output (docs/client.md), plus the
//! forwarder library the server uses to pass reports on.
//!
//! | module | concern |
//! | --- | --- |
//! | [`app`] | the program: options, home directory, files, commands, exit status |
//! | [`cli`] | optparse-compatible command line |
//! | [`settings`] | `[client]` defaults, config file, command line |
//! | [`files`] | servers, accounts and local whitelist files |
//! | [`proto`] | request datagrams and reply parsing as the reference client |
//! | [`net`] | one request/reply over UDP with a timeout |
//! | [`commands`] | the commands and their output |
//! | [`output`] | Python reprs and `ctime` |
//! | [`genkey`] | account key generation |
//! | [`digester`] | input styles to digests |
//! | [`logging`] | the reference's log format and levels |

pub mod app;
pub mod cli;
pub mod commands;
mod config_file;
pub mod digester;
pub mod files;
pub mod genkey;
pub mod logging;
pub mod net;
pub mod output;
pub mod proto;
pub mod settings;
