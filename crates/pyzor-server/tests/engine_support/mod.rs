//! Helpers of the tests that put a test engine behind a live server
//! (`engine_stall.rs`, `engine_flight.rs`): the `Engine` methods a wrapper
//! of the memory engine only passes on, and a server of one worker or more
//! started through the library API on a port the OS picks.
#![allow(dead_code)]

use std::sync::Arc;

use pyzor_protocol::auth::{Accounts, Acl};
use pyzor_server::rules::{RuleSet, Rules};
use pyzor_server::server::{Server, StartOptions};
use pyzor_store::Engine;

/// The `Engine` methods of a wrapper whose field `inner` is a
/// `MemoryEngine`, passed on to it (`flush` has nothing to do).
#[macro_export]
macro_rules! pass_on_to_inner {
    () => {
        fn put_many(&self, r: &[(Vec<u8>, pyzor_protocol::Record)]) -> pyzor_store::Result<()> {
            self.inner.put_many(r)
        }
        fn delete_many(&self, d: &[Vec<u8>]) -> pyzor_store::Result<()> {
            self.inner.delete_many(d)
        }
        fn scan(&self) -> pyzor_store::Result<pyzor_store::RecordIter<'_>> {
            self.inner.scan()
        }
        fn expire(&self, c: pyzor_protocol::Timestamp) -> pyzor_store::Result<u64> {
            self.inner.expire(c)
        }
        fn flush(&self) -> pyzor_store::Result<()> {
            Ok(())
        }
    };
}

/// One worker (so that every client lands on it), `lanes` engine threads
/// (`EngineConcurrency`), at most `engine_queue` requests waiting for
/// them; no rate limit; anonymous may check, report, ping, pong and info.
pub fn start_one_worker(engine: Arc<dyn Engine>, engine_queue: usize, lanes: usize) -> Server {
    start_workers(engine, 1, engine_queue, lanes)
}

/// [`start_one_worker`] with `workers` workers (clients spread over them
/// by address).
pub fn start_workers(
    engine: Arc<dyn Engine>,
    workers: usize,
    engine_queue: usize,
    lanes: usize,
) -> Server {
    start_with_distinct(engine, (workers, engine_queue, lanes), 0)
}

/// [`start_workers`] with `DistinctWindow = distinct_window` (seconds).
pub fn start_with_distinct(
    engine: Arc<dyn Engine>,
    (workers, engine_queue, lanes): (usize, usize, usize),
    distinct_window: u32,
) -> Server {
    let opts = StartOptions {
        address: "127.0.0.1".into(),
        port: 0,
        workers,
        cleanup_age: 0,
        http: Default::default(),
        data_dir: std::env::temp_dir(),
        engine_queue,
        engine_concurrency: lanes,
        rate_limit: pyzor_config::RateLimitConfig::off(),
        strict_digests: false,
        ignore_empty_digest: false,
        distinct_window,
    };
    let rules = RuleSet::fixed(Rules {
        accounts: Accounts::default(),
        acl: Acl::reference_default(),
    });
    Server::start(&opts, engine, Arc::new(rules), None, None).expect("start the server")
}
