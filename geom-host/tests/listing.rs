//! geom(8)'s `list` and `status` over a real topology: two memory disks with NOP devices on
//! them, after real I/O, compared line by line with what FreeBSD's geom(8) prints for the
//! same configuration XML.

mod common;

use geom_class_nop::{Nop, G_NOP_VERSION};
use geom_host::disk::MdConfig;
use geom_host::listing::{list, status};
use geom_host::{CtlReply, CtlRequest, CtlValue};

fn nop_create(dev: &str) -> CtlRequest {
    CtlRequest::new("NOP", "create").param("version", CtlValue::Uint32(G_NOP_VERSION)).arg(dev)
}

fn ok(r: CtlReply) {
    assert_eq!(r.error, 0, "{:?}", r.message);
}

/// Compare line by line, so a failure names the first line that differs.
fn same(got: &str, want: &str) {
    for (n, (g, w)) in got.lines().zip(want.lines()).enumerate() {
        assert_eq!(g, w, "line {} differs; whole output:\n{got}", n + 1);
    }
    assert_eq!(got.lines().count(), want.lines().count(), "whole output:\n{got}");
    assert_eq!(got, want);
}

/// The NOP geom's keys as geom(8) lists them: libgeom reverses the order dumpconf wrote.
fn nop_config(reads: u64, read_bytes: u64, writes: u64, wrote_bytes: u64) -> String {
    format!(
        "WroteBytes: {wrote_bytes}\nReadBytes: {read_bytes}\nOthers: 0\nFlushes: 0\nGetattrs: 0\nDeletes: 0\nWrites: {writes}\n\
         Reads: {reads}\nOffset: 0\nWriteDelayedProb: 0\nReadDelayedProb: 0\nDelayMsec: 1\nError: 5\n\
         CountUntilFail: 0\nWriteFailProb: 0\nReadFailProb: 0\n"
    )
}

#[test]
fn nop_over_md_lists_and_reports_like_geom_8() {
    let rt = common::runtime("listing-nop");
    let _md0 = rt.md_create(MdConfig::malloc(4 << 20)).unwrap();
    let _md1 = rt.md_create(MdConfig::malloc(3 << 20).sectorsize(4096)).unwrap();
    rt.load::<Nop>().unwrap();
    ok(rt.ctl(&nop_create("md0").param("stripesize", CtlValue::Intmax(65536))));
    ok(rt.ctl(&nop_create("md1")));
    let h = rt.open("md0.nop", 1, 1, 0).unwrap();
    h.write(0, &[7; 8192]).unwrap();
    h.write(65536, &[8; 4096]).unwrap();
    assert_eq!(h.read(4096, 4096).unwrap(), [7; 4096]);
    rt.wait_idle();
    let xml = rt.confxml();

    let md0_nop = format!(
        "Geom name: md0.nop\n{}\
         Providers:\n\
         1. Name: md0.nop\n   Mediasize: 4194304 (4.0M)\n   Sectorsize: 512\n   Stripesize: 65536\n   \
         Stripeoffset: 0\n   Mode: r1w1e0\n\
         Consumers:\n\
         1. Name: md0\n   Mediasize: 4194304 (4.0M)\n   Sectorsize: 512\n   Mode: r1w1e0\n\n",
        nop_config(1, 4096, 2, 12288)
    );
    let md1_nop = format!(
        "Geom name: md1.nop\n{}\
         Providers:\n\
         1. Name: md1.nop\n   Mediasize: 3145728 (3.0M)\n   Sectorsize: 4096\n   Mode: r0w0e0\n\
         Consumers:\n\
         1. Name: md1\n   Mediasize: 3145728 (3.0M)\n   Sectorsize: 4096\n   Mode: r0w0e0\n\n",
        nop_config(0, 0, 0, 0)
    );
    same(&list(&xml, "nop", false, &[]).unwrap(), &format!("{md0_nop}{md1_nop}"));
    same(&list(&xml, "NOP", true, &["/dev/md1.nop"]).unwrap(), &md1_nop);
    same(
        &list(&xml, "md", false, &["md0"]).unwrap(),
        "Geom name: md0\nProviders:\n1. Name: md0\n   Mediasize: 4194304 (4.0M)\n   Sectorsize: 512\n   \
         Mode: r1w1e0\n   access: read-write\n   type: malloc\n   length: 4194304\n\n",
    );

    same(
        &status(&xml, "nop", false, false, false, &[]).unwrap(),
        "   Name  Status  Components\nmd0.nop     N/A  md0\nmd1.nop     N/A  md1\n",
    );
    same(&status(&xml, "nop", false, true, true, &[]).unwrap(), "md0.nop  N/A  md0\nmd1.nop  N/A  md1\n");
    same(&status(&xml, "md", true, true, false, &["md1"]).unwrap(), "Name  Status  Components\n md1     N/A  N/A\n");

    assert_eq!(list(&xml, "nop", false, &["md0"]), Err("Class 'NOP' does not have an instance named 'md0'.".into()));
    assert_eq!(status(&xml, "nop", false, false, false, &["md2.nop"]), Err("No such geom: md2.nop.".into()));
    assert_eq!(list(&xml, "stripe", false, &[]), Err("Command 'list' not available; try 'load' first.".into()));

    h.close().unwrap();
    ok(rt.ctl(&CtlRequest::new("NOP", "destroy").param("version", CtlValue::Uint32(G_NOP_VERSION)).arg("md1.nop")));
    rt.wait_idle();
    let xml = rt.confxml();
    same(
        &status(&xml, "nop", false, false, false, &[]).unwrap(),
        "   Name  Status  Components\nmd0.nop     N/A  md0\n",
    );
    common::finish(rt);
}
