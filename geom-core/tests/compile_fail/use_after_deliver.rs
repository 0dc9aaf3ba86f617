// Once delivered, a request is gone: reading it afterwards is a use after move.
use geom_core::{IoCtx, Request};

fn start(_cx: &IoCtx, req: Request) {
    req.complete(0);
    let _ = req.offset();
}

fn main() {}
