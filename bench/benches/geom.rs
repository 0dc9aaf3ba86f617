//! `cargo bench -p geom-bench`: the whole benchmark, as `cargo xtask bench` runs it.

use std::process::ExitCode;

fn main() -> ExitCode {
    // cargo passes `--bench`; everything else is ours.
    let args = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    geom_bench::cli::main(args)
}
