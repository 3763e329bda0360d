//! Throughput figures for `digest::codecs::decode` (prints MB/s; asserts
//! nothing about speed). Run with:
//! `cargo test --release -p pyzor-digest --test codecs_bench -- --ignored --nocapture`

use std::time::Instant;

use pyzor_digest::codecs::{decode, Errors};

fn sample(label: &str) -> Vec<u8> {
    // Mostly text with the codec's typical non-ASCII bytes mixed in.
    let unit: &[u8] = match label {
        "utf-8" => "Grüße, 你好, привет — spam spam spam\n".as_bytes(),
        "shift_jis" | "cp932" => b"\x82\xa0\x82\xa2\x82\xa4 ascii text \x93\xfa\x96\x7b\x8c\xea\n",
        "euc_jp" => b"\xa4\xa2\xa4\xa4 ascii text \xc6\xfc\xcb\xdc\xb8\xec\n",
        "gb18030" | "gbk" | "gb2312" => b"\xc4\xe3\xba\xc3 ascii text \xd6\xd0\xce\xc4\n",
        "big5" => b"\xa7\x41\xa6\x6e ascii text \xa4\xa4\xa4\xe5\n",
        "euc_kr" => b"\xbe\xc8\xb3\xe7 ascii text \xc7\xd1\xb1\xdb\n",
        "iso2022_jp" => b"\x1b$B$3$s$K$A$O\x1b(B ascii text\n",
        "utf-16" => b"h\x00e\x00l\x00l\x00o\x00 \x00`O}Y\n\x00",
        _ => b"Caf\xe9 cr\xe8me br\xfbl\xe9e, na\xefve fa\xe7ade \x80 ascii text\n",
    };
    unit.iter().copied().cycle().take(1 << 20).collect()
}

#[test]
#[ignore = "benchmark: prints figures, run explicitly"]
fn codec_throughput() {
    for label in [
        "ascii",
        "latin-1",
        "cp1252",
        "koi8-r",
        "utf-8",
        "utf-16",
        "shift_jis",
        "cp932",
        "euc_jp",
        "gb2312",
        "gbk",
        "gb18030",
        "big5",
        "euc_kr",
        "iso2022_jp",
    ] {
        let input = sample(label);
        let _ = decode(label, &input, Errors::Ignore); // table load
        let rounds = 20;
        let start = Instant::now();
        let mut chars = 0;
        for _ in 0..rounds {
            chars += decode(label, &input, Errors::Ignore)
                .map(|s| s.len())
                .unwrap_or(0);
        }
        let secs = start.elapsed().as_secs_f64();
        let mb = (input.len() * rounds) as f64 / 1e6;
        println!(
            "{label:>12}: {:8.1} MB/s ({} output bytes)",
            mb / secs,
            chars / rounds
        );
    }
}
