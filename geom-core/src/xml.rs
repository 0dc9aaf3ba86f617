//! A safe writer for dumpconf: complete XML elements, one per line, each behind GEOM's
//! indent, text escaped.

use core::ffi::CStr;
use core::fmt::{self, Write};

use crate::handles::{Consumer, Provider};
use crate::sys::{self, sbuf};

/// What a dumpconf call describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dump {
    /// The geom itself.
    Geom,
    /// One of its consumers.
    Consumer(Consumer),
    /// One of its providers.
    Provider(Provider),
}

/// Writes `<Name>value</Name>` lines into GEOM's configuration sbuf.
pub struct XmlWriter<'a> {
    sb: *mut sbuf,
    indent: &'a CStr,
}

/// Appends text to the sbuf, escaping what XML needs escaped.
struct Escaped(*mut sbuf);

impl Write for Escaped {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut start = 0;
        for (i, b) in s.bytes().enumerate() {
            let rep: &[u8] = match b {
                b'&' => b"&amp;",
                b'<' => b"&lt;",
                b'>' => b"&gt;",
                b'"' => b"&quot;",
                b'\'' => b"&apos;",
                _ => continue,
            };
            raw(self.0, &s.as_bytes()[start..i]);
            raw(self.0, rep);
            start = i + 1;
        }
        raw(self.0, &s.as_bytes()[start..]);
        Ok(())
    }
}

fn raw(sb: *mut sbuf, bytes: &[u8]) {
    if !bytes.is_empty() {
        // SAFETY: sb is the live sbuf GEOM handed to dumpconf; bytes are valid for len.
        unsafe { sys::sbuf_bcat(sb, bytes.as_ptr().cast(), bytes.len()) };
    }
}

impl<'a> XmlWriter<'a> {
    /// # Safety
    /// `sb` is a live sbuf for the duration of the writer's use.
    pub unsafe fn from_raw(sb: *mut sbuf, indent: &'a CStr) -> Self {
        XmlWriter { sb, indent }
    }

    /// Write `<name>value</name>` on its own line; `value` is escaped.
    pub fn element(&mut self, name: &str, value: impl fmt::Display) {
        raw(self.sb, self.indent.to_bytes());
        raw(self.sb, b"<");
        raw(self.sb, name.as_bytes());
        raw(self.sb, b">");
        let _ = write!(Escaped(self.sb), "{value}");
        raw(self.sb, b"</");
        raw(self.sb, name.as_bytes());
        raw(self.sb, b">\n");
    }
}
