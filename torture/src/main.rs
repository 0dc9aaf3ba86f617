//! `geom-torture`: run seeds of torture stacks and report (see the library's docs). Usually
//! run as `cargo xtask torture`.
//!
//! ```text
//! geom-torture [--class nop|stripe|journal | --stack NAME] [--seeds N] [--first S] [--seed S] [--jobs J]
//! ```
//!
//! Seeds run in child processes (`--jobs` at a time), so a run that aborts (an invariant
//! the runtime cannot recover from, a deadlock) is reported with its seed like any other
//! failure. Every failure prints its seed and the command that replays it.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use geom_torture::{run, Stack};

struct Args {
    stacks: Vec<Stack>,
    first: u64,
    seeds: u64,
    jobs: u64,
    /// Internal: run seeds `first..first+seeds` of `stacks` here and print one line each.
    worker: bool,
}

fn usage() -> ! {
    eprintln!(
        "usage: geom-torture [--class nop|stripe|journal | --stack NAME] [--seeds N] [--first S] [--seed S] [--jobs J]\n\
         stacks: {}",
        Stack::ALL.map(Stack::name).join(", ")
    );
    std::process::exit(2)
}

fn parse() -> Args {
    let mut a = Args { stacks: Stack::ALL.to_vec(), first: 1, seeds: 100, jobs: 2, worker: false };
    let mut chosen = false;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage());
        let number = |v: String| v.parse::<u64>().unwrap_or_else(|_| usage());
        match arg.as_str() {
            "--class" => {
                a.stacks = Stack::with_class(&value());
                if a.stacks.is_empty() {
                    usage();
                }
            }
            // Repeatable: the first one replaces the default of every stack.
            "--stack" => {
                let s = Stack::by_name(&value()).unwrap_or_else(|| usage());
                if !chosen {
                    a.stacks.clear();
                    chosen = true;
                }
                a.stacks.push(s);
            }
            "--seeds" => a.seeds = number(value()),
            "--first" => a.first = number(value()),
            "--seed" => {
                a.first = number(value());
                a.seeds = 1;
            }
            "--jobs" => a.jobs = number(value()).max(1),
            "--worker" => a.worker = true,
            _ => usage(),
        }
    }
    a
}

/// Run seeds here, one line per run: `ok STACK SEED requests failed faults cuts` or
/// `fail STACK SEED message`; `start` first, so a crash names its seed.
fn work(a: &Args) -> ExitCode {
    let out = std::io::stdout();
    for seed in a.first..a.first + a.seeds {
        for &stack in &a.stacks {
            let mut o = out.lock();
            let _ = writeln!(o, "start {} {seed}", stack.name());
            let _ = o.flush();
            drop(o);
            let line = match run(&stack, seed) {
                Ok(r) => {
                    format!("ok {} {seed} {} {} {} {}", stack.name(), r.requests, r.failed, r.faults, r.power_cuts)
                }
                Err(f) => format!("fail {} {seed} {}", stack.name(), f.message.replace('\n', " | ")),
            };
            let mut o = out.lock();
            let _ = writeln!(o, "{line}");
            let _ = o.flush();
        }
    }
    ExitCode::SUCCESS
}

#[derive(Default)]
struct Totals {
    runs: u64,
    requests: u64,
    failed_requests: u64,
    faults: u64,
    power_cuts: u64,
    failures: Vec<String>,
}

fn replay_command(stack: &str, seed: &str) -> String {
    format!("cargo xtask torture --stack {stack} --seed {seed}")
}

fn coordinate(a: &Args) -> ExitCode {
    let me = std::env::current_exe().expect("geom-torture: cannot find its own executable");
    let names: Vec<&str> = a.stacks.iter().map(|s| s.name()).collect();
    let started = Instant::now();
    // Contiguous ranges of seeds per child.
    let per = a.seeds.div_ceil(a.jobs);
    let children: Vec<_> = (0..a.jobs)
        .map(|j| (a.first + j * per, per.min((a.first + a.seeds).saturating_sub(a.first + j * per))))
        .filter(|&(_, n)| n > 0)
        .map(|(first, n)| {
            let mut cmd = Command::new(&me);
            cmd.args(["--worker", "--first", &first.to_string(), "--seeds", &n.to_string()]);
            for s in &names {
                cmd.args(["--stack", s]);
            }
            cmd
        })
        .collect();
    let mut totals = Totals::default();
    let mut handles = Vec::new();
    for mut cmd in children {
        let mut child =
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("geom-torture: cannot start a worker");
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let err = std::thread::spawn(move || {
            let mut s = String::new();
            for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                s.push_str(&l);
                s.push('\n');
            }
            s
        });
        handles.push((child, BufReader::new(stdout), err));
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let mut readers = Vec::new();
    for (mut child, out, err) in handles {
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || {
            let mut current: Option<(String, String)> = None;
            for line in out.lines().map_while(Result::ok) {
                let f: Vec<&str> = line.splitn(4, ' ').collect();
                match f.as_slice() {
                    ["start", stack, seed] => current = Some((stack.to_string(), seed.to_string())),
                    _ => {
                        current = None;
                        let _ = tx.send(line.clone());
                    }
                }
            }
            let status = child.wait();
            let stderr = err.join().unwrap_or_default();
            if let Some((stack, seed)) = current {
                let tail: String =
                    stderr.lines().rev().take(6).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join(" | ");
                let _ = tx.send(format!("fail {stack} {seed} the run died ({status:?}): {tail}"));
            }
        }));
    }
    drop(tx);
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    for line in rx {
        let f: Vec<&str> = line.splitn(4, ' ').collect();
        totals.runs += 1;
        match f.as_slice() {
            ["ok", _, _, rest] => {
                let n: Vec<u64> = rest.split(' ').filter_map(|x| x.parse().ok()).collect();
                if let [requests, failed, faults, cuts] = n[..] {
                    totals.requests += requests;
                    totals.failed_requests += failed;
                    totals.faults += faults;
                    totals.power_cuts += cuts;
                }
            }
            ["fail", stack, seed, message] => {
                eprintln!("FAIL {stack} seed {seed}: {message}\n  replay: {}", replay_command(stack, seed));
                totals.failures.push(format!("{stack} {seed}"));
            }
            _ => eprintln!("geom-torture: unexpected line from a worker: {line}"),
        }
        if progress && totals.runs % 100 == 0 {
            eprint!("\r{} runs", totals.runs);
        }
    }
    for r in readers {
        let _ = r.join();
    }
    if progress {
        eprintln!();
    }
    println!(
        "geom-torture: {} runs of {} ({} seeds from {}), {} bios issued by the workloads ({} failed by injected faults), {} faults injected, {} power cuts checked, {} failures, {:.1} s",
        totals.runs,
        names.join(", "),
        a.seeds,
        a.first,
        totals.requests,
        totals.failed_requests,
        totals.faults,
        totals.power_cuts,
        totals.failures.len(),
        started.elapsed().as_secs_f64()
    );
    let expected = a.seeds * a.stacks.len() as u64;
    if totals.runs != expected {
        println!("geom-torture: expected {expected} runs, saw {}", totals.runs);
        return ExitCode::FAILURE;
    }
    if totals.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn main() -> ExitCode {
    let args = parse();
    if args.worker {
        work(&args)
    } else {
        coordinate(&args)
    }
}
