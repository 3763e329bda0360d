//! A private PostgreSQL database for one test, dropped afterwards.
#![allow(dead_code)]

pub struct PgDb {
    pub db: String,
}

fn admin() -> Result<postgres::Client, postgres::Error> {
    postgres::Config::new()
        .host("127.0.0.1")
        .user("postgres")
        .dbname("postgres")
        .connect_timeout(std::time::Duration::from_secs(3))
        .connect(postgres::NoTls)
}

impl PgDb {
    pub fn create(test: &str) -> Option<PgDb> {
        Self::create_named(test, "pyzor_rs_test")
    }

    /// A database named `{prefix}_{random hex}`.
    pub fn create_named(test: &str, prefix: &str) -> Option<PgDb> {
        if !pyzor_testkit::postgres_available(test) {
            return None;
        }
        let mut c = match admin() {
            Ok(c) => c,
            Err(e) => {
                pyzor_testkit::skip(
                    test,
                    &format!("cannot connect to PostgreSQL as postgres: {e}"),
                );
                return None;
            }
        };
        let db = format!("{prefix}_{:x}", super::mydb::rand_tag());
        c.batch_execute(&format!("CREATE DATABASE {db}")).unwrap();
        Some(PgDb { db })
    }

    pub fn dsn(&self, table: &str) -> String {
        format!("127.0.0.1:5432,postgres,,{},{table}", self.db)
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        if let Ok(mut c) = admin() {
            let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db));
        }
    }
}
