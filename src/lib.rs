//! guiderail
pub use guiderail_runtime::*;
