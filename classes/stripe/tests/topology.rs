//! The device's life: kernel verbs and their errors, access counting, orphaned and spoiled
//! components, unloading, and what `list` and `status` show.

mod common;

use common::*;
use geom_class_stripe::{Stripe, G_STRIPE_VERSION};
use geom_core::sys::errno;
use geom_host::{command, CtlRequest, CtlValue};

#[test]
fn create_and_destroy_errors_say_what_is_wrong() {
    let (rt, _disks) = runtime("stripe-errors", &[MIB, MIB, 8 * KIB]);
    fails(&rt, &["create", "st0", "md0"], "Too few arguments.");
    fails(&rt, &["create", "-s", "3000", "st0", "md0", "md1"], "Invalid stripe size 3000: it must be a power of two.");
    fails(&rt, &["create", "st0", "md0", "md7"], "Provider not found: \"md7\"");
    fails(
        &rt,
        &["create", "-s", "16k", "st0", "md0", "md2"],
        "Provider md2 is too small (8192 bytes) for a 16384-byte stripe.",
    );
    ok(&rt, &["create", "-s", "4k", "st0", "md0", "md1"]);
    fails(&rt, &["create", "-s", "4k", "st0", "md0", "md1"], "Device st0 already configured.");
    fails(&rt, &["destroy"], "Missing device(s).");
    fails(&rt, &["destroy", "st9"], "No such device: st9.");
    let h = rt.open("stripe/st0", 1, 0, 0).unwrap();
    fails(&rt, &["destroy", "st0"], "Cannot destroy device st0 (error=16).");
    // Forced: the device stops now and goes when closed.
    fails(&rt, &["stop", "-f", "st0"], "Cannot destroy device st0 (error=36).");
    assert_eq!(h.read(0, 512), Err(errno::ENXIO));
    h.close().unwrap();
    rt.settle();
    assert!(!rt.confxml().contains("<name>st0</name>"));
    assert_eq!(rt.provider("md0").unwrap().access, (0, 0, 0));
    // The kernel never sees userland verbs, and checks the library's version.
    let req = |verb: &str, v: u32| CtlRequest::new("STRIPE", verb).param("version", CtlValue::Uint32(v)).arg("md0");
    let r = rt.ctl(&req("label", G_STRIPE_VERSION));
    assert_eq!(r.message.as_deref(), Some("Unknown verb."));
    let r = rt.ctl(&req("create", 2));
    assert_eq!(r.message.as_deref(), Some("Userland and kernel parts are out of sync."));
    let v = ok(&rt, &["create", "-v", "st2", "md0", "md1"]);
    assert_eq!(v.stdout, "Done.\n");
    ok(&rt, &["destroy", "st2"]);
    finish(rt);
}

#[test]
fn usage_lines_are_gstripes() {
    assert_eq!(
        command::usage::<Stripe>("stripe"),
        [
            "geom stripe clear [-v] prov ...",
            "geom stripe create [-v] [-s stripesize] name prov prov ...",
            "geom stripe destroy [-fv] name ...",
            "geom stripe dump prov ...",
            "geom stripe label [-hv] [-s stripesize] name prov prov ...",
            "geom stripe stop [-fv] name ...",
        ]
    );
}

#[test]
fn opening_the_device_opens_every_component_exclusively() {
    let (rt, _disks) = runtime("stripe-access", &[MIB, MIB, MIB]);
    ok(&rt, &["create", "st0", "md0", "md1", "md2"]);
    let r = rt.open("stripe/st0", 1, 0, 0).unwrap();
    for md in ["md0", "md1", "md2"] {
        assert_eq!(rt.provider(md).unwrap().access, (1, 0, 1), "{md}");
    }
    let w = rt.open("stripe/st0", 0, 1, 0).unwrap();
    assert_eq!(rt.provider("md1").unwrap().access, (1, 1, 1));
    assert_eq!(rt.open("md1", 0, 1, 0).err(), Some(errno::EPERM), "nobody writes under an open device");
    w.close().unwrap();
    r.close().unwrap();
    for md in ["md0", "md1", "md2"] {
        assert_eq!(rt.provider(md).unwrap().access, (0, 0, 0), "{md}");
    }
    finish(rt);
}

#[test]
fn losing_components_stops_then_destroys_the_device() {
    let (rt, _disks) = runtime("stripe-orphan", &[MIB, MIB, MIB]);
    ok(&rt, &["label", "-s", "4k", "st0", "md0", "md1", "md2"]);
    rt.settle();
    // Lost while the device is open: it stops at once, the consumer goes once closed.
    let h = rt.open("stripe/st0", 1, 1, 0).unwrap();
    rt.md_destroy_forced("md1").unwrap();
    rt.settle();
    let log = rt.console_log();
    assert!(log.iter().any(|l| l.trim_end() == "GEOM_STRIPE: Disk md1 removed from st0."), "{log:?}");
    assert!(log.iter().any(|l| l.trim_end() == "GEOM_STRIPE: Device stripe/st0 deactivated."), "{log:?}");
    assert_eq!(h.write(0, &[1; 512]), Err(errno::ENXIO));
    // As in gstripe, the lost component counts as online until its consumer goes.
    let xml = rt.confxml();
    assert!(xml.contains("<Status>Total=3, Online=3</Status>") && xml.contains("<State>DOWN</State>"), "{xml}");
    h.close().unwrap();
    rt.settle();
    assert!(rt.confxml().contains("<Status>Total=3, Online=2</Status>"));
    assert_eq!(rt.provider("md0").unwrap().access, (0, 0, 0));
    // The rest go while closed; with the last, the device.
    rt.md_destroy("md0").unwrap();
    rt.md_destroy("md2").unwrap();
    rt.settle();
    assert!(rt.console_log().iter().any(|l| l.trim_end() == "GEOM_STRIPE: Device st0 destroyed."));
    assert!(!rt.confxml().contains("<name>st0</name>"));
    finish(rt);
}

#[test]
fn unloading_asks_every_device_to_go() {
    let (rt, _disks) = runtime("stripe-unload", &[MIB, MIB]);
    ok(&rt, &["create", "st0", "md0", "md1"]);
    let h = rt.open("stripe/st0", 1, 0, 0).unwrap();
    assert_eq!(rt.unload::<Stripe>(), Err(errno::EBUSY));
    h.close().unwrap();
    rt.unload::<Stripe>().unwrap();
    assert!(!rt.classes().contains(&"STRIPE".to_string()));
    assert_eq!(rt.provider("md0").unwrap().access, (0, 0, 0));
    finish(rt);
}

#[test]
fn list_and_status_look_like_freebsds() {
    let (rt, _disks) = runtime("stripe-list", &[MIB, MIB]);
    ok(&rt, &["label", "-s", "64k", "st0", "md0", "md1"]);
    rt.settle();
    let id = rt.confxml().split("<ID>").nth(1).unwrap().split('<').next().unwrap().to_string();
    let list = ok(&rt, &["list"]).stdout;
    let expect = format!(
        "Geom name: st0\n\
         State: UP\n\
         Status: Total=2, Online=2\n\
         Type: AUTOMATIC\n\
         Stripesize: 65536\n\
         ID: {id}\n\
         Providers:\n\
         1. Name: stripe/st0\n   Mediasize: 1966080 (1.9M)\n   Sectorsize: 512\n   Stripesize: 65536\n   Stripeoffset: 0\n   Mode: r0w0e0\n\
         Consumers:\n\
         1. Name: md0\n   Mediasize: 1048576 (1.0M)\n   Sectorsize: 512\n   Mode: r0w0e0\n   Number: 0\n\
         2. Name: md1\n   Mediasize: 1048576 (1.0M)\n   Sectorsize: 512\n   Mode: r0w0e0\n   Number: 1\n\n"
    );
    assert_eq!(list, expect);
    let status = ok(&rt, &["status"]).stdout;
    assert_eq!(status, "      Name  Status  Components\nstripe/st0      UP  md0\n                    md1\n");
    fails(&rt, &["status", "st9"], "No such geom: st9.");
    finish(rt);
}
