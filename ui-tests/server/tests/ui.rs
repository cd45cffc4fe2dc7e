//! The generated server's compile-time contract, with the `server` feature on: what compiles,
//! and what a type the server cannot parse or an incomplete implementation reports.
//!
//! Regenerate expected output with `TRYBUILD=overwrite cargo test -p comms-ui-tests-server`,
//! then review every changed `.stderr` by hand.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("pass/*.rs");
    t.compile_fail("fail/*.rs");
}
