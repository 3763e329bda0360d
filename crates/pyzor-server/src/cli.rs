//! The `pyzord` command line: every option of the reference
//! (docs/field-notes.md §5.4) with the same names and value types, plus `--http-address` (alias `--metrics-address`), `--http-api`, `--whitelist-requests` and
//! `--workers`. Long options may be abbreviated to a unique prefix and take
//! `--opt value` or `--opt=value`, as with Python's optparse.

use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches, Parser};

#[derive(Parser, Debug, Clone, Default)]
#[command(
    name = "pyzord",
    about = "Listen for and process incoming Pyzor connections.",
    disable_version_flag = true,
    infer_long_args = true
)]
pub struct Cli {
    /// 'nice' level (applied only when not 0)
    #[arg(
        short = 'n',
        long = "nice",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub nice: i32,
    /// enable debugging output
    #[arg(short = 'd', long = "debug")]
    pub debug: bool,
    /// configuration directory (default: $HOME/.pyzor, or /etc/pyzor without $HOME; created if missing)
    #[arg(long = "homedir")]
    pub homedir: Option<PathBuf>,
    /// listen on this IP (default: 0.0.0.0; an address with ':' is IPv6 and also accepts IPv4)
    #[arg(short = 'a', long = "address")]
    pub address: Option<String>,
    /// listen on this port (default: 24441)
    #[arg(short = 'p', long = "port")]
    pub port: Option<i64>,
    /// select database backend (default: lmdb)
    #[arg(short = 'e', long = "database-engine")]
    pub engine: Option<String>,
    /// data source name: a file for lmdb/gdbm (default: pyzord.lmdb / pyzord.db in the homedir), host,port,password,db for redis, host,user,password,database,table for mysql and postgres
    #[arg(long = "dsn")]
    pub dsn: Option<String>,
    /// accepted for compatibility; gevent does not apply (warned)
    #[arg(long = "gevent")]
    pub gevent: Option<String>,
    /// true: min(--max-threads, cores) workers (see --workers)
    #[arg(long = "threads")]
    pub threads: Option<String>,
    /// with --threads true: min(N, cores) workers (default: 0 = one per core; see --workers)
    #[arg(long = "max-threads")]
    pub max_threads: Option<i64>,
    /// true: min(--max-processes, cores) workers (see --workers)
    #[arg(long = "processes")]
    pub processes: Option<String>,
    /// with --processes true: min(N, cores) workers (default: 40; see --workers)
    #[arg(long = "max-processes")]
    pub max_processes: Option<i64>,
    /// connections kept by the redis, mysql and postgres engines (default: 0 = the engine's own: 16 for redis, 8 for mysql and postgres)
    #[arg(long = "db-connections")]
    pub db_connections: Option<i64>,
    /// N >= 2: N workers (see --workers); 1 or below is ignored
    #[arg(long = "pre-fork")]
    pub pre_fork: Option<String>,
    /// name of password file (default: pyzord.passwd in the homedir)
    #[arg(long = "password-file")]
    pub password_file: Option<String>,
    /// name of ACL file (default: pyzord.access in the homedir)
    #[arg(long = "access-file")]
    pub access_file: Option<String>,
    /// time before digests expire, in seconds (default: 10368000 = 120 days; 0 disables expiry)
    #[arg(long = "cleanup-age")]
    pub cleanup_age: Option<String>,
    /// name of the log file (default: none; in the foreground the log goes to stderr)
    #[arg(long = "log-file")]
    pub log_file: Option<String>,
    /// name of the usage log file (default: none)
    #[arg(long = "usage-log-file")]
    pub usage_log_file: Option<String>,
    /// with --detach: the daemon's pid is written here, and the file locked while it runs (default: pyzord.pid in the homedir)
    #[arg(long = "pid-file")]
    pub pid_file: Option<String>,
    /// Specify a pyzor client configuration directory to forward received digests to a remote pyzor server
    #[arg(long = "forward-client-homedir")]
    pub forward_client_homedir: Option<String>,
    /// daemonizes the server and redirects any output to the specified file; exits 0 once the server serves, 1 with the reason if it cannot start
    #[arg(long = "detach")]
    pub detach: Option<PathBuf>,
    /// the HTTP listener's host:port: /metrics, and the lookup API and whitelist-request page when turned on (alias --metrics-address) (default: none)
    #[arg(long = "http-address", alias = "metrics-address")]
    pub http_address: Option<String>,
    /// serve the read-only lookup API (/v1/digests/…, /v1/explain) on --http-address (default: off)
    #[arg(long = "http-api")]
    pub http_api: bool,
    /// serve the whitelist-request page (/) on --http-address; requests are kept in pyzord.requests in the homedir (default: off)
    #[arg(long = "whitelist-requests")]
    pub whitelist_requests: bool,
    /// number of socket workers (default: 0 = one per core, unless --pre-fork, --threads or --processes say otherwise)
    #[arg(long = "workers")]
    pub workers: Option<i64>,
    /// process (default: an answered report survives kill -9, on disk within ~1 s) or fsync (survives power loss; one fsync per receive batch); honoured by lmdb, gdbm always syncs, redis/mysql/postgres follow their server's settings
    #[arg(long = "durability")]
    pub durability: Option<String>,
    /// seconds the mysql and postgres engines wait for their database each time they wait (to connect, for a lock, for a statement) (default: 5)
    #[arg(long = "engine-timeout")]
    pub engine_timeout: Option<String>,
    /// requests per second (and burst) per client network for every op but report and whitelist; 0 = unlimited (default: 1000; see docs/security.md)
    #[arg(long = "rate-limit")]
    pub rate_limit: Option<i64>,
    /// reports and whitelists per second (and burst) per client network; 0 = unlimited (default: 20)
    #[arg(long = "report-rate-limit")]
    pub report_rate_limit: Option<i64>,
    /// count only 40 lower-case hex digit digests in report and whitelist; others are refused 400 (default: off, as the reference; see docs/security.md)
    #[arg(long = "strict-digests")]
    pub strict_digests: bool,
    /// once the sockets are bound and the files open, run as this user (name or uid; needs root) (default: none)
    #[arg(long = "user", value_name = "USER")]
    pub user: Option<String>,
    /// with or without --user: run as this group (default: the user's primary group)
    #[arg(long = "group", value_name = "GROUP")]
    pub group: Option<String>,
    /// read the config, passwd and access files, open the engine, print what pyzord would run with; exit 0, or 1 naming the problem
    #[arg(long = "check-config")]
    pub check_config: bool,
    /// check/info of the empty-body digest da39a3ee… answer 0/0, report/whitelist of it count nothing (default: off; docs/security.md)
    #[arg(long = "ignore-empty-digest")]
    pub ignore_empty_digest: bool,
    /// seconds in which a digest's report (and whitelist) count rises at most once per client network or account; 0 = off (default: 0; docs/security.md)
    #[arg(long = "distinct-window")]
    pub distinct_window: Option<i64>,
    /// engine threads per worker for redis, mysql and postgres: batches of one worker in flight at once; with 2 or more the worker makes its reads (and floods of writes) itself and one thread takes the reads that must wait for a write, the others the writes; requests naming one digest in arrival order; 1 to 64 (default: 2; more write threads help only when the database, not the CPU, is the wait: docs/server.md, "Concurrency")
    #[arg(long = "engine-concurrency")]
    pub engine_concurrency: Option<i64>,
    /// print the version on stderr and exit
    #[arg(short = 'V', long = "version")]
    pub version: bool,
    /// (positional arguments make pyzord print its help, as the reference)
    #[arg(hide = true)]
    pub rest: Vec<String>,
}

/// The command line with the help text of this build: `-e` lists the
/// engines compiled in (`pyzor_store::ENGINES`).
pub fn command() -> clap::Command {
    Cli::command().mut_arg("engine", |a| {
        a.help(format!(
            "select database backend: {} (default: {})",
            pyzor_store::ENGINES.join(", "),
            pyzor_store::DEFAULT_ENGINE
        ))
    })
}

/// Parse the process's arguments with [`command`]; `--help` and errors
/// exit as clap does.
pub fn parse() -> Cli {
    let matches = command().get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

impl Cli {
    /// The flags that override config keys, as `(ConfigKey, value)`.
    pub fn overrides(&self) -> Vec<(&'static str, String)> {
        let mut v: Vec<(&'static str, String)> = Vec::new();
        let mut put = |k: &'static str, val: Option<String>| {
            if let Some(x) = val {
                v.push((k, x));
            }
        };
        put("ListenAddress", self.address.clone());
        put("Port", self.port.map(|p| p.to_string()));
        put("Engine", self.engine.clone());
        put("DigestDB", self.dsn.clone());
        put("Gevent", self.gevent.clone());
        put("Threads", self.threads.clone());
        put("MaxThreads", self.max_threads.map(|x| x.to_string()));
        put("Processes", self.processes.clone());
        put("MaxProcesses", self.max_processes.map(|x| x.to_string()));
        put("DBConnections", self.db_connections.map(|x| x.to_string()));
        put("PreFork", self.pre_fork.clone());
        put("PasswdFile", self.password_file.clone());
        put("AccessFile", self.access_file.clone());
        put("CleanupAge", self.cleanup_age.clone());
        put("LogFile", self.log_file.clone());
        put("UsageLogFile", self.usage_log_file.clone());
        put("PidFile", self.pid_file.clone());
        put("ForwardClientHomeDir", self.forward_client_homedir.clone());
        put("HttpAddress", self.http_address.clone());
        put("HttpApi", self.http_api.then(|| "True".to_owned()));
        put(
            "WhitelistRequests",
            self.whitelist_requests.then(|| "True".to_owned()),
        );
        put("Workers", self.workers.map(|x| x.to_string()));
        put("Durability", self.durability.clone());
        put("EngineTimeout", self.engine_timeout.clone());
        put("RateLimit", self.rate_limit.map(|x| x.to_string()));
        put(
            "ReportRateLimit",
            self.report_rate_limit.map(|x| x.to_string()),
        );
        put("User", self.user.clone());
        put("Group", self.group.clone());
        put(
            "StrictDigests",
            self.strict_digests.then(|| "True".to_owned()),
        );
        put(
            "IgnoreEmptyDigest",
            self.ignore_empty_digest.then(|| "True".to_owned()),
        );
        put(
            "DistinctWindow",
            self.distinct_window.map(|x| x.to_string()),
        );
        put(
            "EngineConcurrency",
            self.engine_concurrency.map(|x| x.to_string()),
        );
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_flags_parse() {
        let c = Cli::try_parse_from([
            "pyzord",
            "--homedir",
            "/h",
            "-e",
            "gdbm",
            "--dsn=db",
            "-a",
            "127.0.0.1",
            "-p",
            "1234",
            "--threads",
            "True",
            "--max-threads",
            "4",
            "--pre-fork",
            "0",
            "--password-file",
            "p",
            "--access-file",
            "a",
            "--log-file",
            "l",
            "--detach",
            "out",
            "--forward-client-homedir",
            "f",
            "--db-connections",
            "2",
            "--engine-timeout",
            "1.5",
            "--rate-limit",
            "0",
            "--report-rate-limit",
            "10",
        ])
        .unwrap();
        let o = c.overrides();
        assert!(o.contains(&("Port", "1234".into())));
        assert!(o.contains(&("DigestDB", "db".into())));
        assert!(o.contains(&("Threads", "True".into())));
        assert!(o.contains(&("EngineTimeout", "1.5".into())));
        assert!(o.contains(&("RateLimit", "0".into())));
        assert!(o.contains(&("ReportRateLimit", "10".into())));
        assert_eq!(c.detach, Some(PathBuf::from("out")));
        // unique prefixes, as optparse
        let c = Cli::try_parse_from(["pyzord", "--home", "/x", "--usage-log", "u"]).unwrap();
        assert_eq!(c.homedir, Some(PathBuf::from("/x")));
        assert_eq!(c.usage_log_file.as_deref(), Some("u"));
        assert!(Cli::try_parse_from(["pyzord", "-p", "abc"]).is_err());
        let c = Cli::try_parse_from(["pyzord", "extra"]).unwrap();
        assert_eq!(c.rest, vec!["extra".to_string()]);
        assert!(Cli::try_parse_from(["pyzord", "-V"]).unwrap().version);
        let c = Cli::try_parse_from(["pyzord", "--user", "nobody", "--group=nogroup"]).unwrap();
        assert!(c.overrides().contains(&("User", "nobody".into())));
        assert!(c.overrides().contains(&("Group", "nogroup".into())));
        assert!(
            Cli::try_parse_from(["pyzord", "--check-config"])
                .unwrap()
                .check_config
        );
    }

    #[test]
    fn http_flags_and_the_old_metrics_flag() {
        let c = Cli::try_parse_from(["pyzord", "--metrics-address", "127.0.0.1:1"]).unwrap();
        assert!(c
            .overrides()
            .contains(&("HttpAddress", "127.0.0.1:1".into())));
        let c = Cli::try_parse_from(["pyzord", "--http-address=h:2", "--http-api"]).unwrap();
        let o = c.overrides();
        assert!(o.contains(&("HttpAddress", "h:2".into())));
        assert!(o.contains(&("HttpApi", "True".into())));
        assert!(!o.iter().any(|(k, _)| *k == "WhitelistRequests"));
        let c = Cli::try_parse_from(["pyzord", "--whitelist-requests"]).unwrap();
        assert!(c
            .overrides()
            .contains(&("WhitelistRequests", "True".into())));
    }

    #[test]
    fn strict_digests_flag() {
        let c = Cli::try_parse_from(["pyzord", "--strict-digests"]).unwrap();
        assert!(c.overrides().contains(&("StrictDigests", "True".into())));
        let c = Cli::try_parse_from(["pyzord"]).unwrap();
        assert!(!c.overrides().iter().any(|(k, _)| *k == "StrictDigests"));
    }

    #[test]
    fn count_policy_flags() {
        let c = Cli::try_parse_from([
            "pyzord",
            "--ignore-empty-digest",
            "--distinct-window",
            "600",
        ])
        .unwrap();
        let o = c.overrides();
        assert!(o.contains(&("IgnoreEmptyDigest", "True".into())));
        assert!(o.contains(&("DistinctWindow", "600".into())));
        let o = Cli::try_parse_from(["pyzord"]).unwrap().overrides();
        assert!(!o
            .iter()
            .any(|(k, _)| *k == "IgnoreEmptyDigest" || *k == "DistinctWindow"));
    }

    /// Every "default: X" in the help is the built-in default of the flag's
    /// config key (`SERVER_DEFAULTS`, empty = "none").
    #[test]
    fn help_defaults_are_the_real_defaults() {
        use pyzor_config::SERVER_DEFAULTS;
        let cmd = command();
        let flags = [
            ("address", "ListenAddress"),
            ("port", "Port"),
            ("engine", "Engine"),
            ("max_threads", "MaxThreads"),
            ("max_processes", "MaxProcesses"),
            ("db_connections", "DBConnections"),
            ("password_file", "PasswdFile"),
            ("access_file", "AccessFile"),
            ("cleanup_age", "CleanupAge"),
            ("log_file", "LogFile"),
            ("usage_log_file", "UsageLogFile"),
            ("pid_file", "PidFile"),
            ("http_address", "HttpAddress"),
            ("workers", "Workers"),
            ("rate_limit", "RateLimit"),
            ("report_rate_limit", "ReportRateLimit"),
            ("engine_concurrency", "EngineConcurrency"),
        ];
        for (id, key) in flags {
            let arg = cmd
                .get_arguments()
                .find(|a| a.get_id() == id)
                .unwrap_or_else(|| panic!("no flag {id}"));
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            let claimed = help
                .split("default: ")
                .nth(1)
                .unwrap_or_else(|| panic!("{id}: no default in {help:?}"));
            let real = SERVER_DEFAULTS
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| if v.is_empty() { "none" } else { v })
                .unwrap();
            assert!(
                claimed.starts_with(real)
                    && !claimed[real.len()..].starts_with(|c: char| c.is_ascii_alphanumeric()),
                "--{id} claims {claimed:?}, the default of {key} is {real:?}"
            );
        }
        let durability = cmd
            .get_arguments()
            .find(|a| a.get_id() == "durability")
            .and_then(|a| a.get_help())
            .unwrap()
            .to_string();
        assert!(durability.starts_with("process (default"), "{durability}");
        let real = SERVER_DEFAULTS.iter().find(|(k, _)| *k == "Durability");
        assert_eq!(real, Some(&("Durability", "process")));
    }
}
