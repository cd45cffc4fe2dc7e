//! The verifier's header parsing: any header values, path and body must be refused (or, for a
//! genuinely signed request, accepted) without a panic.
#![no_main]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use comms::http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, header};
use comms::signing;
use comms::verify::Verifier;
use libfuzzer_sys::fuzz_target;

/// The headers a verifier reads, as the runtime declares them.
static NAMES: [HeaderName; 9] = [
    signing::SIGNATURE_INPUT,
    signing::SIGNATURE,
    signing::CONTENT_DIGEST,
    header::HOST,
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    signing::SERVICE_ID_HEADER,
    signing::TIMESTAMP_HEADER,
    signing::LEGACY_SIGNATURE_HEADER,
];

fuzz_target!(|data: &[u8]| {
    // Layout: pieces separated by 0xFF; the first is the path, then (name index, value) pairs,
    // the last is the body.
    let mut pieces = data.split(|b| *b == 0xFF);
    let path = pieces.next().unwrap_or_default();
    let mut headers = HeaderMap::new();
    let mut body: &[u8] = &[];
    for piece in pieces {
        body = piece;
        if let Some((index, value)) = piece.split_first() {
            let name = NAMES[*index as usize % NAMES.len()].clone();
            if let Ok(value) = HeaderValue::from_bytes(value) {
                headers.append(name, value);
            }
        }
    }
    let uri = std::str::from_utf8(path)
        .ok()
        .and_then(|p| p.parse::<Uri>().ok())
        .unwrap_or_else(|| Uri::from_static("/"));
    let verifier = Verifier::new()
        .service("billing", "fuzz-secret")
        .accept_legacy(true);
    let mut future = pin!(verifier.verify(&Method::POST, &uri, &headers, body));
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(result) => assert!(result.is_err(), "random input verified"),
        Poll::Pending => panic!("the in-memory verifier never waits"),
    }
});
