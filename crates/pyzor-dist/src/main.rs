//! `pyzor-dist OUTDIR`: write the man pages, shell completions and
//! `/etc/pyzor/config` under OUTDIR as the package lays them out
//! (scripts/package runs it; see the library's docs).

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [out] = args.as_slice() else {
        eprintln!("usage: pyzor-dist OUTDIR (writes usr/share/man, the completions and etc/pyzor/config under OUTDIR)");
        return ExitCode::from(2);
    };
    match pyzor_dist::write_all(std::path::Path::new(out)) {
        Ok(files) => {
            for f in files {
                println!("{f}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pyzor-dist: {e}");
            ExitCode::FAILURE
        }
    }
}
