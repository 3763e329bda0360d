//! A stand-alone `pyzor digest` / `pyzor predigest` over the pyzor-digest
//! digest library, for the corpus shell loop and the digest benchmark:
//!
//! ```text
//! pyzor-digest [-s msg|mbox|digests] digest|predigest < input
//! ```
//!
//! Output and exit status follow the reference CLI: one digest per line;
//! `predigest` prints the selected lines (style `msg` always); a message the
//! reference cannot digest prints nothing for it, an error on stderr, and
//! the exit status is 1.

use std::io::{self, BufWriter, Read, Write};
use std::process::ExitCode;

use pyzor_digest::{self as digest, MboxReader};

fn usage() -> ExitCode {
    eprintln!("usage: pyzor-digest [-s msg|mbox|digests] digest|predigest < input");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut style = "msg".to_string();
    let mut cmd = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-s" | "--style" => match it.next() {
                Some(s) => style = s.clone(),
                None => return usage(),
            },
            s if s.starts_with("--style=") => style = s["--style=".len()..].to_string(),
            "digest" | "predigest" => cmd = Some(a.clone()),
            _ => return usage(),
        }
    }
    let Some(cmd) = cmd else { return usage() };
    let stdin = io::stdin();
    let mut out = BufWriter::new(io::stdout().lock());
    let ok = match (cmd.as_str(), style.as_str()) {
        ("predigest", _) => {
            let mut raw = Vec::new();
            if let Err(e) = stdin.lock().read_to_end(&mut raw) {
                eprintln!("pyzor-digest: reading stdin: {e}");
                return ExitCode::FAILURE;
            }
            match digest::predigest(&raw) {
                Ok(p) => {
                    for l in p.iter() {
                        let _ = out.write_all(l);
                        let _ = out.write_all(b"\n");
                    }
                    true
                }
                Err(e) => {
                    eprintln!("pyzor-digest: {e}");
                    false
                }
            }
        }
        (_, "msg") => {
            let mut raw = Vec::new();
            if let Err(e) = stdin.lock().read_to_end(&mut raw) {
                eprintln!("pyzor-digest: reading stdin: {e}");
                return ExitCode::FAILURE;
            }
            match digest::digest_message(&raw) {
                Ok(d) => writeln!(out, "{d}").is_ok(),
                Err(e) => {
                    eprintln!("pyzor-digest: {e}");
                    false
                }
            }
        }
        (_, "mbox") => {
            let mut ok = true;
            let input = std::io::BufReader::with_capacity(1 << 16, stdin.lock());
            for m in MboxReader::new(input) {
                let m = match m {
                    Ok(m) => m,
                    Err(e) => {
                        // Read error, or a message the reference cannot
                        // load (non-ASCII From_ line): it stops there too.
                        eprintln!("pyzor-digest: {e}");
                        ok = false;
                        break;
                    }
                };
                match digest::digest_message(&m) {
                    Ok(d) => {
                        let _ = writeln!(out, "{d}");
                    }
                    Err(e) => {
                        // The reference stops at the first failing message.
                        eprintln!("pyzor-digest: {e}");
                        ok = false;
                        break;
                    }
                }
            }
            ok
        }
        (_, "digests") => {
            let mut ok = true;
            for l in digest::digests_style_lines(stdin.lock()) {
                match l {
                    Ok(l) => {
                        let _ = writeln!(out, "{l}");
                    }
                    Err(e) => {
                        eprintln!("pyzor-digest: {e}");
                        ok = false;
                        break;
                    }
                }
            }
            ok
        }
        _ => return usage(),
    };
    let _ = out.flush();
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
