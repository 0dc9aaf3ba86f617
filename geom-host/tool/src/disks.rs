//! `geom disk attach|detach|list`: memory and file disks, as mdconfig(8) makes `md` devices
//! (`-t malloc -s 64m`, `-t vnode -f FILE`, here `-t file FILE`).

use std::path::Path;

use geom_core::sys::errno::strerror;
use geom_host::command::expand_number;
use geom_host::disk::MdConfig;
use geom_host::listing::{humanize_number, Scale, HN_B, HN_NOSPACE};

use crate::args::getopt;
use crate::host::{CmdResult, Disk, Host};
use crate::out::Out;

/// Run `geom disk ...`.
pub fn run(host: &Host, cwd: &Path, argv: &[String], out: &mut dyn Out) -> CmdResult {
    let Some((verb, rest)) = argv.split_first() else {
        return Err("usage: geom disk attach|detach|list ...".into());
    };
    match verb.as_str() {
        "attach" => attach(host, cwd, rest, out),
        "detach" => detach(host, rest),
        "list" => {
            list(host, out);
            Ok(())
        }
        v => Err(format!("Unknown command: disk {v}.")),
    }
}

/// `attach -t malloc|file [-s SIZE] [-S SECTORSIZE] [-u NAME] [FILE]`; prints the new
/// disk's name when the caller did not choose it, as mdconfig does.
fn attach(host: &Host, cwd: &Path, argv: &[String], out: &mut dyn Out) -> CmdResult {
    let p = getopt(argv, "t:s:S:u:")?;
    let size = match p.value('s') {
        Some(s) => Some(expand_number(s).filter(|n| *n > 0).ok_or_else(|| format!("Invalid size: {s}."))? as u64),
        None => None,
    };
    let sectorsize = match p.value('S') {
        Some(s) => expand_number(s)
            .filter(|n| *n >= 512 && (*n as u64).is_power_of_two() && *n <= 1 << 20)
            .ok_or_else(|| format!("Invalid sector size: {s}."))? as u32,
        None => 512,
    };
    // mdconfig's -u takes a unit number; a full name is accepted too.
    let name =
        p.value('u').map(|u| if u.bytes().all(|b| b.is_ascii_digit()) { format!("md{u}") } else { u.to_owned() });
    let made = match (p.value('t'), p.args.as_slice()) {
        (Some("malloc" | "swap"), []) => {
            let size = size.ok_or("Size is required for -t malloc (-s SIZE).")?;
            let mut cfg = MdConfig::malloc(size).sectorsize(sectorsize);
            if let Some(n) = &name {
                cfg = cfg.named(n);
            }
            let md = host.rt.md_create(cfg).map_err(|e| format!("Cannot create disk: {}.", strerror(e)))?;
            let n = md.name().to_owned();
            crate::lock(&host.disks).insert(n.clone(), Disk { md, backing: None });
            n
        }
        (Some("file" | "vnode"), [file]) => {
            let path = cwd.join(file);
            let n = match &name {
                Some(n) => n.clone(),
                None => next_free(host),
            };
            attach_file(host, &n, &path, size.unwrap_or(0), sectorsize).map_err(|e| format!("{file}: {e}"))?;
            n
        }
        (Some("file" | "vnode"), _) => {
            return Err("usage: geom disk attach -t file [-s SIZE] [-S SECTORSIZE] [-u NAME] FILE".into())
        }
        (Some("malloc" | "swap"), _) => return Err("A malloc disk takes no file.".into()),
        (Some(t), _) => return Err(format!("Unknown disk type: {t} (malloc or file).")),
        (None, _) => return Err("usage: geom disk attach -t malloc|file ...".into()),
    };
    if name.is_none() {
        out.stdout(&format!("{made}\n"));
    }
    Ok(())
}

/// The first `mdN` no provider has.
fn next_free(host: &Host) -> String {
    (0..).map(|i| format!("md{i}")).find(|n| host.rt.provider(n).is_none()).unwrap_or_default()
}

/// Attach `path` as a file disk named `name` (created and grown to `size` if given; the
/// file's own size otherwise).
pub fn attach_file(host: &Host, name: &str, path: &Path, size: u64, sectorsize: u32) -> Result<(), String> {
    if size == 0 && !path.is_file() {
        return Err("No such file (give -s SIZE to create it).".into());
    }
    let cfg = MdConfig::file(path, size).named(name).sectorsize(sectorsize);
    let md = host.rt.md_create(cfg).map_err(|e| format!("Cannot attach: {}.", strerror(e)))?;
    crate::lock(&host.disks).insert(name.to_owned(), Disk { md, backing: Some(path.to_owned()) });
    Ok(())
}

/// `detach [-f] NAME`: refused while open unless forced (the geoms above are orphaned).
fn detach(host: &Host, argv: &[String]) -> CmdResult {
    let p = getopt(argv, "f")?;
    let [name] = p.args.as_slice() else { return Err("usage: geom disk detach [-f] NAME".into()) };
    let name = name.strip_prefix("/dev/").unwrap_or(name);
    let r = if p.flag('f') { host.rt.md_destroy_forced(name) } else { host.rt.md_destroy(name) };
    r.map_err(|e| format!("Cannot detach {name}: {}.", strerror(e)))?;
    crate::lock(&host.disks).remove(name);
    Ok(())
}

/// `list`: one line per disk, like `mdconfig -l -v`.
fn list(host: &Host, out: &mut dyn Out) {
    for (name, d) in crate::lock(&host.disks).iter() {
        let (kind, file) = match &d.backing {
            None => ("malloc", String::new()),
            Some(p) => ("file", p.display().to_string()),
        };
        // mdconfig -l -v prints sizes as humanize_number(.., HN_AUTOSCALE, HN_NOSPACE | HN_B).
        let size = humanize_number(5, d.md.mediasize() as i64, "", Scale::Auto, HN_NOSPACE | HN_B).unwrap_or_default();
        out.stdout(&format!("{name}\t{kind}\t{size:>6}\t{file}\n").replace("\t\n", "\n"));
    }
}
