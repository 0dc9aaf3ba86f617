//! The GEOM configuration as XML (`sysctl kern.geom.confxml`, `sys/geom/geom_dump.c`), and
//! the one-line bio descriptions of `g_format_bio`/`g_print_bio` (`sys/geom/geom_io.c`).
//!
//! The XML has FreeBSD's exact shape, which libgeom's parser and `geom <class> list` read:
//!
//! ```text
//! <mesh>
//!   <class id="0x...">
//!     <name>STRIPE</name>
//!     <geom id="0x...">
//!       <class ref="0x..."/>
//!       <name>st0</name>
//!       <rank>2</rank>
//!       <config>                       (the geom's dumpconf, indent "\t")
//!       </config>
//! \t<consumer id="0x...">
//! \t  <geom ref="0x..."/>
//! \t  <provider ref="0x..."/>          (if attached)
//! \t  <mode>r1w1e1</mode>
//! \t  <config>                         (dumpconf for the consumer, indent "\t    ")
//! \t  </config>
//! \t</consumer>
//! \t<provider id="0x...">
//! \t  <geom ref="0x..."/>
//! \t  <mode>r0w0e0</mode>
//! \t  <name>stripe/st0</name>
//! \t  <alias>...</alias>               (one per alias)
//! \t  <mediasize>...</mediasize>
//! \t  <sectorsize>...</sectorsize>
//! \t  <stripesize>...</stripesize>
//! \t  <stripeoffset>...</stripeoffset>
//! \t  <config>                         (dumpconf for the provider, indent "\t    ")
//! \t  </config>
//! \t</provider>
//!     </geom>
//!   </class>
//! </mesh>
//! ```
//!
//! Ids and refs are the objects' addresses as the kernel's `%p` prints them (`0x` and
//! lower-case hex; a NULL pointer prints as `0`). A withering geom shows `<wither/>` instead
//! of its config and its consumers and providers show no config; a withering provider shows
//! `<wither/>` in place of its config. Names are escaped as `g_conf_cat_escaped` does.
#![deny(unsafe_op_in_unsafe_fn)]

use std::ffi::CStr;

use geom_core::sys::{
    self, bio, c_char, g_class, g_consumer, g_geom, g_provider, sbuf, ListHead, BIO_DELETE, BIO_FLUSH, BIO_GETATTR,
    BIO_READ, BIO_WRITE, BIO_ZONE, G_GEOM_WITHER, G_PF_WITHER,
};

use crate::sbuf::{self as hsb, Sbuf};

/// Escape text for the configuration XML, byte by byte like FreeBSD's `g_conf_cat_escaped`:
/// `&`, `<`, `>`, `'`, `"` and every byte above 0x7e become a numeric entity (`&#x26;`);
/// tab, newline and carriage return are kept; other control bytes become `?`.
pub(crate) fn xml_escape(s: &str) -> String {
    escape_bytes(s.as_bytes())
}

fn escape_bytes(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    for &c in b {
        match c {
            b'&' | b'<' | b'>' | b'\'' | b'"' | 0x7f..=0xff => out.push_str(&format!("&#x{c:X};")),
            b'\t' | b'\n' | b'\r' | 0x20..=0x7e => out.push(c as char),
            _ => out.push('?'),
        }
    }
    out
}

/// An object's address as the kernel's `%p` prints it.
fn id<T>(p: *const T) -> String {
    if p.is_null() {
        "0".to_owned()
    } else {
        format!("{:#x}", p as usize)
    }
}

/// Append text to an sbuf (an sbuf in error ignores it, as FreeBSD's does).
///
/// # Safety
/// `sb` is a live sbuf.
unsafe fn cat(sb: *mut sbuf, s: &str) {
    // SAFETY: sb is live (caller); s is a valid slice.
    unsafe { hsb::sbuf_bcat(sb, s.as_ptr().cast(), s.len()) };
}

/// A C string's bytes, empty for NULL.
///
/// # Safety
/// `p` is NULL or NUL-terminated.
unsafe fn bytes<'a>(p: *const c_char) -> &'a [u8] {
    if p.is_null() {
        return &[];
    }
    // SAFETY: p is NUL-terminated (caller).
    unsafe { CStr::from_ptr(p) }.to_bytes()
}

/// `<tag>escaped name</tag>` on its own line.
///
/// # Safety
/// `sb` is a live sbuf; `name` is NULL or NUL-terminated.
unsafe fn cat_named(sb: *mut sbuf, indent: &str, tag: &str, name: *const c_char) {
    // SAFETY: name is NULL or NUL-terminated (caller).
    let text = escape_bytes(unsafe { bytes(name) });
    // SAFETY: sb is live (caller).
    unsafe { cat(sb, &format!("{indent}<{tag}>{text}</{tag}>\n")) };
}

/// `g_conf_consumer`.
///
/// # Safety
/// `sb` is a live sbuf; `cp` is a live consumer; the topology lock is held.
unsafe fn conf_consumer(sb: *mut sbuf, cp: *mut g_consumer) {
    // SAFETY: cp and its geom are live under the topology lock (caller).
    unsafe {
        let gp = (*cp).geom;
        cat(sb, &format!("\t<consumer id=\"{}\">\n", id(cp)));
        cat(sb, &format!("\t  <geom ref=\"{}\"/>\n", id(gp)));
        if !(*cp).provider.is_null() {
            cat(sb, &format!("\t  <provider ref=\"{}\"/>\n", id((*cp).provider)));
        }
        cat(sb, &format!("\t  <mode>r{}w{}e{}</mode>\n", (*cp).acr, (*cp).acw, (*cp).ace));
        if !gp.is_null() && (*gp).flags & G_GEOM_WITHER == 0 {
            if let Some(dumpconf) = (*gp).dumpconf {
                cat(sb, "\t  <config>\n");
                dumpconf(sb, c"\t    ".as_ptr(), gp, cp, std::ptr::null_mut());
                cat(sb, "\t  </config>\n");
            }
        }
        cat(sb, "\t</consumer>\n");
    }
}

/// `g_conf_provider`.
///
/// # Safety
/// `sb` is a live sbuf; `pp` is a live provider; the topology lock is held.
unsafe fn conf_provider(sb: *mut sbuf, pp: *mut g_provider) {
    // SAFETY: pp, its geom and its aliases are live under the topology lock (caller).
    unsafe {
        let gp = (*pp).geom;
        cat(sb, &format!("\t<provider id=\"{}\">\n", id(pp)));
        cat(sb, &format!("\t  <geom ref=\"{}\"/>\n", id(gp)));
        cat(sb, &format!("\t  <mode>r{}w{}e{}</mode>\n", (*pp).acr, (*pp).acw, (*pp).ace));
        cat_named(sb, "\t  ", "name", (*pp).name);
        for gap in sys::list_iter(&raw const (*pp).aliases, |gap| &raw mut (*gap).ga_next) {
            cat_named(sb, "\t  ", "alias", (*gap).ga_alias);
        }
        cat(sb, &format!("\t  <mediasize>{}</mediasize>\n", (*pp).mediasize));
        cat(sb, &format!("\t  <sectorsize>{}</sectorsize>\n", (*pp).sectorsize));
        // FreeBSD prints these two as uintmax_t.
        cat(sb, &format!("\t  <stripesize>{}</stripesize>\n", (*pp).stripesize as u64));
        cat(sb, &format!("\t  <stripeoffset>{}</stripeoffset>\n", (*pp).stripeoffset as u64));
        if (*pp).flags & G_PF_WITHER != 0 {
            cat(sb, "\t  <wither/>\n");
        } else if !gp.is_null() && (*gp).flags & G_GEOM_WITHER == 0 {
            if let Some(dumpconf) = (*gp).dumpconf {
                cat(sb, "\t  <config>\n");
                dumpconf(sb, c"\t    ".as_ptr(), gp, std::ptr::null_mut(), pp);
                cat(sb, "\t  </config>\n");
            }
        }
        cat(sb, "\t</provider>\n");
    }
}

/// `g_conf_geom`.
///
/// # Safety
/// `sb` is a live sbuf; `gp` is a live geom; the topology lock is held.
unsafe fn conf_geom(sb: *mut sbuf, gp: *mut g_geom) {
    // SAFETY: gp, its consumers and providers are live under the topology lock (caller).
    unsafe {
        cat(sb, &format!("    <geom id=\"{}\">\n", id(gp)));
        cat(sb, &format!("      <class ref=\"{}\"/>\n", id((*gp).class)));
        cat_named(sb, "      ", "name", (*gp).name);
        cat(sb, &format!("      <rank>{}</rank>\n", (*gp).rank));
        if (*gp).flags & G_GEOM_WITHER != 0 {
            cat(sb, "      <wither/>\n");
        } else if let Some(dumpconf) = (*gp).dumpconf {
            cat(sb, "      <config>\n");
            dumpconf(sb, c"\t".as_ptr(), gp, std::ptr::null_mut(), std::ptr::null_mut());
            cat(sb, "      </config>\n");
        }
        for cp in sys::list_iter(&raw const (*gp).consumer, |cp| &raw mut (*cp).consumer) {
            conf_consumer(sb, cp);
        }
        for pp in sys::list_iter(&raw const (*gp).provider, |pp| &raw mut (*pp).provider) {
            conf_provider(sb, pp);
        }
        cat(sb, "    </geom>\n");
    }
}

/// `g_conf_class`.
///
/// # Safety
/// `sb` is a live sbuf; `mp` is a live class; the topology lock is held.
unsafe fn conf_class(sb: *mut sbuf, mp: *mut g_class, gps: Option<&[*mut g_geom]>) {
    // SAFETY: mp and its geoms are live under the topology lock (caller).
    unsafe {
        cat(sb, &format!("  <class id=\"{}\">\n", id(mp)));
        cat_named(sb, "    ", "name", (*mp).name);
        for gp in sys::list_iter(&raw const (*mp).geom, |gp| &raw mut (*gp).geom) {
            if let Some(gps) = gps {
                if !gps.contains(&gp) {
                    continue;
                }
            }
            conf_geom(sb, gp);
            if hsb::sbuf_error(sb) != 0 {
                break;
            }
        }
        cat(sb, "  </class>\n");
    }
}

/// `g_conf_specific`: write the `<mesh>` of every class in `classes` (with only the geoms in
/// `gps`, if given) into `sb`, then finish `sb`. Stops early once `sb` has an error (a fixed
/// buffer overflowed).
///
/// # Safety
/// `sb` is a live, unfinished sbuf; `classes` is the list of loaded classes (linked through
/// `g_class.class`); the caller holds the topology lock, so nothing in the topology changes.
pub(crate) unsafe fn conf_specific(sb: *mut sbuf, classes: &ListHead<g_class>, gps: Option<&[*mut g_geom]>) {
    // SAFETY: sb is live and the class list is stable under the topology lock (caller).
    unsafe {
        cat(sb, "<mesh>\n");
        for mp in sys::list_iter(classes, |mp| &raw mut (*mp).class) {
            conf_class(sb, mp, gps);
            if hsb::sbuf_error(sb) != 0 {
                break;
            }
        }
        cat(sb, "</mesh>\n");
        hsb::sbuf_finish(sb);
    }
}

/// The whole configuration, as `sysctl kern.geom.confxml` returns it (`g_confxml`).
///
/// # Safety
/// `classes` is the list of loaded classes; the caller holds the topology lock.
pub(crate) unsafe fn confxml(classes: &ListHead<g_class>) -> String {
    let sb = Sbuf::new();
    // SAFETY: sb is a live sbuf owned here; the rest is the caller's contract.
    unsafe { conf_specific(sb.as_ptr(), classes, None) };
    sb.to_string_lossy()
}

/// `g_format_bio` as a string: `"<provider>[READ(offset=N, length=N)]"`, `"...[FLUSH]"`,
/// `"...[GETATTR(attr=name)]"`, `"...[ZONE,<subcommand>]"`, `"...[UNKNOWN()]"`. The provider
/// is the bio's `bio_to`, else its parent's, else `"[unknown]"`.
///
/// # Safety
/// `bp` is NULL or a live bio whose provider and parent pointers are NULL or live.
pub(crate) unsafe fn format_bio(bp: *const bio) -> String {
    if bp.is_null() {
        return "[unknown][NULL bio]".to_owned();
    }
    // SAFETY: bp and the objects it points at are live (caller).
    unsafe {
        let b = &*bp;
        let pname = if !b.bio_to.is_null() {
            bytes((*b.bio_to).name)
        } else if !b.bio_parent.is_null() && !(*b.bio_parent).bio_to.is_null() {
            bytes((*(*b.bio_parent).bio_to).name)
        } else {
            b"[unknown]"
        };
        let pname = String::from_utf8_lossy(pname);
        let cmd = match b.bio_cmd {
            BIO_READ => "READ",
            BIO_WRITE => "WRITE",
            BIO_DELETE => "DELETE",
            BIO_GETATTR => {
                let attr = if b.bio_attribute.is_null() {
                    "(null)".into()
                } else {
                    String::from_utf8_lossy(bytes(b.bio_attribute))
                };
                return format!("{pname}[GETATTR(attr={attr})]");
            }
            BIO_FLUSH => return format!("{pname}[FLUSH]"),
            BIO_ZONE => {
                // sys/sys/disk_zone.h: DISK_ZONE_OPEN 0, CLOSE 1, FINISH 2, REPORT_ZONES 3,
                // RWP 4, GET_PARAMS 5.
                let sub = match b.bio_zone.zone_cmd {
                    0 => "OPEN",
                    1 => "CLOSE",
                    2 => "FINISH",
                    3 => "REPORT ZONES",
                    4 => "RWP",
                    5 => "GET PARAMS",
                    _ => "UNKNOWN",
                };
                return format!("{pname}[ZONE,{sub}]");
            }
            _ => return format!("{pname}[UNKNOWN()]"),
        };
        format!("{pname}[{cmd}(offset={}, length={})]", b.bio_offset, b.bio_length)
    }
}

/// `g_format_bio(sb, bp)`: append the description of a bio to an sbuf.
///
/// # Safety
/// `sb` is NULL or a live sbuf; `bp` as for [`format_bio`].
#[no_mangle]
pub unsafe extern "C" fn g_format_bio(sb: *mut sbuf, bp: *const bio) {
    // SAFETY: bp is NULL or live (caller).
    let s = unsafe { format_bio(bp) };
    // SAFETY: sb is NULL (refused) or live.
    unsafe { cat(sb, &s) };
}

/// The Rust end of `g_print_bio(prefix, bp, fmtsuffix, ...)` (csrc/varargs.c): print
/// `prefix`, the bio's description and the formatted suffix as one console line.
///
/// # Safety
/// `prefix` and `suffix` are NULL or NUL-terminated; `bp` as for [`format_bio`].
#[no_mangle]
pub unsafe extern "C" fn geom_host_print_bio(prefix: *const c_char, bp: *const bio, suffix: *const c_char) {
    // SAFETY: the strings are NULL or NUL-terminated and bp is NULL or live (caller).
    let mut line = unsafe {
        let mut line = String::from_utf8_lossy(bytes(prefix)).into_owned();
        line.push_str(&format_bio(bp));
        line.push_str(&String::from_utf8_lossy(bytes(suffix)));
        line
    };
    // g_print_bio ends the text with one newline (sbuf_nl_terminate); the console adds it.
    if line.ends_with('\n') {
        line.pop();
    }
    crate::runtime::console(&line);
}

#[cfg(test)]
mod tests {
    use super::*;
    use geom_core::sys::{g_geom_alias, list_insert_head, sbuf_printf};
    use std::ptr;

    #[test]
    fn escape() {
        assert_eq!(xml_escape("a<b>&'\"c"), "a&#x3C;b&#x3E;&#x26;&#x27;&#x22;c");
        assert_eq!(xml_escape("tab\tnl\ncr\r"), "tab\tnl\ncr\r");
        assert_eq!(xml_escape("\u{1}\u{7f}é"), "?&#x7F;&#xC3;&#xA9;");
        assert_eq!(xml_escape("gpt/disk-0_1"), "gpt/disk-0_1");
    }

    /// A dumpconf method that writes one `<Kind>` line saying which object it was called for.
    ///
    /// # Safety
    /// `sb` is a live sbuf and `indent` a NUL-terminated string.
    unsafe extern "C" fn dumpconf(
        sb: *mut sbuf,
        indent: *const c_char,
        _gp: *mut g_geom,
        cp: *mut g_consumer,
        pp: *mut g_provider,
    ) {
        let what = if !cp.is_null() {
            c"consumer"
        } else if !pp.is_null() {
            c"provider"
        } else {
            c"geom"
        };
        // SAFETY: sb is live during the dump; the format matches its arguments.
        unsafe { sbuf_printf(sb, c"%s<Kind>%s</Kind>\n".as_ptr(), indent, what.as_ptr()) };
    }

    /// Zeroed structures linked by hand: class TEST with geom "g<0>" (rank 2, dumpconf), which
    /// has a consumer attached to the provider "dev/x&y" (with an alias) of geom "lower".
    struct Topology {
        classes: *mut ListHead<g_class>,
        mp: *mut g_class,
        gp: *mut g_geom,
        lower: *mut g_geom,
        cp: *mut g_consumer,
        pp: *mut g_provider,
        alias: *mut g_geom_alias,
    }

    fn zeroed<T>() -> *mut T {
        // SAFETY: the GEOM structures are plain C data for which all-zero is valid.
        Box::into_raw(Box::new(unsafe { std::mem::zeroed::<T>() }))
    }

    impl Topology {
        fn new() -> Topology {
            let t = Topology {
                classes: zeroed(),
                mp: zeroed(),
                gp: zeroed(),
                lower: zeroed(),
                cp: zeroed(),
                pp: zeroed(),
                alias: zeroed(),
            };
            // SAFETY: every object is a fresh allocation, linked once on each list.
            unsafe {
                (*t.mp).name = c"TEST".as_ptr();
                list_insert_head(t.classes, t.mp, |mp| &raw mut (*mp).class);
                for (gp, name, rank) in [(t.lower, c"lower", 1), (t.gp, c"g<0>", 2)] {
                    (*gp).name = name.as_ptr().cast_mut();
                    (*gp).class = t.mp;
                    (*gp).rank = rank;
                    list_insert_head(&raw mut (*t.mp).geom, gp, |gp| &raw mut (*gp).geom);
                }
                (*t.gp).dumpconf = Some(dumpconf);
                (*t.cp).geom = t.gp;
                (*t.cp).provider = t.pp;
                (*t.cp).acr = 1;
                (*t.cp).ace = 1;
                list_insert_head(&raw mut (*t.gp).consumer, t.cp, |cp| &raw mut (*cp).consumer);
                (*t.pp).name = c"dev/x&y".as_ptr().cast_mut();
                (*t.pp).geom = t.lower;
                (*t.pp).acr = 1;
                (*t.pp).ace = 1;
                (*t.pp).mediasize = 1 << 20;
                (*t.pp).sectorsize = 512;
                (*t.pp).stripesize = 4096;
                (*t.alias).ga_alias = c"alias/1".as_ptr();
                list_insert_head(&raw mut (*t.pp).aliases, t.alias, |a| &raw mut (*a).ga_next);
                list_insert_head(&raw mut (*t.lower).provider, t.pp, |pp| &raw mut (*pp).provider);
            }
            t
        }

        fn classes(&self) -> &ListHead<g_class> {
            // SAFETY: classes is a live allocation owned by self.
            unsafe { &*self.classes }
        }

        fn expected(&self, g_config: bool) -> String {
            let (mp, gp, lower, cp, pp) = (id(self.mp), id(self.gp), id(self.lower), id(self.cp), id(self.pp));
            let mut s = String::new();
            s += "<mesh>\n";
            s += &format!("  <class id=\"{mp}\">\n    <name>TEST</name>\n");
            s += &format!("    <geom id=\"{gp}\">\n      <class ref=\"{mp}\"/>\n");
            s += "      <name>g&#x3C;0&#x3E;</name>\n      <rank>2</rank>\n";
            if g_config {
                s += "      <config>\n\t<Kind>geom</Kind>\n      </config>\n";
            } else {
                s += "      <wither/>\n";
            }
            s += &format!("\t<consumer id=\"{cp}\">\n\t  <geom ref=\"{gp}\"/>\n");
            s += &format!("\t  <provider ref=\"{pp}\"/>\n\t  <mode>r1w0e1</mode>\n");
            if g_config {
                s += "\t  <config>\n\t    <Kind>consumer</Kind>\n\t  </config>\n";
            }
            s += "\t</consumer>\n    </geom>\n";
            s += &format!("    <geom id=\"{lower}\">\n      <class ref=\"{mp}\"/>\n");
            s += "      <name>lower</name>\n      <rank>1</rank>\n";
            s += &format!("\t<provider id=\"{pp}\">\n\t  <geom ref=\"{lower}\"/>\n");
            s += "\t  <mode>r1w0e1</mode>\n\t  <name>dev/x&#x26;y</name>\n";
            s += "\t  <alias>alias/1</alias>\n\t  <mediasize>1048576</mediasize>\n";
            s += "\t  <sectorsize>512</sectorsize>\n\t  <stripesize>4096</stripesize>\n";
            s += "\t  <stripeoffset>0</stripeoffset>\n\t</provider>\n    </geom>\n";
            s += "  </class>\n</mesh>\n";
            s
        }
    }

    impl Drop for Topology {
        fn drop(&mut self) {
            // SAFETY: each pointer came from Box::into_raw and is freed once.
            unsafe {
                drop(Box::from_raw(self.classes));
                drop(Box::from_raw(self.mp));
                drop(Box::from_raw(self.gp));
                drop(Box::from_raw(self.lower));
                drop(Box::from_raw(self.cp));
                drop(Box::from_raw(self.pp));
                drop(Box::from_raw(self.alias));
            }
        }
    }

    #[test]
    fn xml_of_a_small_topology() {
        let t = Topology::new();
        // SAFETY: the topology is complete and nothing else touches it.
        let xml = unsafe { confxml(t.classes()) };
        assert_eq!(xml, t.expected(true));
        // A withering geom shows <wither/> and no configs of its own.
        // SAFETY: gp is ours.
        unsafe { (*t.gp).flags |= G_GEOM_WITHER };
        // SAFETY: as above.
        let xml = unsafe { confxml(t.classes()) };
        assert_eq!(xml, t.expected(false));
    }

    #[test]
    fn specific_geoms_and_overflow() {
        let t = Topology::new();
        let sb = Sbuf::new();
        // SAFETY: as above.
        unsafe { conf_specific(sb.as_ptr(), t.classes(), Some(&[t.lower])) };
        let xml = sb.to_string_lossy();
        assert!(xml.contains("<name>lower</name>"));
        assert!(!xml.contains("g&#x3C;0&#x3E;"));
        assert!(sb.is_finished());
        let small = Sbuf::with_fixed_capacity(64).unwrap();
        // SAFETY: as above.
        unsafe { conf_specific(small.as_ptr(), t.classes(), None) };
        assert_eq!(small.error(), geom_core::sys::errno::ENOMEM);
        assert_eq!(small.len(), 63);
    }

    #[test]
    fn bio_descriptions() {
        let t = Topology::new();
        // SAFETY: struct bio is zero-valid.
        let mut b: Box<bio> = Box::new(unsafe { std::mem::zeroed() });
        // SAFETY: as above.
        let mut child: Box<bio> = Box::new(unsafe { std::mem::zeroed() });
        b.bio_cmd = BIO_READ;
        b.bio_offset = 4096;
        b.bio_length = 512;
        // SAFETY: the bios and the provider are live.
        unsafe {
            assert_eq!(format_bio(&*b), "[unknown][READ(offset=4096, length=512)]");
            b.bio_to = t.pp;
            assert_eq!(format_bio(&*b), "dev/x&y[READ(offset=4096, length=512)]");
            child.bio_parent = &mut *b;
            child.bio_cmd = BIO_GETATTR;
            child.bio_attribute = c"GEOM::ident".as_ptr();
            assert_eq!(format_bio(&*child), "dev/x&y[GETATTR(attr=GEOM::ident)]");
            child.bio_cmd = BIO_FLUSH;
            assert_eq!(format_bio(&*child), "dev/x&y[FLUSH]");
            child.bio_cmd = BIO_ZONE;
            child.bio_zone.zone_cmd = 3;
            assert_eq!(format_bio(&*child), "dev/x&y[ZONE,REPORT ZONES]");
            child.bio_cmd = 0x42;
            assert_eq!(format_bio(&*child), "dev/x&y[UNKNOWN()]");
            assert_eq!(format_bio(ptr::null()), "[unknown][NULL bio]");
            let sb = Sbuf::new();
            g_format_bio(sb.as_ptr(), &*b);
            assert_eq!(sb.to_string_lossy(), "dev/x&y[READ(offset=4096, length=512)]");
        }
    }
}
