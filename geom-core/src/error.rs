//! Errors are FreeBSD errno values, in one type that turns into `bio_error` or `gctl_error`.

use core::fmt;
use core::num::NonZeroI32;

use crate::sys::errno;

/// A FreeBSD errno value (never 0). What a failed bio, access change or request carries.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(NonZeroI32);

/// `Result` with [`Errno`] as the error.
pub type Result<T, E = Errno> = core::result::Result<T, E>;

macro_rules! errno_consts {
    ($($name:ident),* $(,)?) => {
        impl Errno {
            $(
                #[doc = concat!("`", stringify!($name), "`.")]
                pub const $name: Errno = match NonZeroI32::new(errno::$name) {
                    Some(v) => Errno(v),
                    None => panic!("errno values are non-zero"),
                };
            )*
        }
    };
}

errno_consts!(
    EPERM,
    ENOENT,
    EINTR,
    EIO,
    ENXIO,
    EDEADLK,
    ENOMEM,
    EACCES,
    EFAULT,
    EBUSY,
    EEXIST,
    ENODEV,
    EINVAL,
    EFBIG,
    ENOSPC,
    EROFS,
    ERANGE,
    EAGAIN,
    EINPROGRESS,
    EOPNOTSUPP,
    ETIMEDOUT,
    ELOOP,
    ENAMETOOLONG,
    ENOSYS,
    EOVERFLOW,
    ECANCELED,
    ENOATTR,
    EINTEGRITY,
);

impl Errno {
    /// The errno for a raw value, `None` for 0.
    pub const fn new(v: i32) -> Option<Errno> {
        match NonZeroI32::new(v) {
            Some(v) => Some(Errno(v)),
            None => None,
        }
    }

    /// The raw value.
    pub const fn get(self) -> i32 {
        self.0.get()
    }

    /// 0 → `Ok(())`, anything else → `Err`.
    pub const fn result(v: i32) -> Result<()> {
        match Errno::new(v) {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }

    /// The raw value of a result: 0 for `Ok`.
    pub const fn raw(r: Result<()>) -> i32 {
        match r {
            Ok(()) => 0,
            Err(e) => e.get(),
        }
    }

    /// FreeBSD's `strerror(3)` text ("Device busy").
    pub fn strerror(self) -> &'static str {
        errno::strerror(self.get())
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", errno::name(self.get()), self.get())
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
