//! `pyzor-bench`: a load generator for Pyzor servers in the spirit of
//! redis-benchmark, an echo responder that measures the machine's UDP
//! ceiling, and `sql-ceiling`, what MySQL or PostgreSQL itself can do for
//! one batch's statements. See docs/benchmarking.md.

mod ceiling;
mod echo;
mod load;
mod proto;
mod stats;

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// What can go wrong before or around a run (answers from the server are
/// counted, never errors).
#[derive(Debug, thiserror::Error)]
pub(crate) enum BenchError {
    #[error("cannot resolve {0}: {1}; give an address such as 127.0.0.1 and a port")]
    Resolve(String, #[source] std::io::Error),
    #[error("socket setup failed: {0}")]
    Socket(#[source] std::io::Error),
    #[error("cannot bind {0}: {1}; is the port in use by something other than pyzor-bench echo?")]
    Bind(SocketAddr, #[source] std::io::Error),
    #[error("cannot start a thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("a worker thread panicked; this is a pyzor-bench bug")]
    WorkerPanic,
    #[error("bad op mix {0:?}: expected e.g. check:90,report:10 with ops check, report, whitelist, info, ping, pong")]
    BadMix(String),
    #[error("bad argument: {0}")]
    BadArg(String),
    #[error("cannot install signal handler: {0}")]
    Signal(#[source] std::io::Error),
    #[error("{0}; is the database running and the --dsn right?")]
    Db(String),
}

/// Which digests the requests carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Population {
    /// Uniformly random from a pool of --pool digests (prefill it with `seq`).
    Pool,
    /// Each digest of the pool once, in order (for prefilling; implies --count = --pool).
    Seq,
    /// Never-seen digests only.
    New,
}

impl Population {
    pub fn name(self) -> &'static str {
        match self {
            Population::Pool => "pool",
            Population::Seq => "seq",
            Population::New => "new",
        }
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "pyzor-bench",
    version,
    about = "Load generator and echo responder for Pyzor servers (UDP)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Send requests with a fixed window of outstanding requests and report
    /// throughput, latency and answer codes.
    Load(LoadArgs),
    /// Answer every datagram with a Pyzor-shaped reply (the ceiling).
    Echo(EchoArgs),
    /// Run one pyzord batch's SQL statements against MySQL or PostgreSQL
    /// directly, with no UDP in between (the SQL engines' ceiling).
    SqlCeiling(ceiling::CeilingArgs),
}

#[derive(Args, Debug, Clone)]
pub(crate) struct LoadArgs {
    /// Server host.
    #[arg(short = 'H', long, default_value = "127.0.0.1")]
    pub host: String,
    /// Server UDP port.
    #[arg(short, long, default_value_t = 24441)]
    pub port: u16,
    /// Requests outstanding at any time (1 … 1024).
    #[arg(short, long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub window: u32,
    /// Op mix, e.g. `check`, `report`, `check:90,report:10`.
    #[arg(short, long, default_value = "check")]
    pub ops: String,
    /// Digest population.
    #[arg(short, long, value_enum, default_value_t = Population::Pool)]
    pub mode: Population,
    /// Size of the digest pool.
    #[arg(short = 'P', long, default_value_t = 100_000)]
    pub pool: u64,
    /// Seed of the digest pool (the same seed gives the same digests).
    #[arg(short = 'S', long, default_value_t = 1)]
    pub seed: u64,
    /// User name to sign with (anonymous requests are signed with the empty key, like the reference client).
    #[arg(short, long, default_value = "anonymous")]
    pub user: String,
    /// Key of --user (the second half of `salt,key` in the client's accounts file).
    #[arg(short, long, default_value = "")]
    pub key: String,
    /// Measured duration in seconds (always bounds the run, also with --count).
    #[arg(short, long, default_value_t = 10.0)]
    pub duration: f64,
    /// Stop after this many measured requests.
    #[arg(short, long)]
    pub count: Option<u64>,
    /// Warm-up seconds before measuring (requests sent then are not counted).
    #[arg(short = 'W', long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Milliseconds after which an unanswered request counts as lost.
    #[arg(short, long = "timeout", default_value_t = 2000)]
    pub timeout_ms: u64,
    /// Generator threads.
    #[arg(short = 'T', long, default_value_t = 1)]
    pub threads: u32,
    /// Sockets per thread (0: min(window / threads, 8)).
    #[arg(long, default_value_t = 0)]
    pub sockets: u32,
    /// Source networks: bind the client sockets in turn to 127.0.1.1,
    /// 127.0.2.1, … (one /24 each), as the clients of a real server come
    /// from many networks (needs a 127.x.x.x target). 1: the system picks
    /// the source address.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=254))]
    pub sources: u32,
    /// The answer Code every request should get.
    #[arg(short, long, default_value_t = 200)]
    pub expect: u16,
    /// Print the result as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub(crate) struct EchoArgs {
    /// Address to listen on.
    #[arg(short, long, default_value = "127.0.0.1")]
    pub addr: String,
    /// UDP port (0: any free port, printed on the first line).
    #[arg(short, long, default_value_t = 24441)]
    pub port: u16,
    /// Responder threads, each with its own SO_REUSEPORT socket.
    #[arg(short = 'T', long, default_value_t = 1)]
    pub threads: u32,
    /// Datagrams per recvmmsg/sendmmsg batch.
    #[arg(short, long, default_value_t = 64)]
    pub batch: u32,
    /// Seconds after which the responder exits by itself.
    #[arg(short, long, default_value_t = 3600.0)]
    pub duration: f64,
}

/// The bounds of a measured run's `--duration` and `--warmup` (load, sql-ceiling).
pub(crate) fn check_timing(duration: f64, warmup: f64) -> Result<(), BenchError> {
    if !(duration > 0.0 && duration <= 86_400.0) {
        return Err(BenchError::BadArg(format!(
            "--duration {duration} must be in (0, 86400] seconds"
        )));
    }
    if !(0.0..=3600.0).contains(&warmup) {
        return Err(BenchError::BadArg(format!(
            "--warmup {warmup} must be in [0, 3600] seconds"
        )));
    }
    Ok(())
}

/// Print a run's result as one JSON object or as text; whether it was OK.
fn report<T: serde::Serialize>(
    json: bool,
    stats: &T,
    text: impl FnOnce(&T) -> String,
    ok: bool,
) -> bool {
    if json {
        println!("{}", serde_json::to_string(stats).expect("stats serialise"));
    } else {
        print!("{}", text(stats));
    }
    ok
}

fn check_load_args(a: &LoadArgs) -> Result<(), BenchError> {
    check_timing(a.duration, a.warmup)?;
    if a.timeout_ms == 0 || a.timeout_ms > 60_000 {
        return Err(BenchError::BadArg(format!(
            "--timeout {} must be 1 … 60000 ms",
            a.timeout_ms
        )));
    }
    if a.user.len() > 256 || a.user.contains(['\n', '\r']) || a.key.len() > 256 {
        return Err(BenchError::BadArg(
            "--user/--key must be one line of at most 256 bytes".into(),
        ));
    }
    if a.threads == 0 || a.threads > 64 {
        return Err(BenchError::BadArg(format!(
            "--threads {} must be 1 … 64",
            a.threads
        )));
    }
    if a.pool == 0 {
        return Err(BenchError::BadArg("--pool must be at least 1".into()));
    }
    Ok(())
}

fn stop_flag() -> Result<Arc<AtomicBool>, BenchError> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).map_err(BenchError::Signal)?;
    }
    Ok(stop)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Load(a) => check_load_args(&a).and_then(|()| {
            let stats = load::run(&a, stop_flag()?)?;
            Ok(report(a.json, &stats, stats::Stats::text, stats.ok))
        }),
        Cmd::SqlCeiling(a) => ceiling::check_args(&a).and_then(|()| {
            let stats = ceiling::run(&a, stop_flag()?)?;
            Ok(report(
                a.json,
                &stats,
                ceiling::CeilingStats::text,
                stats.ok,
            ))
        }),
        Cmd::Echo(a) => {
            if !(a.duration > 0.0 && a.duration <= 7.0 * 86_400.0) {
                Err(BenchError::BadArg(format!(
                    "--duration {} must be in (0, 604800] seconds",
                    a.duration
                )))
            } else {
                stop_flag().and_then(|s| echo::run(&a, s)).map(|()| true)
            }
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("pyzor-bench: {e}");
            ExitCode::from(2)
        }
    }
}
