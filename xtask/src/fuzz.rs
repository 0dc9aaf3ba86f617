//! `cargo xtask fuzz [--seconds N] [--target NAME]`: a short run of each cargo-fuzz target
//! in `fuzz/` (or one), failing loudly.
//!
//! cargo-fuzz must be installed already (`cargo install cargo-fuzz --locked`); this installs
//! nothing. The targets are built once with the stable toolchain (`RUSTC_BOOTSTRAP=1` admits
//! the sanitizer flags), with AddressSanitizer and debug assertions, then each runs for N
//! seconds (`-max_total_time`) from the committed corpus (`fuzz/corpus/<target>`, read only)
//! into a scratch corpus under `fuzz/target/`, so the run leaves the checkout unchanged.
//!
//! A target fails if the fuzzer exits non-zero, writes a crash artifact, reports an error,
//! or cannot be shown to have executed any input (libFuzzer's final statistics are parsed).
//! Each target's runs, corpus size and result are printed; on failure, the end of its
//! output, where libFuzzer names the crash and its input.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::build::cargo;

/// What `fuzz` runs.
pub struct FuzzArgs {
    seconds: u32,
    target: Option<String>,
}

/// Parse `[--seconds N] [--target NAME]`.
pub fn parse(args: &[String]) -> Result<FuzzArgs, String> {
    let mut out = FuzzArgs { seconds: 20, target: None };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => {
                let v = it.next().ok_or("--seconds needs a number")?;
                out.seconds =
                    v.parse().ok().filter(|&s| s > 0).ok_or(format!("--seconds {v}: not a positive number"))?;
            }
            "--target" => out.target = Some(it.next().ok_or("--target needs a target name")?.clone()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(out)
}

/// What one target's run showed.
struct Outcome {
    runs: Option<u64>,
    corpus: Option<String>,
    problems: Vec<String>,
}

/// Build and run the targets; `Err` names the ones that failed (each already reported).
pub fn fuzz(args: &FuzzArgs) -> Result<(), String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().ok_or("xtask has no parent directory")?;
    let fuzz_dir = root.join("fuzz");
    check_cargo_fuzz()?;
    let all = targets(&fuzz_dir)?;
    let chosen: Vec<String> = match &args.target {
        Some(t) if all.contains(t) => vec![t.clone()],
        Some(t) => return Err(format!("no fuzz target {t} (there are: {})", all.join(", "))),
        None => all,
    };

    println!("== building the fuzz targets (stable toolchain, AddressSanitizer, debug assertions)");
    let status = cargo_fuzz(root).arg("build").status().map_err(|e| format!("cannot run cargo fuzz: {e}"))?;
    if !status.success() {
        return Err("cargo fuzz build failed".to_owned());
    }

    let mut failed = Vec::new();
    for t in &chosen {
        println!("== fuzzing {t} for {} s", args.seconds);
        let started = Instant::now();
        let o = run_one(root, &fuzz_dir, t, args.seconds)?;
        let runs = o.runs.map_or("an unknown number of".to_owned(), |n| n.to_string());
        let corpus = o.corpus.as_deref().unwrap_or("unknown");
        let result = if o.problems.is_empty() { "ok".to_owned() } else { format!("FAILED: {}", o.problems.join("; ")) };
        println!("{t}: {runs} runs in {:.0} s, corpus {corpus}, {result}", started.elapsed().as_secs_f64());
        if !o.problems.is_empty() {
            failed.push(t.clone());
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("fuzzing failed: {}", failed.join(", ")))
    }
}

/// A clear error unless `cargo fuzz` can be run.
fn check_cargo_fuzz() -> Result<(), String> {
    let out = cargo().args(["fuzz", "--version"]).output();
    match out {
        Ok(o) if o.status.success() => Ok(()),
        _ => Err("cargo-fuzz is not installed (install it with: cargo install cargo-fuzz --locked)".to_owned()),
    }
}

/// `cargo fuzz`, from the repository root, on the stable toolchain.
fn cargo_fuzz(root: &Path) -> Command {
    let mut c = cargo();
    // cargo-fuzz passes -Z flags (the sanitizer) to rustc; this lets the stable compiler take
    // them, as `cargo xtask kmod` does for -Zbuild-std.
    c.current_dir(root).env("RUSTC_BOOTSTRAP", "1").arg("fuzz");
    c
}

/// The targets: one file each in `fuzz/fuzz_targets/`.
fn targets(fuzz_dir: &Path) -> Result<Vec<String>, String> {
    let dir = fuzz_dir.join("fuzz_targets");
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut names: Vec<String> =
        entries.filter_map(|e| e.ok()?.path().file_stem()?.to_str().map(str::to_owned)).collect();
    names.sort();
    if names.is_empty() {
        return Err(format!("no fuzz targets in {}", dir.display()));
    }
    Ok(names)
}

fn files_in(dir: &Path) -> BTreeSet<PathBuf> {
    std::fs::read_dir(dir).map(|d| d.filter_map(|e| Some(e.ok()?.path())).collect()).unwrap_or_default()
}

/// Run one target for `seconds` and judge what it printed.
fn run_one(root: &Path, fuzz_dir: &Path, target: &str, seconds: u32) -> Result<Outcome, String> {
    let seeds = fuzz_dir.join("corpus").join(target);
    let scratch = fuzz_dir.join("target").join("xtask-corpus").join(target);
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let artifacts = fuzz_dir.join("artifacts").join(target);
    let before = files_in(&artifacts);

    let out = cargo_fuzz(root)
        .args(["run", target])
        .arg(&scratch)
        .arg(&seeds)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        // A single input running this long is a hang, and a failure.
        .arg("-timeout=10")
        .arg("-print_final_stats=1")
        .output()
        .map_err(|e| format!("cannot run cargo fuzz: {e}"))?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));

    let mut o = judge(&text);
    if !out.status.success() {
        o.problems.insert(0, format!("the fuzzer exited with {}", out.status));
    }
    let new: Vec<String> = files_in(&artifacts).difference(&before).map(|p| p.display().to_string()).collect();
    if !new.is_empty() {
        o.problems.push(format!("crash input(s) written: {}", new.join(", ")));
    }
    if !o.problems.is_empty() {
        let lines: Vec<&str> = text.lines().collect();
        eprintln!("---- last lines of the {target} run ----");
        for l in &lines[lines.len().saturating_sub(60)..] {
            eprintln!("{l}");
        }
        eprintln!("----");
    }
    Ok(o)
}

/// Read libFuzzer's output: the inputs executed (`stat::number_of_executed_units: N`, or
/// `Done N runs in S second(s)`), the corpus at the end (`#N DONE ... corp: C/SIZE`), and any
/// sign of a crash.
fn judge(text: &str) -> Outcome {
    let mut o = Outcome { runs: None, corpus: None, problems: Vec::new() };
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("stat::number_of_executed_units:") {
            o.runs = n.trim().parse().ok().or(o.runs);
        } else if let Some(rest) = line.strip_prefix("Done ") {
            if o.runs.is_none() {
                o.runs = rest.split_whitespace().next().and_then(|n| n.parse().ok());
            }
        }
        if line.starts_with('#') && line.split_whitespace().nth(1) == Some("DONE") {
            if let Some(c) = line.split_whitespace().skip_while(|w| *w != "corp:").nth(1) {
                o.corpus = Some(match c.split_once('/') {
                    Some((n, size)) => format!("{n} inputs ({size})"),
                    None => c.to_owned(),
                });
            }
        }
        let crashed = ["ERROR: libFuzzer", "ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "panicked at"];
        if crashed.iter().any(|c| line.contains(c)) {
            o.problems.push(line.trim().to_owned());
        }
    }
    match o.runs {
        None => o.problems.push("no statistics in the fuzzer's output: it may not have run".to_owned()),
        Some(0) => o.problems.push("the fuzzer executed no inputs".to_owned()),
        Some(_) => {}
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_run_reports_its_runs_and_corpus() {
        let text = "INFO: seed corpus: files: 54\n\
                    #129776\tDONE   cov: 3440 ft: 9504 corp: 925/98Kb lim: 362 exec/s: 716 rss: 503Mb\n\
                    Done 129776 runs in 181 second(s)\n\
                    stat::number_of_executed_units: 129776\n";
        let o = judge(text);
        assert_eq!(o.runs, Some(129776));
        assert_eq!(o.corpus.as_deref(), Some("925 inputs (98Kb)"));
        assert!(o.problems.is_empty(), "{:?}", o.problems);
    }

    #[test]
    fn silence_or_crashes_fail() {
        assert!(!judge("Finished `release` profile\n").problems.is_empty(), "no statistics");
        assert!(!judge("Done 0 runs in 20 second(s)\n").problems.is_empty(), "zero runs");
        let crash = "thread '<unnamed>' panicked at src/x.rs:1:1:\n==1== ERROR: libFuzzer: deadly signal\n\
                     stat::number_of_executed_units: 10\n";
        assert_eq!(judge(crash).problems.len(), 2);
    }

    #[test]
    fn arguments() {
        let a = parse(&["--seconds".into(), "5".into(), "--target".into(), "nbd".into()]).unwrap();
        assert_eq!((a.seconds, a.target.as_deref()), (5, Some("nbd")));
        assert!(parse(&["--seconds".into(), "0".into()]).is_err());
        assert!(parse(&["--jobs".into()]).is_err());
    }
}
