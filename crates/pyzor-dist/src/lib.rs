//! # pyzor-dist — what the Debian package ships besides the binaries
//!
//! Renders, from the programs' own definitions so that nothing drifts:
//!
//! * the man pages of `pyzord(8)`, `pyzor(1)` and `pyzor-migrate(8)`
//!   ([`man_page`]) from each binary's clap `Command`;
//! * their bash, zsh and fish completions ([`completion`]);
//! * `/etc/pyzor/config` ([`server_config`]): every `[server]` key of
//!   `pyzor_config::SERVER_DEFAULTS`, commented out with its default.
//!
//! `scripts/package` runs the `pyzor-dist` binary and lays the files out
//! with the static ones in `packaging/`. The package's layout — where the
//! config, the accounts, the data and the logs live — is [`Layout`]; the
//! unit file and the docs (docs/server.md, "Running under systemd") say
//! the same, and a test reads `packaging/pyzord.service` to check it.

use std::fmt::Write as _;
use std::io::Write as _;

use clap::Command;
use clap_complete::Shell;
use clap_mangen::roff::{bold, italic, roman, Roff};

/// Where the package puts things.
pub struct Layout;

impl Layout {
    /// pyzord's `--homedir`: `config`, `pyzord.passwd`, `pyzord.access`.
    /// Read-only for the service (`ProtectSystem=strict`).
    pub const CONFIG_DIR: &'static str = "/etc/pyzor";
    /// `StateDirectory=pyzor`: the database, owned by the `pyzor` user.
    pub const STATE_DIR: &'static str = "/var/lib/pyzor";
    /// `LogsDirectory=pyzor`: `LogFile` and `UsageLogFile` when set
    /// (rotated by /etc/logrotate.d/pyzor).
    pub const LOG_DIR: &'static str = "/var/log/pyzor";
    /// The system user (and group) pyzord runs as.
    pub const USER: &'static str = "pyzor";
    /// The database file the package's config names: the default engine's
    /// file in the state directory.
    pub const DIGEST_DB: &'static str = "/var/lib/pyzor/pyzord.lmdb";
}

/// A program the package ships.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Program {
    /// The server.
    Pyzord,
    /// The client.
    Pyzor,
    /// The migration tool.
    PyzorMigrate,
    /// The operator's command for whitelist requests.
    PyzorRequests,
}

impl Program {
    /// Every shipped program.
    pub const ALL: [Program; 4] = [
        Program::Pyzord,
        Program::Pyzor,
        Program::PyzorMigrate,
        Program::PyzorRequests,
    ];

    /// The binary's name.
    pub fn name(self) -> &'static str {
        match self {
            Program::Pyzord => "pyzord",
            Program::Pyzor => "pyzor",
            Program::PyzorMigrate => "pyzor-migrate",
            Program::PyzorRequests => "pyzor-requests",
        }
    }

    /// The manual section: 8 for the administrator's programs, 1 for the
    /// client.
    pub fn section(self) -> &'static str {
        match self {
            Program::Pyzor => "1",
            Program::Pyzord | Program::PyzorMigrate | Program::PyzorRequests => "8",
        }
    }

    /// The binary's clap `Command`, with help on every option.
    pub fn command(self) -> Result<Command, DistError> {
        Ok(match self {
            Program::Pyzord => pyzor_server::cli::command(),
            Program::PyzorMigrate => pyzor_migrate::cli::command(),
            Program::PyzorRequests => {
                <pyzor_server::requests::operator::Cli as clap::CommandFactory>::command()
            }
            Program::Pyzor => client_command()?,
        })
    }
}

/// Why a file could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum DistError {
    /// The client's optparse help text no longer has the shape the man page
    /// is read from.
    #[error("pyzor's help text (pyzor_client::cli::help) has no description for option {0}: give it one there")]
    ClientHelp(String),
    /// Writing a rendered file.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The client parses its command line with clap but prints the reference's
/// optparse help, byte for byte (`pyzor_client::cli::help`). The man page
/// takes each option's description and the program's description from that
/// text, so they live once; an option the text does not describe is an
/// error.
fn client_command() -> Result<Command, DistError> {
    let text = pyzor_client::cli::help("pyzor");
    let (description, helps) = parse_optparse_help(&text);
    let mut cmd = pyzor_client::cli::command()
        .about("Pyzor client: check and report message digests with Pyzor servers")
        .long_about(description);
    let longs: Vec<String> = cmd
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_string))
        .collect();
    for long in longs {
        let Some(opt) = helps.iter().find(|o| o.long == long) else {
            return Err(DistError::ClientHelp(format!("--{long}")));
        };
        if opt.help.is_empty() {
            return Err(DistError::ClientHelp(format!("--{long}")));
        }
        let (help, metavar) = (opt.help.clone(), opt.metavar.clone());
        cmd = cmd.mut_arg(&long, |a| match metavar {
            Some(m) => a.help(help).value_name(m),
            None => a.help(help),
        });
    }
    Ok(cmd.mut_arg("commands", |a| {
        a.value_name("COMMAND")
            .help("what to do, in order (see DESCRIPTION); input is read from stdin")
    }))
}

/// One option of an optparse help text.
#[derive(Debug, PartialEq, Eq)]
struct OptparseOption {
    /// The long name, without dashes.
    long: String,
    /// The value's name (`--nice=NICE`), for options that take one.
    metavar: Option<String>,
    /// The help, its lines joined.
    help: String,
}

/// The description and the options of a Python optparse help text
/// (`optparse.OptionParser.format_help`): the description between the
/// usage line and `Options:`, then one entry per option, its help after
/// the option strings or on the indented lines below them.
fn parse_optparse_help(text: &str) -> (String, Vec<OptparseOption>) {
    let mut about = Vec::new();
    let mut opts: Vec<OptparseOption> = Vec::new();
    let mut in_options = false;
    for line in text.lines().skip(1) {
        if line == "Options:" {
            in_options = true;
        } else if !in_options {
            if !line.trim().is_empty() {
                about.push(line.trim());
            }
        } else if line.starts_with("  -") {
            let entry = line.trim_start();
            let (names, help) = match entry.split_once("  ") {
                Some((n, h)) => (n, h.trim()),
                None => (entry, ""),
            };
            let long = names.split(", ").find_map(|n| n.strip_prefix("--"));
            let (long, metavar) = match long.and_then(|l| l.split_once('=')) {
                Some((l, m)) => (l, Some(m.to_string())),
                None => (long.unwrap_or(""), None),
            };
            opts.push(OptparseOption {
                long: long.to_string(),
                metavar,
                help: help.to_string(),
            });
        } else if let Some(opt) = opts.last_mut() {
            let more = line.trim();
            if !more.is_empty() {
                if !opt.help.is_empty() {
                    opt.help.push(' ');
                }
                opt.help.push_str(more);
            }
        }
    }
    (about.join(" "), opts)
}

/// The man page of `program`: NAME, SYNOPSIS, DESCRIPTION and OPTIONS
/// from its clap `Command` (clap_mangen), then FILES, the program's own
/// sections and SEE ALSO.
pub fn man_page(program: Program) -> Result<Vec<u8>, DistError> {
    let cmd = program.command()?;
    let man = clap_mangen::Man::new(cmd)
        .section(program.section())
        .source(format!("pyzor-rs {}", env!("CARGO_PKG_VERSION")))
        .manual("Pyzor");
    let mut out = Vec::new();
    let io = |source| DistError::Io {
        path: format!("{}.{}", program.name(), program.section()),
        source,
    };
    man.render_title(&mut out).map_err(io)?;
    man.render_name_section(&mut out).map_err(io)?;
    man.render_synopsis_section(&mut out).map_err(io)?;
    man.render_description_section(&mut out).map_err(io)?;
    man.render_options_section(&mut out).map_err(io)?;
    let mut roff = Roff::default();
    for (title, entries) in sections(program) {
        roff.control("SH", [title]);
        for (tag, text) in entries {
            roff.control("TP", []);
            roff.text([bold(tag)]);
            roff.text([roman(text)]);
        }
    }
    roff.control("SH", ["SEE ALSO"]);
    let see: Vec<&str> = Program::ALL
        .iter()
        .filter(|p| **p != program)
        .map(|p| p.name())
        .collect();
    let mut refs = Vec::new();
    for (i, other) in see.iter().enumerate() {
        let section = Program::ALL
            .iter()
            .find(|p| p.name() == *other)
            .map_or("1", |p| p.section());
        refs.push(bold(*other));
        refs.push(roman(if i + 1 < see.len() {
            format!("({section}), ")
        } else {
            format!("({section})")
        }));
    }
    if program == Program::Pyzord {
        refs.push(roman(", "));
        refs.push(bold("systemd.exec"));
        refs.push(roman("(5)"));
    }
    roff.text(refs);
    roff.control("PP", []);
    roff.text([
        roman("The documentation in "),
        italic("/usr/share/doc/pyzor-rs"),
        roman(" and the project's docs/server.md, docs/client.md and docs/migrate.md."),
    ]);
    roff.to_writer(&mut out).map_err(io)?;
    Ok(out)
}

/// A man page's own sections: `(title, [(tag, text)])`.
type Sections = Vec<(&'static str, Vec<(String, String)>)>;

/// The sections after OPTIONS, per program.
fn sections(program: Program) -> Sections {
    let c = Layout::CONFIG_DIR;
    match program {
        Program::Pyzord => vec![
            (
                "FILES",
                vec![
                    (
                        format!("{c}/config"),
                        "The [server] section; every key with its default, commented out. \
                         Command-line options override it; relative file names are relative \
                         to the home directory (--homedir)."
                            .into(),
                    ),
                    (
                        format!("{c}/pyzord.passwd"),
                        "Accounts (user : key), read at start and on SIGUSR1. \
                         Keep it readable by the pyzor group only."
                            .into(),
                    ),
                    (
                        format!("{c}/pyzord.access"),
                        "The ACL (ops : users : allow|deny). Without it anonymous users \
                         may check, report, ping, pong and info."
                            .into(),
                    ),
                    (
                        Layout::DIGEST_DB.into(),
                        "The database of the default engine (lmdb), in the service's state \
                         directory."
                            .into(),
                    ),
                    (
                        Layout::LOG_DIR.into(),
                        "LogFile and UsageLogFile, when set; without LogFile the log goes \
                         to stderr (the journal under systemd)."
                            .into(),
                    ),
                ],
            ),
            (
                "SIGNALS",
                vec![
                    (
                        "SIGTERM, SIGINT".into(),
                        "Answer what is in hand, flush the engine and exit 0.".into(),
                    ),
                    (
                        "SIGUSR1".into(),
                        "Reload the passwd and access files (systemctl reload pyzord); \
                         a file that fails to load keeps the rules in force."
                            .into(),
                    ),
                    (
                        "SIGHUP".into(),
                        "Reopen LogFile and UsageLogFile (after logrotate moved them).".into(),
                    ),
                ],
            ),
        ],
        Program::Pyzor => vec![(
            "FILES",
            vec![
                (
                    "~/.pyzor/config".into(),
                    "The [client] section (--homedir chooses another directory).".into(),
                ),
                (
                    "~/.pyzor/servers".into(),
                    "The servers to ask, one host:port a line (default: public.pyzor.org:24441)."
                        .into(),
                ),
                (
                    "~/.pyzor/accounts".into(),
                    "host : port : user : key, one account a line.".into(),
                ),
            ],
        )],
        Program::PyzorMigrate => vec![(
            "EXIT STATUS",
            vec![
                ("0".into(), "Every record was transferred.".into()),
                (
                    "1".into(),
                    "A usage error, or a database could not be opened.".into(),
                ),
                ("2".into(), "Some records failed.".into()),
            ],
        )],
        Program::PyzorRequests => vec![(
            "EXIT STATUS",
            vec![
                ("0".into(), "Done.".into()),
                (
                    "1".into(),
                    "The configuration, the requests file or pyzord could not be used, or the request is unknown or decided already.".into(),
                ),
            ],
        )],
    }
}

/// The completion script of `program` for `shell` (bash, zsh or fish).
pub fn completion(program: Program, shell: Shell) -> Result<Vec<u8>, DistError> {
    let mut cmd = program.command()?;
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, program.name(), &mut out);
    Ok(out)
}

/// The shells the package ships completions for, and where each file goes
/// (Debian's vendor directories).
pub const SHELLS: [(Shell, &str); 3] = [
    (Shell::Bash, "usr/share/bash-completion/completions/{}"),
    (Shell::Zsh, "usr/share/zsh/vendor-completions/_{}"),
    (Shell::Fish, "usr/share/fish/vendor_completions.d/{}.fish"),
];

/// One line or a few about a `[server]` key, shown above it in
/// `/etc/pyzor/config`. Keys not listed get none (their default is still
/// shown); a test checks every listed key exists.
const KEY_NOTES: &[(&str, &str)] = &[
    ("Port", "UDP port to listen on."),
    (
        "ListenAddress",
        "Address to listen on; an IPv6 address (with ':') also accepts IPv4.",
    ),
    (
        "Engine",
        "Database engine. Change DigestDB above with it (a DSN for redis, mysql, postgres).",
    ),
    (
        "CleanupAge",
        "Seconds before a digest's record expires (10368000 = 120 days); 0 disables expiry.",
    ),
    (
        "Threads",
        "The reference's concurrency keys (Threads, MaxThreads, Processes, MaxProcesses,\n\
         PreFork, Gevent) are mapped onto socket workers: prefer Workers.",
    ),
    (
        "PreFork",
        "PreFork and Gevent: reference concurrency keys too (see Threads above).",
    ),
    (
        "DBConnections",
        "Connections kept by the redis, mysql and postgres engines; 0 = the engine's default.",
    ),
    (
        "ForwardClientHomeDir",
        "A pyzor client home directory: received reports and whitelists are forwarded\n\
         to its servers. Empty = no forwarding.",
    ),
    (
        "PasswdFile",
        "Accounts (user : key), relative to /etc/pyzor. Reloaded on SIGUSR1\n\
         (systemctl reload pyzord). Make it root:pyzor, mode 0640.",
    ),
    (
        "AccessFile",
        "The ACL. Without the file anonymous users may check, report, ping, pong, info.",
    ),
    (
        "LogFile",
        "Empty = stderr, which systemd sends to the journal. To log to a file:\n\
         LogFile = /var/log/pyzor/pyzord.log (rotated by /etc/logrotate.d/pyzor).",
    ),
    (
        "SentryDSN",
        "The Sentry keys are accepted and ignored (with a warning).",
    ),
    (
        "UsageLogFile",
        "One line per request. To keep it: UsageLogFile = /var/log/pyzor/usage.log\n\
         (rotated by /etc/logrotate.d/pyzor; pyzord reopens it on SIGHUP).",
    ),
    ("PidFile", "Used with --detach only (not under systemd)."),
    (
        "MetricsAddress",
        "host:port of the Prometheus metrics endpoint (HTTP); empty = off.",
    ),
    (
        "Workers",
        "Socket workers; 0 = one per core (or what the concurrency keys above say).",
    ),
    (
        "Durability",
        "process: an answered report survives a crash of pyzord; fsync: also power loss.",
    ),
    (
        "EngineTimeout",
        "Seconds the mysql and postgres engines wait for their database each time they wait.",
    ),
    (
        "RateLimit",
        "Per client network: requests per second (and burst) for every op but report and\n\
         whitelist (RateLimit), and for those two (ReportRateLimit); 0 = unlimited.",
    ),
    (
        "RateLimitIPv4Prefix",
        "The size of a client network for the rate limits.",
    ),
    (
        "RateLimitAllow",
        "Networks never limited (addr/len, separated by commas or spaces).",
    ),
    (
        "RateLimitMode",
        "enforce, or log: count what would be limited and limit nothing.",
    ),
    (
        "StrictDigests",
        "True: report and whitelist count only 40 lower-case hex digit digests.",
    ),
];

/// `/etc/pyzor/config`: every `[server]` key of
/// `pyzor_config::SERVER_DEFAULTS` commented out with its default, and the
/// one line the package sets (`DigestDB`: the database in the state
/// directory, as the home directory is read-only for the service).
pub fn server_config() -> String {
    let mut s = String::new();
    let engines = pyzor_store::ENGINES.join(", ");
    let _ = write!(
        s,
        "# pyzord's configuration: {c}/config (pyzord --homedir {c}).\n\
         #\n\
         # Every [server] key is listed with its built-in default, commented out.\n\
         # Command-line options override this file (pyzord(8)). Relative file names\n\
         # are relative to {c}, which the service may read but not write: what\n\
         # pyzord writes goes to {state} (the database) and {log} (logs).\n\
         # After editing: pyzord --check-config --homedir {c}, then\n\
         # systemctl restart pyzord (a reload re-reads only passwd and access).\n\
         # Engines in this build: {engines}.\n\
         \n\
         [server]\n\
         # Set by the package: the database lives in the service's state directory.\n\
         DigestDB = {db}\n",
        c = Layout::CONFIG_DIR,
        state = Layout::STATE_DIR,
        log = Layout::LOG_DIR,
        db = Layout::DIGEST_DB,
    );
    for (key, default) in pyzor_config::SERVER_DEFAULTS {
        if let Some((_, note)) = KEY_NOTES.iter().find(|(k, _)| k == key) {
            s.push('\n');
            for line in note.lines() {
                let _ = writeln!(s, "# {line}");
            }
        }
        let _ = writeln!(s, "{}", format!("#{key} = {default}").trim_end());
    }
    s
}

/// Write every generated file under `out`, as the package lays them out
/// (`usr/share/man/manN/NAME.N`, the completion directories, and
/// `etc/pyzor/config`); returns the relative paths written.
pub fn write_all(out: &std::path::Path) -> Result<Vec<String>, DistError> {
    let mut written = Vec::new();
    let mut put = |rel: String, bytes: &[u8]| -> Result<(), DistError> {
        let path = out.join(&rel);
        let io = |source| DistError::Io {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut f = std::fs::File::create(&path).map_err(io)?;
        f.write_all(bytes).map_err(io)?;
        written.push(rel);
        Ok(())
    };
    for p in Program::ALL {
        let (name, sec) = (p.name(), p.section());
        put(
            format!("usr/share/man/man{sec}/{name}.{sec}"),
            &man_page(p)?,
        )?;
        for (shell, pattern) in SHELLS {
            put(pattern.replace("{}", name), &completion(p, shell)?)?;
        }
    }
    put(
        format!("{}/config", Layout::CONFIG_DIR.trim_start_matches('/')),
        server_config().as_bytes(),
    )?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyzor_config::{ServerConfig, SERVER_DEFAULTS};

    fn config_in(text: &str) -> ServerConfig {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join("config"), text).unwrap();
        let mut c = ServerConfig::load(home.path(), &[]).unwrap();
        c.homedir = "/h".into();
        // File names are expanded against the homedir: compare relative ones.
        let strip = |p: &mut Option<std::path::PathBuf>| {
            if let Some(x) = p {
                if let Ok(r) = x.strip_prefix(home.path()) {
                    *x = r.to_path_buf();
                }
            }
        };
        strip(&mut c.passwd_file);
        strip(&mut c.access_file);
        strip(&mut c.pid_file);
        c
    }

    #[test]
    fn the_config_lists_every_server_key_with_its_default() {
        let text = server_config();
        for (key, default) in SERVER_DEFAULTS {
            let line = format!("#{key} = {default}");
            assert!(
                text.lines().any(|l| l.trim_end() == line.trim_end()),
                "{key} missing from the generated config"
            );
        }
        for (key, _) in KEY_NOTES {
            assert!(
                SERVER_DEFAULTS.iter().any(|(k, _)| k == key),
                "KEY_NOTES names {key}, which is not a [server] key"
            );
        }
    }

    #[test]
    fn the_config_loads_as_the_defaults_with_the_packaged_database() {
        let text = server_config();
        let packaged = config_in(&text);
        assert_eq!(packaged.digest_db, Layout::DIGEST_DB);
        assert!(packaged.digest_db_explicit);
        // Uncommenting every key changes nothing: the shown defaults are
        // the defaults.
        let uncommented: String = text
            .lines()
            .map(|l| match l.strip_prefix('#') {
                Some(rest) if !rest.starts_with(' ') && rest.contains(" = ") => rest,
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        assert_ne!(uncommented, text);
        assert_eq!(config_in(&uncommented), packaged);
        let mut plain = config_in(&format!("[server]\nDigestDB = {}\n", Layout::DIGEST_DB));
        plain.homedir = packaged.homedir.clone();
        assert_eq!(plain, packaged);
    }

    #[test]
    fn man_pages_describe_every_option() {
        for p in Program::ALL {
            let page = String::from_utf8(man_page(p).unwrap()).unwrap();
            assert!(page.contains("\n.TH "), "{}: {page:.200}", p.name());
            let cmd = p.command().unwrap();
            for a in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
                if let Some(long) = a.get_long() {
                    // roff escapes '-' as '\-'.
                    let shown = format!("\\-\\-{}", long.replace('-', "\\-"));
                    assert!(
                        page.contains(&shown),
                        "{}: --{long} not in the page",
                        p.name()
                    );
                    assert!(a.get_help().is_some(), "{}: --{long} has no help", p.name());
                }
            }
        }
    }

    #[test]
    fn the_client_page_takes_its_text_from_the_optparse_help() {
        let cmd = Program::Pyzor.command().unwrap();
        let about = cmd.get_about().unwrap().to_string();
        assert!(about.starts_with("Pyzor client"), "{about}");
        let long = cmd.get_long_about().unwrap().to_string();
        assert!(long.starts_with("Read data from stdin"), "{long}");
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some("style"))
            .unwrap();
        assert_eq!(arg.get_value_names().unwrap()[0], "STYLE");
        let style = arg.get_help().unwrap().to_string();
        // A help spread over three lines of the optparse text, joined.
        assert!(
            style.starts_with("input style: 'msg'") && style.ends_with("one per line)."),
            "{style}"
        );
    }

    #[test]
    fn optparse_help_is_read_option_by_option() {
        let (about, opts) = parse_optparse_help(
            "Usage: x\n\nAbout\nthis.\n\nOptions:\n  -a A, --alpha=A  first\n  --beta=B\n                        second, on the next line\n  --gamma\n",
        );
        assert_eq!(about, "About this.");
        let o = |long: &str, metavar: Option<&str>, help: &str| OptparseOption {
            long: long.into(),
            metavar: metavar.map(Into::into),
            help: help.into(),
        };
        assert_eq!(
            opts,
            vec![
                o("alpha", Some("A"), "first"),
                o("beta", Some("B"), "second, on the next line"),
                o("gamma", None, ""),
            ]
        );
    }

    #[test]
    fn completions_name_every_long_option() {
        for p in Program::ALL {
            let cmd = p.command().unwrap();
            for (shell, _) in SHELLS {
                let script = String::from_utf8(completion(p, shell).unwrap()).unwrap();
                for long in cmd.get_arguments().filter_map(|a| a.get_long()) {
                    assert!(
                        script.contains(long),
                        "{shell} completion of {} lacks --{long}",
                        p.name()
                    );
                }
            }
        }
    }

    #[test]
    fn the_unit_runs_pyzord_in_the_packaged_layout() {
        let unit = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../packaging/pyzord.service"
        ))
        .unwrap();
        let exec = |key: &str| {
            unit.lines()
                .find_map(|l| l.strip_prefix(key))
                .unwrap_or_else(|| panic!("{key} missing"))
                .to_string()
        };
        let args = format!("--homedir {}", Layout::CONFIG_DIR);
        assert!(exec("ExecStart=").contains(&args));
        assert!(exec("ExecStartPre=").contains(&format!("--check-config {args}")));
        assert_eq!(exec("User="), Layout::USER);
        assert_eq!(exec("StateDirectory="), "pyzor");
        assert_eq!(exec("LogsDirectory="), "pyzor");
        assert!(Layout::DIGEST_DB.starts_with(Layout::STATE_DIR));
    }

    #[test]
    fn write_all_lays_out_every_file() {
        let out = tempfile::tempdir().unwrap();
        let written = write_all(out.path()).unwrap();
        assert_eq!(written.len(), 4 + 4 * 3 + 1);
        assert!(written.contains(&"usr/share/man/man8/pyzor-requests.8".to_string()));
        for rel in &written {
            let len = std::fs::metadata(out.path().join(rel)).unwrap().len();
            assert!(len > 100, "{rel}: {len} bytes");
        }
        assert!(written.contains(&"usr/share/man/man8/pyzord.8".to_string()));
        assert!(written.contains(&"usr/share/zsh/vendor-completions/_pyzor".to_string()));
        assert!(written.contains(&"etc/pyzor/config".to_string()));
    }
}
