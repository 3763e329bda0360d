//! `pyzor-migrate`'s command-line definition, shared by its binary
//! (src/main.rs) and the packaging generator (crates/pyzor-dist).

pub mod cli;
