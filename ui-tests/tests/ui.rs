//! The macro's compile-time contract: what compiles, and what each mistake reports.
//!
//! Regenerate expected output with `TRYBUILD=overwrite cargo test -p comms-ui-tests`, then
//! review every changed `.stderr` by hand.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("pass/*.rs");
    t.compile_fail("fail/*.rs");
}
