//! The hook for `ForwardClientHomeDir` / `--forward-client-homedir`:
//! accepted reports and whitelists (never checks) are handed to a
//! [`ForwardSink`], which queues them (bounded, never blocking the worker)
//! and sends them in batches of at most 10 digests to the servers of a
//! client home directory, signed with its accounts.

pub mod client;

use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use crate::metrics::Metrics;
use client::{ForwardOp, Forwarder};

/// Where forwarded digests go. `submit` must not block: when its queue is
/// full it drops the digest and returns `false`.
pub trait ForwardSink: Send + Sync {
    fn submit(&self, whitelist: bool, digest: &str) -> bool;
    /// Send what is pending and stop (shutdown).
    fn shutdown(&self) {}
}

/// The workers' handle to the forwarder.
#[derive(Clone)]
pub struct ForwardQueue {
    sink: Arc<dyn ForwardSink>,
}

impl ForwardQueue {
    pub fn new(sink: Arc<dyn ForwardSink>) -> Self {
        ForwardQueue { sink }
    }

    /// Queue one accepted digest (ASCII: the server refuses others).
    pub fn push(&self, whitelist: bool, digest: &[u8], metrics: &Metrics) {
        let Ok(d) = std::str::from_utf8(digest) else {
            return;
        };
        if self.sink.submit(whitelist, d) {
            metrics.forwarded.fetch_add(1, Relaxed);
        } else {
            metrics.dropped_forward.fetch_add(1, Relaxed);
        }
    }

    pub fn shutdown(&self) {
        self.sink.shutdown();
    }
}

/// The forwarder of `ForwardClientHomeDir`: the batch sender of
/// [`client`] (bounded queue, batches of ≤ 10 digests per server, partial
/// batches flushed after about a second, signed with the directory's
/// accounts).
pub fn start(dir: &Path) -> Result<ForwardQueue, String> {
    let f = Forwarder::new(dir).map_err(|e| format!("cannot start forwarding: {e}"))?;
    let servers: Vec<String> = f
        .servers()
        .iter()
        .map(|s| format!("{}:{}", s.host, s.port))
        .collect();
    log::info!(
        "Forwarding reports and whitelists to {}",
        servers.join(", ")
    );
    Ok(ForwardQueue::new(Arc::new(ClientSink(f))))
}

struct ClientSink(Forwarder);

impl ForwardSink for ClientSink {
    fn submit(&self, whitelist: bool, digest: &str) -> bool {
        let op = if whitelist {
            ForwardOp::Whitelist
        } else {
            ForwardOp::Report
        };
        self.0.submit(op, digest)
    }
    fn shutdown(&self) {
        self.0.shutdown();
        let s = self.0.stats();
        log::info!("Forwarder stopped: {s:?}");
    }
}
