//! # kmod-glue
//!
//! Not built yet: the kernel side of the platform seam declared in `geom_core::sys::platform`
//! (allocator over `malloc(9)`, panic into `panic(9)`, `printf(9)`, `mtx(9)`, kernel threads)
//! arrives with the issue "`kmod-glue` and `cargo xtask kmod`". On the host this crate is
//! empty, so host tests never depend on it.
#![no_std]
