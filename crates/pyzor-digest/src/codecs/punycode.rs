//! `punycode` as `bytes.decode("punycode", errors)` runs it in CPython
//! 3.11 (encodings/punycode.py, RFC 3492 decoding with Python's error
//! handling):
//! * the input is split at the LAST `-`: the part before it is decoded as
//!   ascii with the caller's handler, the part after it as strict ascii
//!   (a non-ASCII byte there raises UnicodeError) and upper-cased;
//! * a bad or truncated variable-length integer silently ends decoding
//!   (neither handler adds a U+FFFD), keeping what was built so far;
//! * a code point above U+10FFFF becomes `?` and decoding continues from
//!   there; surrogate code points are inserted as lone surrogates.
//!
//! Python computes with unbounded integers, so this does too ([`Big`]).
//! Those computations are quadratic in the length of one integer; inputs
//! whose extended part is longer than [`MAX_EXTENDED`] bytes are refused
//! with [`CodecError::Unsupported`] instead of spending minutes on them.

use super::{CodecError, Out};

/// Longest extended part decoded (see the module documentation).
const MAX_EXTENDED: usize = 64 * 1024;

/// A small unbounded unsigned integer (little-endian 32-bit limbs).
#[derive(Clone, Debug, Default)]
struct Big(Vec<u32>);

impl Big {
    fn from_u64(v: u64) -> Self {
        let mut b = Big(vec![v as u32, (v >> 32) as u32]);
        b.trim();
        b
    }

    fn trim(&mut self) {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }

    fn to_u64(&self) -> Option<u64> {
        match self.0.len() {
            0 => Some(0),
            1 => Some(u64::from(self.0[0])),
            2 => Some(u64::from(self.0[0]) | (u64::from(self.0[1]) << 32)),
            _ => None,
        }
    }

    fn mul_small(&mut self, m: u32) {
        let mut carry = 0u64;
        for limb in &mut self.0 {
            let v = u64::from(*limb) * u64::from(m) + carry;
            *limb = v as u32;
            carry = v >> 32;
        }
        if carry != 0 {
            self.0.push(carry as u32);
        }
        self.trim();
    }

    fn add(&mut self, other: &Big) {
        if self.0.len() < other.0.len() {
            self.0.resize(other.0.len(), 0);
        }
        let mut carry = 0u64;
        for (i, limb) in self.0.iter_mut().enumerate() {
            let v = u64::from(*limb) + u64::from(other.0.get(i).copied().unwrap_or(0)) + carry;
            *limb = v as u32;
            carry = v >> 32;
        }
        if carry != 0 {
            self.0.push(carry as u32);
        }
    }

    fn add_small(&mut self, v: u64) {
        self.add(&Big::from_u64(v));
    }

    /// (self / d, self % d)
    fn divmod_small(&self, d: u64) -> (Big, u64) {
        let d = u128::from(d);
        let mut q = vec![0u32; self.0.len()];
        let mut rem = 0u128;
        for i in (0..self.0.len()).rev() {
            let cur = (rem << 32) | u128::from(self.0[i]);
            q[i] = (cur / d) as u32;
            rem = cur % d;
        }
        let mut q = Big(q);
        q.trim();
        (q, rem as u64)
    }
}

/// Python's `T(j, bias)`.
fn threshold(j: u64, bias: u64) -> u64 {
    (36 * (j + 1)).saturating_sub(bias).clamp(1, 26)
}

/// Python's `adapt(delta, first, numchars)`.
fn adapt(delta: &Big, first: bool, numchars: u64) -> u64 {
    let (mut d, _) = delta.divmod_small(if first { 700 } else { 2 });
    let (extra, _) = d.divmod_small(numchars);
    d.add(&extra);
    let mut divisions = 0;
    loop {
        match d.to_u64() {
            Some(v) if v <= 455 => return divisions + (36 * v) / (v + 38),
            _ => {
                d = d.divmod_small(35).0;
                divisions += 36;
            }
        }
    }
}

/// Python's `decode_generalized_number`: (next position, value), value
/// `None` on a bad digit or the end of the extended part.
fn generalized_number(ext: &[u8], mut pos: usize, bias: u64) -> (usize, Option<Big>) {
    let mut result = Big::default();
    let mut w = Big::from_u64(1);
    let mut j = 0;
    loop {
        let Some(&c) = ext.get(pos) else {
            return (pos + 1, None);
        };
        pos += 1;
        let digit = match c {
            b'A'..=b'Z' => c - b'A',
            b'0'..=b'9' => c - 22,
            _ => return (pos, None),
        };
        let t = threshold(j, bias);
        let mut term = w.clone();
        term.mul_small(u32::from(digit));
        result.add(&term);
        if u64::from(digit) < t {
            return (pos, Some(result));
        }
        w.mul_small((36 - t) as u32);
        j += 1;
    }
}

pub(crate) fn decode(input: &[u8], out: &mut Out) -> Result<(), CodecError> {
    let (base_bytes, ext_bytes) = match input.iter().rposition(|&b| b == b'-') {
        Some(p) => (&input[..p], &input[p + 1..]),
        None => (&input[..0], input),
    };
    if !ext_bytes.is_ascii() {
        // str(extended, "ascii") is strict.
        return Err(CodecError::Unicode(
            "punycode: non-ASCII byte after the last '-'".into(),
        ));
    }
    if ext_bytes.len() > MAX_EXTENDED {
        return Err(CodecError::Unsupported(format!(
            "punycode with an extended part over {MAX_EXTENDED} bytes"
        )));
    }
    let ext: Vec<u8> = ext_bytes.to_ascii_uppercase();
    // The base, decoded as ascii with the caller's handler.
    let mut base: Vec<u32> = Vec::with_capacity(base_bytes.len() + ext.len());
    for &b in base_bytes {
        if b < 0x80 {
            base.push(u32::from(b));
        } else if out.replaces() {
            base.push(0xFFFD);
        }
    }
    let mut ch = Big::from_u64(0x80);
    let mut pos: Option<Big> = None; // Python starts at -1
    let mut bias = 72;
    let mut extpos = 0;
    while extpos < ext.len() {
        let (newpos, delta) = generalized_number(&ext, extpos, bias);
        let Some(delta) = delta else {
            break;
        };
        // pos += delta + 1 (with pos = -1 at first)
        let mut p = delta.clone();
        if let Some(prev) = &pos {
            p.add(prev);
            p.add_small(1);
        }
        let len = base.len() as u64 + 1;
        let (q, r) = p.divmod_small(len);
        ch.add(&q);
        let cp = match ch.to_u64() {
            Some(v) if v <= 0x10FFFF => v as u32,
            _ => {
                ch = Big::from_u64(u64::from(b'?'));
                u32::from(b'?')
            }
        };
        base.insert(r as usize, cp);
        pos = Some(Big::from_u64(r));
        bias = adapt(&delta, extpos == 0, base.len() as u64);
        extpos = newpos;
    }
    for cp in base {
        out.push_cp(cp);
    }
    Ok(())
}
