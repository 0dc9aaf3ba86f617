//! Rust panics in the kernel end in `panic(9)`, with the message and where it came from.
//! geom-core keeps panics out of the I/O path; one that happens anyway is a bug, and the
//! kernel's answer to a bug is a panic (and a dump), not silent corruption.

use core::fmt::Write;

use super::ffi;

#[panic_handler]
fn on_panic(info: &core::panic::PanicInfo<'_>) -> ! {
    // Formatted on the stack: the allocator may be what failed.
    let mut msg = heapless::String::<256>::new();
    let _ = write!(msg, "geom-rs: {}", info.message());
    if let Some(at) = info.location() {
        let _ = write!(msg, " at {}:{}", at.file(), at.line());
    }
    // SAFETY: "%.*s" with the string's length and address; panic(9) does not return.
    unsafe { ffi::panic(c"%.*s".as_ptr(), msg.len() as core::ffi::c_int, msg.as_ptr()) }
}
