//! The compact value encoding of a [`Record`] used by the embedded engine
//! (and by nothing that Python reads).
//!
//! Layout (all integers LEB128 varints, signed ones zig-zag encoded):
//!
//! ```text
//! byte 0      : 0x10 | presence bits (bit0 r_entered, bit1 r_updated,
//!               bit2 wl_entered, bit3 wl_updated); the high nibble is the
//!               format version (1)
//! zigzag      : r_count
//! zigzag      : wl_count
//! zigzag      : the first present timestamp, microseconds since the epoch
//! zigzag ...  : each further present timestamp as the difference from the
//!               previous present one (entered/updated pairs are close, so
//!               these are short)
//! ```
//!
//! A report-only record takes about 13–17 bytes instead of 48 for six fixed
//! 64-bit fields; that keeps 10 million records well inside the memory
//! budget of the embedded engine.

use pyzor_protocol::{Record, Timestamp};

const VERSION: u8 = 0x10;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn get_varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v: u64 = 0;
    let mut shift = 0u32;
    loop {
        let b = *buf.get(*pos)?;
        *pos += 1;
        if shift == 63 && b > 1 {
            return None; // overflows 64 bits
        }
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
}

/// Append the encoding of `r` to `out`.
pub(crate) fn encode_into(r: &Record, out: &mut Vec<u8>) {
    let stamps = [r.r_entered, r.r_updated, r.wl_entered, r.wl_updated];
    let mut flags = VERSION;
    for (i, t) in stamps.iter().enumerate() {
        if t.is_some() {
            flags |= 1 << i;
        }
    }
    out.push(flags);
    put_varint(out, zigzag(r.r_count));
    put_varint(out, zigzag(r.wl_count));
    let mut prev: Option<i64> = None;
    for t in stamps.iter().flatten() {
        let v = match prev {
            None => t.0,
            Some(p) => t.0.wrapping_sub(p),
        };
        put_varint(out, zigzag(v));
        prev = Some(t.0);
    }
}

/// The encoding of `r`.
pub fn encode(r: &Record) -> Vec<u8> {
    let mut v = Vec::with_capacity(24);
    encode_into(r, &mut v);
    v
}

/// Decode a record from the front of `buf`; returns it and the number of
/// bytes it took, or `None` when `buf` is not a valid encoding.
pub fn decode(buf: &[u8]) -> Option<(Record, usize)> {
    let flags = *buf.first()?;
    if flags & 0xf0 != VERSION {
        return None;
    }
    let mut pos = 1;
    let r_count = unzigzag(get_varint(buf, &mut pos)?);
    let wl_count = unzigzag(get_varint(buf, &mut pos)?);
    let mut stamps = [None; 4];
    let mut prev: Option<i64> = None;
    for (i, slot) in stamps.iter_mut().enumerate() {
        if flags & (1 << i) != 0 {
            let d = unzigzag(get_varint(buf, &mut pos)?);
            let v = match prev {
                None => d,
                Some(p) => p.wrapping_add(d),
            };
            *slot = Some(Timestamp(v));
            prev = Some(v);
        }
    }
    let [r_entered, r_updated, wl_entered, wl_updated] = stamps;
    Some((
        Record {
            r_count,
            wl_count,
            r_entered,
            r_updated,
            wl_entered,
            wl_updated,
        },
        pos,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(r: Record) {
        let e = encode(&r);
        let (d, n) = decode(&e).expect("decodes");
        assert_eq!(d, r);
        assert_eq!(n, e.len());
    }

    #[test]
    fn round_trips_extremes_and_typical() {
        round(Record::default());
        let mut r = Record::default();
        r.report(Timestamp(1_795_000_000_123_456));
        r.report(Timestamp(1_795_000_100_000_000));
        round(r);
        let e = encode(&r);
        assert!(e.len() <= 17, "typical record is {} bytes", e.len());
        round(Record {
            r_count: i64::MAX,
            wl_count: i64::MIN,
            r_entered: Some(Timestamp(i64::MIN)),
            r_updated: Some(Timestamp(i64::MAX)),
            wl_entered: Some(Timestamp(0)),
            wl_updated: Some(Timestamp(-1)),
        });
        round(Record {
            wl_count: 3,
            wl_updated: Some(Timestamp(5)),
            ..Record::default()
        });
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        assert!(decode(&[]).is_none());
        assert!(decode(&[0x00]).is_none());
        assert!(decode(&[0x1f, 0x80]).is_none());
        assert!(
            decode(&[0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0])
                .is_none()
        );
        // every prefix of a valid encoding is either invalid or shorter
        let mut r = Record::default();
        r.whitelist(Timestamp(1_700_000_000_000_000));
        let e = encode(&r);
        for n in 0..e.len() {
            assert!(decode(&e[..n]).is_none());
        }
    }
}
