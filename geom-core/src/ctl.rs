//! geom(8) requests as a class's ctlreq sees them: named parameters in, an error message
//! out.

use alloc::ffi::CString;
use alloc::string::String;
use core::ffi::{c_int, CStr};
use core::fmt;

use crate::sys::{self, gctl_req};

/// A geom(8) request: parameters as geom(8) sends them ("nargs" and "arg0".. for positional
/// arguments, options by their long names), and the error to report back.
pub struct Gctl<'a> {
    req: *mut gctl_req,
    _life: core::marker::PhantomData<&'a mut gctl_req>,
}

impl Gctl<'_> {
    /// # Safety
    /// `req` is a live request for the wrapper's lifetime, used under the topology lock.
    pub unsafe fn from_raw(req: *mut gctl_req) -> Self {
        Gctl { req, _life: core::marker::PhantomData }
    }

    /// A parameter's raw bytes, if present.
    pub fn param(&self, name: &CStr) -> Option<&[u8]> {
        let mut len: c_int = 0;
        // SAFETY: live request (invariant); gctl_get_param does not record errors, and a
        // non-NULL value holds len bytes that live as long as the request.
        unsafe {
            let p = sys::gctl_get_param(self.req, name.as_ptr(), &mut len);
            (!p.is_null() && len >= 0).then(|| core::slice::from_raw_parts(p.cast::<u8>(), len as usize))
        }
    }

    /// A parameter of exactly `N` bytes, if present with that size.
    fn fixed<const N: usize>(&self, name: &CStr) -> Option<[u8; N]> {
        let mut len: c_int = 0;
        // SAFETY: live request (invariant); gctl_get_param does not record errors.
        let p = unsafe { sys::gctl_get_param(self.req, name.as_ptr(), &mut len) };
        if p.is_null() || len as usize != N {
            return None;
        }
        let mut out = [0u8; N];
        // SAFETY: the parameter holds N bytes (checked).
        unsafe { core::ptr::copy_nonoverlapping(p.cast::<u8>(), out.as_mut_ptr(), N) };
        Some(out)
    }

    /// An `int` parameter (geom(8)'s BOOL options and "nargs").
    pub fn int(&self, name: &CStr) -> Option<i32> {
        self.fixed::<4>(name).map(i32::from_ne_bytes)
    }

    /// An `intmax_t` parameter (geom(8)'s NUMBER options).
    pub fn intmax(&self, name: &CStr) -> Option<i64> {
        self.fixed::<8>(name).map(i64::from_ne_bytes)
    }

    /// A string parameter.
    pub fn ascii(&self, name: &CStr) -> Option<&CStr> {
        // SAFETY: live request; a non-NULL result is NUL-terminated and lives with it.
        unsafe {
            let p = sys::gctl_get_asciiparam(self.req, name.as_ptr());
            (!p.is_null()).then(|| CStr::from_ptr(p))
        }
    }

    /// A flag option: true when present and non-zero.
    pub fn flag(&self, name: &CStr) -> bool {
        self.int(name).is_some_and(|v| v != 0)
    }

    /// The number of positional arguments ("nargs"; geom(8) always sends it).
    pub fn nargs(&self) -> Option<u32> {
        self.int(c"nargs").and_then(|n| u32::try_from(n).ok())
    }

    /// Positional argument `i` (`"arg<i>"`).
    pub fn arg(&self, i: u32) -> Option<&CStr> {
        let mut name = [0u8; 16];
        let mut w = Cursor { buf: &mut name, len: 0 };
        let _ = fmt::write(&mut w, format_args!("arg{i}\0"));
        // SAFETY: the cursor wrote "arg<i>" and a NUL into the buffer.
        let name = unsafe { CStr::from_ptr(name.as_ptr().cast()) };
        self.ascii(name)
    }

    /// Record the request's error message (the first one wins, as `gctl_error`).
    pub fn error(&mut self, msg: fmt::Arguments<'_>) {
        let mut s = String::new();
        let _ = fmt::write(&mut s, msg);
        let c = CString::new(s.replace('\0', "")).unwrap_or_default();
        // SAFETY: live request; "%s" with a valid C string.
        unsafe { sys::gctl_error(self.req, c"%s".as_ptr(), c.as_ptr()) };
    }

    /// The provider named `name` (`/dev/` prefix allowed), or an error recorded as
    /// `gctl_get_provider` records it.
    pub fn provider(&mut self, topo: &crate::Topology, name: &CStr) -> Option<crate::Provider> {
        let pp = crate::Provider::by_name(topo, crate::verbs::strip_dev(name));
        if pp.is_none() {
            self.error(format_args!("Provider not found: \"{}\"", name.to_string_lossy()));
        }
        pp
    }

    /// Has an error been recorded?
    pub fn has_error(&self) -> bool {
        // SAFETY: live request (invariant).
        unsafe { (*self.req).nerror != 0 }
    }

    /// The raw request.
    pub fn as_ptr(&self) -> *mut gctl_req {
        self.req
    }
}

struct Cursor<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl fmt::Write for Cursor<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}
