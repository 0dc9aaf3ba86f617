//! Topology behaviour: tasting, FreeBSD's access rules, orphaning with I/O in flight,
//! withering, class load and unload, and the XML dump.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use common::{finish, runtime, Rng};
use geom_core::sys::errno;
use geom_host::disk::MdConfig;
use geom_host::raw_pass::RAW_PASS_MAGIC;
use geom_host::CtlRequest;

const MIB: u64 = 1 << 20;

fn label(image: &mut [u8]) {
    let n = image.len();
    image[n - 512..n - 512 + RAW_PASS_MAGIC.len()].copy_from_slice(RAW_PASS_MAGIC);
}

#[test]
fn a_new_provider_is_tasted_by_every_class() {
    let dir = std::env::temp_dir().join(format!("geom-host-taste-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("labeled.img");
    let mut image = vec![0u8; MIB as usize];
    label(&mut image);
    std::fs::write(&path, &image).unwrap();

    let rt = runtime("taste-arrival");
    rt.load_raw_pass().unwrap();
    rt.md_create(MdConfig::file(&path, 0)).unwrap();
    rt.wait_idle();
    let pass = rt.provider("md0.pass").expect("the labeled disk was tasted on arrival");
    assert_eq!(pass.mediasize, MIB as i64 - 512, "the label sector is hidden");
    assert!(rt.confxml().contains("<Labeled>yes</Labeled>"));
    finish(rt);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn loading_a_class_tastes_existing_providers() {
    let rt = runtime("taste-load");
    let md = rt.md_create(MdConfig::malloc(MIB)).unwrap();
    let mut sector = vec![0u8; 512];
    sector[..16].copy_from_slice(RAW_PASS_MAGIC);
    md.write_backing(MIB - 512, &sector);
    assert!(rt.provider("md0.pass").is_none());
    rt.load_raw_pass().unwrap();
    rt.wait_idle();
    assert!(rt.provider("md0.pass").is_some(), "the class tasted md0 when it was loaded");
    finish(rt);
}

#[test]
fn closing_the_last_writer_retastes() {
    let rt = runtime("retaste");
    rt.load_raw_pass().unwrap();
    rt.md_create(MdConfig::malloc(MIB)).unwrap();
    rt.wait_idle();
    assert!(rt.provider("md0.pass").is_none(), "no label yet");
    let h = rt.open("md0", 1, 1, 0).unwrap();
    let mut sector = vec![0u8; 512];
    sector[..16].copy_from_slice(RAW_PASS_MAGIC);
    h.write(MIB as i64 - 512, &sector).unwrap();
    h.close().unwrap();
    rt.wait_idle();
    assert!(rt.provider("md0.pass").is_some(), "the last write-close made every class taste md0 again");
    finish(rt);
}

#[test]
fn access_counts_follow_freebsds_rules() {
    let rt = runtime("access");
    rt.md_create(MdConfig::malloc(MIB)).unwrap();
    let writer = rt.open("md0", 1, 1, 0).unwrap();
    assert_eq!(rt.open("md0", 0, 0, 1).err(), Some(errno::EPERM), "no exclusive open while another holds write");
    let reader = rt.open("md0", 1, 0, 0).unwrap();
    assert_eq!(rt.provider("md0").unwrap().access, (2, 1, 0));
    writer.close().unwrap();
    let excl = rt.open("md0", 1, 0, 1).unwrap();
    assert_eq!(rt.open("md0", 0, 1, 0).err(), Some(errno::EPERM), "no write open while another holds exclusive");
    let reader2 = rt.open("md0", 1, 0, 0).unwrap();
    assert_eq!(rt.provider("md0").unwrap().access, (3, 0, 1));
    excl.close().unwrap();
    reader.close().unwrap();
    reader2.close().unwrap();
    assert_eq!(rt.provider("md0").unwrap().access, (0, 0, 0));
    assert_eq!(rt.open("nonexistent", 1, 0, 0).err(), Some(errno::ENOENT));
    finish(rt);
}

#[test]
fn pass_geoms_forward_opens_and_refuse_to_unload_while_open() {
    let rt = runtime("unload");
    rt.load_raw_pass().unwrap();
    rt.md_create(MdConfig::malloc(MIB)).unwrap();
    assert_eq!(rt.ctl(&CtlRequest::new("PASS", "create").arg("md0")).error, 0);
    let h = rt.open("md0.pass", 1, 1, 1).unwrap();
    assert_eq!(rt.provider("md0").unwrap().access, (1, 1, 1));
    assert_eq!(rt.open("md0", 0, 1, 0).err(), Some(errno::EPERM), "md0 is held exclusively from above");
    assert_eq!(rt.unload_class("PASS"), Err(errno::EBUSY));
    h.close().unwrap();
    rt.unload_class("PASS").unwrap();
    assert!(rt.provider("md0.pass").is_none());
    assert!(!rt.classes().contains(&"PASS".to_string()));
    assert_eq!(rt.provider("md0").unwrap().access, (0, 0, 0));
    rt.load_raw_pass().unwrap();
    assert_eq!(rt.load_raw_pass(), Err(errno::EEXIST), "a class loads once");
    finish(rt);
}

#[test]
fn orphaning_a_disk_with_io_in_flight_withers_the_stack_cleanly() {
    let rt = runtime("orphan");
    rt.load_raw_pass().unwrap();
    rt.md_create(MdConfig::malloc(4 * MIB).asynchronous(true)).unwrap();
    assert_eq!(rt.ctl(&CtlRequest::new("PASS", "create").arg("md0")).error, 0);
    let h = Arc::new(rt.open("md0.pass", 1, 1, 0).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..4u64)
        .map(|t| {
            let (h, stop, ok, failed) = (Arc::clone(&h), Arc::clone(&stop), Arc::clone(&ok), Arc::clone(&failed));
            std::thread::spawn(move || {
                let mut rng = Rng::new(t);
                let mut errors = 0;
                while !stop.load(Ordering::Relaxed) {
                    let off = rng.below(4 * MIB / 512 - 8) as i64 * 512;
                    match h.write(off, &rng.bytes(4096)) {
                        Ok(_) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            assert_eq!(e, errno::ENXIO, "I/O after the orphan fails with ENXIO");
                            errors += 1;
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                errors
            })
        })
        .collect();
    while ok.load(Ordering::Relaxed) < 200 {
        std::thread::yield_now();
    }
    // Pull the disk out from under the open stack, as `mdconfig -d -o force` does.
    rt.md_destroy_forced("md0").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while failed.load(Ordering::Relaxed) < 4 && std::time::Instant::now() < deadline {
        std::thread::yield_now();
    }
    stop.store(true, Ordering::Relaxed);
    let errors: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(errors > 0, "the workers saw the disk go");
    rt.wait_idle();
    assert!(rt.provider("md0").is_none() || rt.provider("md0").unwrap().error == errno::ENXIO);
    Arc::try_unwrap(h).ok().unwrap().close().unwrap();
    rt.settle();
    assert!(rt.provider("md0.pass").is_none(), "the orphaned pass geom withered away");
    assert!(rt.provider("md0").is_none(), "and so did the disk, once nothing was attached");
    assert_eq!(rt.live_bios(), 0, "every bio came back");
    finish(rt);
}

#[test]
fn the_xml_dump_has_freebsds_shape() {
    let rt = runtime("xml");
    rt.load_raw_pass().unwrap();
    rt.md_create(MdConfig::malloc(MIB)).unwrap();
    assert_eq!(rt.ctl(&CtlRequest::new("PASS", "create").arg("md0")).error, 0);
    let h = rt.open("md0.pass", 1, 0, 0).unwrap();
    let xml = rt.confxml();
    assert!(xml.starts_with("<mesh>"), "{xml}");
    for want in [
        "<name>MD</name>",
        "<name>PASS</name>",
        "<name>md0.pass</name>",
        "<mediasize>1048576</mediasize>",
        "<sectorsize>512</sectorsize>",
        "<mode>r1w0e0</mode>",
        "<type>malloc</type>",
        "<Labeled>no</Labeled>",
        "</mesh>",
    ] {
        assert!(xml.contains(want), "missing {want} in\n{xml}");
    }
    // GEOM answers the built-in "getxml" verb for any class, as geom(8)'s libgeom asks it.
    let r = rt.ctl(
        &CtlRequest::new("PASS", "getxml")
            .arg("md0.pass")
            .param("parents", geom_host::CtlValue::Int(1))
            .output(64 * 1024),
    );
    assert_eq!(r.error, 0, "{:?}", r.message);
    assert!(r.output.contains("<name>md0.pass</name>") && r.output.contains("<name>md0</name>"), "{}", r.output);
    h.close().unwrap();
    finish(rt);
}
