//! cargo-fuzz target over the server's request path: `Parsed::parse`,
//! `evaluate` (auth, PV, ACL), `format_reply` and `usage_line`, shared with
//! the stable fuzzer in crates/pyzor-protocol/tests/wire_server_fuzz.rs. Every
//! datagram must give a well-formed reply. Run with `scripts/fuzz`
//! (bounded); seeds in fuzz/seeds/wire_server.
#![no_main]

#[path = "../../crates/pyzor-protocol/tests/wire_fuzz_support/mod.rs"]
mod wire_fuzz_support;

use std::cell::RefCell;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use wire_fuzz_support::{handle, Rules, Worker};

static RULES: OnceLock<Rules> = OnceLock::new();

thread_local! {
    static WORKER: RefCell<Worker> = RefCell::new(Worker::default());
}

fuzz_target!(|data: &[u8]| {
    let rules = RULES.get_or_init(Rules::new);
    WORKER.with(|w| {
        handle(&mut w.borrow_mut(), rules, data);
    });
});
