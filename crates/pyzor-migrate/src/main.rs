//! `pyzor-migrate`: move Pyzor records between engines (the reference's
//! flags), or export/import them as JSON Lines.
//!
//! Exit status: 0 when every record was transferred; 1 for a usage or
//! open error (as the reference); 2 when some records failed (the
//! reference exits 0 then).
//!
//! Output: the result line (`Migration complete, ...`, the reference's) on
//! stdout, or on stderr with `--export -` (stdout then carries the
//! records); progress and per-record failures always on stderr
//! (docs/compatibility.md D32).

mod jsonl;
mod progress;

use std::io::{BufRead, BufWriter, Write};
use std::process::ExitCode;

use clap::Parser;
use pyzor_migrate::cli::{Args, USAGE};
use pyzor_protocol::Record;
use pyzor_store::{Engine, EngineOptions, StoreError};

/// `Unsupported source engine: foo` (the reference's words, on stdout)
/// followed by the engines this build has.
fn unsupported(which: &str, engine: &str) -> StartError {
    let shown: String = engine.chars().take(64).collect();
    StartError::Usage(format!(
        "Unsupported {which} engine: {shown} (this build has: {})",
        pyzor_store::ENGINES.join(", ")
    ))
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
enum StartError {
    /// The reference's words; the usage forms follow on stderr.
    #[error("options --se/--sd/--de/--dd are required")]
    Missing,
    #[error("{0}")]
    Usage(String),
    #[error("cannot open the {which} {engine} database: {source}")]
    Open {
        which: &'static str,
        engine: String,
        #[source]
        source: StoreError,
    },
    #[error("{0}")]
    Io(String),
}

fn engine_options(engine: &str, dsn: &str, cleanup_age: u64) -> Result<EngineOptions, StartError> {
    let cwd =
        std::env::current_dir().map_err(|e| StartError::Io(format!("current directory: {e}")))?;
    // Relative file DSNs are relative to the working directory, as in the
    // reference's pyzor-migrate.
    let mut o = EngineOptions::new(engine, cwd).dsn(dsn);
    o.cleanup_age = cleanup_age;
    Ok(o)
}

fn open(
    which: &'static str,
    o: &EngineOptions,
    must_exist: bool,
) -> Result<std::sync::Arc<dyn Engine>, StartError> {
    if must_exist && matches!(o.engine.as_str(), "gdbm" | "lmdb") {
        let p = o.file_path().map_err(|e| StartError::Open {
            which,
            engine: o.engine.clone(),
            source: e,
        })?;
        if !p.exists() {
            return Err(StartError::Usage(format!(
                "{which} database {} does not exist",
                p.display()
            )));
        }
    }
    pyzor_store::open(o).map_err(|source| StartError::Open {
        which,
        engine: o.engine.clone(),
        source,
    })
}

/// Counters of one run.
#[derive(Default)]
struct Tally {
    ok: u64,
    failed: u64,
}

/// Writes records to the destination in batches; a failed batch is retried
/// record by record so that exactly the bad records are counted as failed.
struct Sink<'a> {
    dest: Option<&'a dyn Engine>,
    export: Option<Box<dyn Write + 'a>>,
    batch: Vec<(Vec<u8>, Record)>,
    batch_size: usize,
    deleted: Option<BufWriter<std::fs::File>>,
    tally: Tally,
    progress: progress::Progress,
}

impl Sink<'_> {
    fn push(&mut self, d: Vec<u8>, r: Record) {
        self.batch.push((d, r));
        if self.batch.len() >= self.batch_size {
            self.flush_batch();
        }
    }

    fn flush_batch(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        let mut failures: Vec<(&[u8], String)> = Vec::new();
        let done: Vec<&Vec<u8>> = if let Some(w) = self.export.as_mut() {
            let mut ok = Vec::new();
            for (d, r) in &batch {
                match writeln!(w, "{}", jsonl::encode(d, r)) {
                    Ok(()) => ok.push(d),
                    Err(e) => failures.push((d, e.to_string())),
                }
            }
            ok
        } else if let Some(dest) = self.dest {
            match dest.put_many(&batch) {
                Ok(()) => batch.iter().map(|(d, _)| d).collect(),
                Err(_) => {
                    let mut ok = Vec::new();
                    for rec in &batch {
                        match dest.put_many(std::slice::from_ref(rec)) {
                            Ok(()) => ok.push(&rec.0),
                            Err(e) => failures.push((&rec.0, e.to_string())),
                        }
                    }
                    ok
                }
            }
        } else {
            batch.iter().map(|(d, _)| d).collect() // dry run
        };
        for (d, why) in failures {
            self.fail(d, &why);
        }
        self.tally.ok += done.len() as u64;
        if let Some(list) = self.deleted.as_mut() {
            for d in &done {
                if let Err(e) = writeln!(list, "{}", jsonl::hex(d)) {
                    eprintln!(
                        "cannot remember {} for --delete: {e}",
                        String::from_utf8_lossy(d)
                    );
                }
            }
        }
        self.progress.set(self.tally.ok + self.tally.failed);
    }

    fn fail(&mut self, d: &[u8], why: &str) {
        self.tally.failed += 1;
        self.progress.println(&format!(
            "Record {} failed: {why}",
            String::from_utf8_lossy(d)
        ));
    }
}

fn run(args: Args) -> Result<ExitCode, StartError> {
    let (src_engine, dst_engine) = (args.source_engine.clone(), args.destination_engine.clone());
    let need_source = args.import.is_none();
    let need_dest = args.export.is_none() && !args.dry_run;
    let missing = (need_source && (args.source_engine.is_none() || args.source_dsn.is_none()))
        || (args.export.is_none()
            && (args.destination_engine.is_none() || args.destination_dsn.is_none()));
    if missing {
        return Err(StartError::Missing);
    }
    for (which, engine) in [("source", &src_engine), ("destination", &dst_engine)] {
        if let Some(e) = engine.as_deref() {
            if !pyzor_store::ENGINES.contains(&e) {
                return Err(unsupported(which, e));
            }
        }
    }

    let source = match (&src_engine, &args.source_dsn) {
        (Some(e), Some(d)) if need_source => Some(open("source", &engine_options(e, d, 0)?, true)?),
        _ => None,
    };
    let dest = match (&dst_engine, &args.destination_dsn) {
        (Some(e), Some(d)) if need_dest => Some(open(
            "destination",
            &engine_options(e, d, args.cleanup_age)?,
            false,
        )?),
        _ => None,
    };
    let export: Option<Box<dyn Write>> = match args.export.as_deref() {
        None => None,
        Some("-") => Some(Box::new(BufWriter::new(std::io::stdout().lock()))),
        Some(p) => Some(Box::new(BufWriter::new(
            std::fs::File::create(p)
                .map_err(|e| StartError::Io(format!("cannot create {p}: {e}")))?,
        ))),
    };
    let delete_list = if args.delete && !args.dry_run {
        Some(
            tempfile::tempfile()
                .map_err(|e| StartError::Io(format!("temporary file for --delete: {e}")))?,
        )
    } else {
        None
    };
    let total = source.as_ref().and_then(|s| s.approx_len());
    // Progress goes to stderr when the records go to stdout.
    let to_stdout = args.export.as_deref() == Some("-");
    let mut sink = Sink {
        dest: dest.as_deref(),
        export,
        batch: Vec::with_capacity(args.batch_size as usize),
        batch_size: args.batch_size as usize,
        deleted: delete_list
            .as_ref()
            .and_then(|f| f.try_clone().ok())
            .map(BufWriter::new),
        tally: Tally::default(),
        progress: progress::Progress::new(total),
    };

    if let Some(src) = &source {
        let iter = src.scan().map_err(|source| StartError::Open {
            which: "source",
            engine: src.name().into(),
            source,
        })?;
        for item in iter {
            match item {
                Ok((d, r)) => sink.push(d, r),
                Err(StoreError::Corrupt { digest, reason }) => {
                    sink.fail(digest.as_bytes(), &reason)
                }
                Err(e) => {
                    // The source stopped answering: what was read so far is
                    // written, the rest is unknown.
                    sink.flush_batch();
                    sink.progress
                        .println(&format!("Reading the source failed: {e}"));
                    sink.tally.failed += 1;
                    break;
                }
            }
        }
    } else if let Some(path) = &args.import {
        let reader: Box<dyn BufRead> = if path == "-" {
            Box::new(std::io::stdin().lock())
        } else {
            Box::new(std::io::BufReader::new(std::fs::File::open(path).map_err(
                |e| StartError::Io(format!("cannot open {path}: {e}")),
            )?))
        };
        for (n, line) in reader.lines().enumerate() {
            let line = match line {
                Ok(l) => l,
                Err(e) => {
                    sink.fail(format!("line {}", n + 1).as_bytes(), &e.to_string());
                    break;
                }
            };
            if line.trim().is_empty() {
                continue;
            }
            match jsonl::decode(&line) {
                Ok((d, r)) => sink.push(d, r),
                Err(e) => sink.fail(format!("line {}", n + 1).as_bytes(), &e),
            }
        }
    }
    sink.flush_batch();
    if let Some(w) = sink.export.as_mut() {
        if let Err(e) = w.flush() {
            sink.progress
                .println(&format!("writing the export failed: {e}"));
            sink.tally.failed += 1;
        }
    }
    if let Some(d) = sink.dest {
        if let Err(e) = d.flush() {
            sink.progress
                .println(&format!("flushing the destination failed: {e}"));
            sink.tally.failed += 1;
        }
    }
    sink.progress.finish();

    // --delete: only after every record was written (a crash before this
    // point leaves the source complete).
    if let (Some(src), Some(mut list), Some(mut w)) = (&source, delete_list, sink.deleted.take()) {
        use std::io::Seek;
        let _ = w.flush();
        drop(w);
        let _ = list.seek(std::io::SeekFrom::Start(0));
        let mut chunk = Vec::with_capacity(1000);
        let mut del_failed = false;
        for line in std::io::BufReader::new(list).lines().map_while(Result::ok) {
            if let Some(d) = jsonl::unhex(&line) {
                chunk.push(d);
            }
            if chunk.len() == 1000 {
                del_failed |= src.delete_many(&std::mem::take(&mut chunk)).is_err();
            }
        }
        del_failed |= src.delete_many(&chunk).is_err();
        del_failed |= src.flush().is_err();
        if del_failed {
            eprintln!("Deleting transferred records from the source failed; they are still there");
            sink.tally.failed += 1;
        }
    }

    let verb = if args.dry_run {
        "would be transferred"
    } else {
        "transferred successfully"
    };
    let line = format!(
        "Migration complete, {} records {verb}, {} records failed",
        sink.tally.ok, sink.tally.failed
    );
    if to_stdout {
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
    Ok(if sink.tally.failed > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(c) => c,
        Err(e @ StartError::Missing) => {
            // The reference prints these to stdout and exits 1.
            println!("{e}");
            eprintln!("Usage: {USAGE}");
            ExitCode::from(1)
        }
        Err(StartError::Usage(m)) => {
            println!("{m}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("pyzor-migrate: {e}");
            ExitCode::from(1)
        }
    }
}
