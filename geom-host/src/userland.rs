//! The userland side of the host runtime: what a class library's verbs (`gstripe label`,
//! `clear`, `dump`) reach when they run here. Providers are opened by name through user
//! handles, the way a FreeBSD process opens `/dev/<name>`: each call opens, acts, and
//! closes, so closing after a write makes GEOM retaste the provider, as on FreeBSD.

use std::ffi::CStr;

use geom_core::userland::UserEnv;
use geom_core::verbs::strip_dev;
use geom_core::{Errno, Result};

use crate::Runtime;

/// A [`UserEnv`] over a runtime's providers.
pub struct HostEnv<'a> {
    rt: &'a Runtime,
}

impl<'a> HostEnv<'a> {
    /// The providers of `rt`, by name.
    pub fn new(rt: &'a Runtime) -> Self {
        HostEnv { rt }
    }
}

fn errno(e: i32) -> Errno {
    Errno::new(e).unwrap_or(Errno::EIO)
}

/// A provider name as a process names it: `/dev/md0` or `md0`.
fn dev_name(name: &CStr) -> Result<&str> {
    strip_dev(name).to_str().map_err(|_| Errno::ENOENT)
}

impl UserEnv for HostEnv<'_> {
    fn mediasize(&mut self, name: &CStr) -> Result<i64> {
        let pp = self.rt.provider(dev_name(name)?).ok_or(Errno::ENOENT)?;
        Ok(pp.mediasize)
    }

    fn sectorsize(&mut self, name: &CStr) -> Result<u32> {
        let pp = self.rt.provider(dev_name(name)?).ok_or(Errno::ENOENT)?;
        Ok(pp.sectorsize)
    }

    fn read(&mut self, name: &CStr, offset: i64, buf: &mut [u8]) -> Result<()> {
        let h = self.rt.open(dev_name(name)?, 1, 0, 0).map_err(errno)?;
        let r = h.read(offset, buf.len());
        let closed = h.close();
        buf.copy_from_slice(&r.map_err(errno)?);
        closed.map_err(errno)
    }

    fn write(&mut self, name: &CStr, offset: i64, data: &[u8]) -> Result<()> {
        let h = self.rt.open(dev_name(name)?, 0, 1, 0).map_err(errno)?;
        let r = h.write(offset, data);
        // DIOCGFLUSH, whose result libgeom ignores.
        let _ = h.flush();
        let closed = h.close();
        r.map_err(errno)?;
        closed.map_err(errno)
    }

    fn random(&mut self) -> u32 {
        let _in_runtime = self.rt.enter();
        geom_core::arc4random()
    }
}
