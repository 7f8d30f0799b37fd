//! Graph algorithms over the model: reachability, cycles, worst case.

use crate::model::Machine;

/// The static worst case of one run (see the README's "Worst case").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorstCase {
    pub steps: Option<u64>,
    pub decisions: Option<u64>,
}

/// A sound upper bound on the steps and decisions of any run of `m`.
pub fn worst_case(m: &Machine) -> WorstCase {
    let steps = m.max_steps.map(|(n, _)| n);
    WorstCase {
        steps,
        decisions: steps,
    }
}
