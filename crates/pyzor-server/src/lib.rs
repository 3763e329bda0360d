//! # pyzor-server — the `pyzord` daemon
//!
//! A drop-in replacement for Python Pyzor 1.1.2's `pyzord`: same flags,
//! config keys, home directory, accounts/ACL files and wire protocol
//! (docs/server.md; differences in docs/compatibility.md).
//!
//! | module | concern |
//! | --- | --- |
//! | [`cli`] | the command line (reference flags + `--metrics-address`, `--workers`) |
//! | [`server`] | start/stop: workers, engine timers, metrics endpoint, reload |
//! | [`worker`] | one receive batch → one engine batch → replies |
//! | `engine_queue` | a worker's engine thread, for engines that may block |
//! | [`net`] | `SO_REUSEPORT` sockets, `recvmmsg`/`sendmmsg` |
//! | [`rules`] | accounts + ACL in force, SIGUSR1 reload |
//! | [`logging`] | main and usage logs in the reference's format, off the hot path |
//! | [`metrics`] | counters, Prometheus text endpoint |
//! | [`forward`] | the `ForwardClientHomeDir` hook |
//! | [`daemon`] | `--detach` |
//!
//! The protocol itself (parsing, decisions, reply bytes) is in
//! `pyzor_protocol::wire::server`; this crate only moves bytes and runs
//! threads. [`run`] is the whole program.

pub mod cli;
mod cmd;
pub mod daemon;
mod engine_queue;
pub mod forward;
pub mod logging;
pub mod metrics;
pub mod net;
pub mod rules;
pub mod server;
pub mod worker;

use std::path::PathBuf;
use std::sync::Arc;

use pyzor_config::server::DurabilityMode;
use pyzor_config::{ensure_homedir, home::process_default_homedir, ServerConfig};
use pyzor_store::{Durability, Engine, EngineOptions};
use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
use signal_hook::iterator::Signals;

use crate::cli::Cli;
use crate::logging::{LogSettings, Logs};
use crate::rules::RuleSet;
use crate::server::{Server, StartOptions};

/// The version the reference prints.
pub const VERSION: &str = "1.1.2";

/// Open the configured engine (any of `pyzor_store::ENGINES`; `memory` is
/// volatile, for tests and benchmarks).
pub fn open_engine(cfg: &ServerConfig) -> Result<Arc<dyn Engine>, String> {
    let mut o = EngineOptions::new(&cfg.engine, &cfg.homedir);
    if cfg.digest_db_explicit || pyzor_store::default_dsn(&cfg.engine).is_some() {
        o.dsn = Some(cfg.digest_db.clone());
    }
    o.db_connections = cfg.db_connections.max(0) as usize;
    o.cleanup_age = cfg.cleanup_age.max(0) as u64;
    o.durability = match cfg.durability {
        DurabilityMode::Process => Durability::Process,
        DurabilityMode::Fsync => Durability::Fsync,
    };
    pyzor_store::open(&o).map_err(|e| {
        format!(
            "cannot open the {} engine ({}): {e}",
            cfg.engine, cfg.digest_db
        )
    })
}

/// Warnings about flags that select Python-only machinery.
fn concurrency_notes(cfg: &ServerConfig, workers: usize) -> Vec<String> {
    let mut v = cfg.python_only_notes();
    if cfg.gevent {
        v.push("Gevent is Python-only and ignored: pyzord uses native threads".to_owned());
    }
    if cfg.threads || cfg.processes || cfg.prefork >= 2 {
        v.push(format!(
            "Threads/Processes/PreFork settings are mapped onto {workers} socket workers (see docs/server.md)"
        ));
    }
    v
}

/// `pyzord` from the command line to the exit status.
pub fn run(cli: Cli, argv0: &str) -> i32 {
    // SAFETY: umask has no memory-safety preconditions.
    unsafe {
        libc::umask(0o077);
    }
    if cli.version {
        eprintln!("{argv0} {VERSION}");
        return 0;
    }
    if !cli.rest.is_empty() {
        use clap::CommandFactory;
        let _ = Cli::command().print_help();
        return 0;
    }
    if cli.nice != 0 {
        // Only when asked (the reference always calls os.nice, B10).
        // SAFETY: plain syscall wrapper.
        unsafe {
            *libc::__errno_location() = 0;
            libc::nice(cli.nice);
        }
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let homedir = cwd.join(cli.homedir.clone().unwrap_or_else(process_default_homedir));
    if let Err(e) = ensure_homedir(&homedir) {
        println!(
            "ERROR cannot create home directory {}: {e}",
            homedir.display()
        );
        return 1;
    }
    let cfg = match ServerConfig::load(&homedir, &cli.overrides()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pyzord: configuration error: {e}");
            return 1;
        }
    };
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let workers = cfg.worker_count(cores);
    let detached = cli.detach.is_some();
    if let Some(out) = &cli.detach {
        if let Err(e) = daemon::detach(&cwd.join(out), cfg.pid_file.as_deref()) {
            eprintln!("pyzord: cannot detach: {e}");
            return 1;
        }
    }
    let logs = match Logs::start(&LogSettings {
        main_file: cfg.log_file.clone(),
        usage_file: cfg.usage_log_file.clone(),
        debug: cli.debug,
        stderr_info: !detached,
    }) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("pyzord: cannot open log files: {e}");
            return 1;
        }
    };
    logs.install(cli.debug);
    let code = serve(&cfg, workers, detached, &logs);
    log::info!("Server shutdown.");
    logs.flush();
    code
}

fn serve(cfg: &ServerConfig, workers: usize, detached: bool, logs: &Logs) -> i32 {
    let mut signals = match Signals::new([SIGTERM, SIGINT, SIGUSR1]) {
        Ok(s) => s,
        Err(e) => {
            log::error!("cannot install signal handlers: {e}");
            return 1;
        }
    };
    for n in concurrency_notes(cfg, workers) {
        log::warn!("{n}");
    }
    if !cfg.sentry_dsn.is_empty() || !cfg.usage_sentry_dsn.is_empty() {
        log::warn!("SentryDSN/UsageSentryDSN are not supported and ignored");
    }
    if cfg.engine == "lmdb" && !cfg.digest_db_explicit && cfg.homedir.join("pyzord.db").exists() {
        log::warn!(
            "{} exists (a reference gdbm database) but the engine is lmdb: start with -e gdbm (or Engine = gdbm) to keep using it, or copy it with pyzor-migrate",
            cfg.homedir.join("pyzord.db").display()
        );
    }
    let engine = match open_engine(cfg) {
        Ok(e) => e,
        Err(e) => {
            log::error!("{e}");
            eprintln!("pyzord: {e}");
            return 1;
        }
    };
    let rules = match RuleSet::load(cfg.passwd_file.clone(), cfg.access_file.clone()) {
        Ok(r) => Arc::new(r),
        Err(e) => {
            log::error!("{e}");
            eprintln!("pyzord: {e}");
            return 1;
        }
    };
    let forward = match &cfg.forward_client_homedir {
        Some(dir) => match forward::start(dir) {
            Ok(f) => Some(f),
            Err(e) => {
                log::error!("{e}");
                eprintln!("pyzord: {e}");
                return 1;
            }
        },
        None => None,
    };
    let opts = StartOptions {
        address: cfg.listen_address.clone(),
        port: cfg.port,
        workers,
        cleanup_age: cfg.cleanup_age,
        metrics_address: cfg.metrics_address.clone(),
        engine_queue: server::DEFAULT_ENGINE_QUEUE,
    };
    let server = match Server::start(&opts, engine, rules, Some(logs.clone()), forward) {
        Ok(s) => s,
        Err(e) => {
            log::error!("cannot listen on {}:{}: {e}", cfg.listen_address, cfg.port);
            eprintln!(
                "pyzord: cannot listen on {}:{}: {e}",
                cfg.listen_address, cfg.port
            );
            return 1;
        }
    };
    log::info!(
        "Starting pyzord server on {} ({workers} workers, engine {}, durability {}).",
        server.local_addr(),
        cfg.engine,
        match cfg.durability {
            DurabilityMode::Process => "process",
            DurabilityMode::Fsync => "fsync",
        }
    );
    if let Some(m) = server.metrics_addr() {
        log::info!("Metrics on http://{m}/metrics");
    }
    for sig in signals.forever() {
        match sig {
            SIGUSR1 => {
                log::info!("SIGUSR1 received. Reloading configuration.");
                server.reload();
            }
            _ => {
                log::info!("SIGTERM received. Shutting down.");
                break;
            }
        }
    }
    server.shutdown();
    if detached {
        if let Some(p) = &cfg.pid_file {
            let _ = std::fs::remove_file(p);
        }
    }
    0
}
