//! Stage 3: every rule a machine must follow, reported together.

use crate::ctxt::Ctxt;
use crate::model::Machine;

pub mod suggest;

/// Runs every rule; errors go into `cx` in source order.
pub fn machine(cx: &Ctxt, m: &Machine) {
    let _ = (cx, m);
}
