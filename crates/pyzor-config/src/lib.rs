//! # pyzor-config
//!
//! Pyzor's files as the reference scripts read them. This is the crate that
//! touches the file system and the environment (`$HOME`, `/etc/passwd`,
//! the local time zone);
//! the rules of each file's text that the protocol needs (passwd, access)
//! live in `pyzor_protocol::auth`, and Python's `int()`/`str.strip()` in
//! `pyzor_protocol::py`.
//!
//! | module | role |
//! | --- | --- |
//! | [`ini`] | the `configparser.ConfigParser` dialect of `<homedir>/config` |
//! | [`home`] | the home-directory rules and file-name expansion (docs/field-notes.md §5.1) |
//! | [`server`] | the `[server]` keys of `pyzord`, their defaults and the precedence defaults < config file < flags (§5.2, §5.4) |
//! | [`client`] | the `[client]` keys of `pyzor` and the servers, accounts and local whitelist files |
//! | `auth_files` | reading `pyzord.passwd` and `pyzord.access` from disk |
//! | [`localtime`] | `time.localtime()` through the C library, and the log-line format of both scripts |

pub(crate) mod auth_files;
pub mod client;
pub mod home;
pub mod ini;
pub mod localtime;
pub mod server;

pub use auth_files::{load_access, load_passwd, AuthFileError};
pub use home::ensure_homedir;
pub use ini::{Ini, IniError};
pub use server::{HttpConfig, RateLimitConfig, ServerConfig, SERVER_DEFAULTS};
