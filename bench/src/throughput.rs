//! Bios per second and MB/s through geom-host: every stack of [`crate::stacks`] under the
//! same eight workloads (4 KiB random and 1 MiB sequential, reads and writes, queue depth 1
//! and 32), issued from one thread through [`Handle::submit`], as a driver above GEOM would.
//!
//! All stacks live at once and take turns: each round runs every workload on every stack
//! for [`Options::seconds`], and the median round is kept, so a burst of noise from the
//! machine lands on one round of one stack, not on a whole column.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use geom_host::rng::Rng;
use geom_host::{Handle, IoDone, IoOp};

use crate::report::{mb_per_s, per_s, Goal, Part, Table};
use crate::stacks::{self, Built, Stack};
use crate::Options;

/// Bytes usable at the top of every stack.
pub const SIZE: u64 = 256 << 20;

/// One workload.
#[derive(Clone, Copy, Debug)]
pub struct Workload {
    /// Bytes per request.
    pub block: usize,
    /// Random offsets (else sequential, wrapping at the end).
    pub random: bool,
    /// Writes (else reads).
    pub write: bool,
    /// Requests kept in flight.
    pub depth: usize,
}

impl Workload {
    /// The eight workloads the issue names.
    pub fn all() -> Vec<Workload> {
        let mut v = Vec::new();
        for (block, random) in [(4096, true), (1 << 20, false)] {
            for write in [false, true] {
                for depth in [1, 32] {
                    v.push(Workload { block, random, write, depth });
                }
            }
        }
        v
    }

    /// `4k rand read QD32`.
    pub fn name(&self) -> String {
        format!(
            "{} {} {} QD{}",
            if self.block >= 1 << 20 { format!("{}M", self.block >> 20) } else { format!("{}k", self.block >> 10) },
            if self.random { "rand" } else { "seq" },
            if self.write { "write" } else { "read" },
            self.depth
        )
    }
}

/// What a measured interval achieved.
#[derive(Clone, Copy, Debug, Default)]
pub struct Rate {
    /// Requests completed per second.
    pub bios: f64,
    /// Bytes moved per second.
    pub bytes: f64,
}

/// Completions handed from the done context to the issuing thread.
#[derive(Default)]
struct Mailbox {
    done: usize,
    errors: Vec<i32>,
    /// Buffers back from completed requests, reused by the next ones.
    spare: Vec<Vec<u8>>,
    /// The issuer sleeps on the condvar; only then does a completion pay for a wakeup (a
    /// futex call), so the common in-thread completion costs a mutex and no system call.
    waiting: bool,
}

/// Where a workload's requests go: seeded random slots, or one after another.
struct Offsets {
    rng: Rng,
    next_seq: u64,
}

impl Offsets {
    fn next(&mut self, w: &Workload, size: u64) -> u64 {
        let block = w.block as u64;
        let slots = size / block;
        if w.random {
            self.rng.below(slots) * block
        } else {
            let at = self.next_seq;
            self.next_seq = (self.next_seq + block) % (slots * block);
            at
        }
    }
}

/// Run `w` on `h` for `secs`; the rate of requests that completed in that time.
pub fn measure(h: &Handle, w: &Workload, secs: f64) -> Result<Rate, String> {
    let mailbox = Arc::new((Mutex::new(Mailbox::default()), Condvar::new()));
    let size = h.mediasize() as u64;
    let mut offsets = Offsets { rng: Rng::new(0x5EED), next_seq: 0 };
    let pattern: Vec<u8> = (0..w.block).map(|i| (i as u8).wrapping_mul(31).wrapping_add(7)).collect();
    let mut spare: Vec<Vec<u8>> = Vec::new();
    let mut in_flight = 0usize;
    let mut completed = 0usize;
    let deadline = Duration::from_secs_f64(secs);
    let started = Instant::now();
    let mut elapsed = Duration::ZERO;
    while elapsed < deadline {
        while in_flight < w.depth {
            let buf =
                spare.pop().unwrap_or_else(|| if w.write { pattern.clone() } else { Vec::with_capacity(w.block) });
            let op = if w.write { IoOp::Write(buf) } else { IoOp::ReadInto(buf, w.block) };
            let mb = Arc::clone(&mailbox);
            h.submit(offsets.next(w, size) as i64, op, move |d: IoDone| {
                let (lock, cv) = &*mb;
                let mut m = lock.lock().unwrap_or_else(|e| e.into_inner());
                m.done += 1;
                if d.error != 0 {
                    m.errors.push(d.error);
                }
                m.spare.push(d.data);
                if m.waiting {
                    cv.notify_one();
                }
            })
            .map_err(|e| format!("submit: error {e}"))?;
            in_flight += 1;
        }
        let (lock, cv) = &*mailbox;
        let mut m = lock.lock().unwrap_or_else(|e| e.into_inner());
        while m.done == 0 {
            m.waiting = true;
            m = cv.wait(m).unwrap_or_else(|e| e.into_inner());
        }
        m.waiting = false;
        if let Some(e) = m.errors.first() {
            return Err(format!("{}: a request failed with error {e}", w.name()));
        }
        in_flight -= m.done;
        completed += m.done;
        m.done = 0;
        spare.append(&mut m.spare);
        drop(m);
        elapsed = started.elapsed();
    }
    h.drain();
    let secs = elapsed.as_secs_f64();
    Ok(Rate { bios: completed as f64 / secs, bytes: (completed * w.block) as f64 / secs })
}

/// The median of some rates, by requests per second.
fn median(mut v: Vec<Rate>) -> Rate {
    v.sort_by(|a, b| a.bios.total_cmp(&b.bios));
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// Build every stack, run every workload on each for `opts.rounds` interleaved rounds.
pub fn run(opts: &Options) -> Result<Part, String> {
    let workloads: Vec<Workload> =
        Workload::all().into_iter().filter(|w| opts.blocks.is_empty() || opts.blocks.contains(&w.block)).collect();
    let chosen: Vec<Stack> =
        Stack::ALL.into_iter().filter(|s| opts.stacks.is_empty() || opts.stacks.iter().any(|k| k == s.key())).collect();
    let mut built: Vec<(Stack, Built, Handle)> = Vec::new();
    for &stack in &chosen {
        let b = stacks::build(stack, SIZE)?;
        let h = b.rt.open(&b.top, 1, 1, 0).map_err(|e| format!("open {}: error {e}", b.top))?;
        // Reads of never-written memory would be cheaper than reads of data: write it all.
        let fill = Workload { block: 1 << 20, random: false, write: true, depth: 4 };
        let rounds = (SIZE >> 20) as usize;
        fill_once(&h, &fill, rounds)?;
        built.push((stack, b, h));
    }
    let mut samples = vec![vec![Vec::new(); built.len()]; workloads.len()];
    for round in 0..opts.rounds as usize {
        for (wi, w) in workloads.iter().enumerate() {
            // Each round starts with a different stack, so none is always measured first
            // (after the previous workload's memory traffic).
            for k in 0..built.len() {
                let si = (k + round) % built.len();
                samples[wi][si].push(measure(&built[si].2, w, opts.seconds)?);
            }
        }
    }
    let rates: Vec<Vec<Rate>> = samples.into_iter().map(|per| per.into_iter().map(median).collect()).collect();
    for (stack, b, h) in built {
        h.close().map_err(|e| format!("close: error {e}"))?;
        b.teardown(stack)?;
    }
    Ok(tables(&chosen, &workloads, &rates))
}

/// Write the whole top provider once, sequentially.
fn fill_once(h: &Handle, w: &Workload, count: usize) -> Result<(), String> {
    let data = vec![0xA5u8; w.block];
    for i in 0..count {
        h.write((i * w.block) as i64, &data).map_err(|e| format!("fill: error {e}"))?;
    }
    Ok(())
}

fn tables(stacks: &[Stack], workloads: &[Workload], rates: &[Vec<Rate>]) -> Part {
    let mut heads = vec!["workload"];
    heads.extend(stacks.iter().map(|s| s.name()));
    let mut bios = Table::new("geom-host: requests per second", &heads);
    let mut mbs = Table::new("geom-host: MB/s", &heads);
    let mut share = Table::new("geom-host: share of the floor (the memory disk alone)", &heads);
    let mut goals = Vec::new();
    let floor = stacks.iter().position(|s| *s == Stack::Md);
    for (w, r) in workloads.iter().zip(rates) {
        let mut b = vec![w.name()];
        let mut m = vec![w.name()];
        let mut f = vec![w.name()];
        for (stack, rate) in stacks.iter().zip(r) {
            b.push(per_s(rate.bios));
            m.push(mb_per_s(rate.bytes));
            let floor_rate = floor.map_or(0.0, |i| r[i].bios);
            let ratio = if floor_rate > 0.0 { rate.bios / floor_rate } else { 0.0 };
            f.push(format!("{:.0}%", ratio * 100.0));
            if *stack == Stack::Stripe && w.block == 4096 && floor.is_some() {
                goals.push(Goal {
                    what: format!("stripe ×4 / md requests per second, {}", w.name()),
                    ratio,
                    bound: 0.80,
                    at_most: false,
                });
            }
        }
        bios.row(b);
        mbs.row(m);
        share.row(f);
    }
    bios.notes.push(
        "One issuing thread; requests submitted with `Handle::submit` and buffers reused. \
         Memory disks are served in the issuer's thread (direct dispatch), so a queue depth of 32 \
         shows the cost of keeping requests in flight rather than parallelism."
            .into(),
    );
    Part { tables: vec![bios, mbs, share], goals }
}
