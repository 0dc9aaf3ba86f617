//! geom(8) requests no geom(8) would send, found by the `ctlreq` fuzzer (fuzz/): each gets
//! the kernel's error message, never a read past a buffer or an allocation the caller sized.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use geom_class_nop::{Nop, NopVerb, G_NOP_VERSION};
use geom_core::ctl::{Gctl, Param};
use geom_core::Verbs;
use geom_host::{CtlRequest, CtlValue, Runtime, RuntimeConfig};

/// The system allocator, remembering the largest size asked for (granted or not).
struct Largest;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call goes to the system allocator unchanged; only the size is recorded.
unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Relaxed);
        // SAFETY: our caller keeps GlobalAlloc's contract, which is System's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: ptr came from System.alloc (through alloc above) with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Largest = Largest;

fn quiet(name: &str) -> Runtime {
    Runtime::new(RuntimeConfig { name: name.into(), echo_console: false, ..Default::default() })
}

/// A "verb" sent as raw bytes without its NUL: it was read as a C string past its end.
#[test]
fn unterminated_verb_is_refused() {
    let rt = quiet("ctl-verb");
    rt.load::<Nop>().unwrap();
    let req = CtlRequest::new("NOP", "").param("verb", CtlValue::Bytes(b"destroy".to_vec()));
    let reply = rt.ctl(&req);
    assert_eq!(reply.message.as_deref(), Some("Unterminated argument (verb)"));
    assert!(!reply.is_ok());
    assert!(rt.shutdown().is_empty());
}

/// "nargs" is the caller's claim: the parser reserved room for that many arguments before
/// finding the first missing one (48 GB for INT_MAX). Memory must follow the arguments sent.
#[test]
fn nargs_does_not_size_allocations() {
    let nargs = i32::MAX;
    let limit = 1 << 30;

    let n = nargs.to_ne_bytes();
    let params = [Param { name: c"nargs", value: &n }, Param { name: c"arg0", value: b"md0.nop\0" }];
    let mut g = Gctl::from_params(&params);
    LARGEST.store(0, Relaxed);
    assert!(NopVerb::from_gctl(&mut g, c"destroy").is_none());
    assert!(LARGEST.load(Relaxed) < limit, "parsing asked for {} bytes", LARGEST.load(Relaxed));
    assert_eq!(g.take_error().as_deref(), Some("No 'arg1' argument."));

    let rt = quiet("ctl-nargs");
    rt.load::<Nop>().unwrap();
    let req = CtlRequest::new("NOP", "destroy")
        .param("version", CtlValue::Uint32(G_NOP_VERSION))
        .param("nargs", CtlValue::Int(nargs))
        .param("arg0", CtlValue::Ascii("md0.nop".into()));
    LARGEST.store(0, Relaxed);
    let reply = rt.ctl(&req);
    assert!(LARGEST.load(Relaxed) < limit, "the kernel side asked for {} bytes", LARGEST.load(Relaxed));
    assert_eq!(reply.message.as_deref(), Some("No 'arg1' argument."));
    assert!(rt.shutdown().is_empty());
}
