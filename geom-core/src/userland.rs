//! The userland half of a class: the verbs geom(8)'s class library runs itself instead of
//! sending them to the kernel (`gc_func` in `struct g_command`), such as `gstripe label`,
//! `clear` and `dump`.
//!
//! FreeBSD's class libraries write and read labels through `/dev/<provider>` with libgeom's
//! `g_metadata_store`, `g_metadata_clear` and `g_metadata_read`; the kernel notices the new
//! label when the writer closes the provider (GEOM retastes it) and assembles the device. A
//! Rust class writes the same verbs once, in [`GeomClass::userland`],
//! against a [`Userland`]: the providers by name (through whatever [`UserEnv`] the runtime
//! gives: the host runtime's user handles, or a FreeBSD process's `/dev` nodes), standard
//! output and error, and geom(8)'s error slot (the first error is the one reported).
//!
//! ```
//! use alloc::string::String;
//! # extern crate alloc;
//! use geom_core::userland::{UserEnv, Userland};
//! use geom_core::{Errno, Result};
//! use core::ffi::CStr;
//!
//! /// One 4 KiB disk in memory, named "md0".
//! struct OneDisk(alloc::vec::Vec<u8>);
//!
//! impl UserEnv for OneDisk {
//!     fn mediasize(&mut self, name: &CStr) -> Result<i64> {
//!         if name == c"md0" { Ok(self.0.len() as i64) } else { Err(Errno::ENOENT) }
//!     }
//!     fn sectorsize(&mut self, _name: &CStr) -> Result<u32> {
//!         Ok(512)
//!     }
//!     fn read(&mut self, _name: &CStr, offset: i64, buf: &mut [u8]) -> Result<()> {
//!         buf.copy_from_slice(&self.0[offset as usize..][..buf.len()]);
//!         Ok(())
//!     }
//!     fn write(&mut self, _name: &CStr, offset: i64, data: &[u8]) -> Result<()> {
//!         self.0[offset as usize..][..data.len()].copy_from_slice(data);
//!         Ok(())
//!     }
//!     fn random(&mut self) -> u32 {
//!         4 // chosen by a fair dice roll
//!     }
//! }
//!
//! let mut disk = OneDisk(alloc::vec![0; 4096]);
//! let (mut out, mut err) = (String::new(), String::new());
//! let mut u = Userland::new(&mut disk, &mut out, &mut err);
//! u.metadata_store(c"md0", b"GEOM::TOY\0\0\0\0\0\0\0\x01\0\0\0").unwrap();
//! assert_eq!(u.metadata_read(c"md0", Some(b"GEOM::TOY")).unwrap()[16], 1);
//! assert_eq!(u.metadata_clear(c"md0", Some(b"GEOM::OTHER")), Err(Errno::EINVAL));
//! u.metadata_clear(c"md0", Some(b"GEOM::TOY")).unwrap();
//! assert_eq!(u.metadata_read(c"md0", Some(b"GEOM::TOY")), Err(Errno::EINVAL));
//! assert!(u.take_error().is_none());
//! ```

use alloc::ffi::CString;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::ffi::CStr;
use core::fmt::{self, Write};

use crate::ctl::{Gctl, Param};
use crate::error::{Errno, Result};
use crate::metadata::{self, magic_matches, MetaError, Metadata};
use crate::{GeomClass, Verbs};

/// What a userland verb reaches: the providers by name, as a FreeBSD process reaches them
/// through `/dev/<name>` (each call opens, acts and closes, as libgeom's helpers do), and
/// the process's random numbers.
pub trait UserEnv {
    /// The provider's size in bytes (`DIOCGMEDIASIZE`).
    fn mediasize(&mut self, name: &CStr) -> Result<i64>;
    /// Its sector size (`DIOCGSECTORSIZE`).
    fn sectorsize(&mut self, name: &CStr) -> Result<u32>;
    /// Read `buf.len()` bytes at `offset` (a whole number of sectors).
    fn read(&mut self, name: &CStr, offset: i64, buf: &mut [u8]) -> Result<()>;
    /// Write `data` at `offset` (a whole number of sectors) and flush the device's write
    /// cache (`pwrite` then `DIOCGFLUSH` on one open, as `g_metadata_store` does).
    fn write(&mut self, name: &CStr, offset: i64, data: &[u8]) -> Result<()>;
    /// 32 random bits (`arc4random(3)`), for new device ids.
    fn random(&mut self) -> u32;
}

/// What a userland verb works with: its environment (disks, randomness), standard output
/// and error, and the request's
/// error (the first one set is kept, like libgeom's `gctl_error`).
pub struct Userland<'a> {
    env: &'a mut dyn UserEnv,
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
    error: Option<String>,
}

impl<'a> Userland<'a> {
    /// A userland context over `env`, printing to `out` and `err`.
    pub fn new(env: &'a mut dyn UserEnv, out: &'a mut dyn Write, err: &'a mut dyn Write) -> Self {
        Userland { env, out, err, error: None }
    }

    /// Print to standard output (`printf`).
    pub fn print(&mut self, args: fmt::Arguments<'_>) {
        let _ = self.out.write_fmt(args);
    }

    /// Print to standard error (`fprintf(stderr, ...)`).
    pub fn warn(&mut self, args: fmt::Arguments<'_>) {
        let _ = self.err.write_fmt(args);
    }

    /// Fail the request with this message, unless it already failed (`gctl_error`).
    pub fn error(&mut self, args: fmt::Arguments<'_>) {
        if self.error.is_none() {
            let mut s = String::new();
            let _ = s.write_fmt(args);
            self.error = Some(s);
        }
    }

    /// One item of a many-item verb failed: say why on standard error (`message` and a
    /// newline) and fail the request with "Not fully done.", as FreeBSD's class libraries do,
    /// while the verb goes on with the next item.
    pub fn not_fully_done(&mut self, message: fmt::Arguments<'_>) {
        self.warn(format_args!("{message}\n"));
        self.error(format_args!("Not fully done."));
    }

    /// Has the request failed?
    pub fn has_error(&self) -> bool {
        self.error.is_some()
    }

    /// The request's error, taken out (what geom(8) prints before exiting with 1).
    pub fn take_error(&mut self) -> Option<String> {
        self.error.take()
    }

    /// The environment.
    pub fn env(&mut self) -> &mut dyn UserEnv {
        self.env
    }

    /// `arc4random(3)`.
    pub fn random(&mut self) -> u32 {
        self.env.random()
    }

    /// `g_get_mediasize`.
    pub fn mediasize(&mut self, name: &CStr) -> Result<i64> {
        self.env.mediasize(name)
    }

    /// `g_get_sectorsize`.
    pub fn sectorsize(&mut self, name: &CStr) -> Result<u32> {
        self.env.sectorsize(name)
    }

    /// Where `name`'s last sector starts and how long it is.
    fn last_sector(&mut self, name: &CStr) -> Result<(i64, usize)> {
        let size = self.env.mediasize(name)?;
        let ss = self.env.sectorsize(name)?;
        if size <= 0 || ss == 0 || i64::from(ss) > size {
            return Err(Errno::EINVAL);
        }
        Ok((size - i64::from(ss), ss as usize))
    }

    /// `g_metadata_read`: the whole last sector of `name`; with a `magic`, `EINVAL` unless
    /// the sector starts with it (compared as `strcmp` compares the 16-byte field).
    pub fn metadata_read(&mut self, name: &CStr, magic: Option<&[u8]>) -> Result<Vec<u8>> {
        let (off, ss) = self.last_sector(name)?;
        let mut sector = vec![0u8; ss];
        self.env.read(name, off, &mut sector)?;
        if let Some(magic) = magic {
            if !magic_matches(&sector, magic) {
                return Err(Errno::EINVAL);
            }
        }
        Ok(sector)
    }

    /// `g_metadata_store`: write `md` at the start of `name`'s last sector (the rest zeroed)
    /// and flush. `ENOSPC` if `md` is longer than a sector.
    pub fn metadata_store(&mut self, name: &CStr, md: &[u8]) -> Result<()> {
        let (off, ss) = self.last_sector(name)?;
        if md.len() > ss {
            return Err(Errno::ENOSPC);
        }
        let mut sector = vec![0u8; ss];
        sector[..md.len()].copy_from_slice(md);
        self.env.write(name, off, &sector)
    }

    /// `g_metadata_clear`: zero `name`'s last sector and flush; with a `magic`, only if the
    /// sector holds it (`EINVAL` otherwise, nothing written).
    pub fn metadata_clear(&mut self, name: &CStr, magic: Option<&[u8]>) -> Result<()> {
        let (off, ss) = self.last_sector(name)?;
        if let Some(magic) = magic {
            let mut sector = vec![0u8; ss];
            self.env.read(name, off, &mut sector)?;
            if !magic_matches(&sector, magic) {
                return Err(Errno::EINVAL);
            }
        }
        self.env.write(name, off, &vec![0u8; ss])
    }

    /// Encode `md` and store it in `name`'s last sector ([`Userland::metadata_store`]).
    pub fn store<M: Metadata>(&mut self, name: &CStr, md: &M) -> core::result::Result<(), MetaError> {
        let (_, ss) = self.last_sector(name).map_err(MetaError::Io)?;
        let mut sector = vec![0u8; ss];
        metadata::encode(md, &mut sector)?;
        self.metadata_store(name, &sector).map_err(MetaError::Io)
    }

    /// Read and decode `M` from `name`'s last sector.
    pub fn load<M: Metadata>(&mut self, name: &CStr) -> core::result::Result<M, MetaError> {
        let sector = self.metadata_read(name, None).map_err(MetaError::Io)?;
        metadata::decode(&sector)
    }
}

/// Run one userland verb of class `C` the way its geom(8) class library does (`gc_func`):
/// read the verb's name from the request's `"verb"`, parse its options and arguments from
/// `params` as the class declares them, and call [`GeomClass::userland`]. `verbose` is
/// geom(8)'s `G_FLAG_VERBOSE` (the user gave `-v`); the verb sees it as its `verbose` flag.
/// Returns the request's error (what geom(8) prints before exiting with 1), if any.
///
/// FreeBSD's `geom_<class>.so` (made by kmod-glue) and the host's `geom` command both run
/// userland verbs through here.
pub fn run_local<C: GeomClass>(
    params: &[Param<'_>],
    verbose: bool,
    env: &mut dyn UserEnv,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Option<String> {
    let flag = i32::from(verbose).to_ne_bytes();
    let mut all = Vec::new();
    if all.try_reserve(params.len() + 1).is_err() {
        return Some(String::from("Out of memory."));
    }
    all.extend(params.iter().copied().filter(|p| p.name != c"verbose"));
    all.push(Param { name: c"verbose", value: &flag });
    let mut req = Gctl::from_params(&all);
    let Some(verb) = req.ascii(c"verb").map(CString::from) else {
        return Some(String::from("No 'verb' argument."));
    };
    if !C::Verb::spec(verb.to_bytes()).is_some_and(|v| v.local) {
        return Some(alloc::format!("Unknown command: {}.", verb.to_string_lossy()));
    }
    let Some(parsed) = C::Verb::from_gctl(&mut req, &verb) else {
        return Some(req.take_error().unwrap_or_else(|| String::from("Invalid request.")));
    };
    let mut u = Userland::new(env, out, err);
    C::userland(&mut u, parsed);
    u.take_error()
}
