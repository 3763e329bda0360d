//! About 1 MB of pathological markup per family: the scanner is linear, so
//! each finishes quickly even in a debug build. Timings are printed, never
//! asserted (run with `--nocapture` to see them).

mod html_support;

use std::time::Instant;

use pyzor_digest::html::{strip_html, HtmlError};

#[test]
fn one_megabyte_pathological_inputs_finish() {
    const MB: usize = 1 << 20;
    // bytes added per step of `n`, for each family
    let step: Vec<usize> = html_support::pathological(2)
        .iter()
        .zip(html_support::pathological(1))
        .map(|(two, one)| two.1.len() - one.1.len())
        .collect();
    for (k, per) in step.iter().enumerate() {
        let n = MB.div_ceil(*per.max(&1));
        let (name, input, want) = html_support::pathological(n).swap_remove(k);
        let t = Instant::now();
        let got = strip_html(&input).expect("no error on these inputs");
        eprintln!(
            "{name:>24}: {:>8} bytes in {:>8.1} ms",
            input.len(),
            t.elapsed().as_secs_f64() * 1e3
        );
        assert!(input.len() >= MB, "{name}: input too small");
        assert!(
            got == want,
            "{name}: got {} bytes, first {:?}",
            got.len(),
            &got[..got.len().min(60)]
        );
    }
}

#[test]
fn one_megabyte_decimal_reference_errors_out() {
    let input = format!("x &#{};", "9".repeat(1 << 20));
    assert!(matches!(
        strip_html(&input),
        Err(HtmlError::CharrefTooLong { digits, offset: 2 }) if digits == 1 << 20
    ));
}
