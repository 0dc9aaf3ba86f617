//! The `g_class` of each safe class, built once per process: a kernel module's class is one
//! static, and so is ours (each runtime then loads its own copy, as each kernel would).

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::Mutex;

use geom_core::sys::{g_class, KernelCell};
use geom_core::GeomClass;

use crate::invariants::lock;

static TABLES: Mutex<Option<HashMap<TypeId, &'static KernelCell<g_class>>>> = Mutex::new(None);

/// The process's `g_class` for `C`.
pub(crate) fn table<C: GeomClass>() -> *const g_class {
    let mut g = lock(&TABLES);
    let map = g.get_or_insert_with(HashMap::new);
    let cell = map
        .entry(TypeId::of::<C>())
        .or_insert_with(|| Box::leak(Box::new(KernelCell::new(geom_core::class_table::<C>()))));
    cell.get()
}
