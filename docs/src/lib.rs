//! # Writing GEOM classes in Rust: the geom-rs programming guide
//!
//! This guide is for a FreeBSD storage developer who wants to write a GEOM class (a storage
//! transformation such as gstripe, gmirror or gjournal) in safe Rust, test it on any Linux
//! machine, and ship it as a `.ko`. It follows the order of FreeBSD's article "Writing a GEOM
//! Class": first the kernel's ground rules (memory, lists, bios), then GEOM itself (classes,
//! geoms, providers, consumers, their methods and threads), then whole classes read line by
//! line. Each chapter says which part of the C KPI it replaces and what the framework now
//! checks for you. Every example is a doctest run against the real crates, on the userland
//! runtime `geom-host`.
//!
//! | chapter | what it teaches |
//! |---|---|
//! | [1. What GEOM is](ch01_what_geom_is) | classes, geoms, providers, consumers; the `g_event`, `g_down` and `g_up` threads; how a bio travels |
//! | [2. Setting up](ch02_setting_up) | the workspace, the host runtime, building a `.ko` and loading it, kernel options and what the host checks instead |
//! | [3. Memory](ch03_memory) | malloc types, waiting and non-waiting allocation, zones, the kinds of bio and buffer allocation |
//! | [4. Lists and queues](ch04_lists_and_queues) | the bio queue, and when a tree or a hash is the better tool |
//! | [5. Bios](ch05_bios) | start, clone, request, done, deliver; parents and children; errors |
//! | [6. The class](ch06_the_class) | the class and its methods, the softc, metadata and tasting, labeling, verbs and ctlreq |
//! | [7. Geoms and their events](ch07_geom_events) | access, orphan, spoiled, dumpconf, resize |
//! | [8. Threads and sleeping](ch08_threads_and_sleeping) | why start and done may not sleep, what the context tokens forbid, workers |
//! | [9. Walkthroughs](ch09_walkthroughs) | NOP, STRIPE and JOURNAL, read beside their C originals |
//! | [10. Testing](ch10_testing) | the host runtime, fault injection, power cuts, serving a class to real clients, benchmarks |
//! | [11. C to Rust](ch11_c_to_rust) | every KPI function and macro of the article and its man pages, and its counterpart here |
//!
//! Read it from the start if GEOM is new to you; if you have written a class in C, chapter 1's
//! last section, chapter 6 and the table in chapter 11 are the short way in.
//!
//! The crates the examples use: [`geom_core`] (what a class is compiled against),
//! [`geom_host`] (the userland kernel), [`kmod_glue`] (the FreeBSD side of a `.ko`), and the
//! example classes [`geom_class_nop`], [`geom_class_stripe`] and [`geom_class_journal`].
#![deny(unsafe_code)]
#![warn(missing_docs)]

// The examples link the runtime and the classes; the crate itself only holds the chapters.
pub use geom_class_journal;
pub use geom_class_nop;
pub use geom_class_stripe;
pub use geom_core;
pub use geom_host;
pub use kmod_glue;

#[doc = include_str!("../01-what-geom-is.md")]
pub mod ch01_what_geom_is {}

#[doc = include_str!("../02-setting-up.md")]
pub mod ch02_setting_up {
    #[doc = include_str!("../02-building-modules.md")]
    pub mod building_modules {}
}

#[doc = include_str!("../03-memory.md")]
pub mod ch03_memory {}

#[doc = include_str!("../04-lists-and-queues.md")]
pub mod ch04_lists_and_queues {}

#[doc = include_str!("../05-bios.md")]
pub mod ch05_bios {}

#[doc = include_str!("../06-the-class.md")]
pub mod ch06_the_class {}

#[doc = include_str!("../07-geom-events.md")]
pub mod ch07_geom_events {}

#[doc = include_str!("../08-threads-and-sleeping.md")]
pub mod ch08_threads_and_sleeping {}

#[doc = include_str!("../09-walkthroughs.md")]
pub mod ch09_walkthroughs {
    #[doc = include_str!("../09-walkthrough-nop.md")]
    pub mod nop {}
    #[doc = include_str!("../09-walkthrough-stripe.md")]
    pub mod stripe {}
    #[doc = include_str!("../09-walkthrough-journal.md")]
    pub mod journal {}
}

#[doc = include_str!("../10-testing.md")]
pub mod ch10_testing {
    #[doc = include_str!("../10-serving.md")]
    pub mod serving {}
}

#[doc = include_str!("../11-c-to-rust.md")]
pub mod ch11_c_to_rust {}
