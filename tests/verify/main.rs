//! The receiving side: the verifier against requests a real client sent, single-field
//! tampering, replays, clock skew, the axum layer and the nonce store's bound.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::routing::{get, post};
use axum::{Extension, Router};
use comms::http::{HeaderValue, Method, Uri};
use comms::verify::{Caller, MemoryNonceStore, NonceStore, Verifier, VerifyError, VerifyLayer};
use comms::{BoxError, BreakerConfig, Call, Error, Executor, RetryConfig};
use comms_tests::{Recorded, Reply, TestServer, serve};

const SECRET: &str = "verify-secret";

fn exec(url: &str) -> Executor {
    comms_tests::plain_executor(url, "billing", SECRET)
}

fn verifier() -> Verifier {
    Verifier::new()
        .service("billing", SECRET)
        .service("other", "other-secret")
}

/// One genuine signed request, as a server received it.
async fn genuine() -> Recorded {
    let server = TestServer::always(Reply::status(200)).await;
    exec(&server.url())
        .execute(
            Call::post("/orders")
                .segment(7)
                .query("a", "1")
                .query("a", "2")
                .query("q", "x+y")
                .header("x-request-id", "req-1")
                .idempotent(true)
                .json(&serde_json::json!({"qty": 2})),
        )
        .await
        .unwrap();
    server.requests().remove(0)
}

async fn check(v: &Verifier, r: &Recorded) -> Result<Caller, VerifyError> {
    v.verify(&r.method, &r.uri, &r.headers, &r.body).await
}

#[tokio::test]
async fn a_genuine_request_verifies_once() {
    let r = genuine().await;
    let v = verifier();
    assert_eq!(check(&v, &r).await.unwrap().service_id(), "billing");
    assert!(matches!(check(&v, &r).await, Err(VerifyError::Replayed)));
    // Clones share the nonce store.
    assert!(matches!(
        check(&v.clone(), &r).await,
        Err(VerifyError::Replayed)
    ));
}

/// A verifier told the authorities its service is reached by refuses a request signed for
/// another, as one captured on its way to another service sharing the caller's secret.
#[tokio::test]
async fn a_request_signed_for_another_authority_is_refused_when_the_verifier_knows_its_own() {
    let r = genuine().await;
    let signed_for = r.header("host").unwrap().to_owned();
    let elsewhere = verifier().authority("orders.internal:8080");
    assert!(matches!(
        check(&elsewhere, &r).await,
        Err(VerifyError::WrongAuthority(a)) if a == signed_for
    ));
    // Its own (in any case), among others: accepted.
    let own = verifier()
        .authority("orders.internal:8080")
        .authority(signed_for.to_uppercase());
    assert_eq!(check(&own, &r).await.unwrap().service_id(), "billing");
}

/// The parts of a genuine request's `Signature-Input` member: covered components and
/// `created`, to re-sign variations of it by hand.
fn created_of(r: &Recorded) -> u64 {
    let input = r.header("signature-input").unwrap();
    let after = input.split(";created=").nth(1).unwrap();
    after.split(';').next().unwrap().parse().unwrap()
}

const COVERED: &[&str] = &[
    "@method",
    "@authority",
    "@path",
    "@query",
    "content-digest",
    "content-type",
    "idempotency-key",
    "x-request-id",
];

fn params(created: u64, key: &str, nonce: &str) -> String {
    format!(r#";created={created};keyid="{key}";alg="hmac-sha256";nonce="{nonce}""#)
}

mod forms;
mod keys;
mod layer;
mod profile;
mod store;
mod tampering;
