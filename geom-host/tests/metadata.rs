//! Metadata in the last sector, through a real taste and a kernel-side label: a small class
//! `TAG` whose label names a pass-through device.

mod common;

use std::ffi::{CStr, CString};

use common::{finish, runtime};
use geom_core::metadata::{self, MetaError, MetaReader, MetaWriter, Metadata};
use geom_core::{
    geom_class, Class, Consumer, Errno, Gctl, Geom, GeomClass, GeomRef, IoCtx, Provider, Request, Result, Topology,
    VerbArgs, Verbs,
};
use geom_host::disk::MdConfig;
use geom_host::{CtlRequest, CtlValue};

const MIB: u64 = 1 << 20;

/// The on-disk label: a name.
#[derive(Debug, PartialEq)]
struct Tag {
    name: String,
}

impl Metadata for Tag {
    const MAGIC: &'static [u8] = b"GEOM::TAG";
    const VERSION: u32 = 1;

    fn encode(&self, w: &mut MetaWriter<'_>) -> std::result::Result<(), MetaError> {
        w.str_field::<16>(&self.name)
    }

    fn decode(_version: u32, r: &mut MetaReader<'_>) -> std::result::Result<Self, MetaError> {
        let name = r.str_field::<16>()?;
        if name.is_empty() {
            return Err(MetaError::Invalid("empty name"));
        }
        Ok(Tag { name: name.as_str().to_owned() })
    }
}

struct TagClass;

struct TagGeom {
    cp: Consumer,
}

#[geom_class]
impl Geom for TagGeom {
    type Class = TagClass;

    fn start(&self, cx: &IoCtx, req: Request) {
        req.pass_down(cx, self.cp);
    }

    fn access(
        &self,
        topo: &mut Topology,
        _gp: GeomRef<TagClass>,
        _pp: Provider,
        dr: i32,
        dw: i32,
        de: i32,
    ) -> Result<()> {
        self.cp.access(topo, dr, dw, de)
    }
}

/// Write a label on a provider.
#[derive(VerbArgs)]
struct Label {
    /// The name, then the provider.
    #[args(min = 2, max = 2, name = "name prov")]
    args: Vec<CString>,
}

#[derive(Verbs)]
enum TagVerb {
    Label(Label),
}

#[geom_class]
impl GeomClass for TagClass {
    const NAME: &'static CStr = c"TAG";
    type Softc = TagGeom;
    type Verb = TagVerb;

    fn init(_topo: &mut Topology) -> Self {
        TagClass
    }

    fn taste(cls: &Class<Self>, topo: &mut Topology, pp: Provider) -> Option<GeomRef<Self>> {
        let tag = match cls.taste_metadata::<Tag>(topo, pp) {
            Ok(t) => t,
            Err(MetaError::NoMagic) => return None,
            Err(e) => {
                topo_log(pp, e);
                return None;
            }
        };
        let name = CString::new(format!("tag/{}", tag.name)).ok()?;
        if Provider::by_name(topo, &name).is_some() {
            return None;
        }
        let g = cls
            .new_geom_with(topo, &name, |topo, g| {
                let cp = g.new_consumer(topo);
                cp.attach(topo, pp)?;
                Ok(TagGeom { cp })
            })
            .ok()?;
        let np = g.new_provider(topo, &name);
        np.set_geometry(topo, pp.mediasize() - i64::from(pp.sectorsize()), pp.sectorsize(), 0, 0);
        np.set_ready(topo);
        Some(g)
    }

    fn ctlreq(cls: &Class<Self>, topo: &mut Topology, req: &mut Gctl<'_>, verb: TagVerb) {
        let TagVerb::Label(l) = verb;
        let Some(pp) = Provider::by_name(topo, &l.args[1]) else {
            return req.error(format_args!("Provider {} is invalid.", l.args[1].to_string_lossy()));
        };
        let tag = Tag { name: l.args[0].to_string_lossy().into_owned() };
        if let Err(e) = cls.store_metadata(topo, pp, &tag) {
            req.error(format_args!("Cannot store metadata on {}: {e}.", pp.name().to_string_lossy()));
        }
    }

    fn destroy_geom(_cls: &Class<Self>, topo: &mut Topology, gp: GeomRef<Self>) -> Result<()> {
        gp.wither(topo, Errno::ENXIO);
        Ok(())
    }
}

fn topo_log(pp: Provider, e: MetaError) {
    eprintln!("TAG: {}: {e}", pp.name().to_string_lossy());
}

#[test]
fn a_label_written_in_the_kernel_is_tasted_back() {
    let rt = runtime("meta-label");
    let md = rt.md_create(MdConfig::malloc(MIB)).unwrap();
    rt.load::<TagClass>().unwrap();
    assert!(rt.provider("tag/data").is_none());
    let r = rt.ctl(&CtlRequest::new("TAG", "label").arg("data").arg("md0"));
    assert_eq!(r.error, 0, "{:?}", r.message);
    rt.wait_idle();
    // The label is in md0's last sector, byte for byte...
    let sector = md.read_backing(MIB - 512, 512);
    assert_eq!(&sector[..16], b"GEOM::TAG\0\0\0\0\0\0\0");
    assert_eq!(&sector[16..20], &1u32.to_le_bytes());
    assert_eq!(&sector[20..24], b"data");
    assert_eq!(metadata::decode::<Tag>(&sector), Ok(Tag { name: "data".into() }));
    // ...and closing the scratch writer made every class taste md0 again: the device is there.
    let info = rt.provider("tag/data").expect("tasted after the label");
    assert_eq!(info.mediasize, MIB as i64 - 512, "the label sector is hidden");
    let h = rt.open("tag/data", 1, 1, 0).unwrap();
    h.write(0, &[0x5a; 4096]).unwrap();
    assert_eq!(md.read_backing(0, 4096), vec![0x5a; 4096]);
    h.close().unwrap();
    finish(rt);
}

#[test]
fn stale_and_foreign_labels_are_refused_at_taste() {
    let rt = runtime("meta-refuse");
    let a = rt.md_create(MdConfig::malloc(MIB)).unwrap();
    let b = rt.md_create(MdConfig::malloc(MIB)).unwrap();
    let mut sector = vec![0u8; 512];
    metadata::encode(&Tag { name: "future".into() }, &mut sector).unwrap();
    sector[16..20].copy_from_slice(&7u32.to_le_bytes());
    a.write_backing(MIB - 512, &sector);
    metadata::encode(&Tag { name: "x".into() }, &mut sector).unwrap();
    sector[20] = 0; // an empty name: decode refuses it
    b.write_backing(MIB - 512, &sector);
    rt.load::<TagClass>().unwrap();
    rt.wait_idle();
    assert!(rt.providers().iter().all(|p| !p.name.starts_with("tag/")), "nothing tasted");
    assert_eq!(
        rt.ctl(&CtlRequest::new("TAG", "label").arg("data").param("nargs", CtlValue::Int(1))).message.as_deref(),
        Some("Too few arguments.")
    );
    // A provider open exclusively by someone else cannot be labeled.
    let h = rt.open("md0", 1, 0, 1).unwrap();
    let r = rt.ctl(&CtlRequest::new("TAG", "label").arg("data").arg("md0"));
    assert_eq!(r.message.as_deref(), Some("Cannot store metadata on md0: metadata I/O failed: EPERM (1)."));
    h.close().unwrap();
    finish(rt);
}
