//! geom-rs's build driver.
//!
//! * `cargo xtask run [DEMO ARGS]`: the main job. Builds and checks every class's kernel
//!   module and geom(8) library (as `cargo xtask kmod` does), then runs the userland runtime
//!   on its embedded defaults (a stack of pass-through geoms over a memory disk, data moved
//!   and verified from several threads) and prints the topology.
//! * `cargo xtask kmod [--class NAME] [--freebsd 14|15|16]`: build `target/kmod/geom_<class>.ko`
//!   (with `.ko.debug`) and `target/kmod/geom_<class>.so` for every class crate (or one), for
//!   FreeBSD 15 unless told otherwise, and check each offline as FreeBSD's kernel linker and
//!   geom(8) would (see [`build`] and [`check`]).
//! * `cargo xtask torture [--class NAME | --stack NAME] [--seeds N] [--seed S] [--jobs J]`:
//!   seeded runs of class stacks on the deterministic schedule, with injected faults, checked
//!   against a reference block device (crate `geom-torture`); a failure prints its seed and
//!   the command that replays it.
//! * `cargo xtask fuzz [--seconds N] [--target NAME]`: a short run of every cargo-fuzz target
//!   in `fuzz/` (or one), failing on a crash or on a run that executed nothing (see [`fuzz`]).
//! * `cargo xtask bench [ARGS]`: the benchmarks (crate `geom-bench`, optimised): the modules
//!   are rebuilt first (their output hidden) so the size table is current; the arguments go to
//!   `geom-bench`.

mod build;
mod check;
mod fuzz;

use std::process::ExitCode;

use build::{cargo, Env, Release};

/// What `kmod` builds.
struct KmodArgs {
    class: Option<String>,
    release: Release,
}

fn parse_kmod(args: &[String]) -> Result<KmodArgs, String> {
    let mut out = KmodArgs { class: None, release: Release::parse("15").ok_or("no release 15")? };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--class" => out.class = Some(it.next().ok_or("--class needs a class name")?.to_lowercase()),
            "--freebsd" => {
                let v = it.next().ok_or("--freebsd needs 14, 15 or 16")?;
                out.release = Release::parse(v).ok_or(format!("unknown FreeBSD release {v} (14, 15 or 16)"))?;
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(out)
}

/// Build and check the modules and libraries; the paths written.
fn kmod(args: &KmodArgs) -> Result<Vec<std::path::PathBuf>, String> {
    let env = Env::discover()?;
    let classes: Vec<_> = env
        .classes()
        .iter()
        .filter(|c| args.class.as_ref().is_none_or(|want| *want == c.lower() || *want == c.package))
        .collect();
    if classes.is_empty() {
        return Err(match &args.class {
            Some(c) => format!("no class crate named {c} (classes carry [package.metadata.geom-rs])"),
            None => "no class crates (classes carry [package.metadata.geom-rs])".to_owned(),
        });
    }
    let kernel = check::allowlist(check::FREEBSD_KERNEL);
    let user = check::allowlist(check::FREEBSD_USERLAND);
    let mut written = Vec::new();
    for c in &classes {
        println!("== {} ({}): kernel module", c.class, c.package);
        written.push(env.build_ko(c, args.release, &kernel)?);
        println!("== {} ({}): geom(8) library", c.class, c.package);
        written.push(env.build_lib(c, args.release, &user)?);
    }
    Ok(written)
}

fn run(args: &[String]) -> ExitCode {
    println!("== kernel modules and geom(8) libraries (cargo xtask kmod)");
    match kmod(&KmodArgs { class: None, release: Release::parse("15").expect("15 is known") }) {
        Ok(paths) => {
            for p in paths {
                println!("   {}", p.display());
            }
        }
        Err(e) => {
            eprintln!("xtask: {e}");
            return ExitCode::FAILURE;
        }
    }
    println!("== userland runtime: pass-through stack on a memory disk");
    run_release_bin("geom-host", "geom-demo", args)
}

/// `cargo run --release` a workspace binary with `args`, passing its exit status on.
fn run_release_bin(package: &str, bin: &str, args: &[String]) -> ExitCode {
    let status =
        cargo().args(["run", "--quiet", "--release", "--package", package, "--bin", bin, "--"]).args(args).status();
    match status {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("xtask: cannot run cargo: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `cargo xtask torture ...`: the seeded torture runs (`geom-torture`, built optimised; its
/// arguments are passed through).
fn torture(args: &[String]) -> ExitCode {
    run_release_bin("geom-torture", "geom-torture", args)
}

/// `cargo xtask bench ...`: refresh the modules quietly, then run `geom-bench`.
fn bench(args: &[String]) -> ExitCode {
    let wants_sizes =
        !args.iter().any(|a| a == "--part") || args.windows(2).any(|w| w[0] == "--part" && w[1] == "kosize");
    if wants_sizes {
        eprintln!("xtask: building the kernel modules for the size table (cargo xtask kmod) ...");
        // The module build prints every checker finding; here only failure matters.
        let built = std::env::current_exe()
            .and_then(|me| std::process::Command::new(me).arg("kmod").stdout(std::process::Stdio::null()).status());
        match built {
            Ok(s) if s.success() => {}
            Ok(_) => {
                eprintln!("xtask: cargo xtask kmod failed (run it alone to see why)");
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("xtask: cannot run cargo xtask kmod: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    run_release_bin("geom-bench", "geom-bench", args)
}

fn usage() -> ExitCode {
    eprintln!("usage: cargo xtask run [--size MIB] [--threads N] [--xml]");
    eprintln!("       cargo xtask kmod [--class NAME] [--freebsd 14|15|16]");
    eprintln!("       cargo xtask torture [--class nop|stripe|journal | --stack NAME] [--seeds N] [--first S] [--seed S] [--jobs J]");
    eprintln!("       cargo xtask fuzz [--seconds N] [--target metadata|ctlreq|nbd]");
    eprintln!(
        "       cargo xtask bench [--part throughput|nbd|instructions|kosize]... [--seconds S] [--rounds R] [--check]"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("run") => run(&args[1..]),
        Some("torture") => torture(&args[1..]),
        Some("bench") => bench(&args[1..]),
        Some("fuzz") => match fuzz::parse(&args[1..]).and_then(|a| fuzz::fuzz(&a)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("xtask: {e}");
                ExitCode::FAILURE
            }
        },
        Some("kmod") => match parse_kmod(&args[1..]).and_then(|a| kmod(&a)) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("xtask: {e}");
                ExitCode::FAILURE
            }
        },
        _ => usage(),
    }
}
