//! The size of each kernel module `cargo xtask kmod` built (`target/kmod/*.ko`), whole and
//! by section, as `size(1)` reads them.

use std::process::Command;

use crate::report::{Part, Table};
use crate::Options;

/// Read the sizes of the modules present.
pub fn run(_opts: &Options) -> Result<Part, String> {
    let dir = crate::workspace_root().join("target/kmod");
    let mut kos: Vec<_> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e} (run `cargo xtask kmod` first)", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "ko"))
        .collect();
    kos.sort();
    if kos.is_empty() {
        return Err(format!("no .ko in {} (run `cargo xtask kmod` first)", dir.display()));
    }
    let mut t = Table::new("Kernel modules (FreeBSD 15 amd64)", &["module", "file bytes", "text", "data", "bss"]);
    for ko in &kos {
        let bytes = std::fs::metadata(ko).map_err(|e| format!("{}: {e}", ko.display()))?.len();
        // `size` prints "text data bss dec hex filename" then one line of numbers.
        let out = Command::new("size").arg(ko).output().map_err(|e| format!("size: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let nums: Vec<&str> = text.lines().nth(1).unwrap_or("").split_whitespace().take(3).collect();
        if !out.status.success() || nums.len() != 3 {
            return Err(format!("size {}: {}", ko.display(), String::from_utf8_lossy(&out.stderr)));
        }
        let name = ko.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        t.row(vec![name, bytes.to_string(), nums[0].into(), nums[1].into(), nums[2].into()]);
    }
    t.notes.push("Stripped, symbols localised, debug information split off; `opt-level=z`, fat LTO.".into());
    Ok(Part { tables: vec![t], goals: Vec::new() })
}
