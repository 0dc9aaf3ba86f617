//! The stacks measured, each in a runtime of its own: memory disks, the classes loaded as
//! `kldload` would, the geoms made as geom(8) would.

use geom_class_journal::Journal;
use geom_class_nop::Nop;
use geom_class_stripe::Stripe;
use geom_host::disk::{MdConfig, MdDisk};
use geom_host::{Runtime, RuntimeConfig};
// The same helpers the torture stacks are built with: kldload that tolerates a loaded module,
// and a geom(8) command line that must succeed.
pub use geom_torture::stack::{load, run};

/// STRIPE's stripe size in the benchmark (gstripe's common choice; a 4 KiB request touches
/// one disk, a 1 MiB request sixteen pieces over all four).
pub const STRIPESIZE: u64 = 64 * 1024;

/// A stack of classes over memory disks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stack {
    /// The memory disk alone: the floor.
    Md,
    /// NOP over one disk.
    Nop,
    /// STRIPE over four disks.
    Stripe,
    /// JOURNAL: data on one disk, the journal on another.
    Journal,
    /// The C twin of NOP over one disk.
    CNop,
    /// The C twin of STRIPE over four disks.
    CStripe,
}

impl Stack {
    /// Every stack, in the order tables list them.
    pub const ALL: [Stack; 6] = [Stack::Md, Stack::Nop, Stack::CNop, Stack::Stripe, Stack::CStripe, Stack::Journal];

    /// The stack's name on the command line.
    pub fn key(self) -> &'static str {
        match self {
            Stack::Md => "md",
            Stack::Nop => "nop",
            Stack::Stripe => "stripe",
            Stack::Journal => "journal",
            Stack::CNop => "cnop",
            Stack::CStripe => "cstripe",
        }
    }

    /// The stack's name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Stack::Md => "md (floor)",
            Stack::Nop => "nop",
            Stack::Stripe => "stripe ×4",
            Stack::Journal => "journal",
            Stack::CNop => "C nop",
            Stack::CStripe => "C stripe ×4",
        }
    }
}

/// A built stack: its runtime, its disks, and the provider the workload opens.
pub struct Built {
    /// The runtime holding the stack.
    pub rt: Runtime,
    /// The provider at the top.
    pub top: String,
    /// The disks (kept so they live as long as the stack).
    pub disks: Vec<MdDisk>,
}

/// A runtime for benchmarking: FreeBSD's defaults (direct dispatch on), console quiet.
pub fn runtime(name: &str) -> Runtime {
    Runtime::new(RuntimeConfig { name: name.into(), echo_console: false, ..RuntimeConfig::default() })
}

/// Build `stack` with `size` bytes usable at the top.
pub fn build(stack: Stack, size: u64) -> Result<Built, String> {
    let rt = runtime(&format!("bench-{stack:?}").to_lowercase());
    let md =
        |rt: &Runtime, bytes: u64| rt.md_create(MdConfig::malloc(bytes)).map_err(|e| format!("mdconfig: error {e}"));
    // Stripe labels and the journal's label take the last sector of each disk.
    let sector = 512;
    let (disks, top) = match stack {
        Stack::Md => (vec![md(&rt, size)?], "md0".to_owned()),
        Stack::Nop => {
            let d = md(&rt, size)?;
            load::<Nop>(&rt)?;
            run::<Nop>(&rt, &["create", "md0"])?;
            (vec![d], "md0.nop".to_owned())
        }
        Stack::CNop => {
            let d = md(&rt, size)?;
            let top = crate::ctwins::make_nop(&rt, "md0")?;
            (vec![d], top)
        }
        Stack::Stripe | Stack::CStripe => {
            let per = size / 4 + sector;
            let d = (0..4).map(|_| md(&rt, per)).collect::<Result<Vec<_>, _>>()?;
            let names = ["md0", "md1", "md2", "md3"];
            let top = if stack == Stack::Stripe {
                load::<Stripe>(&rt)?;
                let ss = STRIPESIZE.to_string();
                run::<Stripe>(&rt, &["label", "-h", "-s", &ss, "b0", names[0], names[1], names[2], names[3]])?;
                "stripe/b0".to_owned()
            } else {
                crate::ctwins::make_stripe(&rt, "b0", &names, STRIPESIZE)?
            };
            (d, top)
        }
        Stack::Journal => {
            // The journal holds a few seconds of writes; 1 GiB is gjournal's default.
            let d = vec![md(&rt, size + sector)?, md(&rt, 1 << 30)?];
            load::<Journal>(&rt)?;
            run::<Journal>(&rt, &["label", "-h", "md0", "md1"])?;
            (d, "md0.journal".to_owned())
        }
    };
    rt.settle();
    if rt.provider(&top).is_none() {
        return Err(format!("{top} did not appear:\n{}", rt.topology_text()));
    }
    Ok(Built { rt, top, disks })
}

impl Built {
    /// Stop what keeps consumers open, then shut the runtime down, reporting violations.
    pub fn teardown(self, stack: Stack) -> Result<(), String> {
        if stack == Stack::Journal {
            run::<Journal>(&self.rt, &["stop", &self.top])?;
        }
        drop(self.disks);
        let v = self.rt.shutdown();
        if v.is_empty() {
            Ok(())
        } else {
            Err(format!("{stack:?}: runtime reported {v:?}"))
        }
    }
}
