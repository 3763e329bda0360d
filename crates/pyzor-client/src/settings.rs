//! `[client]` settings: built-in defaults < `<homedir>/config` < command
//! line (field-survey.md §5.1, §5.2), and the home-directory rules.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::CliOptions;

/// Defaults of the reference client's `[client]` section.
pub const DEFAULTS: [(&str, &str); 8] = [
    ("ServersFile", "servers"),
    ("AccountsFile", "accounts"),
    ("LocalWhitelist", "whitelist"),
    ("LogFile", ""),
    ("Timeout", "5"),
    ("Style", "msg"),
    ("ReportThreshold", "0"),
    ("WhitelistThreshold", "0"),
];

/// A setting has a value the client cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// Not a number where one is needed.
    #[error("[client] {key} = {value:?} is not a valid {what}; fix it in the config file or on the command line")]
    Invalid {
        /// The key (`Timeout`, `ReportThreshold`, …).
        key: &'static str,
        /// The value found.
        value: String,
        /// What was expected.
        what: &'static str,
    },
}

/// The resolved `[client]` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The home directory.
    pub homedir: PathBuf,
    values: HashMap<String, String>,
}

/// The default home directory: `$HOME/.pyzor` when `HOME` is set and not
/// empty, else `/etc/pyzor` (field-survey.md §5.1).
pub fn default_homedir() -> PathBuf {
    match std::env::var_os("HOME") {
        Some(h) if !h.is_empty() => Path::new(&h).join(".pyzor"),
        _ => PathBuf::from("/etc/pyzor"),
    }
}

/// `os.path.expanduser` for `~` and `~/…` (the forms config files use).
pub fn expand_user(path: &str) -> PathBuf {
    if path == "~" || path.starts_with("~/") {
        if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            return Path::new(&home).join(path.trim_start_matches('~').trim_start_matches('/'));
        }
    }
    PathBuf::from(path)
}

impl Settings {
    /// Merge defaults, the `[client]` section of the config file (keys in
    /// any case, as ConfigParser) and the command line.
    pub fn resolve(homedir: PathBuf, file: &HashMap<String, String>, cli: &CliOptions) -> Settings {
        let mut values: HashMap<String, String> = DEFAULTS
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
            .collect();
        for (k, v) in file {
            values.insert(k.to_ascii_lowercase(), v.clone());
        }
        let overrides = [
            ("servers_file", "ServersFile", &cli.servers_file),
            ("accounts_file", "AccountsFile", &cli.accounts_file),
            ("local_whitelist", "LocalWhitelist", &cli.local_whitelist),
            ("log_file", "LogFile", &cli.log_file),
            ("timeout", "Timeout", &cli.timeout),
            ("style", "Style", &cli.style),
            ("report_threshold", "ReportThreshold", &cli.report_threshold),
            (
                "whitelist_threshold",
                "WhitelistThreshold",
                &cli.whitelist_threshold,
            ),
        ];
        for (_, key, v) in overrides {
            if let Some(v) = v {
                values.insert(key.to_ascii_lowercase(), v.clone());
            }
        }
        Settings { homedir, values }
    }

    /// The raw value of a key.
    pub fn get(&self, key: &str) -> &str {
        self.values
            .get(&key.to_ascii_lowercase())
            .map(String::as_str)
            .unwrap_or("")
    }

    /// A file-valued key expanded like `expand_homefiles`: `~` expanded,
    /// relative names joined to the home directory; `None` when empty.
    pub fn file(&self, key: &str) -> Option<PathBuf> {
        let v = self.get(key);
        if v.is_empty() {
            return None;
        }
        let p = expand_user(v);
        Some(if p.is_absolute() {
            p
        } else {
            self.homedir.join(p)
        })
    }

    /// `Timeout` in seconds. The reference takes `int()` only; we also
    /// accept a fraction such as `2.5` (B11).
    pub fn timeout(&self) -> Result<Duration, SettingsError> {
        let v = self.get("Timeout");
        let bad = || SettingsError::Invalid {
            key: "Timeout",
            value: v.to_string(),
            what: "number of seconds (>= 0)",
        };
        let secs: f64 = match crate::proto::py_int(v) {
            Some(n) => n as f64,
            None => v.trim().parse().map_err(|_| bad())?,
        };
        if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
            return Err(bad());
        }
        Ok(Duration::from_secs_f64(secs))
    }

    /// An integer threshold (`ReportThreshold`, `WhitelistThreshold`).
    pub fn threshold(&self, key: &'static str) -> Result<i128, SettingsError> {
        let v = self.get(key);
        crate::proto::py_int(v).ok_or_else(|| SettingsError::Invalid {
            key,
            value: v.to_string(),
            what: "integer",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_and_paths() {
        let mut file = HashMap::new();
        file.insert("timeout".to_string(), "7".to_string());
        file.insert("SERVERSFILE".to_string(), "/abs/servers".to_string());
        file.insert("logfile".to_string(), "".to_string());
        let cli = CliOptions {
            timeout: Some("2.5".into()),
            accounts_file: Some("acc".into()),
            ..Default::default()
        };
        let s = Settings::resolve(PathBuf::from("/h"), &file, &cli);
        assert_eq!(s.timeout().unwrap(), Duration::from_millis(2500));
        assert_eq!(
            s.file("ServersFile").unwrap(),
            PathBuf::from("/abs/servers")
        );
        assert_eq!(s.file("AccountsFile").unwrap(), PathBuf::from("/h/acc"));
        assert_eq!(
            s.file("LocalWhitelist").unwrap(),
            PathBuf::from("/h/whitelist")
        );
        assert_eq!(s.file("LogFile"), None);
        assert_eq!(s.get("Style"), "msg");
        assert_eq!(s.threshold("ReportThreshold").unwrap(), 0);
        let bad = Settings::resolve(
            PathBuf::from("/h"),
            &HashMap::from([("timeout".to_string(), "5 # seconds".to_string())]),
            &CliOptions::default(),
        );
        assert!(bad.timeout().is_err());
    }
}
