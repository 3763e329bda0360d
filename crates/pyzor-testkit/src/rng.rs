//! The one random generator of the test suites.

/// A tiny deterministic generator (xorshift64) for randomised tests that
/// must replay the same inputs for a seed. Not for anything but tests.
#[derive(Clone, Debug)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator from `seed`. Zero, the one seed xorshift never leaves,
    /// is replaced by a fixed non-zero constant.
    pub fn new(seed: u64) -> XorShift {
        XorShift(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// The next value: `x ^= x << 13; x ^= x >> 7; x ^= x << 17`.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A value in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    /// One element of a non-empty slice.
    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }

    /// A random byte.
    pub fn byte(&mut self) -> u8 {
        self.next() as u8
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::XorShift;

    #[test]
    fn replays_for_a_seed_and_never_sticks_at_zero() {
        let a: Vec<u64> = {
            let mut r = XorShift::new(7);
            (0..4).map(|_| r.next()).collect()
        };
        let mut r = XorShift::new(7);
        assert_eq!(a, (0..4).map(|_| r.next()).collect::<Vec<_>>());
        let mut z = XorShift::new(0);
        assert!((0..100).all(|_| z.next() != 0));
    }

    #[test]
    fn below_pick_and_chance_stay_in_range() {
        let mut r = XorShift::new(0x1234);
        assert!((0..1000).all(|_| r.below(7) < 7));
        assert_eq!(r.below(0), 0);
        assert!((0..1000).all(|_| [3, 5].contains(&r.pick(&[3, 5]))));
        assert!((0..1000).all(|_| r.chance(100)));
        assert!((0..1000).all(|_| !r.chance(0)));
        assert_eq!(r.bytes(9).len(), 9);
    }
}
