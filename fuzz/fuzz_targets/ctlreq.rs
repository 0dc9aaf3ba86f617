//! libFuzzer entry point of the `ctlreq` target; the harness is `geom_fuzz::ctlreq`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| geom_fuzz::ctlreq(data));
