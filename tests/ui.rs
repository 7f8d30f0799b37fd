//! Compile-fail cases, one per rule (`tests/ui/*.rs`), and machines that
//! must compile (`tests/ui/pass/*.rs`). Refresh the expected output with
//! `TRYBUILD=overwrite cargo test --test ui` and read every `.stderr` diff
//! as the user would.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
