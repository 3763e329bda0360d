//! `pyzord`: see the pyzor-server crate.

fn main() {
    let argv0 = std::env::args().next().unwrap_or_else(|| "pyzord".into());
    let cli = pyzor_server::cli::parse();
    std::process::exit(pyzor_server::run(cli, &argv0));
}
