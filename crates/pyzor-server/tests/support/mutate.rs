//! Random mutations of request datagrams, shared by the storm test and the
//! soak example (`#[path]`-included by both).

use rand::Rng;

/// `t` with 1–7 random edits: a byte changed or removed, a separator
/// inserted (line ends, colon, blanks, NUL, 0xff, VT), random bytes
/// spliced in, a run of `A`s appended, the whole doubled, a tail cut; at
/// most 65,000 bytes, so that it always fits one UDP datagram.
pub fn mutate(rng: &mut rand::rngs::StdRng, t: &[u8]) -> Vec<u8> {
    let mut d = t.to_vec();
    for _ in 0..rng.random_range(1..8) {
        match rng.random_range(0..7) {
            0 if !d.is_empty() => {
                let i = rng.random_range(0..d.len());
                d[i] = rng.random();
            }
            1 if !d.is_empty() => {
                let i = rng.random_range(0..d.len());
                d.remove(i);
            }
            2 => {
                let i = rng.random_range(0..=d.len());
                let b =
                    [b'\n', b'\r', b':', b' ', b'\t', 0u8, 0xff, b'\x0b'][rng.random_range(0..8)];
                d.insert(i, b);
            }
            3 => {
                let i = rng.random_range(0..=d.len());
                let n = rng.random_range(1..200);
                let junk: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                d.splice(i..i, junk);
            }
            4 => d.extend(std::iter::repeat_n(b'A', rng.random_range(0..9000))),
            5 => {
                let dup = d.clone();
                d.extend_from_slice(&dup);
            }
            _ => d.truncate(rng.random_range(0..=d.len())),
        }
    }
    d.truncate(65000);
    d
}
