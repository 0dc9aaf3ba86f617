//! The symbol allow-lists in `xtask/allowlist/`: one symbol per line, `#` starts a comment
//! (each entry's comment names the FreeBSD source file that defines it).

use std::collections::HashSet;

/// The FreeBSD kernel exports a geom-rs module may reference (`freebsd-kernel.txt`; one list
/// serves FreeBSD 14, 15 and 16).
pub const FREEBSD_KERNEL: &str = include_str!("../../allowlist/freebsd-kernel.txt");

/// The libc and libgeom symbols a `geom_<class>.so` may import (`freebsd-userland.txt`).
pub const FREEBSD_USERLAND: &str = include_str!("../../allowlist/freebsd-userland.txt");

/// The symbols of an allow-list text: the first word of every line, comments (`#` to the end
/// of the line) and blank lines ignored.
pub fn allowlist(text: &str) -> HashSet<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_and_blank_lines_are_skipped() {
        let set = allowlist("# header\n\ng_io_request  # sys/geom/geom_io.c\n  printf\n#free\n");
        let mut v: Vec<_> = set.into_iter().collect();
        v.sort();
        assert_eq!(v, ["g_io_request", "printf"]);
    }

    #[test]
    fn shipped_lists_hold_the_runtime_symbols() {
        let k = allowlist(FREEBSD_KERNEL);
        for s in ["g_io_request", "module_register_init", "malloc_init", "M_DEVBUF", "__mtx_lock_flags", "g_modevent"] {
            assert!(k.contains(s), "{s} missing from freebsd-kernel.txt");
        }
        for s in ["mtx_lock", "g_topology_lock", "uma_zalloc", "g_malloc"] {
            assert!(!k.contains(s), "{s} is a macro or inline, not an export");
        }
        let u = allowlist(FREEBSD_USERLAND);
        for s in ["printf", "gctl_ro_param", "g_open", "__stderrp", "malloc"] {
            assert!(u.contains(s), "{s} missing from freebsd-userland.txt");
        }
    }
}
