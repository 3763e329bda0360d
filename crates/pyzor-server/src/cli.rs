//! The `pyzord` command line: every option of the reference (field-survey
//! §5.4) with the same names and value types, plus `--metrics-address` and
//! `--workers`. Long options may be abbreviated to a unique prefix and take
//! `--opt value` or `--opt=value`, as with Python's optparse.

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser, Debug, Clone, Default)]
#[command(
    name = "pyzord",
    about = "Listen for and process incoming Pyzor connections.",
    disable_version_flag = true,
    infer_long_args = true
)]
pub struct Cli {
    /// 'nice' level
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
    /// configuration directory
    #[arg(long = "homedir")]
    pub homedir: Option<PathBuf>,
    /// listen on this IP
    #[arg(short = 'a', long = "address")]
    pub address: Option<String>,
    /// listen on this port
    #[arg(short = 'p', long = "port")]
    pub port: Option<i64>,
    /// select database backend (lmdb, gdbm, redis, redis_v0, mysql, postgres, memory)
    #[arg(short = 'e', long = "database-engine")]
    pub engine: Option<String>,
    /// data source name (filename for gdbm/lmdb, host,port,password,db for redis, host,user,password,database,table for MySQL)
    #[arg(long = "dsn")]
    pub dsn: Option<String>,
    /// accepted for compatibility; gevent does not apply (warned)
    #[arg(long = "gevent")]
    pub gevent: Option<String>,
    /// set to true if multi-threading should be used (maps onto --workers)
    #[arg(long = "threads")]
    pub threads: Option<String>,
    /// the maximum number of concurrent threads (maps onto --workers)
    #[arg(long = "max-threads")]
    pub max_threads: Option<i64>,
    /// set to true if multi-processing should be used (maps onto --workers)
    #[arg(long = "processes")]
    pub processes: Option<String>,
    /// the maximum number of concurrent processes (maps onto --workers)
    #[arg(long = "max-processes")]
    pub max_processes: Option<i64>,
    /// the number of db connections kept by the server (network engines)
    #[arg(long = "db-connections")]
    pub db_connections: Option<i64>,
    /// number of pre-forked workers (maps onto --workers)
    #[arg(long = "pre-fork")]
    pub pre_fork: Option<String>,
    /// name of password file
    #[arg(long = "password-file")]
    pub password_file: Option<String>,
    /// name of ACL file
    #[arg(long = "access-file")]
    pub access_file: Option<String>,
    /// time before digests expire (in seconds)
    #[arg(long = "cleanup-age")]
    pub cleanup_age: Option<String>,
    /// name of the log file
    #[arg(long = "log-file")]
    pub log_file: Option<String>,
    /// name of the usage log file
    #[arg(long = "usage-log-file")]
    pub usage_log_file: Option<String>,
    /// save the pid in this file after the server is daemonized
    #[arg(long = "pid-file")]
    pub pid_file: Option<String>,
    /// Specify a pyzor client configuration directory to forward received digests to a remote pyzor server
    #[arg(long = "forward-client-homedir")]
    pub forward_client_homedir: Option<String>,
    /// daemonizes the server and redirects any output to the specified file
    #[arg(long = "detach")]
    pub detach: Option<PathBuf>,
    /// serve Prometheus metrics on host:port (HTTP)
    #[arg(long = "metrics-address")]
    pub metrics_address: Option<String>,
    /// number of socket workers (default: half the cores, rounded up)
    #[arg(long = "workers")]
    pub workers: Option<i64>,
    /// process (default: an answered report survives kill -9, on disk within ~1 s) or fsync (survives power loss; one fsync per receive batch)
    #[arg(long = "durability")]
    pub durability: Option<String>,
    /// seconds the mysql and postgres engines wait for their database each time they wait (to connect, for a lock, for a statement); default 5
    #[arg(long = "engine-timeout")]
    pub engine_timeout: Option<String>,
    /// print version and exit
    #[arg(short = 'V', long = "version")]
    pub version: bool,
    /// (positional arguments make pyzord print its help, as the reference)
    #[arg(hide = true)]
    pub rest: Vec<String>,
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
        put("MetricsAddress", self.metrics_address.clone());
        put("Workers", self.workers.map(|x| x.to_string()));
        put("Durability", self.durability.clone());
        put("EngineTimeout", self.engine_timeout.clone());
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
        ])
        .unwrap();
        let o = c.overrides();
        assert!(o.contains(&("Port", "1234".into())));
        assert!(o.contains(&("DigestDB", "db".into())));
        assert!(o.contains(&("Threads", "True".into())));
        assert!(o.contains(&("EngineTimeout", "1.5".into())));
        assert_eq!(c.detach, Some(PathBuf::from("out")));
        // unique prefixes, as optparse
        let c = Cli::try_parse_from(["pyzord", "--home", "/x", "--usage-log", "u"]).unwrap();
        assert_eq!(c.homedir, Some(PathBuf::from("/x")));
        assert_eq!(c.usage_log_file.as_deref(), Some("u"));
        assert!(Cli::try_parse_from(["pyzord", "-p", "abc"]).is_err());
        let c = Cli::try_parse_from(["pyzord", "extra"]).unwrap();
        assert_eq!(c.rest, vec!["extra".to_string()]);
        assert!(Cli::try_parse_from(["pyzord", "-V"]).unwrap().version);
    }
}
