// A SleepLock may be held while sleeping, so taking it needs a context that may sleep;
// Geom::start only has an IoCtx.
use core::ffi::CStr;

use geom_core::{Geom, GeomClass, IoCtx, Request, SleepLock, Topology};

struct Journal;

struct JournalGeom {
    next_record: SleepLock<u64>,
}

impl GeomClass for Journal {
    const NAME: &'static CStr = c"JOURNAL";
    type Softc = JournalGeom;
    type Verb = geom_core::NoVerbs;

    fn init(_topo: &mut Topology) -> Self {
        Journal
    }
}

impl Geom for JournalGeom {
    type Class = Journal;

    fn start(&self, cx: &IoCtx, req: Request) {
        let mut next = self.next_record.lock(cx);
        *next += 1;
        req.complete(0);
    }
}

fn main() {}
