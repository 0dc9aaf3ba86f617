//! libFuzzer entry point of the `nbd` target; the harness is `geom_fuzz::nbd`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| geom_fuzz::nbd(data));
