//! Results as tables, and the goals they are judged against, rendered as Markdown.

use std::fmt::Write as _;

/// One table of results.
#[derive(Debug, Clone)]
pub struct Table {
    /// What the table measures.
    pub title: String,
    /// Column headings.
    pub headers: Vec<String>,
    /// Rows, one cell per heading.
    pub rows: Vec<Vec<String>>,
    /// Notes printed under the table.
    pub notes: Vec<String>,
}

impl Table {
    /// An empty table.
    pub fn new(title: &str, headers: &[&str]) -> Table {
        Table {
            title: title.to_owned(),
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Add a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as Markdown.
    pub fn markdown(&self) -> String {
        let mut s = format!("### {}\n\n| {} |\n|", self.title, self.headers.join(" | "));
        for _ in &self.headers {
            s.push_str("---|");
        }
        s.push('\n');
        for r in &self.rows {
            let _ = writeln!(s, "| {} |", r.join(" | "));
        }
        for n in &self.notes {
            let _ = write!(s, "\n{n}\n");
        }
        s
    }
}

/// A goal from the issue, and whether this run met it.
#[derive(Debug, Clone)]
pub struct Goal {
    /// What is compared.
    pub what: String,
    /// The measured ratio.
    pub ratio: f64,
    /// The ratio's bound.
    pub bound: f64,
    /// True if the ratio must stay at or below the bound, false if at or above.
    pub at_most: bool,
}

impl Goal {
    /// True if the run met the goal.
    pub fn met(&self) -> bool {
        if self.at_most {
            self.ratio <= self.bound
        } else {
            self.ratio >= self.bound
        }
    }
}

/// What one part of the benchmark produced.
#[derive(Debug, Clone, Default)]
pub struct Part {
    /// Its tables.
    pub tables: Vec<Table>,
    /// The goals it checked.
    pub goals: Vec<Goal>,
}

/// The goals as a Markdown table.
pub fn goals_markdown(goals: &[Goal]) -> String {
    let mut t = Table::new("Goals", &["goal", "measured", "bound", "met"]);
    for g in goals {
        t.row(vec![
            g.what.clone(),
            format!("{:.3}", g.ratio),
            format!("{} {:.2}", if g.at_most { "≤" } else { "≥" }, g.bound),
            if g.met() { "yes".into() } else { "**no**".into() },
        ]);
    }
    t.markdown()
}

/// Bytes per second as MB/s (10^6), the unit disk benchmarks print.
pub fn mb_per_s(bytes_per_s: f64) -> String {
    format!("{:.1}", bytes_per_s / 1e6)
}

/// A rate with thousands separated, for reading.
pub fn per_s(n: f64) -> String {
    let n = n.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// One line saying what machine and build the figures come from.
pub fn machine_line() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let profile = if cfg!(debug_assertions) { "debug (figures not meaningful)" } else { "optimised" };
    format!("Machine: {cpu}, {cores} cores. Build: {profile}.\n\n")
}
