// A synchronous read needs a context that may sleep; start only has an IoCtx.
use geom_core::{Consumer, IoCtx, Request};

fn start(cx: &IoCtx, req: Request, cp: Consumer) {
    let label = cp.read_data(cx, 0, 512);
    drop(label);
    req.complete(0);
}

fn main() {}
