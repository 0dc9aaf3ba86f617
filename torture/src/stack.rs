//! The stacks a run builds: memory disks, a NOP under each (the fault layer: failure
//! probabilities set by the fault plan, never a class under test), and the classes under
//! test on top.

use geom_class_journal::Journal;
use geom_class_nop::Nop;
use geom_class_stripe::Stripe;
use geom_core::module::DeclaredModule;
use geom_core::GeomClass;
use geom_host::command::{self, Output};
use geom_host::disk::{DiskImage, MdConfig, MdDisk};
use geom_host::Runtime;

/// A stack of classes to torture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stack {
    /// NOP over one disk.
    Nop,
    /// STRIPE over four disks.
    Stripe,
    /// NOP over STRIPE.
    NopOverStripe,
    /// JOURNAL: data on one disk, its journal on another.
    Journal,
    /// JOURNAL whose data provider is a STRIPE, its journal on a fifth disk.
    JournalOverStripe,
}

impl Stack {
    /// Every stack.
    pub const ALL: [Stack; 5] =
        [Stack::Nop, Stack::Stripe, Stack::NopOverStripe, Stack::Journal, Stack::JournalOverStripe];

    /// The stack's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Stack::Nop => "nop",
            Stack::Stripe => "stripe",
            Stack::NopOverStripe => "nop-over-stripe",
            Stack::Journal => "journal",
            Stack::JournalOverStripe => "journal-over-stripe",
        }
    }

    /// The stack named `name`.
    pub fn by_name(name: &str) -> Option<Stack> {
        Stack::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The stacks that exercise class `class` (`nop`, `stripe`, `journal`).
    pub fn with_class(class: &str) -> Vec<Stack> {
        let has = |s: &Stack| match class {
            "nop" => matches!(s, Stack::Nop | Stack::NopOverStripe),
            "stripe" => matches!(s, Stack::Stripe | Stack::NopOverStripe | Stack::JournalOverStripe),
            "journal" => matches!(s, Stack::Journal | Stack::JournalOverStripe),
            _ => false,
        };
        Stack::ALL.into_iter().filter(has).collect()
    }

    /// Sizes of the disks, in order.
    fn disk_sizes(self) -> Vec<u64> {
        const MIB: u64 = 1 << 20;
        match self {
            Stack::Nop => vec![MIB],
            Stack::Stripe | Stack::NopOverStripe => vec![MIB / 4; 4],
            Stack::Journal => vec![MIB, 3 * MIB],
            Stack::JournalOverStripe => vec![MIB / 4, MIB / 4, MIB / 4, MIB / 4, 3 * MIB],
        }
    }

    /// The provider the workload opens.
    pub fn top(self) -> &'static str {
        match self {
            Stack::Nop => "md0.nop.nop",
            Stack::Stripe => "stripe/t0",
            Stack::NopOverStripe => "stripe/t0.nop",
            Stack::Journal => "md0.nop.journal",
            Stack::JournalOverStripe => "stripe/t0.journal",
        }
    }

    /// The fault layer's providers, one per disk.
    pub fn fault_layers(self) -> Vec<String> {
        (0..self.disk_sizes().len()).map(|i| format!("md{i}.nop")).collect()
    }

    fn has_stripe(self) -> bool {
        matches!(self, Stack::Stripe | Stack::NopOverStripe | Stack::JournalOverStripe)
    }

    fn has_journal(self) -> bool {
        matches!(self, Stack::Journal | Stack::JournalOverStripe)
    }

    /// Build the stack on fresh disks: labels written as geom(8) would, classes loaded, the
    /// kernel side found by tasting.
    pub fn build(self, rt: &Runtime, cfg: &DiskSetup) -> Result<Vec<MdDisk>, String> {
        let disks = self
            .disk_sizes()
            .into_iter()
            .map(|size| {
                rt.md_create(MdConfig::malloc(size).write_cache(cfg.write_cache).asynchronous(cfg.asynchronous))
                    .map_err(|e| format!("mdconfig: error {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.assemble(rt, true)?;
        Ok(disks)
    }

    /// Bring the stack back up on disks made from power-cut images (labels already there).
    pub fn reboot(self, rt: &Runtime, images: Vec<DiskImage>) -> Result<(), String> {
        for image in images {
            rt.md_create(MdConfig::malloc(0).image(image)).map_err(|e| format!("mdconfig from image: error {e}"))?;
        }
        self.assemble(rt, false)
    }

    fn assemble(self, rt: &Runtime, label: bool) -> Result<(), String> {
        load::<Nop>(rt)?;
        for layer in 0..self.disk_sizes().len() {
            run::<Nop>(rt, &["create", &format!("md{layer}")])?;
        }
        if self.has_stripe() {
            load::<Stripe>(rt)?;
            if label {
                run::<Stripe>(rt, &["label", "-h", "-s", "4096", "t0", "md0.nop", "md1.nop", "md2.nop", "md3.nop"])?;
            }
        }
        if self.has_journal() {
            let (data, journal) =
                if self == Stack::Journal { ("md0.nop", "md1.nop") } else { ("stripe/t0", "md4.nop") };
            rt.settle();
            load::<Journal>(rt)?;
            if label {
                run::<Journal>(rt, &["label", "-h", data, journal])?;
            }
        }
        if self == Stack::Nop {
            run::<Nop>(rt, &["create", "md0.nop"])?;
        }
        if self == Stack::NopOverStripe {
            rt.settle();
            run::<Nop>(rt, &["create", "stripe/t0"])?;
        }
        rt.settle();
        if rt.provider(self.top()).is_none() {
            return Err(format!("{} did not appear:\n{}", self.top(), rt.topology_text()));
        }
        Ok(())
    }
}

impl Stack {
    /// Stop what keeps its consumers open (JOURNAL), so every class can be unloaded.
    pub fn teardown(self, rt: &Runtime) -> Result<(), String> {
        if self.has_journal() {
            run::<Journal>(rt, &["stop", self.top()])?;
        }
        Ok(())
    }
}

/// How the disks under a stack behave.
#[derive(Clone, Copy, Debug)]
pub struct DiskSetup {
    /// A volatile write cache (flushes matter, power cuts lose writes).
    pub write_cache: bool,
    /// Requests served by the disk's own thread, in the order the schedule picks.
    pub asynchronous: bool,
}

/// `kldload` the class's module (already loaded is fine).
pub fn load<C: DeclaredModule>(rt: &Runtime) -> Result<(), String> {
    match rt.load::<C>() {
        Ok(()) | Err(geom_core::sys::errno::EEXIST) => Ok(()),
        Err(e) => Err(format!("kldload: error {e}")),
    }
}

/// A geom(8) command line for class `C`, which must succeed.
pub fn run<C: GeomClass + DeclaredModule>(rt: &Runtime, argv: &[&str]) -> Result<Output, String> {
    let out = command::run::<C>(rt, argv);
    match &out.error {
        None => Ok(out),
        Some(e) => Err(format!("geom {} {}: {e}", C::NAME.to_string_lossy().to_lowercase(), argv.join(" "))),
    }
}
