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

/// A class's debug message (`G_STRIPE_DEBUG`, `GJ_DEBUG`): printed if the class's `debug`
/// knob is at least `level`, as `TAG[level]: message` when debugging is on and `TAG: message`
/// at level 0.
pub fn debug(tag: &str, debug: u32, level: u32, args: fmt::Arguments<'_>) {
    if debug < level {
        return;
    }
    if debug > 0 {
        crate::kprintln!("{tag}[{level}]: {args}");
    } else {
        crate::kprintln!("{tag}: {args}");
    }
}
