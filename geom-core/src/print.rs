//! `printf(9)` for Rust: [`print`] and the [`kprintln!`](crate::kprintln) macro format on the
//! stack (never allocating, so any context may print) and write one line to the console.

use core::fmt::{self, Write};

/// The longest line printed; longer ones are cut.
pub const LINE_MAX: usize = 256;

/// Format `args` and print it on the console (the kernel's message buffer, the host
/// runtime's console log).
pub fn print(args: fmt::Arguments<'_>) {
    let mut line = heapless::String::<LINE_MAX>::new();
    // A line that does not fit is printed cut, with its newline kept.
    if line.write_fmt(args).is_err() {
        let mut end = line.len().min(LINE_MAX - 1);
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
        let _ = line.push('\n');
    }
    // SAFETY: the pointer and length describe the initialised bytes of `line`.
    unsafe { crate::sys::platform::geom_rs_print(line.as_ptr(), line.len()) };
}

/// Print a line on the console, formatted like `format!` (`printf(9)` with a `\n`).
///
/// ```
/// // Compiles anywhere; prints when a runtime provides the console.
/// fn report(name: &str) {
///     geom_core::kprintln!("GEOM_STRIPE: Device {name} activated.");
/// }
/// ```
#[macro_export]
macro_rules! kprintln {
    ($($arg:tt)*) => {
        $crate::print::print(::core::format_args!("{}\n", ::core::format_args!($($arg)*)))
    };
}
