//! `pyzor-requests`: the operator's command for the whitelist requests of
//! a pyzord home directory (docs/server.md, "Whitelist requests").
//!
//! ```text
//! pyzor-requests [--homedir DIR] list [--all] [--json]
//! pyzor-requests [--homedir DIR] approve DIGEST [--server HOST:PORT] [--client-homedir DIR]
//! pyzor-requests [--homedir DIR] reject DIGEST
//! pyzor-requests [--homedir DIR] purge
//! ```
//!
//! **Approving whitelists through the running pyzord**: a signed
//! `whitelist` datagram, exactly what `pyzor whitelist` sends, to the
//! server of the home directory (its `ListenAddress`, a wildcard meaning
//! loopback, and `Port`; `--server` overrides), signed with the account
//! the client home directory's accounts file has for that address
//! (anonymous without one). Why not the store directly: pyzord holds
//! LMDB and GDBM files for itself (a second process cannot open them
//! while it runs), and through the server the whitelisting is counted,
//! logged in the usage log and forwarded like any other. The account must
//! be allowed `whitelist` in `pyzord.access`. The decision is recorded
//! only after pyzord answered 200; on any other outcome the request stays
//! pending and the error says why. No retry: a lost reply may hide a
//! counted whitelisting (check with `pyzor info` before approving again).

use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use pyzor_config::client::{credentials, parse_accounts, read_client_file, ClientConfig};
use pyzor_config::home::process_default_homedir;
use pyzor_config::ServerConfig;
use pyzor_protocol::wire::client::{build_request, parse_reply, Credentials, Layout};
use pyzor_protocol::wire::{Op, MAX_PACKET_SIZE};

use super::{iso8601, RequestError, RequestLog, Status, WhitelistRequest};

/// How long an approval waits for pyzord's answer.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// The command line.
#[derive(Parser, Debug)]
#[command(
    name = "pyzor-requests",
    about = "List, approve and reject the whitelist requests filed on pyzord's page"
)]
pub struct Cli {
    /// pyzord's home directory (default: $HOME/.pyzor, or /etc/pyzor without HOME)
    #[arg(long)]
    pub homedir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// The pending requests (all with --all), oldest first
    List {
        /// decided requests too
        #[arg(long)]
        all: bool,
        /// one JSON object per line
        #[arg(long)]
        json: bool,
    },
    /// Whitelist the digest through the running pyzord, then mark the request approved
    Approve {
        digest: String,
        /// pyzord's UDP address (default: ListenAddress and Port of the home directory's config; a wildcard address means loopback)
        #[arg(long)]
        server: Option<String>,
        /// the client home directory whose accounts file signs the request (default: as --homedir's default)
        #[arg(long)]
        client_homedir: Option<PathBuf>,
    },
    /// Mark the request rejected (nothing is sent to pyzord)
    Reject { digest: String },
    /// Remove decided requests from the file (their digests may be requested again)
    Purge,
}

/// Why the command failed.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error(transparent)]
    Requests(#[from] RequestError),
    #[error("cannot read the configuration: {0}")]
    Config(String),
    #[error("cannot reach pyzord at {server}: {source}")]
    Network {
        server: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no answer from pyzord at {server} within {} s: is it running on that address? The request stays pending; check the digest with `pyzor info` before approving again", REPLY_TIMEOUT.as_secs())]
    NoReply { server: String },
    #[error("pyzord at {server} refused the whitelisting: {code} {diag}; the request stays pending (is user {user} allowed whitelist in pyzord.access?)")]
    Refused {
        server: String,
        code: i64,
        diag: String,
        user: String,
    },
}

/// Run `cli`, writing to `out`; the exit status.
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<(), OperatorError> {
    let home = cli.homedir.unwrap_or_else(process_default_homedir);
    // The same file pyzord uses: beside the engine's data.
    let data_dir = ServerConfig::load(&home, &[])
        .map_err(|e| OperatorError::Config(e.to_string()))?
        .data_dir();
    let log = RequestLog::in_dir(&data_dir);
    let now = unix_now();
    match cli.command {
        Command::List { all, json } => {
            let requests = log.load()?;
            let shown = requests
                .iter()
                .filter(|r| all || r.status == Status::Pending);
            for r in shown {
                let line = if json {
                    serde_json::to_string(r).unwrap_or_default()
                } else {
                    list_line(r)
                };
                let _ = writeln!(out, "{line}");
            }
            if requests.unreadable > 0 {
                let _ = writeln!(
                    out,
                    "warning: {} unreadable lines in {} were skipped",
                    requests.unreadable,
                    log.path().display()
                );
            }
            Ok(())
        }
        Command::Approve {
            digest,
            server,
            client_homedir,
        } => {
            let (addr, host, port) = server_address(&home, server.as_deref())?;
            let client_home = client_homedir.unwrap_or_else(process_default_homedir);
            let creds = account_for(&client_home, &host, port)?;
            let done = log.decide(&digest, true, now, |r| {
                whitelist_via_server(addr, &creds, &r.digest, REPLY_TIMEOUT)
            })?;
            let _ = writeln!(out, "{} approved: whitelisted on {addr}", done.digest);
            Ok(())
        }
        Command::Reject { digest } => {
            let done = log.decide(&digest, false, now, |_| Ok::<_, OperatorError>(()))?;
            let _ = writeln!(out, "{} rejected", done.digest);
            Ok(())
        }
        Command::Purge => {
            let n = log.purge()?;
            let _ = writeln!(out, "{n} decided requests removed");
            Ok(())
        }
    }
}

/// One line of `list`: every field escaped (the sender wrote them).
fn list_line(r: &WhitelistRequest) -> String {
    let when = |t: i64| iso8601(t).unwrap_or_else(|| t.to_string());
    format!(
        "{}  {}  filed {} from {}  contact {}  reason {}{}",
        r.digest.escape_debug(),
        r.status,
        when(r.filed),
        r.from.escape_debug(),
        r.contact.escape_debug(),
        r.reason.escape_debug(),
        r.decided
            .map(|t| format!("  decided {}", when(t)))
            .unwrap_or_default()
    )
}

/// pyzord's UDP address: `--server`, else the home directory's
/// `ListenAddress` (a wildcard: loopback) and `Port`. Also the host and
/// port as the accounts file names them.
fn server_address(
    home: &std::path::Path,
    given: Option<&str>,
) -> Result<(SocketAddr, String, u16), OperatorError> {
    let (host, port) = match given {
        Some(s) => {
            let (h, p) = s
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
                .ok_or_else(|| {
                    let shown: String = s.chars().take(100).collect();
                    OperatorError::Config(format!("--server {shown:?} is not HOST:PORT"))
                })?;
            (
                h.trim_start_matches('[').trim_end_matches(']').to_owned(),
                p,
            )
        }
        None => {
            let cfg =
                ServerConfig::load(home, &[]).map_err(|e| OperatorError::Config(e.to_string()))?;
            let host = match cfg.listen_address.as_str() {
                "" | "0.0.0.0" => "127.0.0.1".to_owned(),
                "::" => "::1".to_owned(),
                a => a.to_owned(),
            };
            (host, cfg.port)
        }
    };
    let addr = (host.as_str(), port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| OperatorError::Config(format!("cannot resolve {host}:{port}")))?;
    Ok((addr, host, port))
}

/// The credentials the client home directory's accounts file has for
/// `host:port`; anonymous without one.
fn account_for(
    client_home: &std::path::Path,
    host: &str,
    port: u16,
) -> Result<Credentials, OperatorError> {
    let cfg =
        ClientConfig::load(client_home, &[]).map_err(|e| OperatorError::Config(e.to_string()))?;
    let text = match cfg.accounts_file.as_deref().map(read_client_file) {
        Some(Ok(t)) => t,
        Some(Err(e)) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(OperatorError::Config(format!(
                "cannot read the accounts file: {e}"
            )))
        }
        _ => String::new(),
    };
    let (accounts, _) = parse_accounts(&text);
    Ok(credentials(accounts.get(&(host.to_owned(), port))))
}

/// Send one signed `whitelist` of `digest` to `server` and wait for its
/// 200 (the reference client's request, `Layout::Single`).
pub fn whitelist_via_server(
    server: SocketAddr,
    creds: &Credentials,
    digest: &str,
    timeout: Duration,
) -> Result<(), OperatorError> {
    let shown = server.to_string();
    let net = |source| OperatorError::Network {
        server: shown.clone(),
        source,
    };
    let local: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .expect("a literal address");
    let sock = UdpSocket::bind(local).map_err(net)?;
    sock.connect(server).map_err(net)?;
    sock.set_read_timeout(Some(timeout)).map_err(net)?;
    let mut t = [0u8; 2];
    let _ = getrandom::fill(&mut t);
    let thread = u32::from(u16::from_le_bytes(t).max(1024));
    let mut dgram = Vec::new();
    build_request(
        Op::Whitelist,
        &[digest],
        thread,
        creds,
        unix_now(),
        Layout::Single,
        &mut dgram,
    )
    .map_err(|e| OperatorError::Config(format!("cannot build the request: {e}")))?;
    sock.send(&dgram).map_err(net)?;
    let mut buf = vec![0u8; MAX_PACKET_SIZE];
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let n = match sock.recv(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(OperatorError::NoReply { server: shown });
            }
            Err(e) => return Err(net(e)),
        };
        // Not ours (another thread, garbage): keep waiting until the deadline.
        if let Ok(reply) = parse_reply(&buf[..n], thread) {
            if reply.is_ok() {
                return Ok(());
            }
            return Err(OperatorError::Refused {
                server: shown,
                code: reply.code,
                diag: reply.diag.chars().take(200).collect(),
                user: creds.user.clone(),
            });
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(OperatorError::NoReply { server: shown });
        }
        sock.set_read_timeout(Some(left)).map_err(net)?;
    }
}

fn unix_now() -> i64 {
    pyzor_store::now().secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_escapes_what_senders_wrote() {
        let r = WhitelistRequest {
            digest: "d".into(),
            reason: "line1\nline2\u{1b}[2J".into(),
            contact: "a@b".into(),
            filed: 0,
            from: "192.0.2.1".into(),
            status: Status::Pending,
            decided: None,
        };
        let l = list_line(&r);
        assert!(!l.contains('\n') && !l.contains('\u{1b}'), "{l}");
        assert!(l.contains("filed 1970-01-01T00:00:00Z"), "{l}");
    }

    /// The command finds the requests where pyzord keeps them: beside
    /// `DigestDB`, not in the home directory, when the two differ (the
    /// package: home /etc/pyzor, data /var/lib/pyzor).
    #[test]
    fn requests_are_found_beside_the_engines_data() {
        let home = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        std::fs::write(
            home.path().join("config"),
            format!(
                "[server]\nDigestDB = {}\n",
                data.path().join("pyzord.lmdb").display()
            ),
        )
        .unwrap();
        let log = RequestLog::in_dir(data.path());
        let d = "0123456789abcdef0123456789abcdef01234567";
        let req = crate::requests::NewRequest::new(d, "not spam", "a@example.org", "192.0.2.1");
        log.file(&req, 1).unwrap();
        assert!(!home.path().join(crate::requests::FILE_NAME).exists());
        let cli = Cli::try_parse_from([
            "pyzor-requests",
            "--homedir",
            home.path().to_str().unwrap(),
            "list",
        ])
        .unwrap();
        let mut out = Vec::new();
        run(cli, &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains(d), "{out}");
    }

    #[test]
    fn server_addresses() {
        let home = tempfile::tempdir().unwrap();
        let (a, h, p) = server_address(home.path(), None).unwrap();
        assert_eq!(
            (a.to_string(), h.as_str(), p),
            ("127.0.0.1:24441".into(), "127.0.0.1", 24441)
        );
        let (a, _, _) = server_address(home.path(), Some("[::1]:7")).unwrap();
        assert_eq!(a.to_string(), "[::1]:7");
        assert!(server_address(home.path(), Some("nope")).is_err());
    }
}
