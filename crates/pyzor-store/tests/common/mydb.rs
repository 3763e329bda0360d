//! A private MariaDB database and user for one test, dropped afterwards.
#![allow(dead_code)]

use mysql::prelude::Queryable;

pub struct MyDb {
    root: mysql::Conn,
    pub db: String,
    pub user: String,
    pub password: String,
}

impl MyDb {
    /// Create it as root over the unix socket; `None` (loud skip) without
    /// MariaDB.
    pub fn create(test: &str) -> Option<MyDb> {
        Self::create_as(test, "pyzor_rs_test_")
    }

    /// [`MyDb::create`] with a database name that starts with `prefix`.
    pub fn create_as(test: &str, prefix: &str) -> Option<MyDb> {
        if !pyzor_testkit::mysql_available(test) {
            return None;
        }
        let opts = mysql::OptsBuilder::new()
            .socket(Some("/run/mysqld/mysqld.sock"))
            .user(Some("root"))
            .prefer_socket(true);
        let mut root = match mysql::Conn::new(opts) {
            Ok(c) => c,
            Err(e) => {
                pyzor_testkit::skip(
                    test,
                    &format!("cannot connect to MariaDB as root over /run/mysqld/mysqld.sock: {e}"),
                );
                return None;
            }
        };
        let tag: u64 = rand_tag();
        let db = format!("{prefix}{tag:x}");
        let user = format!("pyzor_rs_{:x}", tag & 0xffff_ffff);
        let password = format!("pw{tag:x}");
        root.query_drop(format!("CREATE DATABASE {db}")).unwrap();
        for host in ["localhost", "127.0.0.1"] {
            root.query_drop(format!(
                "CREATE USER '{user}'@'{host}' IDENTIFIED BY '{password}'"
            ))
            .unwrap();
            root.query_drop(format!("GRANT ALL ON {db}.* TO '{user}'@'{host}'"))
                .unwrap();
        }
        Some(MyDb {
            root,
            db,
            user,
            password,
        })
    }

    /// DSN over TCP to 127.0.0.1 (host:port form).
    pub fn dsn_tcp(&self, port: u16, table: &str) -> String {
        format!(
            "127.0.0.1:{port},{},{},{},{table}",
            self.user, self.password, self.db
        )
    }

    /// DSN the reference understands (localhost = the unix socket).
    pub fn dsn_local(&self, table: &str) -> String {
        format!(
            "localhost,{},{},{},{table}",
            self.user, self.password, self.db
        )
    }

    pub fn root(&mut self) -> &mut mysql::Conn {
        &mut self.root
    }

    /// How many rows `table` of this database holds (asked as root).
    pub fn rows(&mut self, table: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM `{}`.`{table}`", self.db);
        self.root.query_first(sql).unwrap().unwrap_or(0)
    }
}

impl Drop for MyDb {
    fn drop(&mut self) {
        let _ = self
            .root
            .query_drop(format!("DROP DATABASE IF EXISTS {}", self.db));
        for host in ["localhost", "127.0.0.1"] {
            let _ = self
                .root
                .query_drop(format!("DROP USER IF EXISTS '{}'@'{host}'", self.user));
        }
    }
}

pub fn rand_tag() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.write_u32(std::process::id());
    h.finish()
}
