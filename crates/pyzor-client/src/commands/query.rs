//! Asking the servers: every server concurrently, several digests at once.

use std::time::Duration;

use crate::net::{self, Outcome};
use pyzor_config::client::{Accounts, ServerAddr};
use pyzor_protocol::wire::Op;

/// The servers, accounts and timeout used for network commands.
#[derive(Debug, Clone)]
pub struct Client {
    /// Servers in servers-file order.
    pub servers: Vec<ServerAddr>,
    /// Accounts by (host, port) as written.
    pub accounts: Accounts,
    /// Reply timeout per request.
    pub timeout: Duration,
}

impl Client {
    /// Ask every server concurrently; results in servers order
    /// (B8: the reference prints in completion order — nondeterministic —
    /// we print in the servers file's order).
    pub(crate) fn query_all(&self, op: Op, digest: Option<&str>) -> Vec<Outcome> {
        let digests: Vec<&str> = digest.into_iter().collect();
        let one = |s: &ServerAddr| {
            let account = self.accounts.get(&(s.host.clone(), s.port));
            net::request(s, op, &digests, account, self.timeout)
        };
        if self.servers.len() == 1 {
            return vec![one(&self.servers[0])];
        }
        std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .servers
                .iter()
                .map(|s| scope.spawn(move || one(s)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| Outcome::Error {
                        code: 400,
                        diag: "internal error while querying the server".into(),
                    })
                })
                .collect()
        })
    }
}

/// Digests in flight at once for multi-message input (mbox, digests).
/// The reference sends one digest after the other; output order and exit
/// status do not depend on this.
pub(crate) const WINDOW: usize = 8;

impl Client {
    /// [`Client::query_all`] for several digests at once (up to `WINDOW`
    /// in parallel); one result vector per digest, in input order.
    pub(crate) fn query_many(&self, op: Op, digests: &[&str]) -> Vec<Vec<Outcome>> {
        if digests.len() <= 1 {
            return digests
                .iter()
                .map(|d| self.query_all(op, Some(d)))
                .collect();
        }
        let mut out = Vec::with_capacity(digests.len());
        for chunk in digests.chunks(WINDOW) {
            std::thread::scope(|scope| {
                let handles: Vec<_> = chunk
                    .iter()
                    .map(|d| scope.spawn(move || self.query_all(op, Some(d))))
                    .collect();
                for h in handles {
                    out.push(h.join().unwrap_or_else(|_| {
                        vec![
                            Outcome::Error {
                                code: 400,
                                diag: "internal error while querying the servers".into(),
                            };
                            self.servers.len()
                        ]
                    }));
                }
            });
        }
        out
    }
}
