//! The `pyzor` program: option handling, home directory, files, commands
//! in order, exit status (scripts/pyzor of the reference).

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::cli;
use crate::commands::{self, Client, Context, Format};
use pyzor_config::client::{self as files, ClientConfig};
use pyzor_config::home::process_default_homedir;
use pyzor_protocol::py::py_oserror_str;

/// The version string (`pyzor.__version__` of the release we replace).
pub const VERSION: &str = "1.1.2";

/// The program name as optparse shows it (`%prog` = basename of argv[0]).
fn prog_name(argv0: &str) -> String {
    Path::new(argv0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "pyzor".into())
}

/// What Python's `sys.argv[0]` is for the reference script: the path the
/// kernel ran, i.e. the `PATH` entry when the command was given by bare
/// name (`pyzor -V` prints `/usr/bin/pyzor 1.1.2`).
fn script_path(argv0: &str) -> String {
    if argv0.contains('/') {
        return argv0.to_string();
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(argv0))
                .find(|p| p.is_file())
        })
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| argv0.to_string())
}

/// Print an error that the reference would have shown as a traceback, and
/// return the exit status 1 (docs/compatibility.md, "client").
fn fail(err: &mut dyn Write, msg: &str) -> i32 {
    let _ = writeln!(err, "pyzor: error: {msg}");
    1
}

/// Run the client. `args` excludes `argv[0]`.
pub fn run(
    argv0: &str,
    args: Vec<OsString>,
    input: &mut dyn Read,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let prog = prog_name(argv0);
    let opts = match cli::parse(args) {
        Ok(o) => o,
        Err(e) => {
            let _ = write!(err, "{}\n{prog}: error: {}\n", cli::usage(&prog), e.0);
            return 2;
        }
    };
    if opts.help {
        let _ = out.write_all(cli::help(&prog).as_bytes());
        return 0;
    }
    if opts.version {
        let _ = writeln!(out, "{} {VERSION}", script_path(argv0));
        return 0;
    }
    if opts.commands.is_empty() {
        let _ = out.write_all(cli::help(&prog).as_bytes());
        return 0;
    }
    // B10: the reference always calls os.nice(n), even for 0, which fails
    // under some sandboxes; we only call it for a non-zero value and ignore
    // a refusal.
    if opts.nice != 0 {
        // SAFETY: nice() has no memory effects.
        unsafe {
            libc::nice(opts.nice);
        }
    }
    let homedir = opts
        .homedir
        .as_deref()
        .map(PathBuf::from)
        .unwrap_or_else(process_default_homedir);
    if !homedir.exists() {
        if let Err(e) = std::fs::create_dir(&homedir) {
            // Same text as the reference; exit 1 instead of its 0 (B7).
            let _ = writeln!(
                out,
                "ERROR {}.",
                py_oserror_str(&e, Some(&homedir.to_string_lossy()))
            );
            return 1;
        }
    }
    let overrides: Vec<(&str, String)> = [
        ("ServersFile", &opts.servers_file),
        ("AccountsFile", &opts.accounts_file),
        ("LocalWhitelist", &opts.local_whitelist),
        ("LogFile", &opts.log_file),
        ("Timeout", &opts.timeout),
        ("Style", &opts.style),
        ("ReportThreshold", &opts.report_threshold),
        ("WhitelistThreshold", &opts.whitelist_threshold),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.clone().map(|v| (k, v)))
    .collect();
    let settings = match ClientConfig::load(&homedir, &overrides) {
        Ok(c) => c,
        Err(e) => return fail(err, &e.to_string()),
    };
    if let Err(e) = crate::logging::setup(opts.debug, settings.log_file.as_deref()) {
        return fail(err, &format!("cannot open the log file: {e}"));
    }
    let servers = match &settings.servers_file {
        Some(p) => match files::read_client_file(p) {
            Ok(text) => match files::parse_servers_noting(&text) {
                Ok((s, ignored)) => {
                    // The reference skips these silently (D33): say so.
                    for i in &ignored {
                        let _ = writeln!(
                            err,
                            "pyzor: warning: {} line {}: {:?} is not a server (host:port); ignored",
                            p.display(),
                            i.line,
                            i.text
                        );
                    }
                    if s.is_empty() && !ignored.is_empty() {
                        let _ = writeln!(
                            err,
                            "pyzor: warning: no server left in {}: using {}:{}",
                            p.display(),
                            files::DEFAULT_SERVER.0,
                            files::DEFAULT_SERVER.1
                        );
                    }
                    s
                }
                // `doctor` alone runs anyway: it reports the bad line itself
                // (and asks no server).
                Err(e) if opts.commands.iter().all(|c| c == "doctor") => {
                    log::error!("{}: {e}", p.display());
                    Vec::new()
                }
                Err(e) => return fail(err, &format!("{}: {e}", p.display())),
            },
            Err(e) => return fail(err, &format!("cannot read {}: {e}", p.display())),
        },
        None => Vec::new(),
    };
    let servers = if servers.is_empty() {
        log::info!("No servers specified, defaulting to public.pyzor.org.");
        vec![files::ServerAddr::new(
            files::DEFAULT_SERVER.0,
            files::DEFAULT_SERVER.1,
        )]
    } else {
        servers
    };
    let accounts = match &settings.accounts_file {
        Some(p) if p.exists() => match files::read_client_file(p) {
            Ok(text) => {
                let (accounts, warnings) = files::parse_accounts(&text);
                for w in warnings {
                    log::warn!("{w}");
                }
                accounts
            }
            Err(e) => return fail(err, &format!("cannot read {}: {e}", p.display())),
        },
        _ => {
            log::warn!(
                "No accounts are setup.  All commands will be executed by the anonymous user."
            );
            Default::default()
        }
    };
    let timeout = match settings.timeout() {
        Ok(t) => t,
        Err(e) => return fail(err, &e.to_string()),
    };
    let client = Client {
        servers,
        accounts,
        timeout,
    };
    let format = if opts.json {
        Format::Json
    } else {
        Format::Text
    };
    for command in &opts.commands {
        let mut ctx = Context {
            settings: &settings,
            client: &client,
            input: &mut *input,
            out: &mut *out,
            format,
        };
        match commands::dispatch(command, &mut ctx) {
            Ok(None) => crate::critical!("Unknown command: {command}"),
            Ok(Some(true)) => {}
            Ok(Some(false)) => {
                let _ = out.flush();
                return 1;
            }
            Err(e) => {
                let _ = out.flush();
                return fail(err, &e.to_string());
            }
        }
    }
    let _ = out.flush();
    0
}
