//! `geom-bench`: run the benchmarks and print their tables (see the library's docs). Usually
//! run as `cargo xtask bench`.
//!
//! ```text
//! geom-bench [--part throughput|nbd|instructions|kosize]... [--seconds S] [--rounds R]
//!            [--callgrind-bios N] [--stack KEY]... [--block 4k|1m]... [--check]
//! ```

use std::process::ExitCode;

fn main() -> ExitCode {
    geom_bench::cli::main(std::env::args().skip(1).collect())
}
