//! A Python program as a test oracle: the differential tests send it all
//! their cases on stdin, read every answer from stdout, and compare.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The system's CPython 3.11, which the differential tests of the codecs,
/// `html.parser`, `email` and `configparser` compare with.
pub(crate) const SYSTEM_PYTHON: &str = "/usr/bin/python3";

/// `SYSTEM_PYTHON`, or a loud skip when it is not installed.
pub fn system_python(test: &str) -> Option<PathBuf> {
    let python = PathBuf::from(SYSTEM_PYTHON);
    if python.is_file() {
        return Some(python);
    }
    crate::skip(
        test,
        &format!("{SYSTEM_PYTHON} is missing: NOT compared with CPython"),
    );
    None
}

/// One run of an oracle program (usually `python -c DRIVER`).
#[derive(Debug)]
pub struct Oracle {
    command: Command,
}

impl Oracle {
    /// The program to run (a Python interpreter, mostly).
    pub fn new(program: impl AsRef<OsStr>) -> Oracle {
        Oracle {
            command: Command::new(program),
        }
    }

    /// One more argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Oracle {
        self.command.arg(arg);
        self
    }

    /// More arguments.
    pub fn args<I>(mut self, args: I) -> Oracle
    where
        I: IntoIterator,
        I::Item: AsRef<OsStr>,
    {
        self.command.args(args);
        self
    }

    /// Run it with `input` on stdin and return all of its stdout. The input
    /// is written from a thread: a driver that answers as it reads would
    /// otherwise block on a full stdout pipe while we block on a full stdin
    /// pipe. Panics when the program cannot start or exits with an error
    /// (its stderr is the test's).
    pub fn run(mut self, input: Vec<u8>) -> Vec<u8> {
        let program = self.command.get_program().to_owned();
        let mut child = self
            .command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start the oracle {program:?}: {e}"));
        let mut stdin = child.stdin.take().expect("piped stdin");
        let writer = std::thread::spawn(move || stdin.write_all(&input));
        let mut out = Vec::new();
        child
            .stdout
            .take()
            .expect("piped stdout")
            .read_to_end(&mut out)
            .expect("read the oracle's answers");
        let status = child.wait().expect("wait for the oracle");
        assert!(status.success(), "the oracle {program:?} failed: {status}");
        writer
            .join()
            .expect("the writer thread")
            .expect("write to the oracle");
        out
    }

    /// Send `requests`, one per line, and return the lines of its output.
    pub fn lines<I>(self, requests: I) -> Vec<String>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut input = String::new();
        for r in requests {
            input.push_str(r.as_ref());
            input.push('\n');
        }
        String::from_utf8(self.run(input.into_bytes()))
            .expect("the oracle answers in UTF-8")
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// [`Oracle::lines`] for a driver that answers each request with
    /// exactly one line.
    pub fn answers<S: AsRef<str>>(self, requests: &[S]) -> Vec<String> {
        let answers = self.lines(requests);
        assert_eq!(
            answers.len(),
            requests.len(),
            "the oracle answers each request with one line"
        );
        answers
    }
}
