//! `malloc_init` / `malloc_uninit` (`kern_malloc.c`): registering malloc types.
//!
//! A class's malloc type is one static per process, but each runtime is a kernel of its own
//! that "loads the module", so a type is registered per runtime: the process-wide registry
//! below knows each type's name and which runtimes registered it. Registering twice in one
//! runtime is harmless (FreeBSD would corrupt its list; here it is idempotent, as several
//! runtimes and tests share the statics). Unregistering checks the runtime's accounting of the
//! type and prints FreeBSD's leak warning when memory of it is still allocated.
//!
//! The host does not need a type to be registered to allocate from it (accounting is keyed by
//! the type's address), so classes whose SYSINITs nobody runs still work; the registry is
//! what `vmstat -m` would list.

use std::collections::BTreeMap;
use std::ffi::CStr;
use std::sync::{Arc, Mutex, Weak};

use geom_core::sys::{self, c_void, malloc_type};
use geom_core::MallocType;

use crate::invariants::{lock, ViolationKind};
use crate::runtime::{enter, kernel, kernel_arc, Kernel, Runtime};

/// One registered type.
struct TypeRecord {
    name: String,
    /// The runtimes that registered it (weak: a runtime dropped without unregistering does
    /// not keep its kernel alive, and its allocation is not reused while the entry exists).
    kernels: Vec<Weak<Kernel>>,
}

/// Every registered type, by address.
static TYPES: Mutex<BTreeMap<usize, TypeRecord>> = Mutex::new(BTreeMap::new());

fn same_kernel(w: &Weak<Kernel>, k: &Kernel) -> bool {
    std::ptr::eq(w.as_ptr(), k)
}

/// The short description of a type.
///
/// # Safety
/// `mtp` points at a live `struct malloc_type`.
unsafe fn shortdesc(mtp: *const malloc_type) -> String {
    // SAFETY: caller's contract; ks_shortdesc is NULL or a C string that lives with the type.
    unsafe {
        let d = (*mtp).ks_shortdesc;
        if d.is_null() {
            "?".into()
        } else {
            CStr::from_ptr(d).to_string_lossy().into_owned()
        }
    }
}

/// `malloc_init(mtp)`: register a malloc type in the calling thread's runtime.
#[no_mangle]
pub unsafe extern "C" fn malloc_init(data: *const c_void) {
    let k = kernel();
    let mtp = data.cast::<malloc_type>();
    if mtp.is_null() {
        k.inv.report(ViolationKind::Kassert, "malloc_init(NULL)".into());
        return;
    }
    // SAFETY: a malloc type is a static of the module registering it (caller's contract).
    let (name, version) = unsafe { (shortdesc(mtp), (*mtp).ks_version) };
    if version != sys::M_VERSION as sys::u_long {
        k.inv.report(
            ViolationKind::Kassert,
            format!("panic: malloc_init: type {name} with unsupported version {version}"),
        );
        return;
    }
    let me = Arc::downgrade(&kernel_arc());
    let mut types = lock(&TYPES);
    let rec = types.entry(mtp as usize).or_insert_with(|| TypeRecord { name, kernels: Vec::new() });
    rec.kernels.retain(|w| w.strong_count() > 0);
    if !rec.kernels.iter().any(|w| same_kernel(w, k)) {
        rec.kernels.push(me);
    }
}

/// `malloc_uninit(mtp)`: unregister a malloc type from the calling thread's runtime, with
/// FreeBSD's warning if memory of that type is still allocated there.
#[no_mangle]
pub unsafe extern "C" fn malloc_uninit(data: *const c_void) {
    let k = kernel();
    let mtp = data.cast::<malloc_type>();
    let registered = {
        let mut types = lock(&TYPES);
        match types.get_mut(&(mtp as usize)) {
            Some(rec) => {
                let before = rec.kernels.len();
                rec.kernels.retain(|w| w.strong_count() > 0 && !same_kernel(w, k));
                let found = rec.kernels.len() < before;
                if rec.kernels.is_empty() {
                    types.remove(&(mtp as usize));
                }
                found
            }
            None => false,
        }
    };
    // SAFETY: a non-NULL type is a live static (caller's contract).
    let name = if mtp.is_null() { "NULL".into() } else { unsafe { shortdesc(mtp) } };
    if !registered {
        k.inv.report(ViolationKind::Kassert, format!("malloc_uninit: type '{name}' not found"));
        return;
    }
    let (bytes, allocations) = k.malloc.usage(mtp);
    if bytes > 0 || allocations > 0 {
        k.console(&format!(
            "Warning: memory type {name} leaked memory on destroy ({allocations} allocations, {bytes} bytes leaked)."
        ));
    }
}

/// What a runtime holds of one malloc type (a line of `vmstat -m`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MallocUsage {
    /// The type's short description.
    pub name: String,
    /// Bytes allocated and not freed.
    pub bytes: i64,
    /// Allocations not freed.
    pub allocations: i64,
}

impl Runtime {
    /// Register a malloc type in this runtime, as the `SYSINIT` of its `MALLOC_DEFINE` does
    /// when a module loads (the host runs no `SYSINIT`s by itself).
    pub fn malloc_init(&self, mt: &'static MallocType) {
        let _e = enter(&self.k);
        // SAFETY: a valid static malloc type.
        unsafe { sys::malloc_init(mt.sysinit_arg()) };
    }

    /// Unregister a malloc type, as its `SYSUNINIT` does at module unload: the console gets
    /// FreeBSD's warning if memory of the type is still allocated.
    pub fn malloc_uninit(&self, mt: &'static MallocType) {
        let _e = enter(&self.k);
        // SAFETY: a valid static malloc type.
        unsafe { sys::malloc_uninit(mt.sysinit_arg()) };
    }

    /// Is `mt` registered in this runtime?
    pub fn malloc_type_registered(&self, mt: &MallocType) -> bool {
        let types = lock(&TYPES);
        types
            .get(&(mt.as_ptr() as usize))
            .is_some_and(|r| r.kernels.iter().any(|w| w.strong_count() > 0 && same_kernel(w, &self.k)))
    }

    /// What memory of type `mt` this runtime holds.
    pub fn malloc_usage(&self, mt: &MallocType) -> MallocUsage {
        let (bytes, allocations) = self.k.malloc.usage(mt.as_ptr());
        MallocUsage { name: mt.name().to_string_lossy().into_owned(), bytes, allocations }
    }

    /// The malloc types registered in this runtime and what each holds, by name
    /// (`vmstat -m`).
    pub fn malloc_types(&self) -> Vec<MallocUsage> {
        let regs: Vec<(usize, String)> = lock(&TYPES)
            .iter()
            .filter(|(_, r)| r.kernels.iter().any(|w| w.strong_count() > 0 && same_kernel(w, &self.k)))
            .map(|(&a, r)| (a, r.name.clone()))
            .collect();
        let mut out: Vec<MallocUsage> = regs
            .into_iter()
            .map(|(a, name)| {
                let (bytes, allocations) = self.k.malloc.usage(a as *const malloc_type);
                MallocUsage { name, bytes, allocations }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Make the next `n` non-waiting mallocs (`M_NOWAIT`) fail, as memory pressure would:
    /// the I/O path must turn that into `ENOMEM`.
    pub fn fail_next_mallocs(&self, n: u64) {
        self.k.malloc.fail_next_mallocs(n);
    }
}
