//! # geom-torture: seeded torture runs of GEOM class stacks
//!
//! Each run takes a seed and a stack (NOP, STRIPE, JOURNAL and combinations, see [`Stack`]),
//! builds it on memory disks in a [`geom_host::Runtime`] under the deterministic schedule, and
//! drives a random workload through it while a seeded fault plan strikes:
//!
//! * a NOP under every disk fails a share of reads and writes, or holds some back (delayed,
//!   so completions come home out of order);
//! * bio, malloc and zone allocations fail (`ENOMEM`) at chosen points;
//! * a disk is pulled out (orphaned) with requests in flight;
//! * the power is cut with requests in flight, and the stack comes back up from the disks'
//!   images (unflushed writes lost, kept or torn at sector granularity).
//!
//! Every run is checked against a reference block device ([`model::Model`]: reads return the
//! last acknowledged write, flushed writes survive a power cut), and against the runtime's
//! invariants: every request completes exactly once, none fails with `ENOMEM` (GEOM retries
//! those), no bio is left alive, no violation is reported. The same seed gives the same
//! schedule, the same faults and the same bytes, so a failing seed replays exactly.

pub mod model;
pub mod stack;

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use geom_class_nop::Nop;
use geom_core::sys::errno;
use geom_host::disk::{power_cut_all, DiskImage, MdDisk};
use geom_host::rng::Rng;
use geom_host::{InvariantPolicy, IoOp, Runtime, RuntimeConfig, ScheduleTrace};

use model::{sector_bytes, Model, SECTOR};
pub use stack::{DiskSetup, Stack};

/// What a run tortures: a stack of classes and how to bring it up.
pub trait Target {
    /// A name for reports.
    fn name(&self) -> String;
    /// Build the stack on fresh disks; returns the disks, in the order the images of a power
    /// cut are handed to [`Target::reboot`].
    fn build(&self, rt: &Runtime, setup: &DiskSetup) -> Result<Vec<MdDisk>, String>;
    /// Bring the stack back up from power-cut images.
    fn reboot(&self, rt: &Runtime, images: Vec<DiskImage>) -> Result<(), String>;
    /// The provider the workload opens.
    fn top(&self) -> String;
    /// The NOP fault layers the plan may configure (created by `build` and `reboot`).
    fn fault_layers(&self) -> Vec<String>;
    /// Take the stack down as an administrator would before `kldunload` (a class that keeps
    /// its consumers open, as JOURNAL does, refuses to unload until stopped).
    fn teardown(&self, rt: &Runtime) -> Result<(), String>;
}

impl Target for Stack {
    fn name(&self) -> String {
        Stack::name(*self).to_owned()
    }
    fn build(&self, rt: &Runtime, setup: &DiskSetup) -> Result<Vec<MdDisk>, String> {
        Stack::build(*self, rt, setup)
    }
    fn reboot(&self, rt: &Runtime, images: Vec<DiskImage>) -> Result<(), String> {
        Stack::reboot(*self, rt, images)
    }
    fn top(&self) -> String {
        Stack::top(*self).to_owned()
    }
    fn fault_layers(&self) -> Vec<String> {
        Stack::fault_layers(*self)
    }
    fn teardown(&self, rt: &Runtime) -> Result<(), String> {
        Stack::teardown(*self, rt)
    }
}

/// What a run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Requests the workload issued (reads, writes, flushes).
    pub requests: u64,
    /// Requests that failed (injected errors, or a pulled disk).
    pub failed: u64,
    /// Faults the plan injected: failing or delaying layers, allocation failures, pulled
    /// disks, power cuts.
    pub faults: u64,
    /// Power cuts survived and checked.
    pub power_cuts: u64,
    /// The schedule (equal for equal seeds).
    pub trace: Option<ScheduleTrace>,
    /// A digest of every completion (in order) and of the bytes read back.
    pub digest: u64,
}

/// A run that broke a rule: what, and the schedule up to then.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// What was wrong.
    pub message: String,
    /// The schedule when it was found.
    pub trace: Option<ScheduleTrace>,
}

/// Bytes of the top provider the workload uses (at most).
const SPAN: u64 = 2048;

/// The longest request, in sectors.
const MAX_SECTORS: u64 = 16;

fn runtime(name: String, seed: u64) -> Runtime {
    Runtime::new(RuntimeConfig {
        name,
        seed,
        deterministic: true,
        policy: InvariantPolicy::Collect,
        // The kernel console, for replaying a failure: `GEOM_TORTURE_CONSOLE=1`.
        echo_console: std::env::var_os("GEOM_TORTURE_CONSOLE").is_some(),
        ..Default::default()
    })
}

/// The fault plan of one run, drawn from its seed.
struct Plan {
    setup: DiskSetup,
    batches: u64,
    /// Batch at which a disk is pulled, and which.
    orphan: Option<(u64, usize)>,
    /// Batch at which the power is cut.
    power_cut: Option<u64>,
}

impl Plan {
    fn draw(rng: &mut Rng, disks: usize) -> Plan {
        let setup = DiskSetup { write_cache: rng.below(2) == 0, asynchronous: rng.below(2) == 0 };
        let batches = 3 + rng.below(8);
        let mut plan = Plan { setup, batches, orphan: None, power_cut: None };
        match rng.below(8) {
            0 => plan.orphan = Some((rng.below(batches), rng.below(disks as u64) as usize)),
            1..=3 if setup.write_cache => plan.power_cut = Some(rng.below(batches)),
            _ => {}
        }
        plan
    }
}

/// One request of a batch, and what came back.
struct Op {
    first: u64,
    count: u64,
    /// The write's tag; 0 for a read.
    tag: u64,
    issued: u64,
}

#[derive(Default)]
struct Completion {
    calls: u32,
    error: i32,
    data: Vec<u8>,
    acked: u64,
}

fn fnv(h: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(h, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Run one seed against `target`.
pub fn run(target: &dyn Target, seed: u64) -> Result<Report, Failure> {
    // Small journal records, so a 3 MiB journal holds many and wraps (a boot-time tunable:
    // it takes effect only if no runtime of this process has started yet).
    let _ = geom_host::set_maxphys(64 << 10);
    let mut rng = Rng::new(seed);
    let rt = runtime(format!("{}-{seed}", target.name()), seed);
    let fail = |rt: &Runtime, message: String| Failure { message, trace: rt.schedule_trace() };

    let layers = target.fault_layers();
    let plan = Plan::draw(&mut rng, layers.len());
    let disks = target.build(&rt, &plan.setup).map_err(|m| fail(&rt, m))?;
    let mut report = Report { digest: 0xcbf2_9ce4_8422_2325, ..Default::default() };

    // Failing and delaying layers: the NOPs draw from the runtime's arc4random.
    for layer in &layers {
        let mut argv = vec!["configure".to_owned()];
        if rng.below(4) == 0 {
            argv.extend(["-r".into(), rng.below(16).to_string(), "-w".into(), rng.below(16).to_string()]);
        }
        if rng.below(4) == 0 {
            argv.extend([
                "-d".into(),
                (1 + rng.below(4)).to_string(),
                "-q".into(),
                "30".into(),
                "-x".into(),
                "30".into(),
            ]);
        }
        if argv.len() > 1 {
            report.faults += 1;
            argv.push(layer.clone());
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            stack::run::<Nop>(&rt, &argv).map_err(|m| fail(&rt, m))?;
        }
    }

    let h = rt.open(&target.top(), 1, 1, 0).map_err(|e| fail(&rt, format!("open {}: error {e}", target.top())))?;
    let sectors = (h.mediasize() as u64 / SECTOR as u64).min(SPAN);
    let mut model = Model::new(sectors);
    let seq = Arc::new(AtomicU64::new(1));
    let mut cut: Option<(u64, Vec<DiskImage>)> = None;
    let mut pulled = false;

    for batch in 0..plan.batches {
        if rng.below(3) == 0 {
            report.faults += 1;
            let n = 1 + rng.below(3);
            match rng.below(3) {
                0 => rt.fail_next_bio_allocations(n),
                1 => rt.fail_next_mallocs(n),
                _ => rt.fail_next_zone_allocations(n),
            }
        }
        // Disjoint ranges, so a batch's order cannot change what a correct device returns.
        let mut ops: Vec<Op> = Vec::new();
        for _ in 0..1 + rng.below(16) {
            let count = 1 + rng.below(MAX_SECTORS.min(sectors));
            let first = rng.below(sectors - count + 1);
            if ops.iter().any(|o| first < o.first + o.count && o.first < first + count) {
                continue;
            }
            let tag = if rng.below(3) == 0 { 0 } else { (seed << 20 | batch << 8 | ops.len() as u64) | 1 << 63 };
            ops.push(Op { first, count, tag, issued: 0 });
        }
        let results: Arc<Mutex<Vec<Completion>>> =
            Arc::new(Mutex::new((0..ops.len()).map(|_| Completion::default()).collect()));
        let flush = rng.below(2) == 0;
        let flush_result = Arc::new(Mutex::new(None));
        {
            // One call into the runtime for the whole batch: everything is in flight before
            // the schedule runs any of it.
            let _inside = rt.enter();
            for (i, op) in ops.iter_mut().enumerate() {
                op.issued = seq.fetch_add(1, SeqCst);
                let io = if op.tag == 0 {
                    IoOp::Read((op.count as usize) * SECTOR)
                } else {
                    IoOp::Write((op.first..op.first + op.count).flat_map(|s| sector_bytes(op.tag, s)).collect())
                };
                let (results, seq) = (Arc::clone(&results), Arc::clone(&seq));
                h.submit((op.first * SECTOR as u64) as i64, io, move |d| {
                    let mut r = results.lock().unwrap_or_else(|e| e.into_inner());
                    let c = &mut r[i];
                    c.calls += 1;
                    c.error = d.error;
                    c.data = d.data;
                    c.acked = seq.fetch_add(1, SeqCst);
                })
                .map_err(|e| fail(&rt, format!("submit: error {e}")))?;
                report.requests += 1;
            }
            if plan.orphan.is_some_and(|(b, _)| b == batch) {
                let (_, disk) = plan.orphan.unwrap_or_default();
                report.faults += 1;
                pulled = true;
                rt.md_destroy_forced(disks[disk].name()).map_err(|e| fail(&rt, format!("pull md{disk}: {e}")))?;
            }
            if plan.power_cut == Some(batch) {
                report.faults += 1;
                let refs: Vec<&MdDisk> = disks.iter().collect();
                let mut at = 0;
                let images = power_cut_all(&refs, &mut rng, &mut || at = seq.fetch_add(1, SeqCst));
                cut = Some((at, images.into_iter().flatten().collect()));
            }
            h.drain();
            if flush && !pulled {
                let issued = seq.fetch_add(1, SeqCst);
                let (fr, seq) = (Arc::clone(&flush_result), Arc::clone(&seq));
                h.submit(0, IoOp::Flush, move |d| {
                    *fr.lock().unwrap_or_else(|e| e.into_inner()) = Some((d.error, issued, seq.fetch_add(1, SeqCst)));
                })
                .map_err(|e| fail(&rt, format!("submit flush: error {e}")))?;
                report.requests += 1;
                h.drain();
            }
        }
        let results = std::mem::take(&mut *results.lock().unwrap_or_else(|e| e.into_inner()));
        for (op, c) in ops.iter().zip(&results) {
            if c.calls != 1 {
                return Err(fail(&rt, format!("a request completed {} times", c.calls)));
            }
            if c.error == errno::ENOMEM {
                return Err(fail(&rt, "ENOMEM reached the caller; GEOM retries it".into()));
            }
            report.digest = fnv(fnv(report.digest, &c.error.to_le_bytes()), &c.acked.to_le_bytes());
            if c.error != 0 {
                report.failed += 1;
            }
            if op.tag != 0 {
                model.write(op.first, op.count, op.tag, op.issued, (c.error == 0).then_some(c.acked));
            } else if c.error == 0 && !pulled {
                report.digest = fnv(report.digest, &c.data);
                if c.data.len() as u64 != op.count * SECTOR as u64 {
                    return Err(fail(&rt, format!("a read of {} sectors returned {} bytes", op.count, c.data.len())));
                }
                model.read(op.first, &c.data).map_err(|m| fail(&rt, m))?;
            }
        }
        if let Some((error, issued, completed)) = *flush_result.lock().unwrap_or_else(|e| e.into_inner()) {
            match error {
                0 => model.flush(issued, completed),
                errno::ENOMEM => return Err(fail(&rt, "ENOMEM reached the caller of a flush".into())),
                _ => report.failed += 1,
            }
        }
        if pulled || cut.is_some() {
            break;
        }
    }
    h.close().map_err(|e| fail(&rt, format!("close: error {e}")))?;
    if !pulled {
        target.teardown(&rt).map_err(|m| fail(&rt, m))?;
    }
    // A class may still have bios of its own out (a journal copying in the background); a
    // bio that outlives the class is reported by shutdown as leaked.
    report.trace = rt.schedule_trace();
    let trace = report.trace;
    let violations = rt.shutdown();
    if let Some(v) = violations.first() {
        return Err(Failure { message: format!("{} violations, first: {v}", violations.len()), trace });
    }

    if let Some((at, images)) = cut {
        report.power_cuts += 1;
        let rt = runtime(format!("{}-{seed}-reboot", target.name()), seed);
        target.reboot(&rt, images).map_err(|m| fail(&rt, format!("after the power cut: {m}")))?;
        let h = rt.open(&target.top(), 1, 0, 0).map_err(|e| fail(&rt, format!("open after the cut: error {e}")))?;
        let data = h
            .read(0, (model.len() as usize) * SECTOR)
            .map_err(|e| fail(&rt, format!("read after the cut: error {e}")))?;
        report.digest = fnv(report.digest, &data);
        model.check_after_cut(&data, at).map_err(|m| fail(&rt, m))?;
        h.close().map_err(|e| fail(&rt, format!("close after the cut: error {e}")))?;
        target.teardown(&rt).map_err(|m| fail(&rt, format!("after the power cut: {m}")))?;
        let violations = rt.shutdown();
        if let Some(v) = violations.first() {
            return Err(Failure {
                message: format!("after the power cut, {} violations, first: {v}", violations.len()),
                trace,
            });
        }
    }
    Ok(report)
}
