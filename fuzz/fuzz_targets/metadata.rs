//! libFuzzer entry point of the `metadata` target; the harness is `geom_fuzz::metadata`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| geom_fuzz::metadata(data));
