//! Instructions per bio under callgrind: the Rust classes beside their C twins.
//!
//! Each stack and operation (READ or WRITE) runs in a child process, this binary started
//! again under `valgrind --tool=callgrind` with [`CHILD_FLAG`]. The child builds the stack
//! ([`stacks::build`]), opens its top provider, writes the whole region once (so every chunk
//! of every memory disk exists), issues a warm-up of [`WARMUP`] requests (more than
//! geom-host's bio quarantine holds, so bios are recycled from then on), then two measured
//! loops of synchronous 4 KiB requests, `n` and `2n` of them, at offsets spread over the
//! region in a fixed order, and exits.
//!
//! Callgrind counts only inside the measured loops (`--toggle-collect`), in the thread that
//! runs them, and writes one profile per loop (`--dump-after`). Every stack measured here
//! dispatches directly, so each bio's whole journey (down through every start, the memory
//! disk's copy, back up through every done) runs in that thread; what the runtime's own
//! threads do meanwhile (timers, polls) depends on the machine and is left out. So is
//! `memset`: it only zeroes the runtime's new bios and `Handle::read`'s buffers, the same in
//! every stack, and the number of instructions it takes depends on the alignment of the
//! memory it clears, which varies from one run to the next. What remains is exactly
//! repeatable.
//!
//! Instructions per bio are `(Ir(2n) - Ir(n)) / n`, which cancels what a loop costs beyond
//! its requests. A class's own cost is its stack's figure less the memory disk's alone (the
//! floor): what one more layer costs, the class's start and done and the runtime's work for
//! the extra bio (clone, request, deliver, destroy), the same for a Rust class and its C twin.
//!
//! The same profiles attribute a class's start and done: the instructions spent in its start
//! method (for Rust, geom-core's start trampoline with the class's `start` and the `Fanout`
//! inlined into it) and in its clones' completion (geom-core's `lone_child_done` or
//! `fanout_child_done`; the C twin's `bio_done`), less what the KPI functions they call cost
//! (`g_clone_bio`, `g_io_request`, `g_io_deliver`, `g_destroy_bio`: the runtime's).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use geom_host::Handle;

use crate::report::{Goal, Part, Table};
use crate::stacks::{self, Stack};
use crate::Options;

/// The first argument that makes `geom-bench` a callgrind child.
pub const CHILD_FLAG: &str = "--callgrind-child";

/// Bytes at the top of each stack that the requests cover.
const REGION: u64 = 4 << 20;
/// Size of every measured request.
const BIO: usize = 4096;
/// Requests issued before the measured ones.
pub const WARMUP: u64 = 5000;
/// The stacks measured, the floor first.
const STACKS: [Stack; 5] = [Stack::Md, Stack::Nop, Stack::CNop, Stack::Stripe, Stack::CStripe];

/// READ or WRITE.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Op {
    Read,
    Write,
}

impl Op {
    const ALL: [Op; 2] = [Op::Read, Op::Write];

    fn arg(self) -> &'static str {
        match self {
            Op::Read => "read",
            Op::Write => "write",
        }
    }

    fn parse(s: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|o| o.arg() == s)
    }
}

fn parse_stack(s: &str) -> Option<Stack> {
    Stack::ALL.into_iter().find(|&st| st.key() == s)
}

/// The offset of request `i`: 4 KiB blocks of the region in a fixed order that visits every
/// block once per round (an odd stride over a power-of-two count of blocks).
fn offset(i: u64) -> i64 {
    let blocks = REGION / BIO as u64;
    ((i.wrapping_mul(389) % blocks) * BIO as u64) as i64
}

/// `n` requests of one kind, from request number `first` on.
#[inline(never)]
fn issue(h: &Handle, op: Op, first: u64, n: u64) -> Result<(), String> {
    let data = vec![0xa5u8; BIO];
    for i in first..first + n {
        let at = offset(i);
        let r = match op {
            Op::Read => h.read(at, BIO).map(|b| b.len()),
            Op::Write => h.write(at, &data),
        };
        match r {
            Ok(len) if len == BIO => {}
            Ok(len) => return Err(format!("{op:?} at {at}: {len} bytes")),
            Err(e) => return Err(format!("{op:?} at {at}: error {e}")),
        }
    }
    Ok(())
}

/// The measured requests: the only function callgrind counts in (`--toggle-collect`).
#[inline(never)]
fn measured(h: &Handle, op: Op, first: u64, n: u64) -> Result<(), String> {
    issue(h, op, first, n)
}

fn child_run(args: &[String]) -> Result<(), String> {
    let [stack, op, n] = args else { return Err("expected: STACK read|write N".into()) };
    let stack = parse_stack(stack).ok_or_else(|| format!("unknown stack {stack}"))?;
    let op = Op::parse(op).ok_or_else(|| format!("unknown operation {op}"))?;
    let n: u64 = n.parse().map_err(|_| format!("bad count {n}"))?;
    let built = stacks::build(stack, REGION)?;
    let h = built.rt.open(&built.top, 1, 1, 0).map_err(|e| format!("open {}: error {e}", built.top))?;
    let fill = vec![0x5au8; 64 * 1024];
    for at in (0..REGION).step_by(fill.len()) {
        h.write(at as i64, &fill).map_err(|e| format!("filling at {at}: error {e}"))?;
    }
    issue(&h, op, 0, WARMUP)?;
    measured(&h, op, WARMUP, n)?;
    measured(&h, op, WARMUP + n, 2 * n)?;
    h.close().map_err(|e| format!("close: error {e}"))?;
    built.teardown(stack)
}

/// A child run under valgrind: `STACK read|write N`.
pub fn child(args: &[String]) -> ExitCode {
    match child_run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("geom-bench {CHILD_FLAG}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The functions that make up a class's start and done, by stack: names starting with one of
/// these. Those whose names contain "done" are its done, the others its start.
fn class_functions(stack: Stack) -> &'static [&'static str] {
    match stack {
        // geom-core's trampolines and Fanout, and the class's own methods.
        Stack::Nop | Stack::Stripe => &["geom_core::", "<geom_core::", "geom_class_", "<geom_class_"],
        // The C NOP's clones complete through the runtime's g_std_done.
        Stack::CNop => &["g_cnop_", "g_std_done"],
        Stack::CStripe => &["g_cstripe_"],
        Stack::Md | Stack::Journal => &[],
    }
}

/// KPI functions a class's start and done call: the runtime's work, left out of theirs.
const KPI: [&str; 8] = [
    "g_clone_bio",
    "g_io_request",
    "g_io_deliver",
    "g_destroy_bio",
    "g_handleattr",
    "g_handleattr_str",
    "geom_rs_random",
    "geom_rs_print",
];

/// Where a function's instructions go.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Other,
    Start,
    Done,
    Kpi,
    Memset,
}

fn role(name: &str, class: &[&str]) -> Role {
    // Callgrind marks recursion levels with a quote ("g_io_request'2").
    let base = name.split('\'').next().unwrap_or(name);
    if base.contains("memset") {
        Role::Memset
    } else if KPI.contains(&base) {
        Role::Kpi
    } else if class.iter().any(|p| base.starts_with(p)) && !base.starts_with("geom_core::sys::") {
        if base.contains("done") {
            Role::Done
        } else {
            Role::Start
        }
    } else {
        Role::Other
    }
}

/// What one callgrind dump (one measured loop) counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Count {
    /// Every instruction of the loop, less `memset`'s.
    total: u64,
    /// The class's start, less the KPI it calls.
    start: u64,
    /// The class's done, less the KPI it calls.
    done: u64,
}

/// Read one callgrind dump written with uncompressed names and positions: its total less
/// what `memset` executed (see [`run`]'s notes), and the own cost of the class's start and
/// done functions: their self cost, plus what they call outside the class and the [`KPI`].
fn parse_callgrind(text: &str, class: &[&str]) -> Result<Count, String> {
    let mut count = Count::default();
    let mut total = None;
    let mut memset = 0u64;
    let mut cur = Role::Other;
    let mut callee = Role::Other;
    let mut next_is_call = false;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("totals:").or_else(|| line.strip_prefix("summary:")) {
            total = v.split_whitespace().next().and_then(|t| t.parse::<u64>().ok()).or(total);
            continue;
        }
        if let Some(name) = line.strip_prefix("fn=") {
            cur = role(name, class);
            continue;
        }
        if let Some(name) = line.strip_prefix("cfn=") {
            callee = role(name, class);
            continue;
        }
        if line.starts_with("calls=") {
            next_is_call = true;
            continue;
        }
        let first = line.as_bytes().first().copied().unwrap_or(b' ');
        if !(first.is_ascii_digit() || first == b'+' || first == b'-' || first == b'*') {
            continue;
        }
        let was_call = std::mem::replace(&mut next_is_call, false);
        // A call's inclusive cost counts only when it leaves the class for something that
        // is neither the runtime's KPI nor counted in its own block.
        if was_call && callee != Role::Other {
            continue;
        }
        let ir: u64 = line.split_whitespace().nth(1).and_then(|t| t.parse().ok()).unwrap_or(0);
        match cur {
            Role::Start => count.start += ir,
            Role::Done => count.done += ir,
            Role::Memset if !was_call => memset += ir,
            _ => {}
        }
    }
    let total: u64 = total.ok_or("no totals line in the callgrind output")?;
    count.total = total.saturating_sub(memset);
    Ok(count)
}

/// Run one stack and operation under callgrind: the counts of its two measured loops, of
/// `n` and `2n` requests.
fn measure(exe: &Path, dir: &Path, stack: Stack, op: Op, n: u64) -> Result<(Count, Count), String> {
    let out = dir.join(format!("callgrind.{}.{}", stack.key(), op.arg()));
    let measured = "geom_bench::instructions::measured";
    let run = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(format!("--toggle-collect={measured}"))
        .arg(format!("--dump-after={measured}"))
        .args(["--compress-strings=no", "--compress-pos=no"])
        .arg(exe)
        .args([CHILD_FLAG, stack.key(), op.arg(), &n.to_string()])
        .output()
        .map_err(|e| format!("cannot run valgrind: {e}"))?;
    // --dump-after writes one file per measured loop: <out>.1, <out>.2.
    let dumps: Vec<PathBuf> = (1..=2).map(|i| PathBuf::from(format!("{}.{i}", out.display()))).collect();
    let texts: Vec<String> = dumps.iter().map(|p| std::fs::read_to_string(p).unwrap_or_default()).collect();
    for p in dumps.iter().chain([&out]) {
        let _ = std::fs::remove_file(p);
    }
    if !run.status.success() || texts.iter().any(String::is_empty) {
        let err = String::from_utf8_lossy(&run.stderr);
        let tail: Vec<&str> = err.lines().rev().take(15).collect();
        return Err(format!(
            "{} {} {n}: {}\n{}",
            stack.key(),
            op.arg(),
            run.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ));
    }
    let class = class_functions(stack);
    Ok((parse_callgrind(&texts[0], class)?, parse_callgrind(&texts[1], class)?))
}

/// Per-bio figures of one stack and operation.
#[derive(Clone, Copy, Debug)]
struct PerBio {
    total: f64,
    start: f64,
    done: f64,
}

fn per_bio(a: Count, b: Count, n: u64) -> PerBio {
    let d = |x: u64, y: u64| (y as f64 - x as f64) / n as f64;
    PerBio { total: d(a.total, b.total), start: d(a.start, b.start), done: d(a.done, b.done) }
}

fn fmt0(x: f64) -> String {
    crate::report::per_s(x)
}

/// Measure.
pub fn run(opts: &Options) -> Result<Part, String> {
    let v = Command::new("valgrind").arg("--version").output().map_err(|e| format!("valgrind not found: {e}"))?;
    let version = String::from_utf8_lossy(&v.stdout).trim().to_owned();
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
    let dir: PathBuf = std::env::temp_dir().join(format!("geom-bench-callgrind-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let n = opts.callgrind_bios;
    let mut fig: HashMap<(&'static str, Op), PerBio> = HashMap::new();
    let result = (|| {
        for stack in STACKS {
            for op in Op::ALL {
                let (a, b) = measure(&exe, &dir, stack, op, n)?;
                fig.insert((stack.key(), op), per_bio(a, b, n));
            }
        }
        Ok::<(), String>(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result?;

    let get = |s: Stack, op: Op| fig[&(s.key(), op)];
    let added = |s: Stack, op: Op| get(s, op).total - get(Stack::Md, op).total;

    let mut per = Table::new(
        "Instructions per bio (callgrind)",
        &["stack", "READ total", "READ added by the class", "WRITE total", "WRITE added by the class"],
    );
    for s in STACKS {
        let cell = |op| if s == Stack::Md { "—".to_owned() } else { fmt0(added(s, op)) };
        per.row(vec![
            s.name().to_owned(),
            fmt0(get(s, Op::Read).total),
            cell(Op::Read),
            fmt0(get(s, Op::Write).total),
            cell(Op::Write),
        ]);
    }
    per.notes.push(format!(
        "Synchronous 4 KiB requests through each stack's top provider, at offsets spread over {} MiB, after a \
         warm-up of {WARMUP}. Per bio: (Ir({}) − Ir({n})) / {n}, counted in the thread issuing the requests, \
         which with direct dispatch runs each bio's whole journey; memset (zeroing new bios and read buffers, \
         the same in every stack, its count depending on alignment) left out. Added by the class: the stack \
         less the memory disk alone. {version}.",
        REGION >> 20,
        2 * n,
    ));

    let mut cmp =
        Table::new("Rust classes against their C twins", &["class", "op", "Rust", "C", "Rust/C added", "Rust/C total"]);
    let mut split = Table::new(
        "Start and done, own instructions per bio",
        &["stack", "READ start", "READ done", "WRITE start", "WRITE done"],
    );
    let mut goals = Vec::new();
    for (what, rust, c) in [("nop", Stack::Nop, Stack::CNop), ("stripe", Stack::Stripe, Stack::CStripe)] {
        for op in Op::ALL {
            cmp.row(vec![
                what.to_owned(),
                op.arg().to_uppercase(),
                fmt0(added(rust, op)),
                fmt0(added(c, op)),
                format!("{:.3}", added(rust, op) / added(c, op)),
                format!("{:.3}", get(rust, op).total / get(c, op).total),
            ]);
        }
        let sum = |s| added(s, Op::Read) + added(s, Op::Write);
        goals.push(Goal {
            what: format!("{what}: Rust/C instructions per bio"),
            ratio: sum(rust) / sum(c),
            bound: 1.05,
            at_most: true,
        });
        for s in [rust, c] {
            let (r, w) = (get(s, Op::Read), get(s, Op::Write));
            split.row(vec![s.name().to_owned(), fmt0(r.start), fmt0(r.done), fmt0(w.start), fmt0(w.done)]);
        }
    }
    cmp.notes.push(
        "Rust and C: instructions per bio the class adds over the memory disk alone. The goals compare their \
         sums over READ and WRITE."
            .into(),
    );
    split.notes.push(
        "Start: the start method (for Rust, geom-core's trampoline with the class's start and its Fanout inlined); \
         done: the clones' completion (geom-core's lone_child_done for a request sent as one clone, \
         fanout_child_done for several; for C NOP, the runtime's g_std_done). Each \
         without the KPI functions it calls (g_clone_bio, g_io_request, g_io_deliver, g_destroy_bio), which are \
         the runtime's."
            .into(),
    );
    Ok(Part { tables: vec![per, cmp, split], goals })
}
