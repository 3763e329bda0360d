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
//! | `engine_queue` | a worker's engine threads, for engines that may block |
//! | `own_calls` | a worker's own engine calls with such an engine (its reads, and floods of writes), and its standby thread for when the engine is stuck |
//! | [`net`] | `SO_REUSEPORT` sockets (the port shared with nothing else, datagrams steered by client network), `recvmmsg`/`sendmmsg` |
//! | [`rules`] | accounts + ACL in force, SIGUSR1 reload |
//! | [`logging`] | main and usage logs in the reference's format, off the hot path |
//! | [`metrics`] | counters, Prometheus text endpoint |
//! | `http` | the HTTP listener (`--http-address`) and router (hyper), bounded: `/metrics`, the lookup API, the whitelist-request page |
//! | [`requests`] | whitelist requests filed on the page (`pyzord.requests`) and the operator's `pyzor-requests` |
//! | [`health`] | engine down/up log lines, failures summarised |
//! | [`forward`] | the `ForwardClientHomeDir` hook |
//! | `daemon` | `--detach` (start-up reported to the launcher), the pid file, systemd readiness (`daemon::notify`), `--user`/`--group` (`daemon::privileges`) |
//! | `check_config` | `--check-config`: what pyzord would run with, or the problem |
//!
//! The protocol itself (parsing, decisions, reply bytes) is in
//! `pyzor_protocol::wire::server`; this crate only moves bytes and runs
//! threads. [`run`] is the whole program.

mod call_gate;
mod check_config;
pub mod cli;
mod cmd;
mod daemon;
mod engine_queue;
pub mod forward;
pub mod health;
mod http;
pub mod logging;
pub mod metrics;
pub mod net;
mod own_calls;
mod protect;
pub mod requests;
pub mod rules;
pub mod server;
pub mod worker;

use std::path::PathBuf;
use std::sync::Arc;

use pyzor_config::server::DurabilityMode;
use pyzor_config::{ensure_homedir, home::process_default_homedir, ServerConfig};
use pyzor_store::{Durability, Engine, EngineOptions};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use signal_hook::iterator::Signals;

use pyzor_config::AuthFileError;

use crate::cli::Cli;
use crate::daemon::notify::Notifier;
use crate::daemon::privileges::{self, Identity};
use crate::daemon::{Forked, PidFile, PidFileError};
use crate::logging::{LogSettings, Logs};
use crate::rules::RuleSet;
use crate::server::{Server, StartOptions};

/// The version the reference prints.
pub const VERSION: &str = "1.1.2";

/// The engine options of `cfg` for `workers` workers (also shown, DSN
/// masked, by `--check-config`).
pub(crate) fn engine_options(cfg: &ServerConfig, workers: usize) -> EngineOptions {
    let mut o = EngineOptions::new(&cfg.engine, &cfg.homedir);
    if cfg.digest_db_explicit || pyzor_store::default_dsn(&cfg.engine).is_some() {
        o.dsn = Some(cfg.digest_db.clone());
    }
    o.db_connections = match cfg.db_connections {
        // `DBConnections = 0`: one pooled connection per engine thread
        // and one per worker for its own reads (docs/server.md,
        // "Concurrency"), one for the penalty worker's (docs/security.md,
        // "The penalty box") and one for the HTTP lookups.
        ..=0 => workers.max(1) * (cfg.engine_concurrency.max(1) + 1) + 2,
        n => n as usize,
    };
    o.cleanup_age = cfg.cleanup_age.max(0) as u64;
    o.durability = match cfg.durability {
        DurabilityMode::Process => Durability::Process,
        DurabilityMode::Fsync => Durability::Fsync,
    };
    o.engine_timeout = cfg.engine_timeout;
    o
}

/// Open the configured engine (any of `pyzor_store::ENGINES`; `memory` is
/// volatile, for tests and benchmarks).
pub(crate) fn open_engine(cfg: &ServerConfig, workers: usize) -> Result<Arc<dyn Engine>, String> {
    let o = engine_options(cfg, workers);
    pyzor_store::open(&o).map_err(|e| {
        // never the DSN as written: it may hold a password
        format!(
            "cannot open the {} engine ({}): {e}",
            cfg.engine,
            o.masked_dsn()
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

/// `pyzord` from the command line to the exit status. Call it from `main`
/// before any thread starts: `--detach` forks (`daemon::detach`).
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
        let _ = cli::command().print_help();
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
    if cli.check_config {
        return check_config::run(&cfg, workers, &mut std::io::stdout().lock());
    }
    // Resolved before anything starts: a user that does not exist, or a
    // process that is not root, stops here with the reason.
    let identity = match privileges::resolve(cfg.user.as_deref(), cfg.group.as_deref()) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("pyzord: {e}");
            return 1;
        }
    };
    let detached = match &cli.detach {
        None => None,
        // SAFETY: no thread exists yet: `run` is the whole program (main
        // calls it first) and nothing above starts one (argument parsing,
        // the config reader, the home directory); `detach` also checks.
        Some(out) => match unsafe { daemon::detach(&cwd.join(out)) } {
            Ok(Forked::Daemon(d)) => Some(d),
            Ok(Forked::Launcher(Ok(()))) => return 0,
            Ok(Forked::Launcher(Err(why))) => {
                eprintln!("pyzord: {why}");
                return 1;
            }
            Err(e) => {
                eprintln!("pyzord: cannot detach: {e}");
                return 1;
            }
        },
    };
    let logs = match Logs::start(&LogSettings {
        main_file: cfg.log_file.clone(),
        usage_file: cfg.usage_log_file.clone(),
        debug: cli.debug,
        stderr_info: detached.is_none(),
    }) {
        Ok(l) => l,
        Err(e) => {
            let why = format!("cannot open log files: {e}");
            eprintln!("pyzord: {why}");
            if let Some(d) = detached {
                d.failed(&why);
            }
            return 1;
        }
    };
    logs.install(cli.debug);
    let notifier = match Notifier::from_env() {
        Some(Ok(n)) => Some(n),
        Some(Err(e)) => {
            log::warn!("{e}");
            None
        }
        None => None,
    };
    match start(&cfg, workers, detached.is_some(), &logs, identity.as_ref()) {
        Err(e) => {
            // Said once: the log reaches stderr in the foreground (and the
            // detach output when detached, where the launcher prints it).
            log::error!("{e}");
            logs.flush();
            if let Some(d) = detached {
                d.failed(&e.to_string());
            }
            1
        }
        Ok(mut running) => {
            if let Some(d) = detached {
                d.ready();
            }
            if let Some(n) = &notifier {
                n.ready(&format!("serving on {}", running.server.local_addr()));
            }
            running.notifier = notifier;
            let code = running.serve(&logs);
            log::info!("Server shutdown.");
            logs.flush();
            code
        }
    }
}

/// Why pyzord did not start.
#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error(transparent)]
    PidFile(#[from] PidFileError),
    #[error("{0}")]
    Engine(String),
    #[error(transparent)]
    Rules(#[from] AuthFileError),
    #[error("{0}")]
    Forward(String),
    /// The sockets, threads or metrics endpoint (its text names which).
    #[error(transparent)]
    Server(#[from] server::StartError),
}

/// A started server and what its main thread still holds.
struct Running {
    server: Server,
    signals: Signals,
    /// Locked while the server runs; removed when dropped.
    pid_file: Option<PidFile>,
    /// `$NOTIFY_SOCKET` (systemd `Type=notify`).
    notifier: Option<Notifier>,
}

/// Everything between the logs and "ready": signal handlers, the pid file
/// (detached only: taken first, so that a second pyzord stops before it
/// touches the engine; the pid is written once the sockets are bound), the
/// engine, accounts and ACL, the forwarder, the sockets, the privilege
/// drop (`identity`: after every socket is bound and file opened, before
/// the workers serve), the workers.
fn start(
    cfg: &ServerConfig,
    workers: usize,
    detached: bool,
    logs: &Logs,
    identity: Option<&Identity>,
) -> Result<Running, StartError> {
    let signals = Signals::new([SIGTERM, SIGINT, SIGUSR1, SIGHUP]).map_err(StartError::Signals)?;
    for n in concurrency_notes(cfg, workers) {
        log::warn!("{n}");
    }
    if cfg.http.address.is_none() && (cfg.http.api || cfg.http.requests) {
        log::warn!(
            "HttpApi/WhitelistRequests are on but no HttpAddress is set: nothing is served over HTTP"
        );
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
    let mut pid_file = match cfg.pid_file.as_deref().filter(|_| detached) {
        Some(path) => {
            let (f, stale) = PidFile::acquire(path)?;
            if let Some(stale) = stale {
                log::warn!("Replacing stale pid file {} ({stale})", path.display());
            }
            Some(f)
        }
        None => None,
    };
    let engine = open_engine(cfg, workers).map_err(StartError::Engine)?;
    let rules = Arc::new(RuleSet::load(
        cfg.passwd_file.clone(),
        cfg.access_file.clone(),
    )?);
    let forward = match &cfg.forward_client_homedir {
        Some(dir) => Some(forward::start(dir).map_err(StartError::Forward)?),
        None => None,
    };
    let opts = StartOptions {
        address: cfg.listen_address.clone(),
        port: cfg.port,
        workers,
        cleanup_age: cfg.cleanup_age,
        http: cfg.http.clone(),
        data_dir: cfg.data_dir(),
        engine_queue: server::DEFAULT_ENGINE_QUEUE,
        engine_concurrency: cfg.engine_concurrency,
        rate_limit: cfg.rate_limit.clone(),
        strict_digests: cfg.strict_digests,
        ignore_empty_digest: cfg.ignore_empty_digest,
        distinct_window: cfg.distinct_window,
    };
    let pid_path = pid_file.as_ref().and(cfg.pid_file.as_deref());
    let drop_root = || match identity {
        None => Ok(()),
        Some(id) => {
            let files: Vec<&std::path::Path> = [
                cfg.log_file.as_deref(),
                cfg.usage_log_file.as_deref(),
                pid_path,
            ]
            .into_iter()
            .flatten()
            .collect();
            id.chown(&files)
                .and_then(|()| id.drop_root())
                .map_err(|e| e.to_string())?;
            log::info!("Running as {} (uid {}, gid {}).", id.label, id.uid, id.gid);
            Ok(())
        }
    };
    let server = Server::start_then(&opts, engine, rules, Some(logs.clone()), forward, drop_root)?;
    if let Some(p) = pid_file.as_mut() {
        if let Err(e) = p.write_pid(std::process::id()) {
            server.shutdown();
            return Err(e.into());
        }
    }
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
        if cfg.http.api {
            log::info!("Lookup API on http://{m}/v1/");
        }
        if cfg.http.requests {
            log::info!("Whitelist-request page on http://{m}/");
        }
    }
    Ok(Running {
        server,
        signals,
        pid_file,
        notifier: None,
    })
}

impl Running {
    /// Serve until SIGTERM or SIGINT (SIGUSR1 reloads the accounts and
    /// ACL, SIGHUP reopens the log files), then stop cleanly and remove the
    /// pid file. The service manager hears `RELOADING=1`/`READY=1` around a
    /// reload and `STOPPING=1` when the shutdown begins.
    fn serve(mut self, logs: &Logs) -> i32 {
        let notify = |f: fn(&Notifier)| {
            if let Some(n) = &self.notifier {
                f(n)
            }
        };
        for sig in self.signals.forever() {
            match sig {
                SIGUSR1 => {
                    notify(Notifier::reloading);
                    log::info!("SIGUSR1 received. Reloading configuration.");
                    self.server.reload();
                    notify(|n| n.ready("serving (reloaded)"));
                }
                SIGHUP => {
                    log::info!("SIGHUP received. Reopening the log files.");
                    logs.reopen();
                    log::info!("Log files reopened.");
                }
                SIGINT => {
                    notify(Notifier::stopping);
                    log::info!("SIGINT received. Shutting down.");
                    break;
                }
                _ => {
                    notify(Notifier::stopping);
                    log::info!("SIGTERM received. Shutting down.");
                    break;
                }
            }
        }
        self.server.shutdown();
        drop(self.pid_file);
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The start error names the engine and its DSN, never the password
    /// (nothing listens on port 1: each engine fails to connect).
    #[test]
    fn the_start_error_never_shows_the_password() {
        let home = pyzor_testkit::temp_home();
        let pw = "Pw-Secret-4711";
        let mut cases = Vec::new();
        #[cfg(feature = "mysql")]
        cases.push(("mysql", format!("127.0.0.1:1,pyzor,{pw},pyzor,digests")));
        #[cfg(feature = "postgres")]
        cases.push(("postgres", format!("127.0.0.1:1,pyzor,{pw},pyzor,digests")));
        #[cfg(feature = "redis")]
        cases.push(("redis", format!("127.0.0.1,1,{pw},0")));
        // a malformed DSN: no telling where its password is
        #[cfg(feature = "mysql")]
        cases.push(("mysql", format!("127.0.0.1,pyzor,{pw},pyzor")));
        for (engine, dsn) in cases {
            let cfg = ServerConfig::load(
                home.path(),
                &[
                    ("Engine", engine.into()),
                    ("DigestDB", dsn.clone()),
                    ("EngineTimeout", "1".into()),
                ],
            )
            .unwrap();
            let Err(e) = open_engine(&cfg, 1) else {
                panic!("{engine}: opened {dsn}")
            };
            assert!(!e.contains(pw), "{engine}: {e}");
            assert!(e.contains("***"), "{engine}: {e}");
        }
    }
}
