//! Response classification: any status, `Retry-After` and body become a result, a retry
//! decision and a breaker verdict without a panic, error bodies stay bounded, and no
//! `Retry-After` beyond the default cap (30 s) is waited for.
#![no_main]

use std::time::Duration;

use comms::http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let status = u16::from_be_bytes([data[0], data[1]]) % 1000;
    let rest = &data[2..];
    let (retry_after, body) = match rest.iter().position(|b| *b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (&[][..], rest),
    };
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_bytes(retry_after) {
        headers.insert("retry-after", value);
    }
    let Ok(classified) = comms::__internals::classify_response(status, &headers, body) else {
        return;
    };
    if let Some(wait) = classified.retry_after {
        assert!(classified.retryable && wait <= Duration::from_secs(30));
    }
    if let Err(e) = &classified.result {
        let http = e.http_error().expect("a status error");
        assert!(http.body().len() <= comms::BODY_EXCERPT_LIMIT + 3);
        let _ = e.to_string();
    }
});
