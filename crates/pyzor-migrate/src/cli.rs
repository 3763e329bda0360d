//! The `pyzor-migrate` command line, in the library so that the packaging
//! generator (crates/pyzor-dist) renders its man page and completions
//! from the same definition.

use clap::Parser;

/// The three forms of the command line.
pub const USAGE: &str =
    "pyzor-migrate --se ENGINE --sd DSN --de ENGINE --dd DSN [--delete] [--dry-run]
       pyzor-migrate --se ENGINE --sd DSN --export FILE|-
       pyzor-migrate --import FILE|- --de ENGINE --dd DSN";

/// Command-line options. Long options may be abbreviated to any unique
/// prefix, as with the reference's optparse.
#[derive(Parser, Debug)]
#[command(
    name = "pyzor-migrate",
    version = concat!(env!("CARGO_PKG_VERSION"), " (pyzor-rs; Pyzor 1.1.2 compatible)"),
    about = "Copy Pyzor records from one storage engine to another, or export them to and import them from JSON Lines.",
    long_about = "Copy Pyzor records from one storage engine to another, or export them to and import \
                  them from JSON Lines. Each engine takes its own DSN form: a file name for lmdb and \
                  gdbm, host,port,password,db for redis, host,user,password,database,table for mysql \
                  and postgres (docs/engines.md).",
    override_usage = USAGE,
    infer_long_args = true
)]
pub struct Args {
    /// select source database backend
    #[arg(
        long = "se",
        visible_alias = "source-engine",
        value_name = "SOURCE_ENGINE"
    )]
    pub source_engine: Option<String>,
    /// data source DSN
    #[arg(long = "sd", visible_alias = "source-dsn", value_name = "SOURCE_DSN")]
    pub source_dsn: Option<String>,
    /// select destination database backend
    #[arg(
        long = "de",
        visible_alias = "destination-engine",
        value_name = "DESTINATION_ENGINE"
    )]
    pub destination_engine: Option<String>,
    /// destination DSN
    #[arg(
        long = "dd",
        visible_alias = "destination-dsn",
        value_name = "DESTINATION_DSN"
    )]
    pub destination_dsn: Option<String>,
    /// delete old records (from the source, after all were transferred)
    #[arg(long)]
    pub delete: bool,
    /// read and count the source without writing anything
    #[arg(long)]
    pub dry_run: bool,
    /// write the source's records to FILE as JSON Lines (`-` = stdout)
    /// instead of a destination engine
    #[arg(long, value_name = "FILE", conflicts_with_all = ["destination_engine", "destination_dsn", "import"])]
    pub export: Option<String>,
    /// read records from a JSON Lines FILE (`-` = stdin) instead of a
    /// source engine
    #[arg(long, value_name = "FILE", conflicts_with_all = ["source_engine", "source_dsn", "delete"])]
    pub import: Option<String>,
    /// records per destination write (one transaction where the engine has them)
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub batch_size: u64,
    /// give Redis destination records the rest of this CleanupAge as TTL
    /// (seconds; 0 = no TTL, as the reference's migration)
    #[arg(long, default_value_t = 0)]
    pub cleanup_age: u64,
}

/// The command line as clap sees it (man page, completions).
pub fn command() -> clap::Command {
    <Args as clap::CommandFactory>::command()
}
