//! The report logic of `bench/run.py` (steal accounting, same-round
//! ratios, the targets table) has Python unit tests of its own,
//! `bench/test_run.py`; this runs them so that CI does. Without a
//! `python3` it skips loudly.

use std::path::Path;
use std::process::Command;

#[test]
fn run_py_report_logic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = match Command::new("python3")
        .current_dir(&root)
        .args(["-m", "unittest", "-v", "bench/test_run.py"])
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            pyzor_testkit::skip("run_py_report_logic", &format!("python3: {e}"));
            return;
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "bench/test_run.py failed:\n{stderr}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // unittest reports on stderr; a run that found no test is no pass
    assert!(
        stderr.contains("Ran ") && !stderr.contains("Ran 0 tests"),
        "bench/test_run.py ran no test:\n{stderr}"
    );
}
