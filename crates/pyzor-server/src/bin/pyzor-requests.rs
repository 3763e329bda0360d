//! `pyzor-requests`: the operator's command for the whitelist requests
//! filed on pyzord's page (see `pyzor_server::requests::operator`).

use clap::Parser;

fn main() {
    let cli = pyzor_server::requests::operator::Cli::parse();
    let mut out = std::io::stdout();
    if let Err(e) = pyzor_server::requests::operator::run(cli, &mut out) {
        eprintln!("pyzor-requests: {e}");
        std::process::exit(1);
    }
}
