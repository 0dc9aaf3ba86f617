//! A class with a bug planted on purpose: a write-back cache that acknowledges writes at once
//! and writes them home from a worker later, but lets reads and flushes pass it by. Torture
//! must catch it (a stale read, or a flushed write lost in a power cut), and the failing
//! seed must replay to the very same failure.

use std::ffi::CStr;
use std::sync::{Arc, Mutex};

use geom_class_nop::Nop;
use geom_core::{
    geom_class, Class, Cmd, Consumer, Errno, Fanout, Geom, GeomClass, GeomRef, Handler, IoCtx, NoVerbs, Provider,
    Request, Result, SleepCtx, Topology, Worker,
};
use geom_host::disk::{DiskImage, MdConfig, MdDisk};
use geom_host::Runtime;
use geom_torture::{run, stack, DiskSetup, Target};

struct WriteBack;

/// Writes acknowledged but not yet written home.
struct Shared {
    cp: Consumer,
    pending: Mutex<Vec<(i64, Vec<u8>)>>,
}

struct Flusher(Arc<Shared>);

impl Handler for Flusher {
    type Msg = ();

    fn bio(&mut self, _cx: &SleepCtx, req: Request) {
        req.fail(Errno::EIO);
    }

    fn message(&mut self, cx: &SleepCtx, _: ()) {
        let batch = std::mem::take(&mut *self.0.pending.lock().unwrap());
        for (offset, data) in batch {
            let _ = self.0.cp.write_data(cx, offset, &data);
        }
    }
}

struct WriteBackGeom {
    shared: Arc<Shared>,
    flusher: Worker<Flusher, 256>,
}

#[geom_class]
impl Geom for WriteBackGeom {
    type Class = WriteBack;

    fn start(&self, cx: &IoCtx, req: Request) {
        if req.cmd() == Cmd::Write {
            let data = req.data().unwrap_or_default().to_vec();
            self.shared.pending.lock().unwrap().push((req.offset(), data));
            let _ = self.flusher.post(());
            let n = req.length();
            return req.complete(n);
        }
        // THE BUG: reads and flushes go straight down, past writes still pending.
        let (offset, length) = (req.offset(), req.length());
        let mut f = Fanout::new(req);
        match f.add(cx, self.shared.cp, offset, length, 0) {
            Ok(()) => f.send(),
            Err(e) => f.abort(e),
        }
    }

    fn access(
        &self,
        topo: &mut Topology,
        _gp: GeomRef<WriteBack>,
        _pp: Provider,
        dr: i32,
        dw: i32,
        de: i32,
    ) -> Result<()> {
        self.shared.cp.access(topo, dr, dw, de)
    }
}

#[geom_class]
impl GeomClass for WriteBack {
    const NAME: &'static CStr = c"WRITEBACK";
    type Softc = WriteBackGeom;
    type Verb = NoVerbs;

    fn init(_topo: &mut Topology) -> Self {
        WriteBack
    }

    fn destroy_geom(_cls: &Class<Self>, topo: &mut Topology, gp: GeomRef<Self>) -> Result<()> {
        gp.wither(topo, Errno::ENXIO);
        Ok(())
    }
}

/// md0, its NOP fault layer, and the write-back cache on top.
struct WriteBackStack;

impl WriteBackStack {
    fn assemble(&self, rt: &Runtime) -> std::result::Result<(), String> {
        rt.load::<Nop>().map_err(|e| format!("load NOP: {e}"))?;
        stack::run::<Nop>(rt, &["create", "md0"])?;
        rt.load::<WriteBack>().map_err(|e| format!("load WRITEBACK: {e}"))?;
        rt.with_class::<WriteBack, _>(|cls, topo| {
            let below = Provider::by_name(topo, c"md0.nop").ok_or("no md0.nop")?;
            let gp = cls
                .new_geom_with(topo, c"md0.nop.wb", |topo, gp| {
                    let cp = gp.new_consumer(topo);
                    cp.attach(topo, below)?;
                    let shared = Arc::new(Shared { cp, pending: Mutex::new(Vec::new()) });
                    let flusher = Worker::spawn(&*topo, c"wb_flusher", Flusher(Arc::clone(&shared)))?;
                    Ok(WriteBackGeom { shared, flusher })
                })
                .map_err(|e| "new geom failed: ".to_owned() + &format!("{e:?}"))?;
            let pp = gp.new_provider(topo, c"md0.nop.wb");
            pp.set_geometry(topo, below.mediasize(), below.sectorsize(), 0, 0);
            pp.set_ready(topo);
            Ok::<(), String>(())
        })
        .ok_or("WRITEBACK is not loaded")??;
        Ok(())
    }
}

impl Target for WriteBackStack {
    fn name(&self) -> String {
        "writeback".into()
    }
    fn build(&self, rt: &Runtime, setup: &DiskSetup) -> std::result::Result<Vec<MdDisk>, String> {
        let cfg = MdConfig::malloc(1 << 20).write_cache(setup.write_cache).asynchronous(setup.asynchronous);
        let disk = rt.md_create(cfg).map_err(|e| format!("mdconfig: {e}"))?;
        self.assemble(rt)?;
        Ok(vec![disk])
    }
    fn reboot(&self, rt: &Runtime, images: Vec<DiskImage>) -> std::result::Result<(), String> {
        for image in images {
            rt.md_create(MdConfig::malloc(0).image(image)).map_err(|e| format!("mdconfig: {e}"))?;
        }
        self.assemble(rt)
    }
    fn top(&self) -> String {
        "md0.nop.wb".into()
    }
    fn fault_layers(&self) -> Vec<String> {
        vec!["md0.nop".into()]
    }
    fn teardown(&self, _rt: &Runtime) -> std::result::Result<(), String> {
        Ok(())
    }
}

#[test]
fn torture_catches_the_planted_bug_and_its_seed_replays_it() {
    let (seed, failure) = (1..=300u64)
        .find_map(|seed| run(&WriteBackStack, seed).err().map(|f| (seed, f)))
        .expect("300 seeds and the planted bug was never caught");
    eprintln!("caught at seed {seed}: {}", failure.message);
    assert!(
        failure.message.contains("read back write") || failure.message.contains("after the power cut"),
        "caught, but not as a stale read or a lost write: {}",
        failure.message
    );
    // The same seed fails the same way, at the same point of the same schedule.
    assert_eq!(run(&WriteBackStack, seed), Err(failure));
}
