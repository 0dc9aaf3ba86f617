//! The table geom(8) loads from `geom_stripe.so` (`class_commands`), as `geom_library!`
//! generates it from `StripeVerb`, decoded from its raw pointers and compared with the one in
//! FreeBSD's lib/geom/stripe: the same verbs, flags, options, defaults and usage lines, so
//! FreeBSD's `gstripe` and ours drive the module identically.

use std::ffi::CStr;

use geom_class_stripe::StripeVerb;
use geom_core::sys::{self, g_command, G_FLAG_LOADKLD, G_FLAG_VERBOSE, G_TYPE_BOOL, G_TYPE_NUMBER};
use geom_core::verbs::command_table;
use geom_core::Verbs;
use geom_host as _;

/// Stands for the library's `gc_func` (only its presence is compared).
unsafe extern "C" fn handler(_req: *mut sys::gctl_req, _flags: u32) {}

/// One option as (letter, name, default, type); the default `None` for NULL.
type Opt = (char, String, Option<String>, u32);

fn text(p: *const sys::c_char) -> String {
    assert!(!p.is_null());
    // SAFETY: the table's strings are C string literals.
    unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_owned()
}

fn decode(c: &g_command) -> (String, u32, bool, Vec<Opt>, String) {
    let mut opts = Vec::new();
    for o in c.gc_options.iter().take_while(|o| !o.go_name.is_null()) {
        let default = (!o.go_val.is_null()).then(|| text(o.go_val.cast()));
        opts.push((o.go_char as u8 as char, text(o.go_name), default, o.go_type));
    }
    (text(c.gc_name), c.gc_flags, c.gc_func.is_some(), opts, text(c.gc_usage))
}

#[test]
fn class_commands_match_freebsd_gstripe() {
    const N: usize = StripeVerb::VERBS.len() + 1;
    let table: [g_command; N] = command_table(StripeVerb::VERBS, Some(handler));
    assert!(table[N - 1].gc_name.is_null(), "G_CMD_SENTINEL ends the table");
    let got: Vec<_> = table[..N - 1].iter().map(decode).collect();
    let o = |c: char, n: &str, d: Option<&str>, t: u32| (c, n.to_owned(), d.map(str::to_owned), t);
    let s = |x: &str| x.to_owned();
    let want = vec![
        (s("clear"), G_FLAG_VERBOSE, true, vec![], s("[-v] prov ...")),
        (
            s("create"),
            G_FLAG_VERBOSE | G_FLAG_LOADKLD,
            false,
            vec![o('s', "stripesize", Some("65536"), G_TYPE_NUMBER)],
            s("[-v] [-s stripesize] name prov prov ..."),
        ),
        (s("destroy"), G_FLAG_VERBOSE, false, vec![o('f', "force", None, G_TYPE_BOOL)], s("[-fv] name ...")),
        (s("dump"), 0, true, vec![], s("prov ...")),
        (
            s("label"),
            G_FLAG_VERBOSE | G_FLAG_LOADKLD,
            true,
            vec![o('h', "hardcode", None, G_TYPE_BOOL), o('s', "stripesize", Some("65536"), G_TYPE_NUMBER)],
            s("[-hv] [-s stripesize] name prov prov ..."),
        ),
        (s("stop"), G_FLAG_VERBOSE, false, vec![o('f', "force", None, G_TYPE_BOOL)], s("[-fv] name ...")),
    ];
    assert_eq!(got, want);
}
