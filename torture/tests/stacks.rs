//! A few seeds of every stack: each must pass, and replay to the same report.

use geom_torture::{run, Stack};

#[test]
fn every_stack_survives_its_first_seeds_and_replays_them() {
    for stack in Stack::ALL {
        for seed in 1..=12 {
            let first = run(&stack, seed).unwrap_or_else(|f| panic!("{} seed {seed}: {f:?}", stack.name()));
            let again = run(&stack, seed).unwrap();
            assert_eq!(first, again, "{} seed {seed} did not replay", stack.name());
        }
    }
}
