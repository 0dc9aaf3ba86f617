//! The I/O path of a stripe device (`g_stripe_start` and `g_stripe_done`): READ, WRITE and
//! DELETE are split by the stripe map, FLUSH and SPEEDUP go to every component, anything
//! else is refused. Nothing here sleeps or panics; running out of memory fails the request
//! with `ENOMEM`, which GEOM retries later, or first falls back from "fast" to "economic".

use core::sync::atomic::Ordering::Relaxed;

use geom_core::{Children, Cmd, Consumer, Errno, Fanout, IoCtx, Request};

use crate::StripeGeom;

impl StripeGeom {
    /// The consumer of component `disk`, if attached.
    fn disk(&self, disk: u32) -> Option<Consumer> {
        self.disks.get(disk as usize)?.get()
    }

    /// A request arrives (`g_stripe_start`).
    pub(crate) fn start_request(&self, cx: &IoCtx, req: Request) {
        let cmd = req.cmd();
        match cmd {
            Cmd::Read | Cmd::Write | Cmd::Delete => {}
            Cmd::Flush | Cmd::Speedup => return self.pushdown(cx, req),
            // GETATTR too: no single component could answer for the device.
            _ => return req.fail(Errno::EOPNOTSUPP),
        }
        let g = self.geometry;
        let length = req.length();
        // "Fast" mode gathers each component's pieces into one request; worth it only when
        // some component gets more than one piece, and possible only for mapped data.
        let fast = self.tun.fast.load(Relaxed)
            && cmd != Cmd::Delete
            && (length as u64) <= geom_core::maxphys()
            && length >= g.stripesize() * i64::from(g.ndisks)
            && req.data().is_some();
        let req = if fast {
            match self.start_fast(cx, req) {
                Ok(()) => return,
                Err(req) => {
                    self.tun.fast_failed.fetch_add(1, Relaxed);
                    req
                }
            }
        } else {
            req
        };
        self.start_economic(cx, req);
    }

    /// One clone per piece ("economic" mode, the default).
    fn start_economic(&self, cx: &IoCtx, req: Request) {
        let (offset, length) = (req.offset(), req.length());
        let mut f = Fanout::new(req);
        for p in self.geometry.pieces(offset, length) {
            let Some(cp) = self.disk(p.disk) else { return f.abort(Errno::ENXIO) };
            if f.add(cx, cp, p.offset, p.length, p.data_offset).is_err() {
                return f.abort(Errno::ENOMEM);
            }
        }
        f.send();
    }

    /// One clone per component, its pieces gathered into a bounce buffer when it has more
    /// than one ("fast" mode). Gives the request back untouched when memory is short.
    fn start_fast(&self, cx: &IoCtx, req: Request) -> Result<(), Request> {
        let g = self.geometry;
        let (offset, length) = (req.offset(), req.length());
        let write = req.cmd() == Cmd::Write;
        let bounce: i64 = g.shares(offset, length).filter(|s| s.pieces > 1).map(|s| s.length).sum();
        if !self.tun.reserve(bounce as u64) {
            return Err(req);
        }
        let mut f = Fanout::new(req);
        for share in g.shares(offset, length) {
            let Some(cp) = self.disk(share.disk) else {
                self.tun.release(bounce as u64);
                f.abort(Errno::ENXIO);
                return Ok(());
            };
            let mut gathered = true;
            let added = if share.pieces == 1 {
                let (at, _) = g.piece_span(offset, length, share.first);
                f.add(cx, cp, share.offset, share.length, at)
            } else {
                f.add_bounce_with(cx, cp, share.offset, share.length, share.first as usize, |data, buf| {
                    if write {
                        g.for_each_piece_of(offset, length, share.first, |at, in_run, len| {
                            gathered &= copy(buf, in_run, data, at, len);
                        });
                    }
                })
            };
            if added.is_err() || !gathered {
                self.tun.release(bounce as u64);
                return Err(f.cancel());
            }
        }
        f.send_to_done::<StripeGeom>();
        Ok(())
    }

    /// FLUSH and SPEEDUP: the same request to every component (`g_stripe_pushdown`).
    fn pushdown(&self, cx: &IoCtx, req: Request) {
        let (offset, length) = (req.offset(), req.length());
        let mut f = Fanout::new(req);
        for disk in 0..self.geometry.ndisks {
            let Some(cp) = self.disk(disk) else { return f.abort(Errno::ENXIO) };
            if f.add(cx, cp, offset, length, 0).is_err() {
                return f.abort(Errno::ENOMEM);
            }
        }
        f.send();
    }

    /// Every clone of a "fast" request is home: scatter gathered reads back into the
    /// request and give the bounce memory back to the budget (`g_stripe_done`).
    pub(crate) fn fast_done(&self, children: &mut Children<'_>) {
        let g = self.geometry;
        let (offset, length) = (children.offset(), children.length());
        let read = children.cmd() == Cmd::Read;
        let mut released = 0i64;
        let mut torn = false;
        children.for_each(|data, child| {
            if !child.is_bounce() {
                return;
            }
            released += child.length();
            if !read || child.error().is_some() {
                return;
            }
            g.for_each_piece_of(offset, length, child.tag() as u64, |at, in_run, len| {
                torn |= !copy(data, at, child.data(), in_run, len);
            });
        });
        self.tun.release(released as u64);
        if torn {
            children.fail(Errno::EIO);
        }
    }
}

/// Copy `len` bytes from `src[from..]` to `dst[to..]`; false (and nothing copied) if either
/// range is out of bounds, which the stripe map never produces.
fn copy(dst: &mut [u8], to: usize, src: &[u8], from: usize, len: usize) -> bool {
    match (dst.get_mut(to..to.saturating_add(len)), src.get(from..from.saturating_add(len))) {
        (Some(d), Some(s)) => {
            d.copy_from_slice(s);
            true
        }
        _ => false,
    }
}
