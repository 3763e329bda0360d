//! Digest benchmark: our library and CLI against the reference Pyzor 1.1.2
//! on the same inputs, in the same run, one core each.
//!
//! ```text
//! cargo run --release -p pyzor-digest --example digest-bench -- [--venv DIR] [--rounds N] [--mbox-mb MB] [--write FILE]
//! ```
//!
//! `--venv` defaults to `$PYZOR_REF_VENV`, else `target/ref-venv` of this
//! checkout (what `scripts/setup-ref-env` builds).
//!
//! Workloads:
//! 1. the msg cases of the golden corpus (testdata/digest-corpus);
//! 2. a large mbox built from those messages (default 20 MB).
//!
//! Measured (messages/s and MB/s):
//! * ours, library in-process (`digest_message`, corpus repeated N rounds);
//! * ours, `pyzor-digest -s mbox digest` (this crate's example CLI) on the mbox;
//! * reference, `pyzor digest` CLI, one process per message (a sample);
//! * reference, pyzor's DataDigester in one Python process over the corpus
//!   (tests/ref_digest.py; interpreter start-up subtracted);
//! * reference, `pyzor -s mbox digest` CLI on the mbox.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pyzor_digest::{self as digest, MboxReader};

/// Repetitions of our (short) mbox passes; see their comment.
const MBOX_REPS: usize = 10;

struct Row {
    what: String,
    msgs: usize,
    bytes: usize,
    secs: f64,
    /// CPU seconds of the process doing the work (ours: this process;
    /// reference and CLI runs: the child), from /proc/self/stat.
    cpu: f64,
}

/// (own CPU seconds, CPU seconds of waited-for children) so far, from
/// /proc/self/stat (utime+stime, cutime+cstime; 100 ticks/s). Zero when
/// unavailable.
fn cpu_now() -> (f64, f64) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return (0.0, 0.0);
    };
    // Fields after the ")" of the command name; utime is field 14.
    let rest = stat.rsplit_once(')').map_or("", |x| x.1);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    let get = |i: usize| f.get(i - 3).copied().unwrap_or(0.0) / 100.0;
    (get(14) + get(15), get(16) + get(17))
}

impl Row {
    fn mps(&self) -> f64 {
        self.msgs as f64 / self.secs
    }
    fn mbps(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.secs
    }
    /// Messages per CPU second (falls back to wall time without /proc).
    fn cpu_mps(&self) -> f64 {
        let t = if self.cpu > 0.0 { self.cpu } else { self.secs };
        self.msgs as f64 / t
    }
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn run_stdin(cmd: &mut Command, input: &[u8]) -> (Duration, Vec<u8>) {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let w = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait");
    let _ = w.join();
    (start.elapsed(), out.stdout)
}

/// Run `cmd` with stdin redirected from the file at `path` (no feeding
/// thread competing for the CPU).
fn run_file(cmd: &mut Command, path: &Path) -> (Duration, Vec<u8>) {
    let start = Instant::now();
    let f = std::fs::File::open(path).expect("open input");
    let out = cmd
        .stdin(Stdio::from(f))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .output()
        .expect("run");
    (start.elapsed(), out.stdout)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus_dir = manifest.join("testdata/digest-corpus");
    let venv = PathBuf::from(
        arg(&args, "--venv")
            .or_else(|| std::env::var("PYZOR_REF_VENV").ok())
            .unwrap_or_else(|| {
                pyzor_testkit::workspace_root()
                    .join("target/ref-venv")
                    .to_string_lossy()
                    .into_owned()
            }),
    );
    let rounds: usize = arg(&args, "--rounds")
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let mbox_mb: usize = arg(&args, "--mbox-mb")
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let cli_sample: usize = arg(&args, "--cli-sample")
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);

    // Inputs.
    let tsv = std::fs::read_to_string(corpus_dir.join("cases.tsv")).expect("corpus cases.tsv");
    let msgs: Vec<Vec<u8>> = tsv
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split('\t');
            let file = f.next()?;
            (f.next()? == "msg").then(|| std::fs::read(corpus_dir.join(file)).expect("case file"))
        })
        .collect();
    let corpus_bytes: usize = msgs.iter().map(Vec::len).sum();
    let mut mbox = Vec::new();
    let mut mbox_msgs = 0;
    'fill: loop {
        for m in &msgs {
            // mbox-safe: skip messages with their own From_ lines.
            if m.starts_with(b"From ") || m.windows(6).any(|w| w == b"\nFrom ") {
                continue;
            }
            mbox.extend_from_slice(b"From bench@example.com Mon Jan  1 00:00:00 2024\n");
            mbox.extend_from_slice(m);
            if !m.ends_with(b"\n") {
                mbox.push(b'\n');
            }
            mbox.push(b'\n');
            mbox_msgs += 1;
            if mbox.len() >= mbox_mb << 20 {
                break 'fill;
            }
        }
    }
    let tmp = std::env::temp_dir().join(format!("pyzor-digest-bench-{}.mbox", std::process::id()));
    std::fs::write(&tmp, &mbox).expect("write mbox");

    let mut rows = Vec::new();

    // Ours, library.
    let c0 = cpu_now();
    let start = Instant::now();
    let mut sink = 0u8;
    for _ in 0..rounds {
        for m in &msgs {
            if let Ok(d) = digest::digest_message(m) {
                sink ^= d.0[0];
            }
        }
    }
    rows.push(Row {
        what: format!("ours: library digest_message, corpus x{rounds}"),
        msgs: msgs.len() * rounds,
        bytes: corpus_bytes * rounds,
        secs: start.elapsed().as_secs_f64(),
        cpu: cpu_now().0 - c0.0,
    });
    // Our mbox passes take about 0.1 s, close to the 10 ms resolution of
    // the CPU clock in /proc: they are repeated (MBOX_REPS) and summed.
    let c0 = cpu_now();
    let start = Instant::now();
    let mut n = 0;
    for _ in 0..MBOX_REPS {
        for m in MboxReader::new(&mbox[..]) {
            let Ok(m) = m else { break };
            if let Ok(d) = digest::digest_message(&m) {
                sink ^= d.0[0];
            }
            n += 1;
        }
    }
    rows.push(Row {
        what: format!("ours: library MboxReader + digest_message, mbox x{MBOX_REPS}"),
        msgs: n,
        bytes: mbox.len() * MBOX_REPS,
        secs: start.elapsed().as_secs_f64(),
        cpu: cpu_now().0 - c0.0,
    });

    // Ours, example CLI on the mbox.
    let exe = std::env::current_exe().unwrap();
    let our_cli = exe.with_file_name("pyzor-digest");
    let mut our_mbox_out = None;
    if our_cli.is_file() {
        let c0 = cpu_now();
        let mut secs = 0.0;
        for _ in 0..MBOX_REPS {
            let (t, out) = run_file(Command::new(&our_cli).args(["-s", "mbox", "digest"]), &tmp);
            secs += t.as_secs_f64();
            our_mbox_out.get_or_insert(out);
        }
        rows.push(Row {
            what: format!("ours: pyzor-digest -s mbox digest (CLI), {MBOX_REPS} runs"),
            msgs: mbox_msgs * MBOX_REPS,
            bytes: mbox.len() * MBOX_REPS,
            secs,
            cpu: cpu_now().1 - c0.1,
        });
    } else {
        eprintln!(
            "note: {} not built (cargo build --release --example pyzor-digest)",
            our_cli.display()
        );
    }

    // Reference.
    let pyzor = venv.join("bin/pyzor");
    let python = venv.join("bin/python");
    let mut same_mbox = None;
    if pyzor.is_file() {
        let home = std::env::temp_dir().join(format!("pyzor-bench-home-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&home);
        let home_s = home.to_string_lossy().to_string();
        // CLI, one process per message (sample spread over the corpus).
        let step = (msgs.len() / cli_sample.max(1)).max(1);
        let sample: Vec<&Vec<u8>> = msgs.iter().step_by(step).take(cli_sample).collect();
        let c0 = cpu_now();
        let start = Instant::now();
        for m in &sample {
            run_stdin(
                Command::new(&pyzor).args(["--homedir", &home_s, "digest"]),
                m,
            );
        }
        rows.push(Row {
            what: format!(
                "reference: pyzor digest CLI, 1 process/message ({} msgs)",
                sample.len()
            ),
            msgs: sample.len(),
            bytes: sample.iter().map(|m| m.len()).sum(),
            secs: start.elapsed().as_secs_f64(),
            cpu: cpu_now().1 - c0.1,
        });
        // In-process DataDigester over the corpus, start-up subtracted.
        let helper = manifest.join("tests/ref_digest.py");
        let mut input = Vec::new();
        for m in &msgs {
            input.extend_from_slice(format!("{}\n", m.len()).as_bytes());
            input.extend_from_slice(m);
        }
        let c0 = cpu_now();
        let (t0, _) = run_stdin(Command::new(&python).arg(&helper), b"");
        let c1 = cpu_now();
        let (t1, _) = run_stdin(Command::new(&python).arg(&helper), &input);
        let c2 = cpu_now();
        rows.push(Row {
            what: "reference: DataDigester in one process, corpus x1".into(),
            msgs: msgs.len(),
            bytes: corpus_bytes,
            secs: (t1.saturating_sub(t0)).as_secs_f64().max(1e-9),
            cpu: ((c2.1 - c1.1) - (c1.1 - c0.1)).max(0.01),
        });
        // CLI on the mbox.
        let c0 = cpu_now();
        let (t, out) = run_file(
            Command::new(&pyzor).args(["--homedir", &home_s, "-s", "mbox", "digest"]),
            &tmp,
        );
        rows.push(Row {
            what: "reference: pyzor -s mbox digest (CLI)".into(),
            msgs: mbox_msgs,
            bytes: mbox.len(),
            secs: t.as_secs_f64(),
            cpu: cpu_now().1 - c0.1,
        });
        if let Some(ours) = &our_mbox_out {
            let a: Vec<&[u8]> = ours.split(|&b| b == b'\n').collect();
            let b: Vec<&[u8]> = out.split(|&b| b == b'\n').collect();
            let same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
            same_mbox = Some((same, a.len().max(b.len())));
        }
        let _ = std::fs::remove_dir_all(&home);
    } else {
        eprintln!(
            "note: reference venv not found at {} (--venv DIR)",
            venv.display()
        );
    }
    let _ = std::fs::remove_file(&tmp);

    // Report.
    let mut report = String::new();
    report.push_str(&format!(
        "corpus: {} msg cases, {:.2} MB; mbox: {} messages, {:.1} MB\n\n",
        msgs.len(),
        corpus_bytes as f64 / 1e6,
        mbox_msgs,
        mbox.len() as f64 / 1e6
    ));
    report.push_str(
        "| workload | messages | MB | wall s | messages/s | MB/s | CPU s | messages/CPU-s |\n|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in &rows {
        report.push_str(&format!(
            "| {} | {} | {:.1} | {:.3} | {:.0} | {:.2} | {:.2} | {:.0} |\n",
            r.what,
            r.msgs,
            r.bytes as f64 / 1e6,
            r.secs,
            r.mps(),
            r.mbps(),
            r.cpu,
            r.cpu_mps()
        ));
    }
    let find = |p: &str| rows.iter().find(|r| r.what.starts_with(p));
    report.push_str("\nRatios (ours / reference), by wall time and by CPU time:\n\n");
    for (label, x, y) in [
        (
            "library vs reference DataDigester in one process (corpus)",
            "ours: library digest_message",
            "reference: DataDigester",
        ),
        (
            "library vs reference CLI, one process per message",
            "ours: library digest_message",
            "reference: pyzor digest CLI",
        ),
        (
            "CLI vs CLI on the mbox",
            "ours: pyzor-digest -s mbox",
            "reference: pyzor -s mbox",
        ),
    ] {
        if let (Some(a), Some(b)) = (find(x), find(y)) {
            report.push_str(&format!(
                "* {label}: {:.0}x messages/s (wall), {:.0}x messages/CPU-s\n",
                a.mps() / b.mps(),
                a.cpu_mps() / b.cpu_mps()
            ));
        }
    }
    if let Some((same, total)) = same_mbox {
        report.push_str(&format!(
            "mbox output lines identical to the reference: {same} of {total}\n"
        ));
    }
    print!("{report}");
    if let Some(path) = arg(&args, "--write") {
        std::fs::write(&path, &report).expect("write report");
    }
    std::hint::black_box(sink);
}
