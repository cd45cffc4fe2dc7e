//! The executor's retry rules, timeouts, error mapping and limits, against real loopback
//! servers that count what they receive.

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use comms::{BreakerConfig, Call, Error, Executor, ExecutorBuilder, RetryConfig};
use comms_tests::{Fault, FaultServer, Reply, TestServer, dead_addr, fast_retry};
use serde_json::json;

const SECRET: &str = "executor-test-secret";

/// The settings every executor here shares: the test secret, no breaker.
fn builder(url: &str) -> ExecutorBuilder {
    Executor::builder()
        .base_url(url)
        .service_id("tests")
        .secret(SECRET)
        .breaker(BreakerConfig::disabled())
}

fn exec(url: &str, retry: RetryConfig) -> Executor {
    builder(url).retry(retry).build().unwrap()
}

/// An executor that accepts response bodies of at most 1 KiB.
fn limited(url: &str) -> Executor {
    builder(url).max_response_bytes(1024).build().unwrap()
}

/// Fails the first `n` requests with `status`, then answers 200.
fn fail_first(n: usize, status: u16) -> impl Fn(&comms_tests::Recorded, usize) -> Reply {
    move |_, i| {
        if i < n {
            Reply::status(status)
        } else {
            Reply::ok_json(json!({"ok": true}))
        }
    }
}

fn assert_no_secret(e: &Error) {
    assert!(!e.to_string().contains(SECRET) && !format!("{e:?}").contains(SECRET));
}

mod headers;
mod responses;
mod retries;
