//! The INVARIANTS-style checks fire on purpose. Each test plants one bug in a small raw class
//! (or a raw KPI call) and checks that the runtime reports exactly that, with a clear message;
//! two tests show that the default policy really aborts the process.

mod common;

use std::ffi::CStr;
use std::process::Command;
use std::ptr;

use common::{collecting, runtime};
use geom_core::sys::{self, bio, c_int, errno, g_class, g_consumer, g_geom, g_provider};
use geom_host::disk::MdConfig;
use geom_host::{Runtime, ViolationKind};

/// A test class: a pass-through whose start is replaced per test.
type TestClass = sys::KernelCell<g_class>;

unsafe extern "C" fn access_fwd(pp: *mut g_provider, dr: c_int, dw: c_int, de: c_int) -> c_int {
    // SAFETY: access runs under the topology lock; our geoms have one consumer.
    unsafe { sys::g_access((*(*pp).geom).consumer.lh_first, dr, dw, de) }
}

unsafe extern "C" fn orphan_wither(cp: *mut g_consumer) {
    // SAFETY: orphan runs under the topology lock.
    unsafe { sys::g_wither_geom((*cp).geom, errno::ENXIO) };
}

const fn class(name: &'static CStr, start: sys::g_start_t) -> TestClass {
    sys::KernelCell::new(g_class {
        start: Some(start),
        access: Some(access_fwd),
        orphan: Some(orphan_wither),
        ..g_class::named(name)
    })
}

/// Load `class` and put one of its geoms, `bad`, over md0; return an open handle on it.
fn stack(rt: &Runtime, class: &'static TestClass) -> geom_host::Handle {
    rt.md_create(MdConfig::malloc(1 << 20)).unwrap();
    // SAFETY: the test classes are valid static classes.
    unsafe { rt.load_class_raw(class.get()).unwrap() };
    let mp = class.get() as usize;
    rt.run(move |t| {
        let mp = t.class_by_name(
            // SAFETY: the class name is a static C string.
            &unsafe { CStr::from_ptr((*(mp as *const g_class)).name) }.to_string_lossy(),
        );
        // SAFETY: topology lock held (we run on the event thread under it).
        unsafe {
            let gp: *mut g_geom = sys::g_new_geomf(mp, c"bad".as_ptr());
            let cp = sys::g_new_consumer(gp);
            assert_eq!(sys::g_attach(cp, t.provider_by_name("md0")), 0);
            let pp = sys::g_new_providerf(gp, c"bad".as_ptr());
            (*pp).mediasize = 1 << 20;
            (*pp).sectorsize = 512;
            sys::g_error_provider(pp, 0);
        }
    });
    rt.open("bad", 1, 1, 0).unwrap()
}

fn kinds(rt: &Runtime) -> Vec<ViolationKind> {
    rt.violations().iter().map(|v| v.kind).collect()
}

// -- a bio delivered twice --------------------------------------------------------------

unsafe extern "C" fn start_deliver_twice(bp: *mut bio) {
    // SAFETY: a live bio handed to start. The second delivery is the planted bug.
    unsafe {
        (*bp).bio_completed = (*bp).bio_length;
        sys::g_io_deliver(bp, 0);
        sys::g_io_deliver(bp, 0);
    }
}
static TWICE: TestClass = class(c"TWICE", start_deliver_twice);

#[test]
fn a_bio_delivered_twice_is_reported() {
    let rt = collecting("twice");
    let h = stack(&rt, &TWICE);
    let _ = h.read(0, 512);
    h.close().unwrap();
    let v = rt.shutdown();
    assert_eq!(v.len(), 1, "{v:#?}");
    assert_eq!(v[0].kind, ViolationKind::BioDeliveredTwice);
    assert!(v[0].message.contains("READ(offset=0, length=512"), "{}", v[0].message);
}

// -- a bio that never comes back --------------------------------------------------------

/// Set once SWALLOW's start has the request: from then on it is in flight for good.
static SWALLOWED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

unsafe extern "C" fn start_swallow(_bp: *mut bio) {
    // The planted bug: the request is neither passed on nor delivered.
    SWALLOWED.store(true, std::sync::atomic::Ordering::SeqCst);
}
static SWALLOW: TestClass = class(c"SWALLOW", start_swallow);

#[test]
fn a_bio_alive_at_teardown_is_reported() {
    let rt = collecting("leak");
    let h = stack(&rt, &SWALLOW);
    let handle = std::thread::spawn(move || {
        // Blocks forever: the class swallowed the request.
        let _ = h.read(4096, 512);
    });
    // Wait until the request is in start, not merely allocated: shutting down between the
    // two would race the reader's g_io_request against the handle's close.
    while !SWALLOWED.load(std::sync::atomic::Ordering::SeqCst) {
        std::thread::yield_now();
    }
    let v = rt.shutdown();
    assert!(v.iter().any(|v| v.kind == ViolationKind::BioLeaked && v.message.contains("offset=4096")), "{v:#?}");
    drop(handle); // the reader stays blocked; the process ends with the test binary
}

// -- a parent delivered before its children ---------------------------------------------

unsafe extern "C" fn start_parent_early(bp: *mut bio) {
    // SAFETY: a live bio handed to start; our geom has one consumer.
    unsafe {
        let cp = (*(*bp).bio_to).geom.as_ref().unwrap().consumer.lh_first;
        let child = sys::g_clone_bio(bp);
        (*child).bio_done = Some(sys::g_std_done);
        // The planted bug: the parent is delivered while its child has not even been sent.
        sys::g_io_deliver(bp, 0);
        sys::g_io_request(child, cp);
    }
}
static EARLY: TestClass = class(c"EARLY", start_parent_early);

#[test]
fn a_parent_delivered_with_children_in_flight_is_reported() {
    let rt = collecting("early");
    let h = stack(&rt, &EARLY);
    // The runtime refuses the early delivery; the child's g_std_done delivers it properly.
    assert_eq!(h.read(0, 1024).unwrap().len(), 1024);
    h.close().unwrap();
    assert_eq!(kinds(&rt), vec![ViolationKind::ParentDeliveredWithChildrenInFlight]);
    assert!(rt.violations()[0].message.contains("1 of 1 children still in flight"));
    assert!(rt.shutdown().len() == 1);
}

// -- sleeping in start --------------------------------------------------------------------

unsafe extern "C" fn start_sleeps(bp: *mut bio) {
    // SAFETY: a live bio handed to start; our geom has one consumer.
    unsafe {
        let cp = (*(*bp).bio_to).geom.as_ref().unwrap().consumer.lh_first;
        let mut error = 0;
        // The planted bug: a synchronous read from the I/O path.
        let buf = sys::g_read_data(cp, 0, 512, &mut error);
        assert!(buf.is_null());
        sys::g_io_deliver(bp, error);
    }
}
static SLEEPY: TestClass = class(c"SLEEPY", start_sleeps);

#[test]
fn sleeping_in_start_is_reported() {
    let rt = collecting("sleepy");
    let h = stack(&rt, &SLEEPY);
    assert_eq!(h.read(0, 512), Err(errno::EDEADLK), "the sleeping call is refused");
    h.close().unwrap();
    let v = rt.shutdown();
    assert_eq!(v.len(), 1, "{v:#?}");
    assert_eq!(v[0].kind, ViolationKind::SleepInIoPath);
    assert!(v[0].message.contains("g_read_data may sleep"), "{}", v[0].message);
}

// -- access counts below zero -------------------------------------------------------------

#[test]
fn an_access_count_below_zero_is_reported() {
    let rt = collecting("negative");
    rt.md_create(MdConfig::malloc(1 << 20)).unwrap();
    rt.load_raw_pass().unwrap();
    assert_eq!(rt.ctl(&geom_host::CtlRequest::new("PASS", "create").arg("md0")).error, 0);
    let e = rt.run(|t| {
        let pp = t.provider_by_name("md0");
        // SAFETY: topology lock held; the consumer is the pass geom's, attached and closed.
        unsafe { sys::g_access((*pp).consumers.lh_first, -1, 0, 0) }
    });
    assert_eq!(e, errno::EINVAL, "the bad change is refused");
    assert_eq!(rt.provider("md0").unwrap().access, (0, 0, 0), "and not applied");
    let v = rt.shutdown();
    assert_eq!(v.len(), 1, "{v:#?}");
    assert_eq!(v[0].kind, ViolationKind::AccessCountNegative);
    assert!(v[0].message.contains("would go below zero"));
}

#[test]
fn topology_calls_without_the_lock_are_reported() {
    let rt = collecting("nolock");
    rt.md_create(MdConfig::malloc(1 << 20)).unwrap();
    let g = rt.enter();
    // SAFETY: the planted bug: a topology KPI from a user thread without the lock; the
    // runtime refuses it before touching anything.
    let pp = unsafe { sys::g_provider_by_name(c"md0".as_ptr()) };
    // SAFETY: as above; refused.
    unsafe { sys::g_wither_geom(ptr::null_mut(), errno::ENXIO) };
    drop(g);
    assert!(!pp.is_null());
    let v = rt.shutdown();
    assert!(
        v.iter().any(|v| v.kind == ViolationKind::TopologyNotLocked && v.message.contains("g_wither_geom")),
        "{v:#?}"
    );
}

// -- the default policy aborts ------------------------------------------------------------

/// Run one scenario of this test binary in a child process and return its stderr and
/// whether it was killed by SIGABRT.
fn run_child(scenario: &str) -> (String, bool) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_scenario", "--nocapture", "--test-threads=1"])
        .env("GEOM_HOST_CHILD_SCENARIO", scenario)
        .output()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    (String::from_utf8_lossy(&out.stderr).into_owned(), out.status.signal() == Some(6))
}

/// Not a test by itself: the body the child processes run.
#[test]
fn child_scenario() {
    match std::env::var("GEOM_HOST_CHILD_SCENARIO").as_deref() {
        Ok("deliver-twice") => {
            let rt = runtime("abort-twice");
            let h = stack(&rt, &TWICE);
            // start runs on g_down: the first delivery may wake this reader just before
            // g_down reaches the second one, so wait for the abort rather than race it.
            let _ = h.read(0, 512);
            std::thread::sleep(std::time::Duration::from_secs(20));
            unreachable!("the runtime should have aborted");
        }
        Ok("no-runtime") => {
            // SAFETY: the planted bug: a KPI call from a thread that belongs to no runtime.
            let _ = unsafe { sys::g_new_bio() };
            unreachable!("the runtime should have aborted");
        }
        _ => {}
    }
}

#[test]
fn by_default_a_violation_aborts_with_a_report() {
    let (stderr, aborted) = run_child("deliver-twice");
    assert!(aborted, "expected SIGABRT; stderr:\n{stderr}");
    assert!(stderr.contains("INVARIANT BioDeliveredTwice"), "{stderr}");
    assert!(stderr.contains("aborting, as an INVARIANTS kernel would panic"), "{stderr}");
}

#[test]
fn a_kpi_call_from_a_foreign_thread_aborts() {
    let (stderr, aborted) = run_child("no-runtime");
    assert!(aborted, "expected SIGABRT; stderr:\n{stderr}");
    assert!(stderr.contains("INVARIANT NoRuntime"), "{stderr}");
}
