//! Every attribute and argument name the macros understand, in one place:
//! the parser, the "expected one of" messages and the suggestions all read
//! these lists.

/// `#[initial]`: the state a run starts in.
pub const INITIAL: &str = "initial";
/// `#[terminal]`: a state where a run ends.
pub const TERMINAL: &str = "terminal";
/// `#[to(A, B)]`: the moves out of a state.
pub const TO: &str = "to";
/// `#[gate]`: a model picks the next move.
pub const GATE: &str = "gate";
/// `#[wait]`: a signal from outside picks the next move.
pub const WAIT: &str = "wait";
/// `#[max_visits(N)]`: how often a run may enter the state.
pub const MAX_VISITS: &str = "max_visits";
/// `#[children(Machine, input = T, output = U)]`: the state fans out to
/// child runs of `Machine`.
pub const CHILDREN: &str = "children";
/// `input = T` in `#[children(..)]`.
pub const INPUT: &str = "input";
/// `output = U` in `#[children(..)]`.
pub const OUTPUT: &str = "output";

/// `#[gate(fallback = State)]`: the move taken when no valid decision comes.
pub const FALLBACK: &str = "fallback";
/// `#[gate(max_repairs = N)]`: this gate's repair limit.
pub const MAX_REPAIRS: &str = "max_repairs";

/// All state attributes, in the order the docs list them.
pub const STATE_ATTRS: &[&str] = &[INITIAL, TERMINAL, TO, GATE, WAIT, MAX_VISITS, CHILDREN];

/// `context = T` in `#[machine(..)]`.
pub const CONTEXT: &str = "context";
/// `max_steps = N` in `#[machine(..)]`.
pub const MAX_STEPS: &str = "max_steps";
/// `on_exhausted = State` in `#[machine(..)]`.
pub const ON_EXHAUSTED: &str = "on_exhausted";
/// `crate = path` in `#[machine(..)]` and `#[handlers(..)]`.
pub const CRATE: &str = "crate";

/// All machine arguments.
pub const MACHINE_ARGS: &[&str] = &[CONTEXT, MAX_STEPS, ON_EXHAUSTED, CRATE];
