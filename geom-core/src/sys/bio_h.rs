//! `struct bio` and `struct bio_queue_head` (`sys/sys/bio.h`), `struct disk_zone_args`
//! (`sys/sys/disk_zone.h`) and `struct kexterr` (`sys/sys/_exterr.h`).
//!
//! The 16-CURRENT `struct bio` replaced the `int bio_error` field (offset 64) with a
//! `struct kexterr bio_exterr` at the end, and made `bio_error` a macro for
//! `bio_exterr.error`. Use [`bio::error`] and [`bio::set_error`], which mean the same thing on
//! every release.

use super::geom_h::{g_consumer, g_provider};
use super::queue::{TailqEntry, TailqHead};
use super::types::*;

/// `bio_cmd`: read data.
pub const BIO_READ: u16 = 0x01;
/// `bio_cmd`: write data.
pub const BIO_WRITE: u16 = 0x02;
/// `bio_cmd`: TRIM / unmap a range; `bio_data` is unused.
pub const BIO_DELETE: u16 = 0x03;
/// `bio_cmd`: ask the provider for the attribute named by `bio_attribute`.
pub const BIO_GETATTR: u16 = 0x04;
/// `bio_cmd`: make previously completed writes durable.
pub const BIO_FLUSH: u16 = 0x05;
/// `bio_cmd`: free for a class's local use.
pub const BIO_CMD0: u16 = 0x06;
/// `bio_cmd`: free for a class's local use.
pub const BIO_CMD1: u16 = 0x07;
/// `bio_cmd`: free for a class's local use.
pub const BIO_CMD2: u16 = 0x08;
/// `bio_cmd`: zoned-device command, payload in `bio_zone`.
pub const BIO_ZONE: u16 = 0x09;
/// `bio_cmd`: upper layers are short of resources.
pub const BIO_SPEEDUP: u16 = 0x0a;

/// `bio_flags`: the request failed (buf-layer convention; GEOM reads `bio_error`).
pub const BIO_ERROR: u16 = 0x0001;
/// `bio_flags`: the request has completed (set by `biodone` when there is no `bio_done`).
pub const BIO_DONE: u16 = 0x0002;
/// `bio_flags`: on a GEOM queue (runtime-internal).
pub const BIO_ONQUEUE: u16 = 0x0004;
/// `bio_flags`: a barrier against reordering.
pub const BIO_ORDERED: u16 = 0x0008;
/// `bio_flags`: data is described by `bio_ma` pages, not mapped at `bio_data`.
pub const BIO_UNMAPPED: u16 = 0x0010;
/// `bio_flags`: GEOM mapped an unmapped bio for a provider that needs it.
pub const BIO_TRANSIENT_MAPPING: u16 = 0x0020;
/// `bio_flags`: `bio_data` points at a list of bus_dma segments.
pub const BIO_VLIST: u16 = 0x0040;
/// `bio_flags`: swap-pager I/O.
pub const BIO_SWAP: u16 = 0x0200;
/// `bio_flags` (16-CURRENT): `bio_exterr` holds a full extended error.
pub const BIO_EXTERR: u16 = 0x2000;
/// `bio_flags`: with `BIO_SPEEDUP`, the shortage is of writes.
pub const BIO_SPEEDUP_WRITE: u16 = 0x4000;
/// `bio_flags`: with `BIO_SPEEDUP`, the shortage is of trims.
pub const BIO_SPEEDUP_TRIM: u16 = 0x8000;

/// `bio_task_t`: a deferred task handler.
pub type bio_task_t = unsafe extern "C" fn(arg: *mut c_void);

/// `zone_cmd`: open a zone.
pub const DISK_ZONE_OPEN: u8 = 0x00;
/// `zone_cmd`: close a zone.
pub const DISK_ZONE_CLOSE: u8 = 0x01;
/// `zone_cmd`: finish a zone.
pub const DISK_ZONE_FINISH: u8 = 0x02;
/// `zone_cmd`: report zones (a read).
pub const DISK_ZONE_REPORT_ZONES: u8 = 0x03;
/// `zone_cmd`: reset a write pointer.
pub const DISK_ZONE_RWP: u8 = 0x04;
/// `zone_cmd`: get the zone parameters (a read).
pub const DISK_ZONE_GET_PARAMS: u8 = 0x05;

/// `struct disk_zone_args`: the `BIO_ZONE` payload; only its size matters to GEOM classes.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct disk_zone_args {
    /// `zone_cmd`.
    pub zone_cmd: u8,
    _pad: [u8; 7],
    /// `zone_params`: a 120-byte union of per-command arguments.
    pub zone_params: [u64; 15],
}

// sys/sys/disk_zone.h: a byte command and a 120-byte union aligned to 8.
static_assertions::assert_eq_size!(disk_zone_args, [u8; 128]);

/// `struct kexterr` (16-CURRENT, `sys/sys/_exterr.h`): an errno with a message and context.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct kexterr {
    /// `error`: the errno value (what `bio_error` names on 16).
    pub error: c_int,
    /// `msg`.
    pub msg: *const c_char,
    /// `p1`.
    pub p1: u64,
    /// `p2`.
    pub p2: u64,
    /// `cat`.
    pub cat: c_uint,
    /// `src_line`.
    pub src_line: c_uint,
}

// sys/sys/_exterr.h (main, 2025).
static_assertions::assert_eq_size!(kexterr, [u8; 40]);
static_assertions::const_assert_eq!(core::mem::offset_of!(kexterr, msg), 8);
static_assertions::const_assert_eq!(core::mem::offset_of!(kexterr, cat), 32);
static_assertions::const_assert_eq!(core::mem::offset_of!(kexterr, src_line), 36);

/// `struct bio`: one I/O request travelling through GEOM.
///
/// Field ownership follows FreeBSD: the issuer owns `bio_caller1`, `bio_caller2` and
/// `bio_cflags`; the provider handling the request owns `bio_driver1`, `bio_driver2` and
/// `bio_pflags` while it holds the bio.
#[repr(C)]
pub struct bio {
    /// I/O operation (`BIO_READ`, ...).
    pub bio_cmd: u16,
    /// General flags (`BIO_ORDERED`, ...).
    pub bio_flags: u16,
    /// Private to the consumer that issued the request.
    pub bio_cflags: u16,
    /// Private to the provider handling the request.
    pub bio_pflags: u16,
    /// Device (devfs layer; GEOM classes do not use it).
    pub bio_dev: *mut cdev,
    /// Disk (below `geom_disk` only).
    pub bio_disk: *mut disk,
    /// Byte offset on the provider.
    pub bio_offset: off_t,
    /// Legacy byte count (drivers).
    pub bio_bcount: c_long,
    /// Kernel virtual address of the data.
    pub bio_data: caddr_t,
    /// Pages of an unmapped request.
    pub bio_ma: *mut *mut vm_page,
    /// Offset in the first page of `bio_ma`.
    pub bio_ma_offset: c_int,
    /// Number of pages in `bio_ma`.
    pub bio_ma_n: c_int,
    /// Errno of a failed request (14 and 15; on 16 it lives in `bio_exterr`).
    #[cfg(not(freebsd_release = "16"))]
    bio_error: c_int,
    /// Bytes not transferred (driver level).
    pub bio_resid: c_long,
    /// Completion callback; NULL makes `biodone` wake a `biowait` sleeper instead.
    pub bio_done: Option<unsafe extern "C" fn(bp: *mut bio)>,
    /// Private to the provider.
    pub bio_driver1: *mut c_void,
    /// Private to the provider.
    pub bio_driver2: *mut c_void,
    /// Private to the consumer.
    pub bio_caller1: *mut c_void,
    /// Private to the consumer.
    pub bio_caller2: *mut c_void,
    /// Linkage for bio queues (`bioq_*`).
    pub bio_queue: TailqEntry<bio>,
    /// Attribute name for `BIO_GETATTR`.
    pub bio_attribute: *const c_char,
    /// Payload of `BIO_ZONE`.
    pub bio_zone: disk_zone_args,
    /// Consumer the request came through (set by `g_io_request`).
    pub bio_from: *mut g_consumer,
    /// Provider the request is aimed at (set by `g_io_request`).
    pub bio_to: *mut g_provider,
    /// Requested length in bytes.
    pub bio_length: off_t,
    /// Bytes actually done.
    pub bio_completed: off_t,
    /// Number of clones made of this bio.
    pub bio_children: u_int,
    /// Number of those clones that have completed.
    pub bio_inbed: u_int,
    /// Parent of a clone.
    pub bio_parent: *mut bio,
    /// Time the request started.
    pub bio_t0: bintime,
    /// Deferred task handler.
    pub bio_task: Option<bio_task_t>,
    /// Argument of `bio_task`.
    pub bio_task_arg: *mut c_void,
    /// Spare.
    pub bio_spare1: *mut c_void,
    /// Spare.
    pub bio_spare2: *mut c_void,
    /// Physical block number (drivers).
    pub bio_pblkno: daddr_t,
    /// Extended error (16-CURRENT); `bio_error` is its `error`.
    #[cfg(freebsd_release = "16")]
    pub bio_exterr: kexterr,
}

impl bio {
    /// `bp->bio_error`: the errno of a completed request (0 on success).
    #[inline(always)]
    pub fn error(&self) -> c_int {
        #[cfg(freebsd_release = "16")]
        {
            self.bio_exterr.error
        }
        #[cfg(not(freebsd_release = "16"))]
        {
            self.bio_error
        }
    }

    /// `bp->bio_error = error`.
    #[inline(always)]
    pub fn set_error(&mut self, error: c_int) {
        #[cfg(freebsd_release = "16")]
        {
            self.bio_exterr.error = error;
        }
        #[cfg(not(freebsd_release = "16"))]
        {
            self.bio_error = error;
        }
    }

    /// Raw pointer form of [`bio::error`], for code that holds only `*mut bio`.
    ///
    /// # Safety
    /// `bp` points at a live bio.
    #[inline(always)]
    pub unsafe fn error_of(bp: *const bio) -> c_int {
        // SAFETY: bp is live (caller); reading one int field.
        unsafe { (*bp).error() }
    }

    /// The address of `bp->bio_error` (for atomic updates by clones completing at once).
    ///
    /// # Safety
    /// `bp` points at a live bio.
    #[inline(always)]
    pub unsafe fn error_ptr(bp: *mut bio) -> *mut c_int {
        #[cfg(freebsd_release = "16")]
        // SAFETY: bp is live (caller); a field projection only.
        unsafe {
            &raw mut (*bp).bio_exterr.error
        }
        #[cfg(not(freebsd_release = "16"))]
        // SAFETY: as above.
        unsafe {
            &raw mut (*bp).bio_error
        }
    }

    /// Raw pointer form of [`bio::set_error`].
    ///
    /// # Safety
    /// `bp` points at a live bio that the caller may write.
    #[inline(always)]
    pub unsafe fn set_error_of(bp: *mut bio, error: c_int) {
        // SAFETY: bp is live and writable (caller).
        unsafe { (*bp).set_error(error) }
    }
}

macro_rules! bio_offsets {
    ($($field:ident = $off:expr),* $(,)?) => {
        $(static_assertions::const_assert_eq!(core::mem::offset_of!(bio, $field), $off);)*
    };
}

// sys/sys/bio.h, fields common to every release (main @ 6c406b5b, stable/14 layout).
bio_offsets! {
    bio_cmd = 0, bio_flags = 2, bio_cflags = 4, bio_pflags = 6, bio_dev = 8, bio_disk = 16,
    bio_offset = 24, bio_bcount = 32, bio_data = 40, bio_ma = 48, bio_ma_offset = 56,
    bio_ma_n = 60,
}

// sys/sys/bio.h as in stable/14 and stable/15: `int bio_error` at 64, 376 bytes in all
// (without options DIAGNOSTIC, which adds shadow caller fields and makes it 400).
#[cfg(not(freebsd_release = "16"))]
mod layout_14_15 {
    use super::*;
    static_assertions::assert_eq_size!(bio, [u8; 376]);
    bio_offsets! {
        bio_error = 64, bio_resid = 72, bio_done = 80, bio_driver1 = 88, bio_driver2 = 96,
        bio_caller1 = 104, bio_caller2 = 112, bio_queue = 120, bio_attribute = 136,
        bio_zone = 144, bio_from = 272, bio_to = 280, bio_length = 288, bio_completed = 296,
        bio_children = 304, bio_inbed = 308, bio_parent = 312, bio_t0 = 320, bio_task = 336,
        bio_task_arg = 344, bio_spare1 = 352, bio_spare2 = 360, bio_pblkno = 368,
    }
}

// sys/sys/bio.h @ 6c406b5b (16-CURRENT, Nov 2025): `bio_error` moved into `bio_exterr` at
// the end; everything from bio_resid moved down 8 bytes; 408 bytes in all.
#[cfg(freebsd_release = "16")]
mod layout_16 {
    use super::*;
    static_assertions::assert_eq_size!(bio, [u8; 408]);
    bio_offsets! {
        bio_resid = 64, bio_done = 72, bio_driver1 = 80, bio_driver2 = 88, bio_caller1 = 96,
        bio_caller2 = 104, bio_queue = 112, bio_attribute = 128, bio_zone = 136,
        bio_from = 264, bio_to = 272, bio_length = 280, bio_completed = 288,
        bio_children = 296, bio_inbed = 300, bio_parent = 304, bio_t0 = 312, bio_task = 328,
        bio_task_arg = 336, bio_spare1 = 344, bio_spare2 = 352, bio_pblkno = 360,
        bio_exterr = 368,
    }
}

/// `struct bio_queue_head`: a `TAILQ` of bios plus the disksort state.
#[repr(C)]
pub struct bio_queue_head {
    /// The queue (`TAILQ_HEAD(bio_queue, bio)`).
    pub queue: TailqHead<bio>,
    /// Offset of the last request taken (for sorting).
    pub last_offset: off_t,
    /// Where sorted insertion starts.
    pub insert_point: *mut bio,
    /// Number of bios queued.
    pub total: c_int,
    /// Bios taken since the last reset of the sort (for fairness).
    pub batched: c_int,
}

// sys/sys/bio.h: unchanged in 14, 15 and 16.
static_assertions::assert_eq_size!(bio_queue_head, [u8; 40]);
static_assertions::const_assert_eq!(core::mem::offset_of!(bio_queue_head, last_offset), 16);
static_assertions::const_assert_eq!(core::mem::offset_of!(bio_queue_head, insert_point), 24);
static_assertions::const_assert_eq!(core::mem::offset_of!(bio_queue_head, total), 32);
static_assertions::const_assert_eq!(core::mem::offset_of!(bio_queue_head, batched), 36);

/// `PAGE_SIZE` on amd64: the unit of an unmapped bio's page array.
pub const PAGE_SIZE: usize = 4096;
