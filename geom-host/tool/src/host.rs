//! The host: one userland GEOM kernel (a [`Runtime`]) with its disks and NBD listeners, and
//! the dispatcher every command line goes through, whether it came from this process's own
//! argv or over the control socket from another `geom`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use geom_host::disk::MdDisk;
use geom_host::nbd::{Listen, NbdServer};
use geom_host::{Runtime, RuntimeConfig};

use crate::out::Out;
use crate::{classes, copy, disks, exports};

/// Where the host lives: a long-running server (`geom serve`) keeps its topology between
/// commands; a one-shot host lives for one command over disk images and is gone after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `geom serve`.
    Server,
    /// A command run without a server: only what works on disk images alone.
    OneShot,
}

/// A disk the host attached, and how (for `geom disk list`).
pub struct Disk {
    /// The runtime's disk.
    pub md: MdDisk,
    /// `malloc`, or the backing file.
    pub backing: Option<PathBuf>,
}

/// The runtime and what the tool keeps beside it.
pub struct Host {
    /// The userland kernel.
    pub rt: Runtime,
    /// Server or one-shot.
    pub mode: Mode,
    /// Disks by provider name.
    pub disks: Mutex<BTreeMap<String, Disk>>,
    /// NBD listeners (a server may have several: a UNIX socket and loopback TCP).
    pub nbd: Mutex<Vec<NbdServer>>,
    /// The control socket's path (in messages).
    pub socket: PathBuf,
    /// Set by `geom shutdown`.
    pub stopping: AtomicBool,
}

/// A command's failure: the message geom(8) prints as `geom: MESSAGE`.
pub type CmdResult = Result<(), String>;

impl Host {
    /// A host over a new runtime.
    pub fn new(mode: Mode, socket: PathBuf) -> Host {
        // The server's console is its log (dmesg); a one-shot command keeps the kernel's
        // messages to itself, as geom(8) does (`geom dmesg` shows them on a server).
        let defaults = RuntimeConfig::default();
        let config = RuntimeConfig { echo_console: defaults.echo_console && mode == Mode::Server, ..defaults };
        Host {
            rt: Runtime::new(config),
            mode,
            disks: Mutex::new(BTreeMap::new()),
            nbd: Mutex::new(Vec::new()),
            socket,
            stopping: AtomicBool::new(false),
        }
    }

    /// Start an NBD listener.
    pub fn listen_nbd(&self, listen: Listen) -> std::io::Result<()> {
        let server = NbdServer::start(&self.rt, listen)?;
        crate::lock(&self.nbd).push(server);
        Ok(())
    }

    /// Run one command line (`argv` without the program name; relative paths are taken from
    /// `cwd`) and return its exit status, as geom(8) would exit: 0, or 1 after printing
    /// `geom: MESSAGE`.
    pub fn execute(&self, cwd: &Path, argv: &[String], out: &mut dyn Out) -> i32 {
        match self.dispatch(cwd, argv, out) {
            Ok(()) => 0,
            Err(msg) => {
                if !msg.is_empty() {
                    out.stderr(&format!("geom: {msg}\n"));
                }
                1
            }
        }
    }

    fn dispatch(&self, cwd: &Path, argv: &[String], out: &mut dyn Out) -> CmdResult {
        let Some((first, rest)) = argv.split_first() else {
            out.stderr(&usage());
            return Err(String::new());
        };
        let server_only = |what: &str| -> CmdResult {
            if self.mode == Mode::OneShot {
                Err(format!(
                    "'{what}' needs a running host, and none answers at {}: start one with 'geom serve -b'.",
                    self.socket.display()
                ))
            } else {
                Ok(())
            }
        };
        match first.as_str() {
            "help" | "-h" | "--help" => {
                out.stdout(&usage());
                Ok(())
            }
            "load" | "unload" => {
                server_only(first)?;
                let [class] = rest else { return Err(format!("usage: geom {first} CLASS")) };
                self.load_unload(first == "load", &class.to_lowercase(), out)
            }
            "list" | "status" => {
                server_only(first)?;
                self.list_all(first, rest, out)
            }
            "topology" => {
                server_only(first)?;
                out.stdout(&self.rt.topology_text());
                Ok(())
            }
            "dmesg" => {
                server_only(first)?;
                out.stdout(&self.rt.console_log().join("\n"));
                out.stdout("\n");
                Ok(())
            }
            "confxml" => {
                server_only(first)?;
                out.stdout(&self.rt.confxml());
                Ok(())
            }
            "disk" => {
                server_only("disk")?;
                disks::run(self, cwd, rest, out)
            }
            "nbd" => {
                server_only("nbd")?;
                exports::run(self, rest, out)
            }
            "copy" => {
                server_only("copy")?;
                copy::run(self, cwd, rest, out)
            }
            "shutdown" => {
                server_only("shutdown")?;
                self.stopping.store(true, Ordering::SeqCst);
                Ok(())
            }
            class => self.class_command(cwd, &class.to_lowercase(), rest, out),
        }
    }

    /// `geom load CLASS` / `geom unload CLASS` (also `geom CLASS load`).
    fn load_unload(&self, load: bool, class: &str, out: &mut dyn Out) -> CmdResult {
        if load {
            if !classes::load(&self.rt, class)? {
                out.stderr(&format!("geom: Class {} already loaded.\n", class.to_uppercase()));
            }
            Ok(())
        } else {
            classes::unload(&self.rt, class)
        }
    }

    /// `geom list` / `geom status`: geom(8)'s listing for every loaded class.
    fn list_all(&self, verb: &str, rest: &[String], out: &mut dyn Out) -> CmdResult {
        for class in self.rt.classes().iter().rev() {
            let name = class.to_lowercase();
            if !classes::KNOWN.contains(&name.as_str()) {
                // The runtime's own classes (MD, HOSTIO) are listed through the class
                // command that knows them: `geom disk list`, `geom topology`.
                continue;
            }
            let mut argv: Vec<&str> = vec![verb];
            argv.extend(rest.iter().map(String::as_str));
            let o = classes::run(&self.rt, &name, &argv).unwrap_or_default();
            if let Some(e) = o.error {
                // Names that belong to another class are not an error here.
                if !e.starts_with("No such geom") && !e.starts_with("Class '") {
                    return Err(e);
                }
            }
            out.stdout(&o.stdout);
        }
        Ok(())
    }

    /// `geom CLASS VERB ...`.
    fn class_command(&self, cwd: &Path, class: &str, argv: &[String], out: &mut dyn Out) -> CmdResult {
        if !classes::KNOWN.contains(&class) {
            return Err(format!("Unknown class: {class}. Known: {}.", classes::KNOWN.join(", ")));
        }
        match argv.first().map(String::as_str) {
            None | Some("help") => {
                let lines = classes::usage_of(class);
                out.stderr(&format!("usage: {}\n", lines.join("\n       ")));
                return if argv.is_empty() { Err(String::new()) } else { Ok(()) };
            }
            Some(verb @ ("load" | "unload")) => {
                self.server_only_verb(class, verb)?;
                return self.load_unload(verb == "load", class, out);
            }
            Some(verb) if self.mode == Mode::OneShot && !classes::is_local(class, verb) => {
                self.server_only_verb(class, verb)?;
            }
            _ => {}
        }
        if self.mode == Mode::OneShot {
            self.attach_images(cwd, argv)?;
        }
        let words: Vec<&str> = argv.iter().map(String::as_str).collect();
        let o = classes::run(&self.rt, class, &words).unwrap_or_default();
        out.stdout(&o.stdout);
        out.stderr(&o.stderr);
        match o.error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn server_only_verb(&self, class: &str, verb: &str) -> CmdResult {
        if self.mode == Mode::OneShot {
            return Err(format!(
                "'{class} {verb}' needs a running host, and none answers at {}: start one with 'geom serve -b' \
                 (without one, only label, clear and dump work, on disk images).",
                self.socket.display()
            ));
        }
        Ok(())
    }

    /// One-shot mode: every argument naming an existing file becomes a file-backed disk of
    /// that name, so `geom stripe label st0 a.img b.img` labels the images themselves.
    fn attach_images(&self, cwd: &Path, argv: &[String]) -> CmdResult {
        for word in argv.iter().skip(1).filter(|w| !w.starts_with('-')) {
            let path = cwd.join(word);
            if !path.is_file() || self.rt.provider(word).is_some() {
                continue;
            }
            disks::attach_file(self, word, &path, 0, 512).map_err(|e| format!("{word}: {e}"))?;
        }
        Ok(())
    }

    /// Stop the NBD listeners and the runtime (the server's last step).
    pub fn shutdown(self) -> Vec<geom_host::Violation> {
        for server in std::mem::take(&mut *crate::lock(&self.nbd)) {
            server.stop();
        }
        self.rt.shutdown()
    }
}

/// `geom help`.
pub fn usage() -> String {
    let mut s = String::from(
        "usage: geom [--socket PATH] COMMAND ...\n\
         \n\
         The host (keeps the topology between commands):\n\
         \x20 geom serve [-b] [-n unix:PATH|tcp:127.0.0.1:PORT|none]...\n\
         \x20 geom shutdown\n\
         \n\
         Disks (like mdconfig(8)):\n\
         \x20 geom disk attach -t malloc -s SIZE [-S SECTORSIZE] [-u NAME]\n\
         \x20 geom disk attach -t file [-s SIZE] [-S SECTORSIZE] [-u NAME] FILE\n\
         \x20 geom disk detach [-f] NAME\n\
         \x20 geom disk list\n\
         \n\
         The topology:\n\
         \x20 geom load CLASS | geom unload CLASS\n\
         \x20 geom list [-a] [name ...] | geom status [-ags] [name ...]\n\
         \x20 geom topology | geom confxml | geom dmesg\n\
         \x20 geom copy [-b BLOCKSIZE] SOURCE DEST      (a provider or a file, each)\n\
         \n\
         NBD (real block clients: qemu-io, qemu-img, nbd-client):\n\
         \x20 geom nbd export [-r] [-n NAME] PROVIDER\n\
         \x20 geom nbd unexport NAME\n\
         \x20 geom nbd list\n\
         \n\
         Classes (as geom(8) and their class utilities):\n",
    );
    for line in classes::usage() {
        s.push_str("  ");
        s.push_str(&line);
        s.push('\n');
    }
    s
}
