//! The `[server]` section of `<homedir>/config` and its defaults
//! (docs/field-notes.md §5.2), with the precedence of the reference `pyzord`:
//! built-in defaults < config file < command-line flags.
//!
//! Every key of the reference is accepted with the same default, except:
//! * `Engine` defaults to `lmdb` (our embedded engine). A config file that
//!   says `Engine = gdbm` keeps the reference's GDBM file. See
//!   docs/compatibility.md.
//! * `DigestDB`, when no layer sets it, defaults to `pyzord.db` for `gdbm`
//!   (the reference's file) and `pyzord.lmdb` for `lmdb`, so that the two
//!   never share a file name.
//!
//! Our own keys: `HttpAddress` (`host:port` of the HTTP listener: metrics,
//! and the lookup API and whitelist-request page when turned on; empty =
//! off; `MetricsAddress` is its older name), `HttpApi`,
//! `WhitelistRequests`, `HttpRateLimit` and `WhitelistRequestRateLimit`
//! (see [`HttpConfig`]), `Workers` (number of socket workers; empty or
//! 0 = derived from the reference's concurrency keys, see
//! [`ServerConfig::worker_count`]), `Durability` (`process` or `fsync`,
//! see [`DurabilityMode`]) and `EngineTimeout` (seconds, default 5: how
//! long the network engines wait for their database each time they wait;
//! see [`ServerConfig::engine_timeout`]), and the per-network rate limits
//! (`RateLimit`, `ReportRateLimit`, `RateLimitIPv4Prefix`,
//! `RateLimitIPv6Prefix`, `RateLimitAllow`, `RateLimitMode`; see
//! [`RateLimitConfig`] and docs/security.md), `User`/`Group` (the
//! identity pyzord drops root to once its sockets are bound; empty = stay),
//! the count policies `StrictDigests`, `IgnoreEmptyDigest` and
//! `DistinctWindow`, and `EngineConcurrency` (engine threads per worker
//! for the engines that may block; see
//! [`ServerConfig::engine_concurrency`]).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::home::expand_path;
use super::ini::{Ini, IniError};
use pyzor_protocol::py::py_int;

/// The reference's `[server]` defaults (scripts/pyzord `load_configuration`),
/// plus our keys. `Engine` is ours (see module docs); `DigestDB` is filled
/// in per engine when no layer sets it.
pub const SERVER_DEFAULTS: &[(&str, &str)] = &[
    ("Port", "24441"),
    ("ListenAddress", "0.0.0.0"),
    ("Engine", "lmdb"),
    ("CleanupAge", "10368000"),
    ("Threads", "False"),
    ("MaxThreads", "0"),
    ("Processes", "False"),
    ("MaxProcesses", "40"),
    ("DBConnections", "0"),
    ("PreFork", "0"),
    ("Gevent", "False"),
    ("ForwardClientHomeDir", ""),
    ("PasswdFile", "pyzord.passwd"),
    ("AccessFile", "pyzord.access"),
    ("LogFile", ""),
    ("SentryDSN", ""),
    ("SentryLogLevel", "WARN"),
    ("UsageLogFile", ""),
    ("UsageSentryDSN", ""),
    ("UsageSentryLogLevel", "WARN"),
    ("PidFile", "pyzord.pid"),
    ("MetricsAddress", ""),
    ("HttpAddress", ""),
    ("HttpApi", "False"),
    ("WhitelistRequests", "False"),
    ("HttpRateLimit", "10"),
    ("WhitelistRequestRateLimit", "2"),
    ("Workers", "0"),
    ("Durability", "process"),
    ("EngineTimeout", "5"),
    ("RateLimit", "1000"),
    ("ReportRateLimit", "20"),
    ("RateLimitIPv4Prefix", "24"),
    ("RateLimitIPv6Prefix", "56"),
    ("RateLimitAllow", "127.0.0.0/8, ::1/128"),
    ("RateLimitMode", "enforce"),
    ("StrictDigests", "False"),
    ("User", ""),
    ("Group", ""),
    ("IgnoreEmptyDigest", "False"),
    ("DistinctWindow", "0"),
    ("EngineConcurrency", "2"),
];

/// The largest `EngineTimeout` accepted, in seconds (an hour).
pub(crate) const MAX_ENGINE_TIMEOUT: f64 = 3600.0;

/// `Durability`: how far an answered report has gone when pyzord replies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DurabilityMode {
    /// Survives `kill -9` of pyzord; on disk within about a second (the
    /// engine flush timer).
    #[default]
    Process,
    /// Survives power loss: the engine fsyncs each receive batch's commit
    /// before the replies are sent.
    Fsync,
}

impl DurabilityMode {
    /// `process` or `fsync`, any case.
    pub fn parse(v: &str) -> Option<Self> {
        match v.trim().to_ascii_lowercase().as_str() {
            "process" => Some(DurabilityMode::Process),
            "fsync" => Some(DurabilityMode::Fsync),
            _ => None,
        }
    }
}

/// The per-network rate limits (docs/security.md, "Floods and count
/// inflation").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// `RateLimit`: requests per second (and burst) per network for every
    /// op but report and whitelist; 0 = unlimited.
    pub read: u32,
    /// `ReportRateLimit`: the same for report and whitelist; 0 = unlimited.
    pub write: u32,
    /// `RateLimitIPv4Prefix`: IPv4 senders sharing this many leading bits
    /// share their buckets (0..=32).
    pub v4_prefix: u8,
    /// `RateLimitIPv6Prefix`: the same for IPv6 (0..=128).
    pub v6_prefix: u8,
    /// `RateLimitAllow`: networks never limited (`addr/len` or `addr`,
    /// separated by commas or spaces).
    pub allow: Vec<(IpAddr, u8)>,
    /// `RateLimitMode = log`: count what would be limited, limit nothing.
    pub log_only: bool,
}

impl RateLimitConfig {
    /// No limit at all.
    pub fn off() -> Self {
        RateLimitConfig {
            read: 0,
            write: 0,
            v4_prefix: 24,
            v6_prefix: 56,
            allow: Vec::new(),
            log_only: false,
        }
    }

    /// Whether any bucket is limited.
    pub fn enabled(&self) -> bool {
        self.read > 0 || self.write > 0
    }
}

/// The HTTP listener (docs/server.md, "The HTTP listener").
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpConfig {
    /// `HttpAddress`, else `MetricsAddress` (its older name); `None`: no
    /// listener.
    pub address: Option<String>,
    /// `HttpApi`: serve `/v1/digests/…` and `/v1/explain`.
    pub api: bool,
    /// `WhitelistRequests`: serve the whitelist-request page.
    pub requests: bool,
    /// `HttpRateLimit`: API calls and page lookups per second (and burst)
    /// per client network; 0 = unlimited.
    pub read_rate: u32,
    /// `WhitelistRequestRateLimit`: whitelist requests filed per minute
    /// (and burst) per client network; 0 = unlimited.
    pub file_rate: u32,
}

/// `addr/len` (or a bare `addr`: the whole address) for `RateLimitAllow`.
fn parse_network(s: &str) -> Option<(IpAddr, u8)> {
    let (a, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l.parse::<u8>().ok()?)),
        None => (s, None),
    };
    let ip: IpAddr = a.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = len.unwrap_or(max);
    (len <= max).then_some((ip, len))
}

/// Engines whose DSN is a file name relative to the home directory.
const FILE_ENGINES: &[&str] = &["gdbm", "lmdb"];

/// Why the server configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Ini(#[from] IniError),
    #[error("[server] {key} = {value:?} is not valid: expected {expected}")]
    BadValue {
        key: &'static str,
        value: String,
        expected: &'static str,
    },
}

/// The effective `pyzord` settings, typed and with file names expanded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    pub homedir: PathBuf,
    pub port: u16,
    pub listen_address: String,
    pub engine: String,
    /// The DSN; for file engines an absolute path.
    pub digest_db: String,
    /// Whether some layer set `DigestDB` (otherwise it is the engine's default).
    pub digest_db_explicit: bool,
    /// Seconds; 0 or negative disables expiry.
    pub cleanup_age: i64,
    pub threads: bool,
    pub max_threads: i64,
    pub processes: bool,
    pub max_processes: i64,
    pub db_connections: i64,
    pub prefork: i64,
    pub gevent: bool,
    /// Not expanded (the reference passes it as given).
    pub forward_client_homedir: Option<PathBuf>,
    pub passwd_file: Option<PathBuf>,
    pub access_file: Option<PathBuf>,
    pub log_file: Option<PathBuf>,
    pub usage_log_file: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub sentry_dsn: String,
    pub usage_sentry_dsn: String,
    /// The HTTP listener (ours).
    pub http: HttpConfig,
    /// 0 = automatic.
    pub workers: usize,
    /// `Durability` (ours).
    pub durability: DurabilityMode,
    /// `EngineTimeout` (ours): seconds, fractions allowed, above 0 and at
    /// most `MAX_ENGINE_TIMEOUT`. The mysql and postgres engines wait at
    /// most this long for their database each time they wait (to connect,
    /// for a lock, for a statement); a request that cannot be served in
    /// that time is answered with the reference's 500 "Database
    /// temporarily unavailable." (docs/engines.md, "Timeouts").
    pub engine_timeout: Duration,
    /// The per-network rate limits (ours).
    pub rate_limit: RateLimitConfig,
    /// `StrictDigests` (ours): report and whitelist count only digests of
    /// 40 lower-case hex digits and refuse others with a 400; off by
    /// default, as the reference counts any string (docs/security.md).
    pub strict_digests: bool,
    /// `User` / `Group` (ours): run as this user and group once the
    /// sockets are bound and the files open; `None` = as started.
    pub user: Option<String>,
    pub group: Option<String>,
    /// `IgnoreEmptyDigest` (ours): check and info answer the empty-body
    /// digest with zeros, report and whitelist do not count it; off by
    /// default (docs/security.md, "The empty-body digest").
    pub ignore_empty_digest: bool,
    /// `DistinctWindow` (ours): seconds (0 = off, at most
    /// [`MAX_DISTINCT_WINDOW`]) in which a digest's report or whitelist
    /// count rises at most once per reporter (docs/security.md, "Distinct
    /// reporters").
    pub distinct_window: u32,
    /// `EngineConcurrency` (ours): engine threads per worker, from 1 to
    /// [`MAX_ENGINE_CONCURRENCY`], for the engines whose calls may block
    /// (redis, mysql, postgres): that many batches of one worker are in
    /// flight at once; with 2 or more, reads on one thread and writes on
    /// the others, requests that share a digest in arrival order
    /// (docs/server.md, "Concurrency"). Ignored by the embedded engines.
    pub engine_concurrency: usize,
}

/// The most `EngineConcurrency` accepted.
pub const MAX_ENGINE_CONCURRENCY: usize = 64;

/// The longest `DistinctWindow` accepted, in seconds (30 days).
pub const MAX_DISTINCT_WINDOW: u32 = 30 * 86_400;

impl ServerConfig {
    /// Where pyzord keeps its own state beside the engine's data (the
    /// whitelist requests): the directory of `DigestDB` for the file
    /// engines (lmdb, gdbm), the home directory for the others. The
    /// packaged service's home directory (`/etc/pyzor`) is read-only to it;
    /// its database directory (`/var/lib/pyzor`) is not.
    pub fn data_dir(&self) -> PathBuf {
        if FILE_ENGINES.contains(&self.engine.as_str()) {
            if let Some(dir) = Path::new(&self.digest_db)
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                return dir.to_path_buf();
            }
        }
        self.homedir.clone()
    }

    /// Build the layered configuration: defaults, then the `[server]`
    /// section of `<homedir>/config` (if the file exists), then `overrides`
    /// (command-line flags, keyed by the reference's config key names, e.g.
    /// `("Port", "24442")`).
    pub fn load(homedir: &Path, overrides: &[(&str, String)]) -> Result<Self, ConfigError> {
        let mut ini = Ini::new();
        for (k, v) in SERVER_DEFAULTS {
            ini.set("server", k, v);
        }
        let config_file = homedir.join("config");
        ini.read_file(&config_file)?;
        for (k, v) in overrides {
            ini.set("server", k, v);
        }
        Self::from_ini(&ini, homedir)
    }

    /// Typed settings from an [`Ini`] that already holds all layers.
    pub(crate) fn from_ini(ini: &Ini, homedir: &Path) -> Result<Self, ConfigError> {
        let get = |k: &str| -> Result<String, ConfigError> {
            Ok(ini.get("server", k)?.unwrap_or_default())
        };
        let int = |k: &'static str| -> Result<i64, ConfigError> {
            let v = get(k)?;
            py_int(&v).ok_or(ConfigError::BadValue {
                key: k,
                value: v,
                expected: "an integer",
            })
        };
        // `config.get(...).lower() == "true"` (scripts/pyzord)
        let boolean =
            |k: &str| -> Result<bool, ConfigError> { Ok(get(k)?.to_lowercase() == "true") };
        let file = |k: &str| -> Result<Option<PathBuf>, ConfigError> {
            Ok(expand_path(&get(k)?, homedir))
        };

        let port_raw = int("Port")?;
        let port = u16::try_from(port_raw).map_err(|_| ConfigError::BadValue {
            key: "Port",
            value: port_raw.to_string(),
            expected: "a port number 0..65535",
        })?;
        let engine = get("Engine")?;
        let (digest_db_raw, digest_db_explicit) = match ini.get("server", "DigestDB")? {
            Some(v) => (v, true),
            None => (
                if engine == "lmdb" {
                    "pyzord.lmdb"
                } else {
                    "pyzord.db"
                }
                .to_owned(),
                false,
            ),
        };
        let digest_db = if FILE_ENGINES.contains(&engine.as_str()) {
            expand_path(&digest_db_raw, homedir)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default()
        } else {
            digest_db_raw
        };
        let threads = boolean("Threads")?;
        let processes = boolean("Processes")?;
        let prefork = int("PreFork")?;
        // `Threads` + `Processes` together and `PreFork` = 1 (or < 0) make
        // the reference exit 1; they are accepted here and warned about by
        // pyzord (docs/compatibility.md, issue #2 item 4), see
        // [`ServerConfig::worker_count`] for what they mean.
        let workers_raw = int("Workers")?;
        let workers = usize::try_from(workers_raw).map_err(|_| ConfigError::BadValue {
            key: "Workers",
            value: workers_raw.to_string(),
            expected: "a number of workers >= 0",
        })?;
        let dur_raw = get("Durability")?;
        let durability = DurabilityMode::parse(&dur_raw).ok_or(ConfigError::BadValue {
            key: "Durability",
            value: dur_raw,
            expected: "process or fsync",
        })?;
        let et_raw = get("EngineTimeout")?;
        let engine_timeout = et_raw
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|s| *s > 0.0 && *s <= MAX_ENGINE_TIMEOUT)
            .map(Duration::from_secs_f64)
            .ok_or(ConfigError::BadValue {
                key: "EngineTimeout",
                value: et_raw,
                expected: "a number of seconds above 0 and at most 3600",
            })?;
        let rate_limit = rate_limit_config(&get, &int)?;
        let http = http_config(&get, &int, &boolean)?;
        let fwd = get("ForwardClientHomeDir")?;
        Ok(ServerConfig {
            homedir: homedir.to_owned(),
            port,
            listen_address: get("ListenAddress")?,
            engine,
            digest_db,
            digest_db_explicit,
            cleanup_age: int("CleanupAge")?,
            threads,
            max_threads: int("MaxThreads")?,
            processes,
            max_processes: int("MaxProcesses")?,
            db_connections: int("DBConnections")?,
            prefork,
            gevent: boolean("Gevent")?,
            forward_client_homedir: (!fwd.is_empty()).then(|| PathBuf::from(fwd)),
            passwd_file: file("PasswdFile")?,
            access_file: file("AccessFile")?,
            log_file: file("LogFile")?,
            usage_log_file: file("UsageLogFile")?,
            pid_file: file("PidFile")?,
            sentry_dsn: get("SentryDSN")?,
            usage_sentry_dsn: get("UsageSentryDSN")?,
            http,
            workers,
            durability,
            engine_timeout,
            rate_limit,
            strict_digests: boolean("StrictDigests")?,
            user: Some(get("User")?).filter(|v| !v.is_empty()),
            group: Some(get("Group")?).filter(|v| !v.is_empty()),
            ignore_empty_digest: boolean("IgnoreEmptyDigest")?,
            distinct_window: {
                let v = int("DistinctWindow")?;
                u32::try_from(v)
                    .ok()
                    .filter(|w| *w <= MAX_DISTINCT_WINDOW)
                    .ok_or(ConfigError::BadValue {
                        key: "DistinctWindow",
                        value: v.to_string(),
                        expected: "a number of seconds from 0 (off) to 2592000 (30 days)",
                    })?
            },
            engine_concurrency: {
                let v = int("EngineConcurrency")?;
                usize::try_from(v)
                    .ok()
                    .filter(|k| (1..=MAX_ENGINE_CONCURRENCY).contains(k))
                    .ok_or(ConfigError::BadValue {
                        key: "EngineConcurrency",
                        value: v.to_string(),
                        expected: "a number of engine threads per worker from 1 to 64",
                    })?
            },
        })
    }

    /// How many socket workers to run on a machine with `cores` cores.
    ///
    /// `Workers` wins when set. Otherwise the reference's concurrency keys
    /// map onto workers: `PreFork = N` (N ≥ 2) → N workers; `Threads = true`
    /// with `MaxThreads = N > 0` → min(N, cores); `Processes = true` →
    /// min(MaxProcesses, cores); otherwise one worker per core, each with
    /// its own `SO_REUSEPORT` socket (issue #6 item 3). On a machine whose
    /// load generator runs on the same cores (loopback benchmarks), fewer
    /// workers (`--workers 1`) make larger batches and cost less CPU per
    /// request: the kernel's share of each request is larger than ours.
    /// A `PreFork`
    /// below 2 (other than 0) is ignored, and with both `Threads` and
    /// `Processes` true the `Threads` rule applies; the reference refuses
    /// both combinations (see [`ServerConfig::python_only_notes`]). (The
    /// reference's default is a single thread; ours may use several
    /// workers because our engines are safe to share.)
    pub fn worker_count(&self, cores: usize) -> usize {
        let cores = cores.max(1);
        if self.workers > 0 {
            return self.workers;
        }
        if self.prefork >= 2 {
            return self.prefork as usize;
        }
        if self.threads && self.max_threads > 0 {
            return (self.max_threads as usize).min(cores);
        }
        if self.processes && self.max_processes > 0 {
            return (self.max_processes as usize).min(cores);
        }
        cores
    }
}

/// The `RateLimit*` keys, from `get` and `int` of [`ServerConfig::from_ini`].
fn rate_limit_config(
    get: &dyn Fn(&str) -> Result<String, ConfigError>,
    int: &dyn Fn(&'static str) -> Result<i64, ConfigError>,
) -> Result<RateLimitConfig, ConfigError> {
    let ranged = |k: &'static str, max: i64, expected: &'static str| {
        let v = int(k)?;
        if (0..=max).contains(&v) {
            Ok(v)
        } else {
            Err(ConfigError::BadValue {
                key: k,
                value: v.to_string(),
                expected,
            })
        }
    };
    const RATE: &str = "requests per second, 0 (off) to 1000000";
    let read = ranged("RateLimit", 1_000_000, RATE)? as u32;
    let write = ranged("ReportRateLimit", 1_000_000, RATE)? as u32;
    let v4_prefix = ranged("RateLimitIPv4Prefix", 32, "a prefix length 0..32")? as u8;
    let v6_prefix = ranged("RateLimitIPv6Prefix", 128, "a prefix length 0..128")? as u8;
    let allow_raw = get("RateLimitAllow")?;
    let allow = allow_raw
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(parse_network)
        .collect::<Option<Vec<_>>>()
        .ok_or(ConfigError::BadValue {
            key: "RateLimitAllow",
            value: allow_raw.clone(),
            expected: "networks as addr/len, separated by commas or spaces",
        })?;
    let mode = get("RateLimitMode")?;
    let log_only = match mode.trim().to_ascii_lowercase().as_str() {
        "enforce" => false,
        "log" => true,
        _ => {
            return Err(ConfigError::BadValue {
                key: "RateLimitMode",
                value: mode,
                expected: "enforce or log",
            })
        }
    };
    Ok(RateLimitConfig {
        read,
        write,
        v4_prefix,
        v6_prefix,
        allow,
        log_only,
    })
}

/// The `[server]` keys of the HTTP listener.
fn http_config(
    get: &dyn Fn(&str) -> Result<String, ConfigError>,
    int: &dyn Fn(&'static str) -> Result<i64, ConfigError>,
    boolean: &dyn Fn(&str) -> Result<bool, ConfigError>,
) -> Result<HttpConfig, ConfigError> {
    let rate = |k: &'static str, expected: &'static str| {
        let v = int(k)?;
        u32::try_from(v)
            .ok()
            .filter(|r| *r <= 1_000_000)
            .ok_or(ConfigError::BadValue {
                key: k,
                value: v.to_string(),
                expected,
            })
    };
    let address = [get("HttpAddress")?, get("MetricsAddress")?]
        .into_iter()
        .find(|a| !a.is_empty());
    Ok(HttpConfig {
        address,
        api: boolean("HttpApi")?,
        requests: boolean("WhitelistRequests")?,
        read_rate: rate("HttpRateLimit", "requests per second, 0 (off) to 1000000")?,
        file_rate: rate(
            "WhitelistRequestRateLimit",
            "requests per minute, 0 (off) to 1000000",
        )?,
    })
}

impl ServerConfig {
    /// Warnings for Python-only setting combinations that the reference
    /// refuses (exit 1) and we accept, saying what is done instead. No
    /// combination of the reference's concurrency keys is an error here
    /// (issue #2 item 4; docs/compatibility.md).
    pub fn python_only_notes(&self) -> Vec<String> {
        let mut v = Vec::new();
        if self.threads && self.processes {
            v.push(
                "Threads and Processes are both true (the reference refuses this): using the Threads settings (MaxThreads) for the worker count"
                    .to_owned(),
            );
        }
        if self.prefork != 0 && self.prefork < 2 {
            v.push(format!(
                "PreFork = {} is below 2 (the reference refuses this): ignored, as if PreFork = 0",
                self.prefork
            ));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home_with(config: Option<&str>) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        if let Some(c) = config {
            std::fs::write(t.path().join("config"), c).unwrap();
        }
        t
    }

    /// pyzord's own state lives beside the engine's data: the directory of
    /// `DigestDB` for the file engines (the package's home directory,
    /// /etc/pyzor, is read-only to the service), the home directory else.
    #[test]
    fn data_dir_is_beside_the_engines_data() {
        let data = tempfile::tempdir().unwrap();
        let db = data.path().join("pyzord.lmdb");
        let t = home_with(Some(&format!("[server]\nDigestDB = {}\n", db.display())));
        let c = ServerConfig::load(t.path(), &[]).unwrap();
        assert_eq!(c.data_dir(), data.path());
        let t = home_with(None);
        let c = ServerConfig::load(t.path(), &[]).unwrap();
        assert_eq!(c.data_dir(), t.path(), "default DigestDB is in the home");
        let t = home_with(Some(
            "[server]\nEngine = redis\nDigestDB = localhost,6379,,0\n",
        ));
        let c = ServerConfig::load(t.path(), &[]).unwrap();
        assert_eq!(c.data_dir(), t.path());
    }

    /// `HttpAddress` wins over its older name `MetricsAddress`; the API
    /// and the page are off unless turned on; rates are bounded.
    #[test]
    fn http_keys() {
        let t = home_with(Some("[server]\nMetricsAddress = 127.0.0.1:9100\n"));
        let c = ServerConfig::load(t.path(), &[]).unwrap();
        assert_eq!(c.http.address.as_deref(), Some("127.0.0.1:9100"));
        assert_eq!((c.http.read_rate, c.http.file_rate), (10, 2));
        let c = ServerConfig::load(
            t.path(),
            &[
                ("HttpAddress", "[::1]:8080".into()),
                ("HttpApi", "true".into()),
                ("WhitelistRequests", "True".into()),
                ("WhitelistRequestRateLimit", "0".into()),
            ],
        )
        .unwrap();
        assert_eq!(c.http.address.as_deref(), Some("[::1]:8080"));
        assert!(c.http.api && c.http.requests);
        assert_eq!(c.http.file_rate, 0);
        for bad in ["-1", "1000001", "x"] {
            let e = ServerConfig::load(t.path(), &[("HttpRateLimit", bad.into())]).unwrap_err();
            assert!(e.to_string().contains("HttpRateLimit"), "{e}");
        }
    }

    /// `StrictDigests`: off by default (the reference counts any digest);
    /// `True` in any case turns it on, as the reference's other booleans.
    #[test]
    fn strict_digests_key() {
        let t = home_with(None);
        assert!(!ServerConfig::load(t.path(), &[]).unwrap().strict_digests);
        let t = home_with(Some("[server]\nStrictDigests = true\n"));
        assert!(ServerConfig::load(t.path(), &[]).unwrap().strict_digests);
        let on = [("StrictDigests", "True".to_owned())];
        let t = home_with(None);
        assert!(ServerConfig::load(t.path(), &on).unwrap().strict_digests);
        let t = home_with(Some("[server]\nStrictDigests = yes\n"));
        assert!(!ServerConfig::load(t.path(), &[]).unwrap().strict_digests);
    }

    /// `EngineConcurrency`: 2 by default, 1..=64 from the file or a flag;
    /// anything else names the key.
    #[test]
    fn engine_concurrency_key() {
        let t = home_with(None);
        assert_eq!(
            ServerConfig::load(t.path(), &[])
                .unwrap()
                .engine_concurrency,
            2
        );
        let t = home_with(Some("[server]\nEngineConcurrency = 4\n"));
        assert_eq!(
            ServerConfig::load(t.path(), &[])
                .unwrap()
                .engine_concurrency,
            4
        );
        let flag = [("EngineConcurrency", "64".to_owned())];
        assert_eq!(
            ServerConfig::load(t.path(), &flag)
                .unwrap()
                .engine_concurrency,
            64
        );
        for bad in ["0", "-1", "65", "x", "99999999999999999999"] {
            let flag = [("EngineConcurrency", bad.to_owned())];
            let e = ServerConfig::load(t.path(), &flag).unwrap_err().to_string();
            assert!(e.contains("EngineConcurrency"), "{bad}: {e}");
        }
    }

    /// `IgnoreEmptyDigest` and `DistinctWindow`: off by default (they
    /// change the reference's answers and counts); the window is 0..=30
    /// days, anything else names the key.
    #[test]
    fn count_policy_keys() {
        let t = home_with(None);
        let c = ServerConfig::load(t.path(), &[]).unwrap();
        assert!(!c.ignore_empty_digest);
        assert_eq!(c.distinct_window, 0);
        let t = home_with(Some(
            "[server]\nIgnoreEmptyDigest = True\nDistinctWindow = 3600\n",
        ));
        let c = ServerConfig::load(t.path(), &[]).unwrap();
        assert!(c.ignore_empty_digest);
        assert_eq!(c.distinct_window, 3600);
        let flag = [("DistinctWindow", "60".to_owned())];
        assert_eq!(
            ServerConfig::load(t.path(), &flag).unwrap().distinct_window,
            60
        );
        for bad in ["-1", "2592001", "x"] {
            let t = home_with(Some(&format!("[server]\nDistinctWindow = {bad}\n")));
            let e = ServerConfig::load(t.path(), &[]).unwrap_err().to_string();
            assert!(e.contains("DistinctWindow"), "{bad}: {e}");
        }
    }

    #[test]
    fn defaults_without_config_file() {
        let t = home_with(None);
        let c = ServerConfig::load(t.path(), &[]).unwrap();
        assert_eq!(c.port, 24441);
        assert_eq!(c.listen_address, "0.0.0.0");
        assert_eq!(c.engine, "lmdb");
        assert_eq!(c.digest_db, t.path().join("pyzord.lmdb").to_string_lossy());
        assert!(!c.digest_db_explicit);
        assert_eq!(c.cleanup_age, 10368000);
        assert_eq!(c.passwd_file, Some(t.path().join("pyzord.passwd")));
        assert_eq!(c.access_file, Some(t.path().join("pyzord.access")));
        assert_eq!(c.pid_file, Some(t.path().join("pyzord.pid")));
        assert_eq!(c.log_file, None);
        assert_eq!(c.usage_log_file, None);
        assert_eq!(c.forward_client_homedir, None);
        assert_eq!(c.http.address, None);
        assert!(!c.http.api && !c.http.requests);
        assert!(!c.threads && !c.processes && !c.gevent);
        assert_eq!(
            (c.max_threads, c.max_processes, c.db_connections, c.prefork),
            (0, 40, 0, 0)
        );
    }

    #[test]
    fn precedence_defaults_config_flags() {
        let t = home_with(Some("[server]\nport = 1000\nEngine = gdbm\nLogFile = logs/pyzord.log\nDigestDB = ~root/db\n"));
        let c = ServerConfig::load(t.path(), &[]).unwrap();
        assert_eq!(c.port, 1000);
        assert_eq!(c.engine, "gdbm");
        assert_eq!(c.log_file, Some(t.path().join("logs/pyzord.log")));
        // Expanded like every file-valued key (`~root` is root's home).
        let expanded = crate::home::expand_path("~root/db", t.path()).unwrap();
        assert!(expanded.is_absolute());
        assert_eq!(c.digest_db, expanded.to_string_lossy());
        let c = ServerConfig::load(
            t.path(),
            &[("Port", "2000".into()), ("Engine", "redis".into())],
        )
        .unwrap();
        assert_eq!(c.port, 2000);
        assert_eq!(c.engine, "redis");
        // Non-file engines keep the DSN as written.
        assert_eq!(c.digest_db, "~root/db");
    }

    #[test]
    fn gdbm_default_dsn_is_the_reference_file() {
        let t = home_with(Some("[server]\nEngine = gdbm\n"));
        let c = ServerConfig::load(t.path(), &[]).unwrap();
        assert_eq!(c.digest_db, t.path().join("pyzord.db").to_string_lossy());
    }

    #[test]
    fn bad_values_are_named() {
        let t = home_with(Some("[server]\nPort = 24441 # comment\n"));
        let e = ServerConfig::load(t.path(), &[]).unwrap_err();
        assert!(e.to_string().contains("Port"), "{e}");
        let t = home_with(Some("[server]\nport = 1\nPort = 2\n"));
        assert!(matches!(
            ServerConfig::load(t.path(), &[]),
            Err(ConfigError::Ini(_))
        ));
    }

    #[test]
    fn python_only_combinations_are_warnings() {
        let t = home_with(Some(
            "[server]\nThreads = TRUE\nProcesses = true\nMaxThreads = 2\n",
        ));
        let c = ServerConfig::load(t.path(), &[]).unwrap();
        assert_eq!(c.worker_count(8), 2, "the Threads rule applies");
        let n = c.python_only_notes();
        assert_eq!(n.len(), 1);
        assert!(n[0].contains("Threads and Processes"), "{n:?}");
        let t = home_with(None);
        for pf in ["1", "-3"] {
            let c = ServerConfig::load(t.path(), &[("PreFork", pf.into())]).unwrap();
            assert_eq!(c.worker_count(4), 4, "PreFork {pf} is ignored");
            let n = c.python_only_notes();
            assert!(
                n.len() == 1 && n[0].contains(&format!("PreFork = {pf}")),
                "{n:?}"
            );
        }
        let c = ServerConfig::load(t.path(), &[("PreFork", "2".into())]).unwrap();
        assert!(c.python_only_notes().is_empty());
        assert_eq!(c.worker_count(8), 2);
    }

    #[test]
    fn durability_key() {
        let t = home_with(None);
        let c = ServerConfig::load(t.path(), &[]).unwrap();
        assert_eq!(c.durability, DurabilityMode::Process);
        let t = home_with(Some("[server]\nDurability = FSync\n"));
        let c = ServerConfig::load(t.path(), &[]).unwrap();
        assert_eq!(c.durability, DurabilityMode::Fsync);
        let c = ServerConfig::load(t.path(), &[("Durability", "process".into())]).unwrap();
        assert_eq!(c.durability, DurabilityMode::Process);
        let e = ServerConfig::load(t.path(), &[("Durability", "disk".into())]).unwrap_err();
        assert!(e.to_string().contains("Durability"), "{e}");
    }

    #[test]
    fn engine_timeout_key() {
        let t = home_with(None);
        let c = ServerConfig::load(t.path(), &[]).unwrap();
        assert_eq!(c.engine_timeout, Duration::from_secs(5));
        let t = home_with(Some("[server]\nEngineTimeout = 2.5\n"));
        let c = ServerConfig::load(t.path(), &[]).unwrap();
        assert_eq!(c.engine_timeout, Duration::from_millis(2500));
        let c = ServerConfig::load(t.path(), &[("EngineTimeout", " 1 ".into())]).unwrap();
        assert_eq!(c.engine_timeout, Duration::from_secs(1));
        for bad in ["0", "-1", "", "x", "inf", "nan", "3601"] {
            let e = ServerConfig::load(t.path(), &[("EngineTimeout", bad.into())]).unwrap_err();
            assert!(e.to_string().contains("EngineTimeout"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn rate_limit_keys() {
        let t = home_with(None);
        let c = ServerConfig::load(t.path(), &[]).unwrap().rate_limit;
        assert_eq!(
            (c.read, c.write, c.v4_prefix, c.v6_prefix),
            (1000, 20, 24, 56)
        );
        assert!(!c.log_only && c.enabled());
        // Loopback (the mail server on the same host) is never limited.
        assert_eq!(
            c.allow,
            vec![
                ("127.0.0.0".parse().unwrap(), 8),
                ("::1".parse().unwrap(), 128)
            ]
        );
        let c = ServerConfig::load(t.path(), &[("RateLimitAllow", "".into())]).unwrap();
        assert!(c.rate_limit.allow.is_empty());
        let t = home_with(Some(
            "[server]\nRateLimit = 0\nReportRateLimit = 0\nRateLimitIPv4Prefix = 16\nRateLimitIPv6Prefix = 48\nRateLimitAllow = 10.0.0.0/8, 2001:db8::/32 192.0.2.7\nRateLimitMode = Log\n",
        ));
        let c = ServerConfig::load(t.path(), &[]).unwrap().rate_limit;
        assert!(!c.enabled() && c.log_only);
        assert_eq!((c.v4_prefix, c.v6_prefix), (16, 48));
        assert_eq!(
            c.allow,
            vec![
                ("10.0.0.0".parse().unwrap(), 8),
                ("2001:db8::".parse().unwrap(), 32),
                ("192.0.2.7".parse().unwrap(), 32)
            ]
        );
        let c = ServerConfig::load(t.path(), &[("ReportRateLimit", "10".into())]).unwrap();
        assert_eq!(c.rate_limit.write, 10);
        for (k, bad) in [
            ("RateLimit", "-1"),
            ("ReportRateLimit", "x"),
            ("RateLimitIPv4Prefix", "33"),
            ("RateLimitIPv6Prefix", "129"),
            ("RateLimitAllow", "10.0.0.0/33"),
            ("RateLimitAllow", "example.com"),
            ("RateLimitMode", "drop"),
        ] {
            let e = ServerConfig::load(t.path(), &[(k, bad.into())]).unwrap_err();
            assert!(e.to_string().contains(k), "{k} {bad:?}: {e}");
        }
    }

    #[test]
    fn empty_file_values_mean_unset() {
        let t = home_with(Some("[server]\nPasswdFile =\nAccessFile =\nPidFile=\n"));
        let c = ServerConfig::load(t.path(), &[]).unwrap();
        assert_eq!(
            (c.passwd_file, c.access_file, c.pid_file),
            (None, None, None)
        );
    }

    #[test]
    fn worker_mapping() {
        let t = home_with(None);
        let mut c = ServerConfig::load(t.path(), &[]).unwrap();
        assert_eq!(c.worker_count(4), 4);
        assert_eq!(c.worker_count(2), 2);
        assert_eq!(c.worker_count(1), 1);
        assert_eq!(c.worker_count(0), 1);
        c.prefork = 3;
        assert_eq!(c.worker_count(4), 3);
        c.prefork = 0;
        c.threads = true;
        c.max_threads = 16;
        assert_eq!(c.worker_count(4), 4);
        c.max_threads = 2;
        assert_eq!(c.worker_count(4), 2);
        c.workers = 7;
        assert_eq!(c.worker_count(4), 7);
    }
}
