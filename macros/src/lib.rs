//! Macros for guiderail.
