//! The Redis DSN: `host,port,password,db`, `cluster:` and `sentinel:`
//! forms (see the module documentation of [`super`]).

use crate::{Result, StoreError};

/// The parsed DSN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    Single {
        addr: ConnectionAddrSpec,
        password: Option<String>,
        db: i64,
    },
    Cluster {
        nodes: Vec<(String, u16)>,
        password: Option<String>,
    },
    /// The master named `master`, found through these Sentinels.
    Sentinel {
        sentinels: Vec<(String, u16)>,
        master: String,
        password: Option<String>,
        db: i64,
    },
}

/// Where a single Redis listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ConnectionAddrSpec {
    Tcp(String, u16),
    Unix(String),
}

/// `host:port;host:port` (at least one).
fn host_ports(list: &str) -> Result<Vec<(String, u16)>> {
    let mut nodes = Vec::new();
    for n in list.split(';').filter(|s| !s.is_empty()) {
        let (h, p) = n
            .rsplit_once(':')
            .ok_or_else(|| StoreError::Config(format!("Redis node {n:?} must be host:port")))?;
        let p: u16 = p
            .parse()
            .map_err(|_| StoreError::Config(format!("Redis node {n:?}: bad port")))?;
        nodes.push((h.to_string(), p));
    }
    if nodes.is_empty() {
        return Err(StoreError::Config(
            "cluster:/sentinel: need at least one host:port".into(),
        ));
    }
    Ok(nodes)
}

/// Parse `host,port,password,db` (see the module documentation of [`super`]).
pub(crate) fn parse_dsn(dsn: &str) -> Result<Target> {
    let f: Vec<&str> = dsn.split(',').collect();
    if f.len() != 4 {
        return Err(StoreError::Config(format!(
            "Redis DSN {dsn:?} must have four comma-separated fields: host,port,password,db"
        )));
    }
    let password = (!f[2].is_empty()).then(|| f[2].to_string());
    let db: i64 = if f[3].is_empty() {
        0
    } else {
        f[3].trim().parse().map_err(|_| {
            StoreError::Config(format!("Redis DSN {dsn:?}: db {:?} is not a number", f[3]))
        })?
    };
    if let Some(rest) = f[0].strip_prefix("sentinel:") {
        let (master, list) = rest.split_once('@').ok_or_else(|| {
            StoreError::Config(format!(
                "Redis DSN {dsn:?}: write sentinel:<master name>@host:port;host:port"
            ))
        })?;
        let sentinels = host_ports(list)?;
        if master.is_empty() {
            return Err(StoreError::Config(
                "sentinel: needs the master's name before @".into(),
            ));
        }
        return Ok(Target::Sentinel {
            sentinels,
            master: master.to_string(),
            password,
            db,
        });
    }
    if let Some(list) = f[0].strip_prefix("cluster:") {
        if db != 0 {
            return Err(StoreError::Config("Redis Cluster has only db 0".into()));
        }
        let nodes = host_ports(list)?;
        return Ok(Target::Cluster { nodes, password });
    }
    let host = if f[0].is_empty() { "localhost" } else { f[0] };
    let addr = if host.contains('/') {
        ConnectionAddrSpec::Unix(host.to_string())
    } else {
        let port: u16 = if f[1].is_empty() {
            6379
        } else {
            f[1].trim().parse().map_err(|_| {
                StoreError::Config(format!(
                    "Redis DSN {dsn:?}: port {:?} is not a number",
                    f[1]
                ))
            })?
        };
        ConnectionAddrSpec::Tcp(host.to_string(), port)
    };
    Ok(Target::Single { addr, password, db })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dsn_forms() {
        assert_eq!(
            parse_dsn(",,,").unwrap(),
            Target::Single {
                addr: ConnectionAddrSpec::Tcp("localhost".into(), 6379),
                password: None,
                db: 0
            }
        );
        assert_eq!(
            parse_dsn("/run/redis.sock,,pw,3").unwrap(),
            Target::Single {
                addr: ConnectionAddrSpec::Unix("/run/redis.sock".into()),
                password: Some("pw".into()),
                db: 3
            }
        );
        assert_eq!(
            parse_dsn("cluster:a:7000;b:7001,,pw,").unwrap(),
            Target::Cluster {
                nodes: vec![("a".into(), 7000), ("b".into(), 7001)],
                password: Some("pw".into())
            }
        );
        assert_eq!(
            parse_dsn("sentinel:mymaster@s1:26379;s2:26380,,pw,2").unwrap(),
            Target::Sentinel {
                sentinels: vec![("s1".into(), 26379), ("s2".into(), 26380)],
                master: "mymaster".into(),
                password: Some("pw".into()),
                db: 2
            }
        );
        for bad in [
            "sentinel:s1:26379,,,",
            "sentinel:@s1:1,,,",
            "sentinel:m@,,,",
            "pyzord.db",
            "h,notaport,,0",
            "h,1,,x",
            "cluster:,,,",
            "cluster:a:1,,,2",
        ] {
            assert!(
                matches!(parse_dsn(bad), Err(StoreError::Config(_))),
                "{bad}"
            );
        }
    }
}
