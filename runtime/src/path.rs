//! The states a run went through.

use std::fmt;

use crate::graph::StateInfo;

/// Every state a run moved to, in order, the initial and last included. A
/// state whose entry hit a bound is included (the run moved there, then the
/// bound stopped it or sent it to its wrap-up state).
///
/// Stored as 4-byte state indices; names come from the machine's graph.
/// Compares equal to a list of names:
///
/// ```text
/// assert_eq!(outcome.path, ["Intake", "Classify", "Done"]);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Path {
    states: &'static [StateInfo],
    indices: Vec<u32>,
}

impl Path {
    pub(crate) fn new(states: &'static [StateInfo], indices: Vec<u32>) -> Self {
        Path { states, indices }
    }

    /// The state names, in order.
    pub fn names(&self) -> impl ExactSizeIterator<Item = &'static str> + '_ {
        self.indices.iter().map(|&i| self.states[i as usize].name)
    }

    /// The state indices (into `Graph::states`), in order.
    pub fn indices(&self) -> &[u32] {
        &self.indices
    }

    /// How many states were entered.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether no state was entered (never true for a run that started).
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// The names as a `Vec`.
    pub fn to_vec(&self) -> Vec<&'static str> {
        self.names().collect()
    }
}

impl fmt::Debug for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

/// `Intake -> Classify -> Done`.
impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, name) in self.names().enumerate() {
            if i > 0 {
                f.write_str(" -> ")?;
            }
            f.write_str(name)?;
        }
        Ok(())
    }
}

impl<S: AsRef<str>> PartialEq<[S]> for Path {
    fn eq(&self, other: &[S]) -> bool {
        self.len() == other.len() && self.names().zip(other).all(|(a, b)| a == b.as_ref())
    }
}

impl<S: AsRef<str>, const N: usize> PartialEq<[S; N]> for Path {
    fn eq(&self, other: &[S; N]) -> bool {
        *self == other[..]
    }
}

impl<S: AsRef<str>> PartialEq<Vec<S>> for Path {
    fn eq(&self, other: &Vec<S>) -> bool {
        *self == other[..]
    }
}
