//! Signing vectors (v2 and signatures made by the Python library) and signatures recomputed
//! from the wire bytes a real server received.

use std::time::Duration;

use comms::http::{HeaderMap, HeaderValue, Method, Uri};
use comms::signing::{self, Secret};
use comms::verify::{Verifier, VerifyError};
use comms::{BreakerConfig, Call, Executor, Signing};
use comms_tests::{Reply, TestServer, vectors};
use serde_json::Value;

/// Wide enough to accept the vectors' fixed 2023 timestamps.
const SKEW_FOR_VECTORS: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("vector field {key}"))
}

fn uri(path: &str, query: &str) -> Uri {
    if query.is_empty() {
        path.parse().unwrap()
    } else {
        format!("{path}?{query}").parse().unwrap()
    }
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(
            comms::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

#[test]
fn v2_vectors_sign_byte_for_byte() {
    let cases = vectors("v2.json");
    let cases = cases.as_array().unwrap();
    assert!(cases.len() >= 4);
    for v in cases {
        let name = s(v, "name");
        let canonical = signing::canonical_query(s(v, "query"));
        let hash = signing::content_sha256(s(v, "body").as_bytes());
        assert_eq!(hash, s(v, "content_sha256"), "{name}");
        let sts = signing::v2_string_to_sign(
            s(v, "method"),
            s(v, "path"),
            &canonical,
            s(v, "service_id"),
            v["timestamp"].as_u64().unwrap(),
            s(v, "nonce"),
            &hash,
        );
        assert_eq!(sts, s(v, "string_to_sign"), "{name}");
        let sig = signing::sign_v2(&Secret::from(s(v, "secret")), &sts);
        assert_eq!(sig, s(v, "x_signature"), "{name}");
    }
}

#[tokio::test]
async fn v2_vectors_verify() {
    for v in vectors("v2.json").as_array().unwrap() {
        let verifier = Verifier::new()
            .service(s(v, "service_id"), s(v, "secret"))
            .max_skew(SKEW_FOR_VECTORS);
        let method = Method::from_bytes(s(v, "method").to_uppercase().as_bytes()).unwrap();
        let ts = v["timestamp"].as_u64().unwrap().to_string();
        let h = headers(&[
            ("x-service-id", s(v, "service_id")),
            ("x-timestamp", &ts),
            ("x-nonce", s(v, "nonce")),
            ("x-content-sha256", s(v, "content_sha256")),
            ("x-signature", s(v, "x_signature")),
        ]);
        let caller = verifier
            .verify(
                &method,
                &uri(s(v, "path"), s(v, "query")),
                &h,
                s(v, "body").as_bytes(),
            )
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", s(v, "name")));
        assert_eq!(caller.service_id(), s(v, "service_id"));
        assert_eq!(caller.signing(), Signing::V2);
    }
}

#[test]
fn legacy_vectors_match_the_python_library() {
    let file = vectors("legacy.json");
    let cases = file["vectors"].as_array().unwrap();
    assert!(!cases.is_empty());
    for v in cases {
        let sts = signing::legacy_string_to_sign(
            s(v, "method"),
            s(v, "wire_path"),
            v["timestamp"].as_u64().unwrap(),
        );
        assert_eq!(
            String::from_utf8(sts.clone()).unwrap(),
            s(v, "string_to_sign")
        );
        assert_eq!(
            signing::sign_legacy(&Secret::from(s(v, "secret")), &sts),
            s(v, "x_signature")
        );
    }
}

#[tokio::test]
async fn legacy_vectors_verify_only_when_accepted() {
    let file = vectors("legacy.json");
    for v in file["vectors"].as_array().unwrap() {
        let method = Method::from_bytes(s(v, "method").to_uppercase().as_bytes()).unwrap();
        let ts = v["timestamp"].as_u64().unwrap().to_string();
        let h = headers(&[
            ("x-service-id", s(v, "service_id")),
            ("x-timestamp", &ts),
            ("x-signature", s(v, "x_signature")),
            ("content-type", "application/json"),
        ]);
        let u = uri(s(v, "wire_path"), s(v, "wire_query"));
        let body = s(v, "body").as_bytes();
        let strict = Verifier::new()
            .service(s(v, "service_id"), s(v, "secret"))
            .max_skew(SKEW_FOR_VECTORS);
        assert!(matches!(
            strict.verify(&method, &u, &h, body).await,
            Err(VerifyError::LegacyNotAccepted)
        ));
        let migrating = strict.accept_legacy(true);
        let caller = migrating.verify(&method, &u, &h, body).await.unwrap();
        assert_eq!(caller.signing(), Signing::Legacy);
        // A changed path breaks the signature.
        let other = uri(&format!("{}x", s(v, "wire_path")), "");
        assert!(matches!(
            migrating.verify(&method, &other, &h, body).await,
            Err(VerifyError::BadSignature)
        ));
    }
}

#[tokio::test]
async fn legacy_bare_root_accepts_the_empty_path_signature() {
    // The Python client signs `GET||<ts>` when called with a bare base URL.
    let secret = Secret::from("root-secret");
    let ts = 1_700_000_000u64;
    let sig = signing::sign_legacy(&secret, format!("GET||{ts}").as_bytes());
    let verifier = Verifier::new()
        .service("py", "root-secret")
        .max_skew(SKEW_FOR_VECTORS)
        .accept_legacy(true);
    let h = headers(&[
        ("x-service-id", "py"),
        ("x-timestamp", &ts.to_string()),
        ("x-signature", &sig),
    ]);
    verifier
        .verify(&Method::GET, &uri("/", ""), &h, b"")
        .await
        .unwrap();
    assert!(matches!(
        verifier.verify(&Method::GET, &uri("/x", ""), &h, b"").await,
        Err(VerifyError::BadSignature)
    ));
}

async fn send(signing: Signing, server: &TestServer, call: Call) {
    let exec = Executor::builder()
        .base_url(format!("{}/base/", server.url()))
        .service_id("order-service")
        .secret("wire-secret")
        .signing(signing)
        .breaker(BreakerConfig::disabled())
        .build()
        .unwrap();
    exec.execute(call).await.unwrap();
}

#[tokio::test]
async fn v2_signatures_recomputed_from_the_wire() {
    let server = TestServer::always(Reply::status(200)).await;
    send(
        Signing::V2,
        &server,
        Call::post("/orders")
            .segment("a/b é")
            .query("z", "1")
            .query("a", "x y")
            .query("a", "+")
            .json(&serde_json::json!({"item": "abc", "qty": 2})),
    )
    .await;
    send(Signing::V2, &server, Call::get("/")).await;
    let verifier = Verifier::new().service("order-service", "wire-secret");
    for r in server.requests() {
        // Recompute everything from what arrived.
        let hash = signing::content_sha256(&r.body);
        assert_eq!(r.header("x-content-sha256"), Some(hash.as_str()));
        let sts = signing::v2_string_to_sign(
            r.method.as_str(),
            r.uri.path(),
            &signing::canonical_query(r.uri.query().unwrap_or("")),
            r.header("x-service-id").unwrap(),
            r.header("x-timestamp").unwrap().parse().unwrap(),
            r.header("x-nonce").unwrap(),
            &hash,
        );
        assert_eq!(
            r.header("x-signature").unwrap(),
            signing::sign_v2(&Secret::from("wire-secret"), &sts)
        );
        verifier
            .verify(&r.method, &r.uri, &r.headers, &r.body)
            .await
            .unwrap();
    }
    let first = &server.requests()[0];
    assert_eq!(first.uri.path(), "/base/orders/a%2Fb%20%C3%A9");
    assert_eq!(first.uri.query(), Some("z=1&a=x%20y&a=%2B"));
    let second = &server.requests()[1];
    assert_eq!(second.uri.path(), "/base/");
}

#[tokio::test]
async fn legacy_signatures_recomputed_from_the_wire() {
    let server = TestServer::always(Reply::status(200)).await;
    send(
        Signing::Legacy,
        &server,
        Call::delete("/internal/items")
            .segment("r\u{e9}sum\u{e9}")
            .query("q", "1"),
    )
    .await;
    send(
        Signing::Legacy,
        &server,
        Call::post("/api/v1/orders").json(&serde_json::json!({"item": "abc"})),
    )
    .await;
    let verifier = Verifier::new()
        .service("order-service", "wire-secret")
        .accept_legacy(true);
    for r in server.requests() {
        assert!(r.header("x-nonce").is_none() && r.header("x-content-sha256").is_none());
        assert_eq!(r.header("content-type"), Some("application/json"));
        let ts: u64 = r.header("x-timestamp").unwrap().parse().unwrap();
        let sts = signing::legacy_string_to_sign(r.method.as_str(), r.uri.path(), ts);
        assert_eq!(
            r.header("x-signature").unwrap(),
            signing::sign_legacy(&Secret::from("wire-secret"), &sts)
        );
        let caller = verifier
            .verify(&r.method, &r.uri, &r.headers, &r.body)
            .await
            .unwrap();
        assert_eq!(caller.signing(), Signing::Legacy);
    }
    // The decoded path is what Python signs.
    let first = &server.requests()[0];
    let ts: u64 = first.header("x-timestamp").unwrap().parse().unwrap();
    assert_eq!(
        signing::legacy_string_to_sign("DELETE", first.uri.path(), ts),
        format!("DELETE|/base/internal/items/r\u{e9}sum\u{e9}|{ts}").as_bytes()
    );
}
