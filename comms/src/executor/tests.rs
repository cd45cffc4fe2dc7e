//! The call future's size, and what an executor shows of itself.

use super::*;

#[test]
fn a_call_future_stays_small() {
    // The future is moved into its caller's state when awaited, and every call in flight
    // keeps one, so its size is a cost of every call (`call_future.rs` says how it is kept
    // small).
    let e = Executor::builder()
        .base_url("http://h")
        .service_id("svc")
        .secret("s")
        .build()
        .unwrap();
    let call = e.execute(Call::get("/x"));
    let size = std::mem::size_of_val(&call);
    assert!(size <= 900, "the call's future is {size} bytes");
    let streamed = e.execute_streaming(Call::get("/x"));
    let streamed_size = std::mem::size_of_val(&streamed);
    assert_eq!(
        streamed_size, size,
        "a streamed call's future is {streamed_size} bytes"
    );
}

#[test]
fn debug_hides_the_secret() {
    let builder = Executor::builder()
        .base_url("http://h")
        .service_id("svc")
        .secret("hunter2-secret");
    assert!(!format!("{builder:?}").contains("hunter2"));
    let exec = builder.build().unwrap();
    let shown = format!("{exec:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("svc"));
}
