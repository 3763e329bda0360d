//! The `pyzor` command line, compatible with the reference's optparse
//! interface (docs/field-notes.md §5.3): the same options, unambiguous
//! abbreviations of long options, options and commands in any order, help
//! on stdout when no command is given, optparse-style errors (exit 2).

use clap::{Arg, ArgAction, Command};

/// Options as given on the command line (`None` = not given, so the config
/// file or the default applies).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CliOptions {
    /// `-n/--nice`
    pub nice: i32,
    /// `-d/--debug`
    pub debug: bool,
    /// `--homedir`
    pub homedir: Option<String>,
    /// `-s/--style`
    pub style: Option<String>,
    /// `--log-file`
    pub log_file: Option<String>,
    /// `--servers-file`
    pub servers_file: Option<String>,
    /// `--accounts-file`
    pub accounts_file: Option<String>,
    /// `--local-whitelist`
    pub local_whitelist: Option<String>,
    /// `-t/--timeout` (seconds; a fraction is accepted, the reference
    /// wanted an integer)
    pub timeout: Option<String>,
    /// `-r/--report-threshold`
    pub report_threshold: Option<String>,
    /// `-w/--whitelist-threshold`
    pub whitelist_threshold: Option<String>,
    /// `-V/--version`
    pub version: bool,
    /// `-h/--help`
    pub help: bool,
    /// `--json`: one JSON object per server per digest instead of the
    /// reference text (our extension).
    pub json: bool,
    /// The commands, in order.
    pub commands: Vec<String>,
}

/// A command-line error in optparse's wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The options as clap parses them. Their help text is [`help`]'s (optparse
/// layout); crates/pyzor-dist renders the man page from both.
pub fn command() -> Command {
    let val = |id: &'static str, short: Option<char>, long: &'static str| {
        let a = Arg::new(id)
            .long(long)
            .action(ArgAction::Set)
            .allow_hyphen_values(true)
            .value_name(id);
        match short {
            Some(c) => a.short(c),
            None => a,
        }
    };
    Command::new("pyzor")
        .disable_help_flag(true)
        .disable_version_flag(true)
        .infer_long_args(true)
        .args_override_self(true)
        .arg(val("nice", Some('n'), "nice"))
        .arg(
            Arg::new("debug")
                .short('d')
                .long("debug")
                .action(ArgAction::SetTrue),
        )
        .arg(val("homedir", None, "homedir"))
        .arg(val("style", Some('s'), "style"))
        .arg(val("log-file", None, "log-file"))
        .arg(val("servers-file", None, "servers-file"))
        .arg(val("accounts-file", None, "accounts-file"))
        .arg(val("local-whitelist", None, "local-whitelist"))
        .arg(val("timeout", Some('t'), "timeout"))
        .arg(val("report-threshold", Some('r'), "report-threshold"))
        .arg(val("whitelist-threshold", Some('w'), "whitelist-threshold"))
        .arg(
            Arg::new("version")
                .short('V')
                .long("version")
                .action(ArgAction::SetTrue),
        )
        .arg(
            Arg::new("help")
                .short('h')
                .long("help")
                .action(ArgAction::SetTrue),
        )
        .arg(Arg::new("json").long("json").action(ArgAction::SetTrue))
        .arg(
            Arg::new("commands")
                .action(ArgAction::Append)
                .num_args(0..)
                .allow_hyphen_values(false),
        )
}

/// Long option names, for optparse's ambiguity message.
const LONGS: [&str; 14] = [
    "--accounts-file",
    "--debug",
    "--help",
    "--homedir",
    "--json",
    "--local-whitelist",
    "--log-file",
    "--nice",
    "--report-threshold",
    "--servers-file",
    "--style",
    "--timeout",
    "--version",
    "--whitelist-threshold",
];

/// Reword a clap error the way optparse words it.
fn optparse_message(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let arg = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => s.clone(),
        _ => String::new(),
    };
    let opt = arg.split(['=', ' ']).next().unwrap_or("").to_string();
    match e.kind() {
        ErrorKind::UnknownArgument => {
            if let Some(prefix) = opt.strip_prefix("--") {
                let hits: Vec<&str> = LONGS
                    .iter()
                    .copied()
                    .filter(|l| l[2..].starts_with(prefix))
                    .collect();
                if hits.len() > 1 {
                    return format!("ambiguous option: {opt} ({}?)", hits.join(", "));
                }
            }
            format!("no such option: {opt}")
        }
        ErrorKind::InvalidValue | ErrorKind::NoEquals | ErrorKind::TooFewValues => {
            format!("{opt} option requires 1 argument")
        }
        _ => e
            .to_string()
            .lines()
            .next()
            .unwrap_or("")
            .trim_start_matches("error: ")
            .to_string(),
    }
}

/// Check an integer option the way optparse's `type="int"` does.
fn int_option(name: &str, v: Option<&String>) -> Result<(), UsageError> {
    if let Some(v) = v {
        if pyzor_protocol::py::py_int(v).is_none() {
            return Err(UsageError(format!(
                "option {name}: invalid integer value: '{v}'"
            )));
        }
    }
    Ok(())
}

/// Parse the arguments after the program name.
pub fn parse<I, S>(args: I) -> Result<CliOptions, UsageError>
where
    I: IntoIterator<Item = S>,
    S: Into<std::ffi::OsString> + Clone,
{
    let mut argv: Vec<std::ffi::OsString> = vec!["pyzor".into()];
    argv.extend(args.into_iter().map(Into::into));
    let m = command()
        .try_get_matches_from(argv)
        .map_err(|e| UsageError(optparse_message(&e)))?;
    let s = |id: &str| m.get_one::<String>(id).cloned();
    let nice = s("nice");
    int_option("-n", nice.as_ref())?;
    int_option("-r", s("report-threshold").as_ref())?;
    int_option("-w", s("whitelist-threshold").as_ref())?;
    if let Some(t) = s("timeout") {
        if t.trim().parse::<f64>().is_err() {
            return Err(UsageError(format!(
                "option -t: invalid integer value: '{t}'"
            )));
        }
    }
    Ok(CliOptions {
        nice: nice
            .and_then(|n| pyzor_protocol::py::py_int(&n))
            .map(|n| n.clamp(-40, 40) as i32)
            .unwrap_or(0),
        debug: m.get_flag("debug"),
        homedir: s("homedir"),
        style: s("style"),
        log_file: s("log-file"),
        servers_file: s("servers-file"),
        accounts_file: s("accounts-file"),
        local_whitelist: s("local-whitelist"),
        timeout: s("timeout"),
        report_threshold: s("report-threshold"),
        whitelist_threshold: s("whitelist-threshold"),
        version: m.get_flag("version"),
        help: m.get_flag("help"),
        json: m.get_flag("json"),
        commands: m
            .get_many::<String>("commands")
            .map(|v| v.cloned().collect())
            .unwrap_or_default(),
    })
}

/// optparse's usage line.
pub fn usage(prog: &str) -> String {
    format!("Usage: {prog} [options]\n")
}

/// The reference's `--help` text (optparse layout, 80 columns), with our
/// `--json` option added.
pub fn help(prog: &str) -> String {
    format!(
        "{usage}
Read data from stdin and execute the requested command (one of 'check',
'report', 'ping', 'pong', 'digest', 'predigest', 'genkey', 'local_whitelist',
'local_unwhitelist').

Options:
  -h, --help            show this help message and exit
  -n NICE, --nice=NICE  'nice' level
  -d, --debug           enable debugging output
  --homedir=HOMEDIR     configuration directory
  -s STYLE, --style=STYLE
                        input style: 'msg' (individual RFC5321 message),
                        'mbox' (mbox file of messages), 'digests' (Pyzor
                        digests, one per line).
  --log-file=LOGFILE    name of log file
  --servers-file=SERVERSFILE
                        name of servers file
  --accounts-file=ACCOUNTSFILE
                        name of accounts file
  --local-whitelist=LOCALWHITELIST
                        name of the local whitelist file
  -t TIMEOUT, --timeout=TIMEOUT
                        timeout (in seconds)
  -r REPORTTHRESHOLD, --report-threshold=REPORTTHRESHOLD
                        threshold for number of reports
  -w WHITELISTTHRESHOLD, --whitelist-threshold=WHITELISTTHRESHOLD
                        threshold for number of whitelist
  -V, --version         print version and exit
  --json                print one JSON object per server and digest
                        (pyzor-rs extension)
Also 'explain' and 'doctor' (see docs/client.md) (pyzor-rs extension)
",
        usage = usage(prog)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_and_commands_interleave() {
        let o = parse([
            "--hom",
            "/h",
            "check",
            "-t",
            "3",
            "-",
            "discover",
            "-sdigests",
            "--serv=x",
        ])
        .unwrap();
        assert_eq!(o.homedir.as_deref(), Some("/h"));
        assert_eq!(o.timeout.as_deref(), Some("3"));
        assert_eq!(o.style.as_deref(), Some("digests"));
        assert_eq!(o.servers_file.as_deref(), Some("x"));
        assert_eq!(o.commands, vec!["check", "-", "discover"]);
    }

    #[test]
    fn errors_are_reported() {
        assert_eq!(
            parse(["-r", "x", "check"]).unwrap_err().0,
            "option -r: invalid integer value: 'x'"
        );
        assert_eq!(parse(["--bogus"]).unwrap_err().0, "no such option: --bogus");
        assert_eq!(parse(["-x"]).unwrap_err().0, "no such option: -x");
        assert_eq!(
            parse(["--s", "x"]).unwrap_err().0,
            "ambiguous option: --s (--servers-file, --style?)"
        );
        assert!(parse(["-t", "2.5", "ping"]).is_ok());
        assert!(parse(["-d", "-V"]).unwrap().version);
    }
}
