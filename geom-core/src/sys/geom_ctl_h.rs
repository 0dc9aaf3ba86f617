//! geom(8) requests: the kernel side (`sys/geom/geom_ctl.h`) and the class-library tables of
//! geom(8) itself (`sbin/geom/core/geom.h`), which a class's userland library exports.

use super::types::*;

/// `GCTL_VERSION`: the request format version the kernel accepts.
pub const GCTL_VERSION: u_int = 2;
/// `GEOM_CTL`: the ioctl on /dev/geom.ctl, `_IOW('G', GCTL_VERSION, struct gctl_req)`.
pub const GEOM_CTL: u_long = 0x8040_4702;
/// Most arguments one request may carry (`GEOM_CTL_ARG_MAX`).
pub const GEOM_CTL_ARG_MAX: u_int = 2048;

/// Parameter flag: readable by the kernel.
pub const GCTL_PARAM_RD: c_int = 1;
/// Parameter flag: writable by the kernel (an output buffer).
pub const GCTL_PARAM_WR: c_int = 2;
/// Parameter flags: both.
pub const GCTL_PARAM_RW: c_int = GCTL_PARAM_RD | GCTL_PARAM_WR;
/// Parameter flag: the value is a NUL-terminated string.
pub const GCTL_PARAM_ASCII: c_int = 4;
/// Parameter flag (kernel only): the name lives in kernel memory.
pub const GCTL_PARAM_NAMEKERNEL: c_int = 8;
/// Parameter flag (kernel only): the value lives in kernel memory.
pub const GCTL_PARAM_VALUEKERNEL: c_int = 16;
/// Parameter flag (kernel only): the class wrote the value; copy it back out.
pub const GCTL_PARAM_CHANGED: c_int = 32;

/// `struct gctl_req_arg`: one named parameter of a request.
#[repr(C)]
pub struct gctl_req_arg {
    /// Length of `name` including its NUL.
    pub nlen: u_int,
    /// Parameter name.
    pub name: *mut c_char,
    /// Unused offset.
    pub offset: off_t,
    /// `GCTL_PARAM_*` flags.
    pub flag: c_int,
    /// Length of the value in bytes.
    pub len: c_int,
    /// The value (user address in the ioctl).
    pub value: *mut c_void,
    /// The kernel's copy of the value.
    pub kvalue: *mut c_void,
}

/// `struct gctl_req`: a geom(8) request as the kernel sees it.
#[repr(C)]
pub struct gctl_req {
    /// Must be `GCTL_VERSION`.
    pub version: u_int,
    /// Caller's serial number.
    pub serial: u_int,
    /// Number of arguments.
    pub narg: u_int,
    /// The arguments.
    pub arg: *mut gctl_req_arg,
    /// Size of the caller's error buffer.
    pub lerror: u_int,
    /// The caller's error buffer.
    pub error: *mut c_char,
    /// Unused.
    pub reqt: *mut c_void,
    /// Kernel only: the errno of the request.
    pub nerror: c_int,
    /// Kernel only: the error message being built.
    pub serror: *mut sbuf,
}

// sys/geom/geom_ctl.h @ f8167e04 (unchanged through 16-CURRENT).
static_assertions::assert_eq_size!(gctl_req_arg, [u8; 48]);
static_assertions::const_assert_eq!(core::mem::offset_of!(gctl_req_arg, name), 8);
static_assertions::const_assert_eq!(core::mem::offset_of!(gctl_req_arg, offset), 16);
static_assertions::const_assert_eq!(core::mem::offset_of!(gctl_req_arg, flag), 24);
static_assertions::const_assert_eq!(core::mem::offset_of!(gctl_req_arg, len), 28);
static_assertions::const_assert_eq!(core::mem::offset_of!(gctl_req_arg, value), 32);
static_assertions::const_assert_eq!(core::mem::offset_of!(gctl_req_arg, kvalue), 40);
static_assertions::assert_eq_size!(gctl_req, [u8; 64]);
static_assertions::const_assert_eq!(core::mem::offset_of!(gctl_req, serial), 4);
static_assertions::const_assert_eq!(core::mem::offset_of!(gctl_req, narg), 8);
static_assertions::const_assert_eq!(core::mem::offset_of!(gctl_req, arg), 16);
static_assertions::const_assert_eq!(core::mem::offset_of!(gctl_req, lerror), 24);
static_assertions::const_assert_eq!(core::mem::offset_of!(gctl_req, error), 32);
static_assertions::const_assert_eq!(core::mem::offset_of!(gctl_req, reqt), 40);
static_assertions::const_assert_eq!(core::mem::offset_of!(gctl_req, nerror), 48);
static_assertions::const_assert_eq!(core::mem::offset_of!(gctl_req, serror), 56);

/// `G_LIB_VERSION`: the class-library interface version geom(8) requires.
pub const G_LIB_VERSION: u32 = 5;
/// Options per command (`G_OPT_MAX`).
pub const G_OPT_MAX: usize = 16;

/// Option type: none (sentinel).
pub const G_TYPE_NONE: c_uint = 0x00;
/// Option type: a flag, sent as an `int` 0 or 1.
pub const G_TYPE_BOOL: c_uint = 0x01;
/// Option type: a string, sent as an ASCII parameter.
pub const G_TYPE_STRING: c_uint = 0x02;
/// Option type: a number (`expand_number` syntax), sent as an 8-byte `intmax_t`.
pub const G_TYPE_NUMBER: c_uint = 0x03;
/// Mask of the option type.
pub const G_TYPE_MASK: c_uint = 0x0f;
/// Internal: the option was given.
pub const G_TYPE_DONE: c_uint = 0x10;
/// The option may be repeated; sent as `name0`, `name1`, ...
pub const G_TYPE_MULTI: c_uint = 0x20;
/// Counter of a repeated option.
pub const G_TYPE_NUMMASK: c_uint = 0xff00;
/// Shift of the counter.
pub const G_TYPE_NUMSHIFT: c_uint = 8;

/// Command flag: none.
pub const G_FLAG_NONE: c_uint = 0x0000;
/// Command flag: accepts `-v`.
pub const G_FLAG_VERBOSE: c_uint = 0x0001;
/// Command flag: load `geom_<class>.ko` first if it is not loaded.
pub const G_FLAG_LOADKLD: c_uint = 0x0002;

/// `struct g_option`: one option of a geom(8) command.
#[repr(C)]
pub struct g_option {
    /// Short option letter.
    pub go_char: c_char,
    /// Long name, also the request parameter's name.
    pub go_name: *const c_char,
    /// Default value (NULL: none; `G_VAL_OPTIONAL` ((void *)-1): may be omitted).
    pub go_val: *const c_void,
    /// `G_TYPE_*`.
    pub go_type: c_uint,
}

/// `G_VAL_OPTIONAL` (`(void *)-1`): an option geom(8) does not send when it is not given.
pub const G_VAL_OPTIONAL: *const c_void = core::ptr::without_provenance(usize::MAX);

impl g_option {
    /// `G_OPT_SENTINEL`: ends a command's options.
    pub const SENTINEL: g_option =
        g_option { go_char: 0, go_name: core::ptr::null(), go_val: core::ptr::null(), go_type: G_TYPE_NONE };
}

/// A class library's handler of a userland verb (`gc_func`): the request geom(8) built (a
/// userland `struct gctl_req`) and `G_FLAG_VERBOSE` when `-v` was given.
pub type g_command_func = unsafe extern "C" fn(req: *mut gctl_req, flags: c_uint);

/// `struct g_command`: one verb of a geom(8) class library.
#[repr(C)]
pub struct g_command {
    /// Verb name.
    pub gc_name: *const c_char,
    /// `G_FLAG_*`.
    pub gc_flags: c_uint,
    /// Userland handler; NULL sends the request to the kernel.
    pub gc_func: Option<g_command_func>,
    /// Options, terminated by a `G_TYPE_NONE` entry.
    pub gc_options: [g_option; G_OPT_MAX],
    /// Usage text.
    pub gc_usage: *const c_char,
}

impl g_command {
    /// `G_CMD_SENTINEL`: ends `class_commands`.
    pub const SENTINEL: g_command = g_command {
        gc_name: core::ptr::null(),
        gc_flags: 0,
        gc_func: None,
        gc_options: [g_option::SENTINEL; G_OPT_MAX],
        gc_usage: core::ptr::null(),
    };
}

// sbin/geom/core/geom.h @ 6d13bb0e (G_LIB_VERSION 5).
static_assertions::assert_eq_size!(g_option, [u8; 32]);
static_assertions::const_assert_eq!(core::mem::offset_of!(g_option, go_name), 8);
static_assertions::const_assert_eq!(core::mem::offset_of!(g_option, go_val), 16);
static_assertions::const_assert_eq!(core::mem::offset_of!(g_option, go_type), 24);
static_assertions::assert_eq_size!(g_command, [u8; 544]);
static_assertions::const_assert_eq!(core::mem::offset_of!(g_command, gc_flags), 8);
static_assertions::const_assert_eq!(core::mem::offset_of!(g_command, gc_func), 16);
static_assertions::const_assert_eq!(core::mem::offset_of!(g_command, gc_options), 24);
static_assertions::const_assert_eq!(core::mem::offset_of!(g_command, gc_usage), 536);
