//! `geom nbd export|unexport|list`: any provider, served to NBD clients on every listener
//! the host has (`geom serve -n ...`).

use crate::args::getopt;
use geom_host::nbd::NbdServer;

use crate::host::{CmdResult, Host};
use crate::out::Out;

/// Run `geom nbd ...`.
pub fn run(host: &Host, argv: &[String], out: &mut dyn Out) -> CmdResult {
    let Some((verb, rest)) = argv.split_first() else {
        return Err("usage: geom nbd export|unexport|list ...".into());
    };
    let listeners = crate::lock(&host.nbd);
    if listeners.is_empty() {
        return Err("The host has no NBD listener (it was started with -n none).".into());
    }
    match verb.as_str() {
        "export" => {
            let p = getopt(rest, "rn:")?;
            let [provider] = p.args.as_slice() else {
                return Err("usage: geom nbd export [-r] [-n NAME] PROVIDER".into());
            };
            let provider = provider.strip_prefix("/dev/").unwrap_or(provider);
            let name = p.value('n').unwrap_or(provider);
            for (i, l) in listeners.iter().enumerate() {
                if let Err(e) = l.export(name, provider, p.flag('r')) {
                    // All or nothing: a name exported on some listeners only would confuse.
                    for l in &listeners[..i] {
                        let _ = l.unexport(name);
                    }
                    return Err(e);
                }
            }
            for l in listeners.iter() {
                out.stdout(&format!("{}\n", uri(l, name)));
            }
            Ok(())
        }
        "unexport" => {
            let [name] = rest else { return Err("usage: geom nbd unexport NAME".into()) };
            let mut result = Err(format!("No such export: {name}."));
            for l in listeners.iter() {
                match l.unexport(name) {
                    Ok(()) => result = Ok(()),
                    Err(e) if result.is_err() => result = Err(e),
                    Err(_) => {}
                }
            }
            result
        }
        "list" => {
            out.stdout(&format!("{:<16} {:<16} {:<4} {:>7}  URI\n", "Export", "Provider", "Mode", "Clients"));
            for l in listeners.iter() {
                for e in l.exports() {
                    let mode = if e.read_only { "r" } else { "rw" };
                    out.stdout(&format!(
                        "{:<16} {:<16} {:<4} {:>7}  {}\n",
                        e.name,
                        e.provider,
                        mode,
                        e.clients,
                        uri(l, &e.name)
                    ));
                }
            }
            Ok(())
        }
        v => Err(format!("Unknown command: nbd {v}.")),
    }
}

/// The URI an NBD client (qemu's or libnbd's syntax) reaches export `name` at.
pub fn uri(server: &NbdServer, name: &str) -> String {
    server.local_addr().uri(name)
}
