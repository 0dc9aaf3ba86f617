//! `cargo xtask kmod`: every class crate into `target/kmod/geom_<class>.ko` (the kernel module)
//! and `target/kmod/geom_<class>.so` (the library FreeBSD's geom(8) loads), each checked
//! offline before it is written.
//!
//! The steps, for each class (one cargo run per class and artefact; `core` and `alloc` are
//! built once per target and reused):
//!
//! 1. `cargo rustc --crate-type staticlib` for `x86_64-unknown-none` with `-Zbuild-std`
//!    (the prebuilt `core` is position-independent, and a kernel module must not be), the
//!    `kmod` profile (`panic=abort`, fat LTO, one codegen unit, `opt-level=z`) and the kernel
//!    code generation flags of `.cargo/config.toml`. `RUSTC_BOOTSTRAP=1` admits the one
//!    unstable flag on a stable toolchain.
//! 2. `rust-lld -r` with `kmod-glue/kmod.lds`: a relocatable object, as FreeBSD's
//!    `ld -r -T ldscript.kmod.amd64` makes; `--gc-sections` keeps what the linker sets reach.
//! 3. `objcopy`: the debug information to `geom_<class>.ko.debug`, then strip it, localise
//!    every symbol (kmod.mk's `EXPORT_SYMS=NO`) and drop the ones no relocation needs.
//! 4. The checker ([`crate::check`]) on the result; any finding fails the build.
//!
//! The library is the same crate built for `x86_64-unknown-freebsd` with kmod-glue's `geom-lib`
//! feature, linked `-shared` exporting only `lib_version`, `version` and `class_commands`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::check;

/// The kernel target.
pub const KERNEL_TARGET: &str = "x86_64-unknown-none";
/// The userland target of geom(8) libraries.
pub const USER_TARGET: &str = "x86_64-unknown-freebsd";
/// Largest module we accept.
const MAX_KO: u64 = 128 * 1024;

/// A class crate that builds into a module (it has `[package.metadata.geom-rs]`).
#[derive(Clone, Debug)]
pub struct ClassCrate {
    /// The cargo package.
    pub package: String,
    /// The GEOM class name (`STRIPE`).
    pub class: String,
    /// The `g_class` methods that must be set.
    pub methods: Vec<String>,
    /// The class's version (`GeomClass::VERSION`, 0 for none): the library's `version`.
    pub version: u32,
}

impl ClassCrate {
    /// `stripe`.
    pub fn lower(&self) -> String {
        self.class.to_lowercase()
    }

    /// `geom_stripe`: the kld name and the file name.
    pub fn kld(&self) -> String {
        format!("geom_{}", self.lower())
    }

    /// `g_stripe`: the module name.
    pub fn module(&self) -> String {
        format!("g_{}", self.lower())
    }

    /// The staticlib cargo writes (`libgeom_class_stripe.a`).
    fn archive(&self, target_dir: &Path, target: &str) -> PathBuf {
        target_dir.join(target).join("kmod").join(format!("lib{}.a", self.package.replace('-', "_")))
    }
}

/// A FreeBSD release and the values a module for it carries.
#[derive(Clone, Copy, Debug)]
pub struct Release(pub geom_core::sys::Release);

impl Release {
    /// 14, 15 or 16.
    pub fn parse(s: &str) -> Option<Release> {
        use geom_core::sys::Release as R;
        match s {
            "14" => Some(Release(R::FreeBsd14)),
            "15" => Some(Release(R::FreeBsd15)),
            "16" => Some(Release(R::FreeBsd16)),
            _ => None,
        }
    }

    fn feature(self) -> Option<&'static str> {
        use geom_core::sys::Release as R;
        match self.0 {
            R::FreeBsd14 => Some("geom-core/freebsd-14"),
            R::FreeBsd15 => None,
            R::FreeBsd16 => Some("geom-core/freebsd-16"),
        }
    }
}

/// Where things are.
pub struct Env {
    /// The workspace root.
    pub root: PathBuf,
    /// cargo's target directory.
    pub target_dir: PathBuf,
    /// The toolchain's `rust-lld`.
    pub lld: PathBuf,
    /// The class crates (read from the same `cargo metadata`).
    classes: Vec<ClassCrate>,
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    match cmd.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("{shown} failed ({s})")),
        Err(e) => Err(format!("cannot run {shown}: {e}")),
    }
}

fn output(cmd: &mut Command) -> Result<String, String> {
    let shown = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| format!("cannot run {shown}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{shown} failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    String::from_utf8(out.stdout).map_err(|_| format!("{shown}: output is not UTF-8"))
}

/// cargo, as the one that runs xtask.
pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

impl Env {
    /// Find the workspace, the target directory and the toolchain's linker.
    pub fn discover() -> Result<Env, String> {
        let meta = output(cargo().args(["metadata", "--no-deps", "--format-version", "1"]))?;
        let meta: serde_json::Value = serde_json::from_str(&meta).map_err(|e| format!("cargo metadata: {e}"))?;
        let path = |k: &str| meta[k].as_str().map(PathBuf::from).ok_or(format!("cargo metadata has no {k}"));
        let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
        let sysroot = output(Command::new(&rustc).args(["--print", "sysroot"]))?;
        let host = output(Command::new(&rustc).arg("-vV"))?
            .lines()
            .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
            .ok_or("rustc -vV names no host")?;
        let lld = Path::new(sysroot.trim()).join("lib/rustlib").join(host).join("bin/rust-lld");
        if !lld.exists() {
            return Err(format!("{} is missing (the toolchain's rust-lld links modules)", lld.display()));
        }
        let classes = class_crates(&meta);
        Ok(Env { root: path("workspace_root")?, target_dir: path("target_directory")?, lld, classes })
    }

    /// The class crates of the workspace, by their `[package.metadata.geom-rs]`.
    pub fn classes(&self) -> &[ClassCrate] {
        &self.classes
    }

    /// The output directory, `target/kmod`.
    pub fn out_dir(&self) -> PathBuf {
        self.target_dir.join("kmod")
    }

    /// `cargo rustc` of one class as a staticlib for `target`.
    fn compile(&self, c: &ClassCrate, target: &str, release: Release, extra_features: &[&str]) -> Result<(), String> {
        let mut cmd = cargo();
        cmd.current_dir(&self.root)
            .env("RUSTC_BOOTSTRAP", "1")
            .args(["rustc", "--quiet", "--package", &c.package, "--lib", "--crate-type", "staticlib"])
            .args(["--target", target, "--profile", "kmod", "-Zbuild-std=core,alloc"])
            .args(["--config", "profile.kmod.package.compiler_builtins.codegen-units=10000"]);
        if target == KERNEL_TARGET {
            // `Debug` formatting compiles to nothing in the kernel (about 5 KiB of a module):
            // no kernel message of ours uses it, and a panic still prints its message and
            // location. Appended to the kernel flags of .cargo/config.toml.
            cmd.args(["--config", "target.x86_64-unknown-none.rustflags=[\"-Zfmt-debug=none\"]"]);
        }
        let features: Vec<&str> = release.feature().into_iter().chain(extra_features.iter().copied()).collect();
        if !features.is_empty() {
            cmd.args(["--features", &features.join(",")]);
        }
        // One text section per module: calls between the module's own functions are resolved
        // when it is compiled instead of becoming relocations the kernel applies at load.
        cmd.args(["--", "-Zfunction-sections=no"]);
        run(&mut cmd)
    }

    /// Build, link and check `geom_<class>.ko`; returns its path.
    pub fn build_ko(&self, c: &ClassCrate, release: Release, allowed: &HashSet<String>) -> Result<PathBuf, String> {
        self.compile(c, KERNEL_TARGET, release, &[])?;
        let out = self.out_dir();
        std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
        let full = out.join(format!("{}.ko.full", c.kld()));
        let ko = out.join(format!("{}.ko", c.kld()));
        let debug = out.join(format!("{}.ko.debug", c.kld()));
        run(Command::new(&self.lld)
            .args(["-flavor", "gnu", "-m", "elf_x86_64_fbsd", "-r", "--gc-sections", "--build-id=sha1", "-T"])
            .arg(self.root.join("kmod-glue/kmod.lds"))
            .arg("-o")
            .arg(&full)
            .arg("--whole-archive")
            .arg(c.archive(&self.target_dir, KERNEL_TARGET)))?;
        run(Command::new("objcopy").arg("--only-keep-debug").arg(&full).arg(&debug))?;
        run(Command::new("objcopy")
            .args(["--strip-debug", "--strip-unneeded", "--wildcard", "--localize-symbol=*"])
            .args(["-R", ".llvmbc", "-R", ".llvmcmd", "-R", ".comment", "-R", ".note.GNU-stack"])
            .arg(format!("--add-gnu-debuglink={}", debug.display()))
            .arg(&full)
            .arg(&ko))?;
        let _ = std::fs::remove_file(&full);
        let bytes = std::fs::read(&ko).map_err(|e| format!("{}: {e}", ko.display()))?;
        let r = release.0;
        let methods: Vec<&str> = c.methods.iter().map(String::as_str).collect();
        let expect = check::KoExpect {
            kld: &c.kld(),
            module: &c.module(),
            module_version: 0,
            kernel_depend: (r.freebsd_version(), r.freebsd_version(), r.max_kernel_version()),
            class_name: &c.class,
            release: r.major(),
            methods: &methods,
            allowed_undefined: allowed,
            exports: &[],
            max_size: MAX_KO,
            m_version: r.m_version(),
        };
        match check::check_ko(&bytes, &expect) {
            Ok(report) => {
                println!("{}: {} bytes, FreeBSD {}", ko.display(), bytes.len(), r.major());
                print!("{report}");
                Ok(ko)
            }
            Err(findings) => Err(findings_text(&ko, &findings)),
        }
    }

    /// Build, link and check `geom_<class>.so`; returns its path.
    pub fn build_lib(&self, c: &ClassCrate, release: Release, allowed: &HashSet<String>) -> Result<PathBuf, String> {
        self.compile(c, USER_TARGET, release, &["kmod-glue/geom-lib"])?;
        let out = self.out_dir();
        let map = out.join("geom_lib.map");
        std::fs::write(&map, "{\n  global: lib_version; version; class_commands;\n  local: *;\n};\n")
            .map_err(|e| format!("{}: {e}", map.display()))?;
        let full = out.join(format!("{}.so.full", c.kld()));
        let so = out.join(format!("{}.so", c.kld()));
        run(Command::new(&self.lld)
            .args(["-flavor", "gnu", "-m", "elf_x86_64_fbsd", "-shared", "--gc-sections", "--build-id=sha1"])
            .args(["-z", "relro", "-z", "now", "-z", "noexecstack"])
            .arg(format!("-soname={}.so", c.kld()))
            .arg(format!("--version-script={}", map.display()))
            .arg("-o")
            .arg(&full)
            .arg("--whole-archive")
            .arg(c.archive(&self.target_dir, USER_TARGET)))?;
        run(Command::new("objcopy").args(["--strip-unneeded", "-R", ".comment"]).arg(&full).arg(&so))?;
        let _ = std::fs::remove_file(&full);
        let bytes = std::fs::read(&so).map_err(|e| format!("{}: {e}", so.display()))?;
        let expect = check::LibExpect { class_version: c.version, allowed_undefined: allowed };
        match check::check_geom_lib(&bytes, &expect) {
            Ok(report) => {
                println!("{}: {} bytes", so.display(), bytes.len());
                print!("{report}");
                Ok(so)
            }
            Err(findings) => Err(findings_text(&so, &findings)),
        }
    }
}

/// The class crates in `cargo metadata`'s output, sorted by class name.
fn class_crates(meta: &serde_json::Value) -> Vec<ClassCrate> {
    let mut out = Vec::new();
    for p in meta["packages"].as_array().into_iter().flatten() {
        let m = &p["metadata"]["geom-rs"];
        let (Some(name), Some(class)) = (p["name"].as_str(), m["class"].as_str()) else { continue };
        let methods = m["methods"].as_array().into_iter().flatten().filter_map(|v| v.as_str().map(str::to_owned));
        let version = m["version"].as_u64().and_then(|v| u32::try_from(v).ok()).unwrap_or(0);
        out.push(ClassCrate { package: name.to_owned(), class: class.to_owned(), methods: methods.collect(), version });
    }
    out.sort_by(|a, b| a.class.cmp(&b.class));
    out
}

fn findings_text(path: &Path, findings: &[check::Finding]) -> String {
    let mut s = format!("{} fails the offline check:", path.display());
    for f in findings {
        s.push_str(&format!("\n  {f}"));
    }
    s
}
