//! Turning fuzz bytes into structured values, and back.
//!
//! [`Input`] reads fields from the fuzzer's bytes and never fails: past the end it gives zeros
//! and empty slices, so every byte string means something and the fuzzer wastes no runs on
//! inputs the harness would throw away. [`Writer`] writes the same fields, for the seed
//! corpus: each seed is built with the writer a harness reads it with, so the layouts cannot
//! drift apart.

/// A cursor over fuzz bytes.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// A cursor at the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    /// Up to `n` bytes (fewer at the end).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.data.split_at(n.min(self.data.len()));
        self.data = tail;
        head
    }

    /// `N` bytes, zero-padded at the end of the input.
    pub fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0u8; N];
        let b = self.bytes(N);
        a[..b.len()].copy_from_slice(b);
        a
    }

    /// A byte.
    pub fn u8(&mut self) -> u8 {
        self.array::<1>()[0]
    }

    /// A little-endian `u16`.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.array())
    }

    /// A little-endian `u32`.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }

    /// A little-endian `u64`.
    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }

    /// A byte string with a one-byte length.
    pub fn short(&mut self) -> &'a [u8] {
        let n = self.u8();
        self.bytes(usize::from(n))
    }

    /// A byte string with a two-byte length.
    pub fn long(&mut self) -> &'a [u8] {
        let n = self.u16();
        self.bytes(usize::from(n))
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        self.bytes(self.data.len())
    }

    /// Is anything left?
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// The inverse of [`Input`]: builds the bytes a harness will read back as the same fields.
#[derive(Default)]
pub struct Writer {
    out: Vec<u8>,
}

impl Writer {
    /// An empty input.
    pub fn new() -> Self {
        Writer::default()
    }

    /// Raw bytes (read back with [`Input::bytes`], [`Input::array`] or [`Input::rest`]).
    pub fn bytes(mut self, b: &[u8]) -> Self {
        self.out.extend_from_slice(b);
        self
    }

    /// A byte.
    pub fn u8(self, v: u8) -> Self {
        self.bytes(&[v])
    }

    /// A little-endian `u16`.
    pub fn u16(self, v: u16) -> Self {
        self.bytes(&v.to_le_bytes())
    }

    /// A little-endian `u32`.
    pub fn u32(self, v: u32) -> Self {
        self.bytes(&v.to_le_bytes())
    }

    /// A little-endian `u64`.
    pub fn u64(self, v: u64) -> Self {
        self.bytes(&v.to_le_bytes())
    }

    /// A byte string with a one-byte length (at most 255 bytes: a seed is built by hand).
    pub fn short(self, b: &[u8]) -> Self {
        let n = u8::try_from(b.len()).expect("a short field holds at most 255 bytes");
        self.u8(n).bytes(b)
    }

    /// A byte string with a two-byte length.
    pub fn long(self, b: &[u8]) -> Self {
        let n = u16::try_from(b.len()).expect("a long field holds at most 65535 bytes");
        self.u16(n).bytes(b)
    }

    /// The bytes.
    pub fn finish(self) -> Vec<u8> {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_and_input_agree() {
        let b = Writer::new().u8(7).u16(0x1234).short(b"abc").long(&[9; 300]).u64(u64::MAX).finish();
        let mut i = Input::new(&b);
        assert_eq!(i.u8(), 7);
        assert_eq!(i.u16(), 0x1234);
        assert_eq!(i.short(), b"abc");
        assert_eq!(i.long(), &[9; 300][..]);
        assert_eq!(i.u64(), u64::MAX);
        assert!(i.is_empty());
        // Past the end: zeros and empty slices, never a panic.
        assert_eq!((i.u32(), i.short(), i.rest()), (0, &[][..], &[][..]));
    }
}
