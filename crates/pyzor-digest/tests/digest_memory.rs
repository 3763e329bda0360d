//! Memory of the digest on big inputs (one test per process, so the peak
//! resident size `VmHWM` belongs to it): a 50 MB message, and an mbox of
//! 100,000 messages streamed through `MboxReader` from a generator that
//! never holds the mbox in memory. Linux only (reads /proc/self/status);
//! skips loudly elsewhere.

use std::io::{BufReader, Read};

use pyzor_digest::{self as digest, MboxReader};

fn vm_hwm_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// An mbox of `n` messages, produced on the fly.
struct MboxGen {
    n: usize,
    i: usize,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for MboxGen {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos == self.buf.len() {
            if self.i == self.n {
                return Ok(0);
            }
            self.buf = format!(
                "From sender{i}@example.com Mon Jan  1 00:00:00 2024\nSubject: message {i}\n\nHello, this is message number {i} of the big mailbox.\nIt has a few lines of ordinary text in it.\nAnd one more for good measure.\n\n",
                i = self.i
            )
            .into_bytes();
            self.pos = 0;
            self.i += 1;
        }
        let k = out.len().min(self.buf.len() - self.pos);
        out[..k].copy_from_slice(&self.buf[self.pos..self.pos + k]);
        self.pos += k;
        Ok(k)
    }
}

#[test]
fn big_message_and_big_mbox_stay_bounded() {
    let Some(base) = vm_hwm_kib() else {
        pyzor_testkit::skip(
            "big_message_and_big_mbox_stay_bounded",
            "no /proc/self/status",
        );
        return;
    };
    // 1. 100,000 messages streamed: memory must not grow with the count.
    let gen = MboxGen {
        n: 100_000,
        i: 0,
        buf: Vec::new(),
        pos: 0,
    };
    let mut count = 0usize;
    let mut distinct = std::collections::HashSet::new();
    for m in MboxReader::new(BufReader::new(gen)) {
        let d = digest::digest_message(&m.unwrap()).unwrap();
        if count % 10_000 == 0 {
            distinct.insert(d);
        }
        count += 1;
    }
    assert_eq!(count, 100_000);
    let after_mbox = vm_hwm_kib().unwrap();
    eprintln!(
        "mbox: 100000 messages, peak RSS grew by {} KiB",
        after_mbox.saturating_sub(base)
    );
    assert!(
        after_mbox - base < 32 * 1024,
        "streaming 100k messages grew RSS by {} KiB",
        after_mbox - base
    );

    // 2. A 50 MB message: text with long and short lines, some 8-bit bytes.
    let mut msg = b"Subject: big\nContent-Type: text/plain; charset=utf-8\n\n".to_vec();
    let line = "word another línea de texto with some tokens user@example.com http://x.y/z 12:30\n";
    while msg.len() < 50 * 1024 * 1024 {
        msg.extend_from_slice(line.as_bytes());
    }
    let input_kib = (msg.len() / 1024) as u64;
    let before = vm_hwm_kib().unwrap();
    let d = digest::digest_message(&msg).unwrap();
    let peak = vm_hwm_kib().unwrap();
    let grew = peak.saturating_sub(before);
    eprintln!("50 MB message: digest {d}, peak RSS grew by {grew} KiB (input {input_kib} KiB)");
    assert!(
        grew < 3 * input_kib,
        "digesting a {input_kib} KiB message grew RSS by {grew} KiB"
    );
}
