//! The deterministic schedule: one thread at a time, the next chosen by a seeded generator.
//! The same seed and the same calls give the same interleaving (the schedule's trace, the
//! order in which requests complete) and the same bytes; another seed gives another
//! interleaving of the same work, with the same final bytes where the work does not race.

mod common;

use std::sync::{Arc, Mutex};

use common::Rng;
use geom_host::disk::MdConfig;
use geom_host::{CtlRequest, IoOp, Runtime, RuntimeConfig, ScheduleTrace};

const DISK: u64 = 1 << 20;

fn deterministic(name: &str, seed: u64) -> Runtime {
    Runtime::new(RuntimeConfig {
        name: name.into(),
        seed,
        deterministic: true,
        echo_console: false,
        ..Default::default()
    })
}

/// What one run produced: the schedule, the completions in the order they ran, and the
/// disks' bytes.
#[derive(Debug, PartialEq)]
struct Outcome {
    trace: ScheduleTrace,
    completions: Vec<(u32, i32, u64)>,
    disks: Vec<Vec<u8>>,
}

fn digest(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Two asynchronous disks (each served by its own worker thread), PASS on one of them,
/// and batches of reads and writes kept in flight on both from one driving thread. Writes go
/// to disjoint sectors per batch, so every interleaving leaves the same bytes.
fn workload(rt: &Runtime) -> Outcome {
    let md0 = rt.md_create(MdConfig::malloc(DISK).asynchronous(true)).unwrap();
    let md1 = rt.md_create(MdConfig::malloc(DISK).asynchronous(true)).unwrap();
    rt.load_raw_pass().unwrap();
    assert_eq!(rt.ctl(&CtlRequest::new("PASS", "create").arg("md0")).error, 0);
    let handles = [rt.open("md0.pass", 1, 1, 0).unwrap(), rt.open("md1", 1, 1, 0).unwrap()];
    let completions = Arc::new(Mutex::new(Vec::new()));
    let mut data = Rng::new(42);
    let mut id = 0u32;
    {
        // One call into the runtime for the whole batch: the requests are all in flight
        // before any of them runs, and the schedule decides the order.
        let _inside = rt.enter();
        for batch in 0..6u64 {
            for i in 0..24u64 {
                let h = &handles[(i % 2) as usize];
                let sector = (batch * 24 + i) * 8;
                let op = if i % 3 == 2 { IoOp::Read(4096) } else { IoOp::Write(data.bytes(4096)) };
                let log = Arc::clone(&completions);
                let me = id;
                h.submit((sector * 512) as i64, op, move |d| {
                    log.lock().unwrap().push((me, d.error, digest(&d.data)));
                })
                .unwrap();
                id += 1;
            }
            for h in &handles {
                h.drain();
            }
        }
    }
    for h in handles {
        h.close().unwrap();
    }
    let completions = std::mem::take(&mut *completions.lock().unwrap());
    assert_eq!(completions.len(), id as usize);
    assert!(completions.iter().all(|c| c.1 == 0), "{completions:?}");
    Outcome {
        trace: rt.schedule_trace().unwrap(),
        completions,
        disks: vec![md0.read_backing(0, DISK as usize), md1.read_backing(0, DISK as usize)],
    }
}

fn run(seed: u64) -> Outcome {
    let rt = deterministic(&format!("det-{seed}"), seed);
    let out = workload(&rt);
    assert!(rt.shutdown().is_empty());
    out
}

#[test]
fn the_same_seed_replays_the_same_interleaving_and_bytes() {
    let a = run(7);
    let b = run(7);
    assert_eq!(a.trace, b.trace);
    assert_eq!(a.completions, b.completions);
    assert_eq!(a.disks, b.disks);
    assert!(a.trace.decisions > 100, "{:?}", a.trace);
}

#[test]
fn other_seeds_interleave_the_same_work_differently() {
    let runs: Vec<Outcome> = (1..=4).map(run).collect();
    let orders: std::collections::HashSet<Vec<u32>> =
        runs.iter().map(|r| r.completions.iter().map(|c| c.0).collect()).collect();
    assert!(orders.len() > 1, "four seeds, one completion order");
    // The writes never overlap, so every interleaving leaves the same bytes.
    assert!(runs.windows(2).all(|w| w[0].disks == w[1].disks));
}

#[test]
fn a_threaded_runtime_has_no_schedule_trace() {
    let rt = common::runtime("det-threaded");
    assert_eq!(rt.schedule_trace(), None);
    assert!(rt.shutdown().is_empty());
}
