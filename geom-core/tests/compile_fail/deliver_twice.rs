// Delivering a request consumes it: a second delivery does not compile.
use geom_core::{Errno, IoCtx, Request};

fn start(_cx: &IoCtx, req: Request) {
    req.complete(0);
    req.fail(Errno::EIO);
}

fn main() {}
