//! Where a command's output goes: straight to this process's stdout and stderr, or, in the
//! host, back over the control socket to the `geom` that asked. Commands write to an
//! [`Out`] and never know which.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// A command's output channels.
pub trait Out {
    /// Text for standard output.
    fn stdout(&mut self, s: &str);
    /// Text for standard error.
    fn stderr(&mut self, s: &str);
    /// How far a long operation (`what`) has come: `done` of `total` units (bytes).
    fn progress(&mut self, what: &str, done: u64, total: u64);
}

/// This process's own stdout and stderr.
pub struct Local {
    progress: Progress,
}

impl Local {
    /// Output to this process's terminal or pipes; progress shows only on a terminal.
    pub fn new() -> Local {
        Local { progress: Progress::new(std::io::stdout().is_terminal()) }
    }
}

impl Out for Local {
    fn stdout(&mut self, s: &str) {
        self.progress.clear();
        print!("{s}");
    }

    fn stderr(&mut self, s: &str) {
        self.progress.clear();
        eprint!("{s}");
    }

    fn progress(&mut self, what: &str, done: u64, total: u64) {
        self.progress.show(what, done, total);
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        self.progress.clear();
        let _ = std::io::stdout().flush();
    }
}

/// A progress line on a terminal: redrawn in place at most ten times a second, and erased
/// before other output and at the end, so nothing of it reaches a pipe or a log.
pub struct Progress {
    on: bool,
    shown: bool,
    last: Option<Instant>,
}

impl Progress {
    /// A progress line that draws only if `on` (stdout is a terminal).
    pub fn new(on: bool) -> Progress {
        Progress { on, shown: false, last: None }
    }

    /// Draw `what: 42% (27 MiB of 64 MiB)`.
    pub fn show(&mut self, what: &str, done: u64, total: u64) {
        if !self.on {
            return;
        }
        let now = Instant::now();
        if done < total && self.last.is_some_and(|t| now.duration_since(t) < Duration::from_millis(100)) {
            return;
        }
        self.last = Some(now);
        let pct = done.saturating_mul(100).checked_div(total).unwrap_or(100);
        let mut o = std::io::stdout();
        let _ = write!(o, "\r\x1b[K{what}: {pct}% ({} of {})", mib(done), mib(total));
        let _ = o.flush();
        self.shown = true;
    }

    /// Erase the line if one is drawn.
    pub fn clear(&mut self) {
        if self.shown {
            let mut o = std::io::stdout();
            let _ = write!(o, "\r\x1b[K");
            let _ = o.flush();
            self.shown = false;
        }
    }
}

/// A byte count for people: "512 B", "3 KiB", "27 MiB".
pub fn mib(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 => format!("{} KiB", n >> 10),
        n => format!("{n} B"),
    }
}

/// Output kept in memory, for tests.
#[cfg(test)]
#[derive(Default, Debug)]
pub struct Captured {
    /// What went to stdout.
    pub stdout: String,
    /// What went to stderr.
    pub stderr: String,
    /// Progress reports: (what, done, total).
    pub progress: Vec<(String, u64, u64)>,
}

#[cfg(test)]
impl Out for Captured {
    fn stdout(&mut self, s: &str) {
        self.stdout.push_str(s);
    }

    fn stderr(&mut self, s: &str) {
        self.stderr.push_str(s);
    }

    fn progress(&mut self, what: &str, done: u64, total: u64) {
        self.progress.push((what.to_owned(), done, total));
    }
}
