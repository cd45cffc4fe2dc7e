//! Signing vectors (RFC 9421 ones made by Python's `http-message-signatures`, legacy ones by
//! `microservice_comms`) and signatures recomputed from the wire bytes a real server received.

use std::time::Duration;

use comms::http::{HeaderMap, HeaderValue, Method, Uri};
use comms::signing::{self, Secret};
use comms::verify::{Verifier, VerifyError};
use comms::{BreakerConfig, Call, Executor, Signing};
use comms_tests::{Reply, TestServer, vectors};
use serde_json::Value;

/// Wide enough to accept the vectors' fixed timestamps.
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

/// A vector's covered header fields, `content-digest` first, as (lower-case name, value).
fn vector_fields(v: &Value) -> Vec<(String, String)> {
    let mut fields = vec![(
        "content-digest".to_owned(),
        s(v, "content_digest").to_owned(),
    )];
    for pair in v["headers"].as_array().unwrap() {
        let name = pair[0].as_str().unwrap().to_ascii_lowercase();
        fields.push((name, pair[1].as_str().unwrap().to_owned()));
    }
    fields
}

#[test]
fn rfc9421_vectors_sign_byte_for_byte() {
    let cases = vectors("rfc9421.json");
    let cases = cases.as_array().unwrap();
    assert!(cases.len() >= 4);
    for v in cases {
        let name = s(v, "name");
        assert_eq!(
            signing::content_digest(s(v, "body").as_bytes()),
            s(v, "content_digest"),
            "{name}"
        );
        let fields = vector_fields(v);
        let fields: Vec<(&str, &str)> = fields
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let covered: Vec<&str> = v["covered"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        let mut ours = vec!["@method", "@authority", "@path", "@query"];
        ours.extend(fields.iter().map(|(n, _)| *n));
        assert_eq!(ours, covered, "{name}: the profile's order");
        let message = signing::Message {
            method: s(v, "method"),
            authority: s(v, "authority"),
            path: s(v, "path"),
            query: s(v, "query"),
            fields: &fields,
        };
        let params = signing::Params {
            created: v["created"].as_u64().unwrap(),
            key_id: s(v, "key_id"),
            nonce: s(v, "nonce"),
        };
        let base = signing::signature_base(&message, &params);
        assert_eq!(base, s(v, "signature_base"), "{name}");
        assert_eq!(
            signing::signature_input(&message, &params),
            s(v, "signature_input"),
            "{name}"
        );
        assert_eq!(
            signing::signature(&Secret::from(s(v, "secret")), &base),
            s(v, "signature"),
            "{name}"
        );
    }
}

#[tokio::test]
async fn rfc9421_vectors_verify_once_then_are_replays() {
    for v in vectors("rfc9421.json").as_array().unwrap() {
        let name = s(v, "name");
        let verifier = Verifier::new()
            .key(s(v, "key_id"), "billing", s(v, "secret"))
            .max_skew(SKEW_FOR_VECTORS);
        let method = Method::from_bytes(s(v, "method").as_bytes()).unwrap();
        let mut pairs: Vec<(String, String)> = vec![("host".into(), s(v, "authority").into())];
        pairs.extend(vector_fields(v));
        pairs.push(("signature-input".into(), s(v, "signature_input").into()));
        pairs.push(("signature".into(), s(v, "signature").into()));
        let pairs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let h = headers(&pairs);
        let u = uri(s(v, "path"), s(v, "query"));
        let body = s(v, "body").as_bytes();
        let caller = verifier
            .verify(&method, &u, &h, body)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(caller.service_id(), "billing");
        assert_eq!(caller.key_id(), s(v, "key_id"));
        assert_eq!(caller.signing(), Signing::Rfc9421);
        assert!(
            matches!(
                verifier.verify(&method, &u, &h, body).await,
                Err(VerifyError::Replayed)
            ),
            "{name}: a replay"
        );
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
async fn rfc9421_signatures_recomputed_from_the_wire() {
    let server = TestServer::always(Reply::status(200)).await;
    send(
        Signing::Rfc9421,
        &server,
        Call::post("/orders")
            .segment("a/b é")
            .query("z", "1")
            .query("a", "x y")
            .query("a", "+")
            .header("X-Tenant", "acme  corp")
            .header("x-request-id", "r-1")
            .json(&serde_json::json!({"item": "abc", "qty": 2})),
    )
    .await;
    send(Signing::Rfc9421, &server, Call::get("/")).await;
    let verifier = Verifier::new().service("order-service", "wire-secret");
    for r in server.requests() {
        // Recompute everything from what arrived.
        assert_eq!(
            r.header("content-digest"),
            Some(signing::content_digest(&r.body).as_str())
        );
        let input = r.header("signature-input").unwrap();
        let list = &input["comms=(".len()..input.find(')').unwrap()];
        let fields: Vec<(&str, &str)> = list
            .split(' ')
            .map(|c| c.trim_matches('"'))
            .filter(|c| !c.starts_with('@'))
            .map(|name| (name, r.header(name).unwrap().trim()))
            .collect();
        let (created, nonce) = {
            let after = |key: &str| input.split(key).nth(1).unwrap().split(';').next().unwrap();
            (
                after(";created=").parse().unwrap(),
                after(";nonce=").trim_matches('"'),
            )
        };
        let message = signing::Message {
            method: r.method.as_str(),
            authority: r.header("host").unwrap(),
            path: r.uri.path(),
            query: r.uri.query().unwrap_or(""),
            fields: &fields,
        };
        let params = signing::Params {
            created,
            key_id: "order-service",
            nonce,
        };
        assert_eq!(signing::signature_input(&message, &params), input);
        let base = signing::signature_base(&message, &params);
        assert_eq!(
            r.header("signature").unwrap(),
            signing::signature(&Secret::from("wire-secret"), &base)
        );
        verifier
            .verify(&r.method, &r.uri, &r.headers, &r.body)
            .await
            .unwrap();
        assert!(
            r.header("x-service-id").is_none() && r.header("x-signature").is_none(),
            "no legacy headers"
        );
    }
    let first = &server.requests()[0];
    assert_eq!(first.uri.path(), "/base/orders/a%2Fb%20%C3%A9");
    assert_eq!(first.uri.query(), Some("z=1&a=x%20y&a=%2B"));
    assert!(
        first.header("signature-input").unwrap().starts_with(
            r#"comms=("@method" "@authority" "@path" "@query" "content-digest" "content-type" "x-tenant" "x-request-id");created="#
        ),
        "{:?}",
        first.header("signature-input")
    );
    let second = &server.requests()[1];
    assert_eq!(second.uri.path(), "/base/");
    assert_eq!(
        second.header("content-digest"),
        Some(signing::EMPTY_CONTENT_DIGEST)
    );
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
        assert!(r.header("signature-input").is_none() && r.header("content-digest").is_none());
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

#[tokio::test]
async fn a_legacy_call_to_a_path_that_decodes_to_an_escape_or_a_slash_is_refused_unsent() {
    // A segment `a%20b` is sent as `a%2520b`, and its decoded path, which the legacy scheme
    // signs, reads as the path a caller that encoded `a b` itself signs as written: a
    // verifier could not tell the two resources apart. A segment `a/b` is sent as `a%2Fb`,
    // and its decoded path cannot be told from two segments: a verifier refuses it.
    let server = TestServer::always(Reply::status(200)).await;
    let exec = Executor::builder()
        .base_url(server.url())
        .service_id("order-service")
        .secret("wire-secret")
        .signing(Signing::Legacy)
        .build()
        .unwrap();
    let refused = exec
        .execute(Call::get("/items").segment("a%20b"))
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, comms::Error::Encode { message } if message.contains("encoded escape")),
        "{refused:?}"
    );
    let refused = exec
        .execute(Call::get("/items").segment("a/b"))
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, comms::Error::Encode { message } if message.contains("encoded `/`")),
        "{refused:?}"
    );
    assert!(server.requests().is_empty());
    // A lone `%`, or one before other than two hex digits, reads as itself either way.
    for segment in ["100%", "50%off", "%2"] {
        exec.execute(Call::get("/items").segment(segment))
            .await
            .unwrap();
    }
    let verifier = Verifier::new()
        .service("order-service", "wire-secret")
        .accept_legacy(true);
    for r in server.requests() {
        verifier
            .verify(&r.method, &r.uri, &r.headers, &r.body)
            .await
            .unwrap();
    }
    assert_eq!(server.requests().len(), 3);
}
