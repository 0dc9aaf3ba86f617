//! NOP on the userland runtime: real I/O checked on the disk below, and its fault knobs.

use geom_class_nop::{Nop, G_NOP_VERSION};
use geom_core::sys::errno;
use geom_host::disk::{MdConfig, MdDisk};
use geom_host::{CtlReply, CtlRequest, CtlValue, Runtime, RuntimeConfig};

const MIB: u64 = 1 << 20;

fn runtime(name: &str) -> (Runtime, MdDisk) {
    let rt = Runtime::new(RuntimeConfig { name: name.into(), echo_console: false, ..Default::default() });
    let md = rt.md_create(MdConfig::malloc(4 * MIB)).unwrap();
    rt.load::<Nop>().unwrap();
    (rt, md)
}

fn nop(verb: &str) -> CtlRequest {
    CtlRequest::new("NOP", verb).param("version", CtlValue::Uint32(G_NOP_VERSION))
}

fn ok(r: CtlReply) {
    assert_eq!(r.error, 0, "{:?}", r.message);
}

fn finish(rt: Runtime) {
    let v = rt.shutdown();
    assert!(v.is_empty(), "{v:#?}");
}

/// splitmix64 for test data.
fn bytes(seed: &mut u64, n: usize) -> Vec<u8> {
    (0..n)
        .map(|_| {
            *seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let z = (*seed ^ (*seed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            (z ^ (z >> 31)) as u8
        })
        .collect()
}

#[test]
fn bytes_pass_through_to_the_disk() {
    let (rt, md) = runtime("nop-io");
    ok(rt.ctl(&nop("create").arg("md0")));
    let info = rt.provider("md0.nop").unwrap();
    assert_eq!((info.mediasize, info.sectorsize), (4 * MIB as i64, 512));
    let h = rt.open("md0.nop", 1, 1, 0).unwrap();
    assert_eq!(rt.provider("md0").unwrap().access, (1, 1, 0), "opens are forwarded");
    let mut seed = 1;
    for i in 0..64u64 {
        let data = bytes(&mut seed, 4096);
        let off = (i * 7919 % 1000) * 4096;
        h.write(off as i64, &data).unwrap();
        assert_eq!(md.read_backing(off, 4096), data);
        assert_eq!(h.read(off as i64, 4096).unwrap(), data);
    }
    h.flush().unwrap();
    assert_eq!(h.getattr("GEOM::candelete", 4).unwrap(), 1i32.to_ne_bytes(), "GETATTR passes through");
    h.close().unwrap();
    let xml = rt.confxml();
    assert!(xml.contains("<Reads>64</Reads>") && xml.contains("<Writes>64</Writes>"), "{xml}");
    ok(rt.ctl(&nop("reset").arg("md0.nop")));
    assert!(rt.confxml().contains("<Reads>0</Reads>"));
    ok(rt.ctl(&nop("destroy").arg("md0.nop")));
    rt.wait_idle();
    assert!(rt.provider("md0.nop").is_none());
    finish(rt);
}

#[test]
fn offset_and_size_expose_a_window_of_the_disk() {
    let (rt, md) = runtime("nop-window");
    ok(rt.ctl(
        &nop("create")
            .arg("md0")
            .param("offset", CtlValue::Intmax(MIB as i64))
            .param("size", CtlValue::Intmax(MIB as i64)),
    ));
    assert_eq!(rt.provider("md0.nop").unwrap().mediasize, MIB as i64);
    let h = rt.open("md0.nop", 1, 1, 0).unwrap();
    let data = bytes(&mut 7, 8192);
    h.write(0, &data).unwrap();
    assert_eq!(md.read_backing(MIB, 8192), data, "offset 0 of md0.nop is offset 1 MiB of md0");
    assert_eq!(h.read(MIB as i64 - 4096, 8192).unwrap().len(), 4096, "the window ends at its size");
    h.close().unwrap();
    finish(rt);
}

#[test]
fn failure_knobs_fail_the_configured_share_with_the_configured_error() {
    let (rt, _md) = runtime("nop-fail");
    ok(rt.ctl(
        &nop("create")
            .arg("md0")
            .param("rfailprob", CtlValue::Intmax(30))
            .param("wfailprob", CtlValue::Intmax(100))
            .param("error", CtlValue::Intmax(errno::EINTEGRITY as i64)),
    ));
    let h = rt.open("md0.nop", 1, 1, 0).unwrap();
    const N: usize = 4000;
    let mut failed = 0;
    for i in 0..N {
        match h.read((i % 1024) as i64 * 512, 512) {
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e, errno::EINTEGRITY, "failed reads carry the configured error");
                failed += 1;
            }
        }
    }
    // Binomial(4000, 0.3): mean 1200, standard deviation 29; allow five of them.
    assert!((1055..=1345).contains(&failed), "{failed} of {N} reads failed, expected about 30%");
    for i in 0..100 {
        assert_eq!(h.write(i * 512, &[0; 512]), Err(errno::EINTEGRITY), "wfailprob 100 fails every write");
    }
    ok(rt.ctl(
        &nop("configure")
            .arg("md0.nop")
            .param("rfailprob", CtlValue::Intmax(0))
            .param("wfailprob", CtlValue::Intmax(0)),
    ));
    for i in 0..500 {
        h.read(i * 512, 512).unwrap();
        h.write(i * 512, &[1; 512]).unwrap();
    }
    h.close().unwrap();
    finish(rt);
}

#[test]
fn count_until_fail_fails_from_the_nth_request_on() {
    let (rt, _md) = runtime("nop-count");
    ok(rt.ctl(&nop("create").arg("md0").param("count_until_fail", CtlValue::Intmax(5))));
    let h = rt.open("md0.nop", 1, 1, 0).unwrap();
    for i in 0..4 {
        h.read(i * 512, 512).unwrap();
    }
    for i in 0..10 {
        assert_eq!(h.read(i * 512, 512), Err(errno::EIO), "request {} fails", i + 5);
        assert_eq!(h.write(i * 512, &[0; 512]), Err(errno::EIO));
    }
    h.close().unwrap();
    finish(rt);
}

#[test]
fn enomem_in_the_io_path_is_retried_not_lost() {
    let (rt, md) = runtime("nop-enomem");
    ok(rt.ctl(&nop("create").arg("md0")));
    let h = rt.open("md0.nop", 1, 1, 0).unwrap();
    let data = bytes(&mut 3, 4096);
    // The next clones cannot be allocated: NOP fails the request with ENOMEM, which GEOM
    // re-issues until memory is back.
    rt.fail_next_bio_allocations(3);
    h.write(8192, &data).unwrap();
    assert_eq!(md.read_backing(8192, 4096), data);
    h.close().unwrap();
    assert_eq!(rt.live_bios(), 0);
    finish(rt);
}

#[test]
fn bad_requests_get_freebsds_messages() {
    let (rt, _md) = runtime("nop-ctl");
    let msg = |r: CtlReply| r.message.unwrap_or_default();
    assert_eq!(msg(rt.ctl(&CtlRequest::new("NOP", "create").arg("md0"))), "No 'version' argument.");
    assert_eq!(
        msg(rt.ctl(&CtlRequest::new("NOP", "create").arg("md0").param("version", CtlValue::Int(3)))),
        "Userland and kernel parts are out of sync."
    );
    assert_eq!(msg(rt.ctl(&nop("create"))), "Missing device(s).");
    assert_eq!(msg(rt.ctl(&nop("create").arg("ada9"))), "Provider ada9 is invalid.");
    assert_eq!(
        msg(rt.ctl(&nop("create").arg("md0").param("offset", CtlValue::Intmax(100)))),
        "Invalid offset for provider md0."
    );
    assert_eq!(
        msg(rt.ctl(&nop("create").arg("md0").param("size", CtlValue::Intmax(8 * MIB as i64)))),
        "Invalid size for provider md0."
    );
    assert_eq!(
        msg(rt.ctl(&nop("create").arg("md0").param("rfailprob", CtlValue::Intmax(101)))),
        "Invalid 'rfailprob' argument"
    );
    ok(rt.ctl(&nop("create").arg("/dev/md0")));
    assert_eq!(msg(rt.ctl(&nop("create").arg("md0"))), "Provider md0.nop already exists.");
    let h = rt.open("md0.nop", 1, 0, 0).unwrap();
    assert_eq!(
        msg(rt.ctl(&nop("destroy").arg("md0.nop"))),
        "Device md0.nop is still open, so it can't be definitely removed."
    );
    assert_eq!(rt.unload_class("NOP"), Err(errno::EBUSY));
    ok(rt.ctl(&nop("destroy").arg("md0.nop").param("force", CtlValue::Int(1))));
    assert_eq!(msg(rt.ctl(&nop("destroy").arg("md0.nop"))), "Device md0.nop is invalid.");
    assert_eq!(msg(rt.ctl(&nop("frobnicate").arg("md0"))), "Unknown verb.");
    h.close().unwrap();
    rt.unload_class("NOP").unwrap();
    finish(rt);
}

#[test]
fn the_verb_declaration_matches_gnop8_and_checks_requests() {
    use geom_class_nop::NopVerb;
    use geom_core::Verbs;
    let names: Vec<&str> = NopVerb::VERBS.iter().map(|v| v.name).collect();
    assert_eq!(names, ["create", "configure", "destroy", "reset"]);
    // FreeBSD's lib/geom/nop usage lines, from the same declaration that parses requests.
    assert_eq!(
        NopVerb::VERBS[0].usage(),
        "[-v] [-c count_until_fail] [-d delaymsec] [-e error] [-o offset] [-p stripesize] [-P stripeoffset] \
         [-q rdelayprob] [-r rfailprob] [-s size] [-S secsize] [-w wfailprob] [-x wdelayprob] [-z physpath] \
         [-Z gnopname] dev ..."
    );
    assert_eq!(NopVerb::VERBS[2].usage(), "[-fv] prov ...");
    assert!(NopVerb::VERBS.iter().all(|v| v.verbose()));

    let (rt, _md) = runtime("nop-verbs");
    let msg = |r: CtlReply| (r.error, r.message.unwrap_or_default());
    assert_eq!(msg(rt.ctl(&nop("frobnicate").arg("md0"))), (errno::EINVAL, "Unknown verb.".into()));
    assert_eq!(msg(rt.ctl(&nop("create"))), (errno::EINVAL, "Missing device(s).".into()));
    assert_eq!(
        msg(rt.ctl(&nop("create").arg("md0").param("offset", CtlValue::Int(1)))),
        (errno::EINVAL, "Invalid 'offset' argument.".into()),
        "a NUMBER option must be an intmax_t"
    );
    assert_eq!(
        msg(rt.ctl(&nop("create").arg("md0").param("error", CtlValue::Intmax(1 << 40)))),
        (errno::EINVAL, "Invalid 'error' argument".into()),
    );
    assert_eq!(
        msg(rt.ctl(&CtlRequest::new("NOP", "create").arg("md0"))),
        (errno::EINVAL, "No 'version' argument.".into())
    );
    assert!(rt.provider("md0.nop").is_none(), "no refused request created anything");
    // Options left out take their declared defaults; a name and a physical path can be given.
    ok(rt.ctl(
        &nop("create")
            .arg("/dev/md0")
            .param("gnopname", CtlValue::Ascii("fault0".into()))
            .param("physpath", CtlValue::Ascii("pci0:1:2".into())),
    ));
    let h = rt.open("fault0", 1, 0, 0).unwrap();
    assert_eq!(h.getattr("GEOM::physpath", 64).unwrap()[..9], *b"pci0:1:2\0");
    h.close().unwrap();
    ok(rt.ctl(&nop("destroy").arg("fault0")));
    finish(rt);
}

#[test]
fn the_class_loads_from_its_module_records() {
    use geom_core::module::DeclaredModule;
    use geom_core::sys;
    let m = Nop::module();
    let records: Vec<(i32, &str)> = m.records().map(|(t, n)| (t, n.to_str().unwrap())).collect();
    assert_eq!(records, [(sys::MDT_DEPEND, "kernel"), (sys::MDT_MODULE, "g_nop"), (sys::MDT_VERSION, "geom_nop")]);
    assert_eq!(m.name(), c"g_nop");

    let rt = Runtime::new(RuntimeConfig { name: "nop-kld".into(), echo_console: false, ..Default::default() });
    rt.md_create(MdConfig::malloc(MIB)).unwrap();
    rt.load::<Nop>().unwrap();
    assert_eq!(rt.load::<Nop>(), Err(errno::EEXIST), "a module loads once");
    let mods = rt.modules();
    assert_eq!((mods[0].name.as_str(), mods[0].kld.as_str(), mods[0].version), ("g_nop", "geom_nop", 0));
    assert!(rt.classes().contains(&"NOP".to_string()));
    ok(rt.ctl(&nop("create").arg("md0")));
    let h = rt.open("md0.nop", 1, 0, 0).unwrap();
    assert_eq!(rt.unload::<Nop>(), Err(errno::EBUSY), "an open device keeps the class in");
    h.close().unwrap();
    rt.unload::<Nop>().unwrap();
    assert!(rt.modules().is_empty() && !rt.classes().contains(&"NOP".to_string()));
    assert!(rt.provider("md0.nop").is_none(), "unloading destroyed the device");
    rt.load::<Nop>().unwrap();
    finish(rt);
}

#[test]
fn delay_knobs_hold_requests_back_without_losing_them() {
    let (rt, md) = runtime("nop-delay");
    ok(rt.ctl(
        &nop("create").arg("md0").param("wdelayprob", CtlValue::Intmax(100)).param("delaymsec", CtlValue::Intmax(30)),
    ));
    let h = rt.open("md0.nop", 1, 1, 0).unwrap();
    let mut seed = 3;
    let data = bytes(&mut seed, 8192);
    let t = std::time::Instant::now();
    h.write(4096, &data).unwrap();
    assert!(t.elapsed() >= std::time::Duration::from_millis(30), "every write waits delaymsec");
    assert_eq!(md.read_backing(4096, 8192), data);
    assert_eq!(h.read(4096, 8192).unwrap(), data, "reads are not delayed and see the write");
    // Many writers at once: each write lands, none is lost or delivered twice.
    std::thread::scope(|s| {
        for i in 0..4u64 {
            let h = &h;
            s.spawn(move || {
                let mut seed = 100 + i;
                for j in 0..8u64 {
                    let d = bytes(&mut seed, 4096);
                    let off = ((i * 8 + j) * 4096 + 65536) as i64;
                    h.write(off, &d).unwrap();
                }
            });
        }
    });
    for i in 0..4u64 {
        let mut seed = 100 + i;
        for j in 0..8u64 {
            let d = bytes(&mut seed, 4096);
            assert_eq!(md.read_backing((i * 8 + j) * 4096 + 65536, 4096), d);
        }
    }
    let msg = |r: CtlReply| (r.error, r.message.unwrap_or_default());
    assert_eq!(
        msg(rt.ctl(&nop("configure").arg("md0.nop").param("delaymsec", CtlValue::Intmax(0)))),
        (errno::EINVAL, "Invalid 'delaymsec' argument".into())
    );
    ok(rt.ctl(&nop("configure").arg("md0.nop").param("wdelayprob", CtlValue::Intmax(0))));
    assert!(rt.confxml().contains("<WriteDelayedProb>0</WriteDelayedProb>"));
    h.close().unwrap();
    ok(rt.ctl(&nop("destroy").arg("md0.nop")));
    finish(rt);
}

#[test]
fn geom8_command_lines_from_the_same_declaration() {
    use geom_host::command;
    let (rt, _md) = runtime("nop-cmdline");
    let req = command::parse::<Nop>(&["create", "-w", "100", "-e5", "-s", "1m", "/dev/md0"]).unwrap();
    // What geom(8) sends: every option, the ones left out with their defaults.
    assert_eq!(req.get("version"), Some(&CtlValue::Uint32(G_NOP_VERSION)));
    assert_eq!(req.get("wfailprob"), Some(&CtlValue::Intmax(100)));
    assert_eq!(req.get("count_until_fail"), Some(&CtlValue::Intmax(-1)));
    assert_eq!(req.get("verbose"), None, "geom(8) keeps -v to itself (G_FLAG_VERBOSE)");
    assert_eq!(req.get("gnopname"), None, "optional options are not sent when left out");
    ok(rt.ctl(&req));
    assert_eq!(rt.provider("md0.nop").unwrap().mediasize, MIB as i64, "-s 1m");
    let h = rt.open("md0.nop", 1, 1, 0).unwrap();
    assert_eq!(h.write(0, &[7; 512]), Err(5), "-w 100 -e5");
    h.close().unwrap();
    ok(rt.ctl(&command::parse::<Nop>(&["destroy", "-fv", "md0.nop"]).unwrap()));
    let e = |argv: &[&str]| command::parse::<Nop>(argv).unwrap_err().0;
    assert_eq!(e(&["create", "-w", "1", "-w", "2", "md0"]), "Option 'w' specified twice.");
    assert!(e(&["create", "-y", "md0"]).starts_with("Invalid option -- 'y'."));
    assert_eq!(e(&["create", "-o", "lots", "md0"]), "Invalid value for 'o' argument.");
    assert_eq!(e(&["label", "md0"]), "Unknown command: label.");
    assert_eq!(command::usage::<Nop>("nop")[3], "geom nop reset [-v] prov ...");
    finish(rt);
}
