//! Where each byte of a stripe device lives: the arithmetic of `g_stripe_start`.
//!
//! The device is cut into stripes of `S = 2^bits` bytes, dealt to the `N` components in
//! turn: stripe `k` is on component `k mod N`, in that component's stripe `k / N`. A request
//! is split into pieces, one per stripe it touches: the first from its offset to the end of
//! that stripe, then whole stripes, the last one possibly short.

/// The shape of a stripe device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Number of components (at least 2).
    pub ndisks: u32,
    /// `log2` of the stripe size.
    pub bits: u32,
}

/// One piece of a request: a run of bytes that stays on one component.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    /// The component.
    pub disk: u32,
    /// Where it starts on the component.
    pub offset: i64,
    /// Where it starts in the request's buffer.
    pub data_offset: usize,
    /// Its length.
    pub length: i64,
}

/// Where a component's share of a request lies in "fast" mode, when all of it goes as one
/// request to the component: the component gets pieces `first`, `first + N`, `first + 2N`,
/// ... of the request, contiguous on the component.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Share {
    /// The component.
    pub disk: u32,
    /// Index of its first piece in the request.
    pub first: u64,
    /// How many pieces it gets.
    pub pieces: u64,
    /// Where its run starts on the component.
    pub offset: i64,
    /// Total length of its run.
    pub length: i64,
}

impl Geometry {
    /// The stripe size.
    pub fn stripesize(&self) -> i64 {
        1i64 << self.bits
    }

    /// The pieces of the request `offset..offset + length`, in order.
    pub fn pieces(&self, offset: i64, length: i64) -> Pieces {
        let s = self.stripesize();
        let n = i64::from(self.ndisks);
        let stripe = offset >> self.bits;
        let start = offset & (s - 1);
        Pieces {
            geom: *self,
            disk: (stripe % n) as u32,
            row: (stripe / n) << self.bits,
            in_stripe: start,
            data_offset: 0,
            left: length.max(0),
        }
    }

    /// The number of pieces of a request.
    pub fn piece_count(&self, offset: i64, length: i64) -> u64 {
        if length <= 0 {
            return 0;
        }
        let s = self.stripesize();
        let first = length.min(s - (offset & (s - 1)));
        1 + ((length - first) as u64).div_ceil(s as u64)
    }

    /// Piece `i` of a request: where it starts in the buffer and how long it is.
    pub fn piece_span(&self, offset: i64, length: i64, i: u64) -> (usize, i64) {
        let s = self.stripesize();
        let first = length.min(s - (offset & (s - 1)));
        if i == 0 {
            return (0, first);
        }
        let start = first + (i as i64 - 1) * s;
        (start as usize, (length - start).min(s))
    }

    /// The component shares of a request that spans at least one stripe per component (the
    /// condition for "fast" mode), one per component starting with the request's first.
    pub fn shares(&self, offset: i64, length: i64) -> impl Iterator<Item = Share> {
        let g = *self;
        let total = g.piece_count(offset, length);
        let n = u64::from(g.ndisks);
        g.pieces(offset, length).take(n.min(total) as usize).zip(0u64..).map(move |(first, k)| {
            // Pieces k, k + N, ... < total, contiguous on the component from piece k's
            // offset: the first, whole stripes, and the last, which may be short.
            let pieces = (total - k).div_ceil(n);
            let (_, last_len) = g.piece_span(offset, length, k + (pieces - 1) * n);
            let run =
                if pieces == 1 { first.length } else { first.length + (pieces as i64 - 2) * g.stripesize() + last_len };
            Share { disk: first.disk, first: k, pieces, offset: first.offset, length: run }
        })
    }

    /// Call `f(at, in_run, len)` for each piece of the share whose first piece is `first`
    /// (pieces `first`, `first + N`, ...): where the piece lies in the request's buffer,
    /// where in the component's contiguous run, and its length. Copying with it gathers a
    /// share into a bounce buffer, or scatters it back.
    pub fn for_each_piece_of(&self, offset: i64, length: i64, first: u64, mut f: impl FnMut(usize, usize, usize)) {
        let total = self.piece_count(offset, length);
        let mut in_run = 0usize;
        for i in (first..total).step_by(self.ndisks as usize) {
            let (at, len) = self.piece_span(offset, length, i);
            f(at, in_run, len as usize);
            in_run += len as usize;
        }
    }
}

/// Iterator over the pieces of a request (see [`Geometry::pieces`]).
pub struct Pieces {
    geom: Geometry,
    disk: u32,
    /// Start of the current row of stripes on every component.
    row: i64,
    /// Offset inside the current stripe (non-zero only for the first piece).
    in_stripe: i64,
    data_offset: usize,
    left: i64,
}

impl Iterator for Pieces {
    type Item = Piece;

    fn next(&mut self) -> Option<Piece> {
        if self.left <= 0 {
            return None;
        }
        let s = self.geom.stripesize();
        let length = self.left.min(s - self.in_stripe);
        let piece = Piece { disk: self.disk, offset: self.row + self.in_stripe, data_offset: self.data_offset, length };
        self.left -= length;
        self.data_offset += length as usize;
        self.in_stripe = 0;
        self.disk += 1;
        if self.disk == self.geom.ndisks {
            self.disk = 0;
            self.row += s;
        }
        Some(piece)
    }
}

/// Least common multiple of two sector sizes (`g_lcm`); `None` for a zero or if it does not
/// fit in 32 bits.
pub fn lcm(a: u32, b: u32) -> Option<u32> {
    if a == 0 || b == 0 {
        return None;
    }
    let (mut x, mut y) = (a, b);
    while y != 0 {
        (x, y) = (y, x % y);
    }
    (a / x).checked_mul(b)
}
