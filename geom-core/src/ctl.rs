//! geom(8) requests as a class's ctlreq sees them: named parameters in, an error message
//! out.

use alloc::string::String;
use core::ffi::{c_int, CStr};
use core::fmt;

use crate::sys::{self, gctl_req};

/// A geom(8) request: parameters as geom(8) sends them ("nargs" and "arg0".. for positional
/// arguments, options by their long names), and the error to report back.
///
/// The kernel's ctlreq sees the kernel's copy of the request ([`Gctl::from_raw`]); a class
/// library's userland verb sees the parameters geom(8) collected ([`Gctl::from_params`]).
/// The verb parsers derived from a class's [`Verbs`](crate::Verbs) read both the same way.
pub struct Gctl<'a> {
    repr: Repr<'a>,
}

enum Repr<'a> {
    /// A kernel request: live for `'a`, used under the topology lock.
    Kernel(*mut gctl_req, core::marker::PhantomData<&'a mut gctl_req>),
    /// A userland request: its parameters, and the first error recorded.
    User { params: &'a [Param<'a>], error: Option<String> },
}

/// One parameter of a request built in userland (geom(8)'s `gctl_ro_param`): its name and
/// its bytes (a string parameter includes its NUL).
#[derive(Clone, Copy, Debug)]
pub struct Param<'a> {
    /// The name.
    pub name: &'a CStr,
    /// The value.
    pub value: &'a [u8],
}

impl<'a> Gctl<'a> {
    /// # Safety
    /// `req` is a live request for the wrapper's lifetime, used under the topology lock.
    pub unsafe fn from_raw(req: *mut gctl_req) -> Self {
        Gctl { repr: Repr::Kernel(req, core::marker::PhantomData) }
    }

    /// A request built in userland from its parameters (what geom(8) collected with
    /// `gctl_ro_param`, in order). Errors are kept here, the first one winning, for
    /// [`Gctl::take_error`]. (A test in `classes/stripe/tests/userland_request.rs` parses a `label`
    /// request this way.)
    pub fn from_params(params: &'a [Param<'a>]) -> Self {
        Gctl { repr: Repr::User { params, error: None } }
    }

    /// A parameter's raw bytes, if present.
    pub fn param(&self, name: &CStr) -> Option<&[u8]> {
        match &self.repr {
            Repr::Kernel(req, _) => {
                let mut len: c_int = 0;
                // SAFETY: live request (invariant); gctl_get_param does not record errors, and
                // a non-NULL value holds len bytes that live as long as the request.
                unsafe {
                    let p = sys::gctl_get_param(*req, name.as_ptr(), &mut len);
                    (!p.is_null() && len >= 0).then(|| core::slice::from_raw_parts(p.cast::<u8>(), len as usize))
                }
            }
            Repr::User { params, .. } => params.iter().find(|p| p.name == name).map(|p| p.value),
        }
    }

    /// A parameter of exactly `N` bytes, if present with that size.
    fn fixed<const N: usize>(&self, name: &CStr) -> Option<[u8; N]> {
        self.param(name).and_then(|v| <[u8; N]>::try_from(v).ok())
    }

    /// An `int` parameter (geom(8)'s BOOL options and "nargs").
    pub fn int(&self, name: &CStr) -> Option<i32> {
        self.fixed::<4>(name).map(i32::from_ne_bytes)
    }

    /// An `intmax_t` parameter (geom(8)'s NUMBER options).
    pub fn intmax(&self, name: &CStr) -> Option<i64> {
        self.fixed::<8>(name).map(i64::from_ne_bytes)
    }

    /// A string parameter: present and NUL-terminated (what follows an earlier NUL is
    /// ignored, as `gctl_get_asciiparam` does).
    pub fn ascii(&self, name: &CStr) -> Option<&CStr> {
        match &self.repr {
            // SAFETY: live request; a non-NULL result is NUL-terminated and lives with it.
            Repr::Kernel(req, _) => unsafe {
                let p = sys::gctl_get_asciiparam(*req, name.as_ptr());
                (!p.is_null()).then(|| CStr::from_ptr(p))
            },
            Repr::User { .. } => {
                let v = self.param(name)?;
                if v.last() != Some(&0) {
                    return None;
                }
                CStr::from_bytes_until_nul(v).ok()
            }
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
        match &mut self.repr {
            Repr::Kernel(req, _) => {
                // Formatted on the stack (a message longer than the buffer is cut), with
                // room for the NUL; "%.*s" stops at any NUL inside.
                let mut line = Truncating(heapless::String::<ERROR_MAX>::new());
                let _ = fmt::write(&mut line, msg);
                let line = line.0;
                let len = line.len() as c_int;
                // SAFETY: live request; "%.*s" reads len bytes of line.
                unsafe { sys::gctl_error(*req, c"%.*s".as_ptr(), len, line.as_ptr()) };
            }
            Repr::User { error, .. } => {
                if error.is_none() {
                    let mut s = String::new();
                    let _ = fmt::write(&mut s, msg);
                    *error = Some(s);
                }
            }
        }
    }

    /// Take a userland request's error message, if one was recorded (a kernel request's
    /// error goes back to geom(8) with the request itself: `None`).
    pub fn take_error(&mut self) -> Option<String> {
        match &mut self.repr {
            Repr::Kernel(..) => None,
            Repr::User { error, .. } => error.take(),
        }
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
        match &self.repr {
            // SAFETY: live request (invariant).
            Repr::Kernel(req, _) => unsafe { (**req).nerror != 0 },
            Repr::User { error, .. } => error.is_some(),
        }
    }
}

/// The longest error message a kernel request records (FreeBSD's are one short sentence).
const ERROR_MAX: usize = 256;

/// A stack string that keeps what fits and drops the rest.
struct Truncating<const N: usize>(heapless::String<N>);

impl<const N: usize> fmt::Write for Truncating<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            if self.0.push(c).is_err() {
                break;
            }
        }
        Ok(())
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
