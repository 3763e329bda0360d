//! `pyzor genkey`: salt and key for an account (docs/field-notes.md §2.2).
//!
//! Output format as the reference: `salt,key:\n<sha1(salt)>,<key>\n` with
//! key = sha1(sha1(salt) followed by the passphrase). Fixed (B19): the salt comes from the OS's secure
//! random source instead of Python's `random`. The passphrase is asked
//! twice; on a terminal without echo (prompts on stderr, like `getpass`),
//! from a pipe line by line without prompts, so scripts can feed it.

use std::io::{BufRead, IsTerminal, Write};

use sha1::{Digest as _, Sha1};

/// Why no key was generated.
#[derive(Debug, thiserror::Error)]
pub enum GenkeyError {
    /// Reading the passphrase failed.
    #[error("cannot read the passphrase: {0}")]
    Read(#[from] std::io::Error),
    /// Input ended before a passphrase was given.
    #[error("no passphrase given (end of input); type it twice, or pipe two lines")]
    Eof,
    /// The OS random source failed.
    #[error("the OS random source failed: {0}")]
    Random(String),
}

/// Where passphrases come from.
pub trait PassphraseSource {
    /// Show `prompt` (if interactive) and read one passphrase; `None` at
    /// end of input.
    fn read_passphrase(&mut self, prompt: &str) -> std::io::Result<Option<String>>;
}

/// Passphrases from standard input: a terminal (echo off) or a pipe.
pub(crate) struct Prompter {
    tty: bool,
}

impl Prompter {
    /// Use the process's standard input.
    pub(crate) fn from_stdin() -> Prompter {
        Prompter {
            tty: std::io::stdin().is_terminal(),
        }
    }
}

/// Switches terminal echo off on stdin and restores it when dropped.
struct EchoOff {
    saved: Option<libc::termios>,
}

impl EchoOff {
    fn new() -> EchoOff {
        // SAFETY: termios is plain old data; tcgetattr/tcsetattr only read
        // and write it, and failures are checked.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(libc::STDIN_FILENO, &mut t) != 0 {
                return EchoOff { saved: None };
            }
            let saved = t;
            t.c_lflag &= !libc::ECHO;
            t.c_lflag |= libc::ECHONL;
            if libc::tcsetattr(libc::STDIN_FILENO, libc::TCSAFLUSH, &t) != 0 {
                return EchoOff { saved: None };
            }
            EchoOff { saved: Some(saved) }
        }
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        if let Some(t) = self.saved {
            // SAFETY: restoring the attributes read in `new`.
            unsafe {
                libc::tcsetattr(libc::STDIN_FILENO, libc::TCSAFLUSH, &t);
            }
        }
    }
}

impl PassphraseSource for Prompter {
    fn read_passphrase(&mut self, prompt: &str) -> std::io::Result<Option<String>> {
        let _guard = if self.tty {
            let mut err = std::io::stderr();
            err.write_all(prompt.as_bytes())?;
            err.flush()?;
            Some(EchoOff::new())
        } else {
            None
        };
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line)? == 0 {
            return Ok(None);
        }
        if line.ends_with('\n') {
            line.pop();
        }
        Ok(Some(line))
    }
}

/// Ask twice and return the reference's two output lines, or `None` when
/// the passphrases differ (logged as the reference: "Passwords do not
/// match.", exit 1).
pub fn genkey(source: &mut dyn PassphraseSource) -> Result<Option<String>, GenkeyError> {
    let first = source
        .read_passphrase("Enter passphrase: ")?
        .ok_or(GenkeyError::Eof)?;
    let second = source
        .read_passphrase("Enter passphrase again: ")?
        .ok_or(GenkeyError::Eof)?;
    if first != second {
        log::error!("Passwords do not match.");
        return Ok(None);
    }
    let mut raw = [0u8; 20];
    getrandom::fill(&mut raw).map_err(|e| GenkeyError::Random(e.to_string()))?;
    Ok(Some(key_lines(&raw, &first)))
}

/// The output for a given salt: the reference builds the salt as 20
/// characters `chr(0..=255)` and hashes their UTF-8 encoding; we keep that
/// encoding so keys look alike.
pub(crate) fn key_lines(salt_bytes: &[u8; 20], passphrase: &str) -> String {
    let salt: String = salt_bytes.iter().map(|&b| char::from(b)).collect();
    let salt_digest = Sha1::digest(salt.as_bytes());
    let mut h = Sha1::new();
    h.update(salt_digest);
    h.update(passphrase.as_bytes());
    let key = h.finalize();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    format!("salt,key:\n{},{}\n", hex(&salt_digest), hex(&key))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(Vec<&'static str>);
    impl PassphraseSource for Fixed {
        fn read_passphrase(&mut self, _: &str) -> std::io::Result<Option<String>> {
            Ok(if self.0.is_empty() {
                None
            } else {
                Some(self.0.remove(0).to_string())
            })
        }
    }

    #[test]
    fn key_matches_python_formula() {
        // Python: salt = "".join(chr(i) for i in range(20)).encode("utf8");
        // sd = sha1(salt); print(sd.hexdigest(), sha1(sd.digest() + b"secret").hexdigest())
        let salt: [u8; 20] = std::array::from_fn(|i| i as u8);
        let out = key_lines(&salt, "secret");
        let sd = Sha1::digest((0u8..20).collect::<Vec<_>>());
        let mut h = Sha1::new();
        h.update(sd);
        h.update(b"secret");
        let expect = format!(
            "salt,key:\n{},{}\n",
            sd.iter().map(|x| format!("{x:02x}")).collect::<String>(),
            h.finalize()
                .iter()
                .map(|x| format!("{x:02x}"))
                .collect::<String>()
        );
        assert_eq!(out, expect);
        // Non-ASCII salt characters are UTF-8 encoded (two bytes each).
        let high = [0xffu8; 20];
        let a = key_lines(&high, "p");
        let sd2 = Sha1::digest("\u{ff}".repeat(20).as_bytes());
        assert!(a.starts_with(&format!(
            "salt,key:\n{}",
            sd2.iter().map(|x| format!("{x:02x}")).collect::<String>()
        )));
    }

    #[test]
    fn genkey_prompts_twice() {
        let out = genkey(&mut Fixed(vec!["pw", "pw"])).unwrap().unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "salt,key:");
        let (s, k) = lines[1].split_once(',').unwrap();
        assert_eq!((s.len(), k.len()), (40, 40));
        assert!(genkey(&mut Fixed(vec!["a", "b"])).unwrap().is_none());
        assert!(matches!(
            genkey(&mut Fixed(vec!["a"])),
            Err(GenkeyError::Eof)
        ));
        let other = genkey(&mut Fixed(vec!["pw", "pw"])).unwrap().unwrap();
        assert_ne!(out, other, "fresh salt each time");
    }
}
