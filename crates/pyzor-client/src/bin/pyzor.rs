//! `pyzor`: the Pyzor client (see the pyzor-client crate).

fn main() {
    // The reference sets umask 077 before anything else (files it creates,
    // like the local whitelist, are private).
    // SAFETY: umask has no memory effects.
    unsafe {
        libc::umask(0o077);
    }
    let mut args = std::env::args_os();
    let argv0 = args
        .next()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_else(|| "pyzor".into());
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let code = pyzor_client::app::run(
        &argv0,
        args.collect(),
        &mut std::io::stdin(),
        &mut out,
        &mut std::io::stderr(),
    );
    drop(out);
    std::process::exit(code);
}
