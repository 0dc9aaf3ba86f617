//! The kernel runtime of a geom-rs module (built only for `x86_64-unknown-none`).

mod ffi;
mod heap;
mod panic;
mod seam;

pub use heap::KernelHeap;
