//! A userland verb's request as geom(8) hands it to `gc_func` in `geom_stripe.so`, parsed by
//! the same derived parser the kernel uses. (The table itself, `class_commands`, is compared
//! with lib/geom/stripe's in `kmod-glue/tests/class_commands.rs`.)

use std::ffi::CStr;

use geom_class_stripe::StripeVerb;
use geom_core::Verbs;
use geom_host as _;

/// A userland request (what geom(8) hands `gc_func`) parses as the kernel's would: options,
/// positional arguments as given (label's are a name and providers; the providers are opened
/// as named, `/dev/` or not), and the first error kept.
#[test]
fn userland_request_parses_like_a_kernel_one() {
    use geom_core::ctl::{Gctl, Param};

    let nargs = 3i32.to_ne_bytes();
    let hardcode = 1i32.to_ne_bytes();
    let stripesize = 131072i64.to_ne_bytes();
    let params = [
        Param { name: c"verb", value: b"label\0" },
        Param { name: c"hardcode", value: &hardcode },
        Param { name: c"stripesize", value: &stripesize },
        Param { name: c"nargs", value: &nargs },
        Param { name: c"arg0", value: b"st0\0" },
        Param { name: c"arg1", value: b"/dev/md0\0" },
        Param { name: c"arg2", value: b"md1\0" },
    ];
    let mut req = Gctl::from_params(&params);
    let Some(StripeVerb::Label(l)) = StripeVerb::from_gctl(&mut req, c"label") else { panic!("label parses") };
    assert!(l.hardcode);
    assert_eq!(l.stripesize, 131072);
    let args: Vec<&CStr> = l.args.iter().map(|a| a.as_c_str()).collect();
    assert_eq!(args, [c"st0", c"/dev/md0", c"md1"]);
    assert_eq!(req.take_error(), None);

    // Too few providers: the parser's message, and only the first error is kept.
    let one = 1i32.to_ne_bytes();
    let params = [Param { name: c"nargs", value: &one }, Param { name: c"arg0", value: b"st0\0" }];
    let mut req = Gctl::from_params(&params);
    assert!(StripeVerb::from_gctl(&mut req, c"label").is_none());
    req.error(format_args!("a later error"));
    assert_eq!(req.take_error().as_deref(), Some("Too few arguments."));
    // A string without its NUL is not a string.
    let params = [Param { name: c"arg0", value: b"st0" }];
    assert_eq!(Gctl::from_params(&params).ascii(c"arg0"), None);
}
