//! Request and reply datagrams exactly as Pyzor 1.1.2 reads and writes them
//! (docs/protocol.md).
//!
//! * [`email`] — the header parser (Python `email.message_from_bytes`,
//!   compat32): borrowed offsets, no allocation per message once warm.
//! * [`render`] — how Python serialises one header value (`Thread` echo,
//!   signed text).
//! * [`server`] — parse a request, decide it (auth, PV, ACL, dispatch), write the reply.
//! * [`client`] — build a signed request ([`client::build_request`]),
//!   read a reply ([`client::parse_reply`]).
//!
//! Constants shared by both sides: `PROTO_VERSION`, `DIGEST_SPEC`,
//! [`MAX_PACKET_SIZE`], and the operations [`Op`].

pub mod client;
pub mod email;
pub mod render;
pub mod server;

/// `str(pyzor.proto_version)`.
pub(crate) const PROTO_VERSION: &str = "2.1";
/// `Op-Spec` the reference client sends with report/whitelist
/// (`pyzor.digest.digest_spec` flattened).
pub(crate) const DIGEST_SPEC: &str = "20,3,60,3";
/// Both sides read at most this many bytes of a datagram.
pub const MAX_PACKET_SIZE: usize = 8192;
/// `sys.maxsize`: the `Count` of a `pong` reply.
pub const PONG_COUNT: i64 = i64::MAX;

/// The operations the protocol defines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    Ping,
    Pong,
    Check,
    Info,
    Report,
    Whitelist,
}

impl Op {
    pub const ALL: [Op; 6] = [
        Op::Ping,
        Op::Pong,
        Op::Check,
        Op::Info,
        Op::Report,
        Op::Whitelist,
    ];

    /// The `Op:` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Ping => "ping",
            Op::Pong => "pong",
            Op::Check => "check",
            Op::Info => "info",
            Op::Report => "report",
            Op::Whitelist => "whitelist",
        }
    }

    /// Exact, case-sensitive match of an `Op:` value (`PING` is not ping).
    pub fn from_bytes(b: &[u8]) -> Option<Op> {
        Some(match b {
            b"ping" => Op::Ping,
            b"pong" => Op::Pong,
            b"check" => Op::Check,
            b"info" => Op::Info,
            b"report" => Op::Report,
            b"whitelist" => Op::Whitelist,
            _ => return None,
        })
    }
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
