//! [`UserEnv`] on FreeBSD: providers through `/dev`, with libgeom's helpers, as FreeBSD's
//! own class libraries reach them (`g_metadata_store` and friends open, act and close).

use core::ffi::CStr;

use geom_core::userland::UserEnv;
use geom_core::{Errno, Result};

use super::ffi;

/// The process's view of the providers.
pub struct DevEnv;

/// The last system call's error.
fn last_error() -> Errno {
    Errno::new(ffi::errno()).unwrap_or(Errno::EIO)
}

/// An open provider, closed when dropped.
struct Dev(core::ffi::c_int);

impl Dev {
    fn open(name: &CStr, write: bool) -> Result<Dev> {
        // SAFETY: name is a C string; g_open only reads it.
        let fd = unsafe { ffi::g_open(name.as_ptr(), i32::from(write)) };
        if fd < 0 {
            Err(last_error())
        } else {
            Ok(Dev(fd))
        }
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        // SAFETY: the descriptor is ours and open.
        unsafe { ffi::g_close(self.0) };
    }
}

impl UserEnv for DevEnv {
    fn mediasize(&mut self, name: &CStr) -> Result<i64> {
        let dev = Dev::open(name, false)?;
        // SAFETY: an open descriptor.
        let size = unsafe { ffi::g_mediasize(dev.0) };
        if size < 0 {
            Err(last_error())
        } else {
            Ok(size)
        }
    }

    fn sectorsize(&mut self, name: &CStr) -> Result<u32> {
        let dev = Dev::open(name, false)?;
        // SAFETY: an open descriptor.
        let size = unsafe { ffi::g_sectorsize(dev.0) };
        u32::try_from(size).map_err(|_| last_error())
    }

    fn read(&mut self, name: &CStr, offset: i64, buf: &mut [u8]) -> Result<()> {
        let dev = Dev::open(name, false)?;
        // SAFETY: buf is writable for its length.
        let n = unsafe { ffi::pread(dev.0, buf.as_mut_ptr().cast(), buf.len(), offset) };
        match usize::try_from(n) {
            Ok(n) if n == buf.len() => Ok(()),
            Ok(_) => Err(Errno::EIO),
            Err(_) => Err(last_error()),
        }
    }

    fn write(&mut self, name: &CStr, offset: i64, data: &[u8]) -> Result<()> {
        let dev = Dev::open(name, true)?;
        // SAFETY: data is readable for its length.
        let n = unsafe { ffi::pwrite(dev.0, data.as_ptr().cast(), data.len(), offset) };
        match usize::try_from(n) {
            Ok(n) if n == data.len() => {}
            Ok(_) => return Err(Errno::EIO),
            Err(_) => return Err(last_error()),
        }
        // SAFETY: an open descriptor. g_metadata_store ignores a failed flush (a device without
        // a write cache refuses DIOCGFLUSH), and so do we.
        unsafe { ffi::g_flush(dev.0) };
        Ok(())
    }

    fn random(&mut self) -> u32 {
        // SAFETY: arc4random(3) has no preconditions.
        unsafe { ffi::arc4random() }
    }
}
