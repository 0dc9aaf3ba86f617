//! The command line: which parts run, the report on stdout and in `target/bench/results.md`.

use std::process::ExitCode;

use crate::report::{goals_markdown, Part};
use crate::{instructions, kosize, nbd, throughput, Options};

/// A part of the benchmark.
type Runner = fn(&Options) -> Result<Part, String>;

/// The parts, by `--part` name, in the order they run.
const PARTS: [(&str, Runner); 4] =
    [("throughput", throughput::run), ("nbd", nbd::run), ("instructions", instructions::run), ("kosize", kosize::run)];

fn usage() -> ExitCode {
    eprintln!(
        "usage: geom-bench [--part throughput|nbd|instructions|kosize]... [--seconds S] [--rounds R]\n\
         \x20                 [--callgrind-bios N] [--stack KEY]... [--block 4k|1m]... [--check]"
    );
    ExitCode::from(2)
}

fn parse(args: &[String]) -> Option<Options> {
    let mut o = Options::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--part" => o.parts.push(it.next()?.clone()),
            "--seconds" => o.seconds = it.next()?.parse().ok().filter(|s: &f64| *s > 0.0)?,
            "--rounds" => o.rounds = it.next()?.parse().ok().filter(|r| *r > 0)?,
            "--callgrind-bios" => o.callgrind_bios = it.next()?.parse().ok().filter(|n| *n > 0)?,
            "--check" => o.check = true,
            "--stack" => o.stacks.push(it.next()?.clone()),
            "--block" => o.blocks.push(match it.next()?.as_str() {
                "4k" => 4096,
                "1m" => 1 << 20,
                _ => return None,
            }),
            _ => return None,
        }
    }
    let known = |k: &String| crate::stacks::Stack::ALL.iter().any(|s| s.key() == k);
    (o.parts.iter().all(|p| PARTS.iter().any(|(name, _)| name == p)) && o.stacks.iter().all(known)).then_some(o)
}

/// Run the benchmark with these arguments.
pub fn main(args: Vec<String>) -> ExitCode {
    // The callgrind runs re-execute this binary under valgrind.
    if args.first().map(String::as_str) == Some(instructions::CHILD_FLAG) {
        return instructions::child(&args[1..]);
    }
    let Some(opts) = parse(&args) else { return usage() };
    let mut out = String::from("# geom-rs benchmark results\n\n");
    out.push_str(&crate::report::machine_line());
    let mut goals = Vec::new();
    let mut failed = false;
    for (name, runner) in PARTS {
        if !opts.wants(name) {
            continue;
        }
        eprintln!("geom-bench: {name} ...");
        match runner(&opts) {
            Ok(part) => {
                for t in &part.tables {
                    let md = t.markdown();
                    println!("{md}");
                    out.push_str(&md);
                    out.push('\n');
                }
                goals.extend(part.goals);
            }
            Err(e) => {
                eprintln!("geom-bench: {name}: {e}");
                out.push_str(&format!("### {name}\n\nnot measured: {e}\n\n"));
                failed = true;
            }
        }
    }
    if !goals.is_empty() {
        let md = goals_markdown(&goals);
        println!("{md}");
        out.push_str(&md);
    }
    let dir = crate::workspace_root().join("target/bench");
    let file = dir.join("results.md");
    match std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&file, &out)) {
        Ok(()) => eprintln!("geom-bench: results in {}", file.display()),
        Err(e) => eprintln!("geom-bench: cannot write {}: {e}", file.display()),
    }
    let missed = goals.iter().any(|g| !g.met());
    if failed || (opts.check && missed) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
