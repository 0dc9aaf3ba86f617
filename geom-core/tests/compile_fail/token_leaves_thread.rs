// A context token belongs to the call that received it: it cannot go to another thread
// (where it would no longer prove anything).
use geom_core::Topology;

fn taste(topo: &mut Topology) {
    let t: &Topology = topo;
    std::thread::scope(|s| {
        s.spawn(move || {
            let _moved: &Topology = t;
        });
    });
}

fn main() {}
