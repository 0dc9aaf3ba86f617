//! FreeBSD's errno values (`sys/sys/errno.h`). They differ from Linux's: `geom-host` speaks
//! these values too and translates host I/O errors into them.
#![allow(missing_docs)]

use super::types::c_int;

pub const EPERM: c_int = 1;
pub const ENOENT: c_int = 2;
pub const ESRCH: c_int = 3;
pub const EINTR: c_int = 4;
pub const EIO: c_int = 5;
pub const ENXIO: c_int = 6;
pub const E2BIG: c_int = 7;
pub const ENOEXEC: c_int = 8;
pub const EBADF: c_int = 9;
pub const ECHILD: c_int = 10;
pub const EDEADLK: c_int = 11;
pub const ENOMEM: c_int = 12;
pub const EACCES: c_int = 13;
pub const EFAULT: c_int = 14;
pub const ENOTBLK: c_int = 15;
pub const EBUSY: c_int = 16;
pub const EEXIST: c_int = 17;
pub const EXDEV: c_int = 18;
pub const ENODEV: c_int = 19;
pub const ENOTDIR: c_int = 20;
pub const EISDIR: c_int = 21;
pub const EINVAL: c_int = 22;
pub const ENFILE: c_int = 23;
pub const EMFILE: c_int = 24;
pub const ENOTTY: c_int = 25;
pub const ETXTBSY: c_int = 26;
pub const EFBIG: c_int = 27;
pub const ENOSPC: c_int = 28;
pub const ESPIPE: c_int = 29;
pub const EROFS: c_int = 30;
pub const EMLINK: c_int = 31;
pub const EPIPE: c_int = 32;
pub const EDOM: c_int = 33;
pub const ERANGE: c_int = 34;
pub const EAGAIN: c_int = 35;
pub const EWOULDBLOCK: c_int = EAGAIN;
pub const EINPROGRESS: c_int = 36;
pub const EALREADY: c_int = 37;
pub const EOPNOTSUPP: c_int = 45;
pub const ENOTSUP: c_int = EOPNOTSUPP;
pub const ETIMEDOUT: c_int = 60;
pub const ELOOP: c_int = 62;
pub const ENAMETOOLONG: c_int = 63;
pub const ENOTEMPTY: c_int = 66;
pub const ENOSYS: c_int = 78;
pub const EFTYPE: c_int = 79;
pub const EOVERFLOW: c_int = 84;
pub const ECANCELED: c_int = 85;
pub const EILSEQ: c_int = 86;
pub const ENOATTR: c_int = 87;
pub const EDOOFUS: c_int = 88;
pub const EBADMSG: c_int = 89;
pub const EPROTO: c_int = 92;
pub const EINTEGRITY: c_int = 97;
/// Kernel-internal: restart the system call.
pub const ERESTART: c_int = -1;
/// Kernel-internal: the request was handled, return without touching it.
pub const EJUSTRETURN: c_int = -2;

/// FreeBSD's name for an errno value, for messages (`"ENOMEM"`).
pub fn name(errno: c_int) -> &'static str {
    match errno {
        0 => "0",
        EPERM => "EPERM",
        ENOENT => "ENOENT",
        EIO => "EIO",
        ENXIO => "ENXIO",
        EDEADLK => "EDEADLK",
        ENOMEM => "ENOMEM",
        EFAULT => "EFAULT",
        EBUSY => "EBUSY",
        EEXIST => "EEXIST",
        ENODEV => "ENODEV",
        EINVAL => "EINVAL",
        EFBIG => "EFBIG",
        ENOSPC => "ENOSPC",
        EROFS => "EROFS",
        ERANGE => "ERANGE",
        EAGAIN => "EAGAIN",
        EINPROGRESS => "EINPROGRESS",
        EOPNOTSUPP => "EOPNOTSUPP",
        ETIMEDOUT => "ETIMEDOUT",
        ELOOP => "ELOOP",
        ENAMETOOLONG => "ENAMETOOLONG",
        ENOSYS => "ENOSYS",
        EOVERFLOW => "EOVERFLOW",
        ECANCELED => "ECANCELED",
        ENOATTR => "ENOATTR",
        EINTEGRITY => "EINTEGRITY",
        _ => "errno",
    }
}

/// FreeBSD's `strerror` text for an errno value (`lib/libc/gen/errlst.c`), for the messages
/// class libraries print ("Can't store metadata on md0: Device busy.").
pub fn strerror(errno: c_int) -> &'static str {
    match errno {
        0 => "No error: 0",
        EPERM => "Operation not permitted",
        ENOENT => "No such file or directory",
        ESRCH => "No such process",
        EINTR => "Interrupted system call",
        EIO => "Input/output error",
        ENXIO => "Device not configured",
        E2BIG => "Argument list too long",
        EBADF => "Bad file descriptor",
        EDEADLK => "Resource deadlock avoided",
        ENOMEM => "Cannot allocate memory",
        EACCES => "Permission denied",
        EFAULT => "Bad address",
        EBUSY => "Device busy",
        EEXIST => "File exists",
        ENODEV => "Operation not supported by device",
        EINVAL => "Invalid argument",
        ENOTTY => "Inappropriate ioctl for device",
        EFBIG => "File too large",
        ENOSPC => "No space left on device",
        EROFS => "Read-only file system",
        ERANGE => "Result too large",
        EAGAIN => "Resource temporarily unavailable",
        EINPROGRESS => "Operation now in progress",
        EOPNOTSUPP => "Operation not supported",
        ETIMEDOUT => "Operation timed out",
        ELOOP => "Too many levels of symbolic links",
        ENAMETOOLONG => "File name too long",
        ENOSYS => "Function not implemented",
        EFTYPE => "Inappropriate file type or format",
        EOVERFLOW => "Value too large to be stored in data type",
        ECANCELED => "Operation canceled",
        EILSEQ => "Illegal byte sequence",
        ENOATTR => "Attribute not found",
        EDOOFUS => "Programming error",
        EINTEGRITY => "Integrity check failed",
        _ => "Unknown error",
    }
}
