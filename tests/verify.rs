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
    Executor::builder()
        .base_url(url)
        .service_id("billing")
        .secret(SECRET)
        .retry(RetryConfig::none())
        .breaker(BreakerConfig::disabled())
        .build()
        .unwrap()
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

#[tokio::test]
async fn each_tampered_field_is_caught() {
    let r = genuine().await;
    assert_eq!(
        r.header("signature-input")
            .unwrap()
            .split(';')
            .next()
            .unwrap(),
        format!(
            "comms=({})",
            COVERED
                .iter()
                .map(|c| format!("\"{c}\""))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        "the request covers what the profile says, in its order"
    );
    type Tamper = fn(&mut Recorded);
    type Expect = fn(&VerifyError) -> bool;
    let bad_signature: Expect = |e| matches!(e, VerifyError::BadSignature);
    fn set(r: &mut Recorded, name: &'static str, value: &'static str) {
        r.headers.insert(name, HeaderValue::from_static(value));
    }
    let cases: Vec<(&str, Tamper, Expect)> = vec![
        ("method", |r| r.method = Method::PUT, bad_signature),
        (
            "method case",
            |r| r.method = Method::from_bytes(b"post").unwrap(),
            bad_signature,
        ),
        (
            "authority",
            |r| set(r, "host", "evil.internal:8080"),
            bad_signature,
        ),
        (
            "unknown key id, long",
            |r| {
                let input = r.header("signature-input").unwrap().replace(
                    "keyid=\"billing\"",
                    &format!("keyid=\"{}\"", "k".repeat(5000)),
                );
                r.headers
                    .insert("signature-input", HeaderValue::from_str(&input).unwrap());
            },
            |e| matches!(e, VerifyError::UnknownKey(Some(k)) if k.len() == 64),
        ),
        (
            "path",
            |r| r.uri = Uri::from_static("/orders/8?a=1&a=2&q=x%2By"),
            bad_signature,
        ),
        (
            "query value",
            |r| r.uri = Uri::from_static("/orders/7?a=1&a=3&q=x%2By"),
            bad_signature,
        ),
        (
            "query + for %2B",
            |r| r.uri = Uri::from_static("/orders/7?a=1&a=2&q=x+y"),
            bad_signature,
        ),
        (
            "repeated keys reordered",
            |r| r.uri = Uri::from_static("/orders/7?a=2&a=1&q=x%2By"),
            bad_signature,
        ),
        (
            "extra query",
            |r| r.uri = Uri::from_static("/orders/7?a=1&a=2&q=x%2By&admin=1"),
            bad_signature,
        ),
        (
            "query removed",
            |r| r.uri = Uri::from_static("/orders/7"),
            bad_signature,
        ),
        (
            "body",
            |r| r.body = bytes::Bytes::from_static(br#"{"qty":200}"#),
            |e| matches!(e, VerifyError::ContentDigestMismatch),
        ),
        (
            "content-digest",
            |r| set(r, "content-digest", comms::signing::EMPTY_CONTENT_DIGEST),
            bad_signature,
        ),
        (
            "content-type",
            |r| set(r, "content-type", "text/plain"),
            bad_signature,
        ),
        (
            "idempotency-key",
            |r| set(r, "idempotency-key", "another-key"),
            bad_signature,
        ),
        (
            "x-request-id",
            |r| set(r, "x-request-id", "req-2"),
            bad_signature,
        ),
        (
            "covered header removed",
            |r| {
                r.headers.remove("x-request-id");
            },
            |e| matches!(e, VerifyError::CoveredFieldNotOnce(f) if f == "x-request-id"),
        ),
        (
            "covered header repeated",
            |r| {
                r.headers
                    .append("x-request-id", HeaderValue::from_static("req-1"));
            },
            |e| matches!(e, VerifyError::CoveredFieldNotOnce(f) if f == "x-request-id"),
        ),
        (
            "created",
            |r| {
                let input = r.header("signature-input").unwrap().to_owned();
                let created = created_of(r);
                let moved = input.replace(
                    &format!("created={created}"),
                    &format!("created={}", created - 1),
                );
                r.headers
                    .insert("signature-input", HeaderValue::from_str(&moved).unwrap());
            },
            bad_signature,
        ),
        (
            "nonce",
            |r| {
                let input = r.header("signature-input").unwrap().to_owned();
                let (head, _) = input.split_once(";nonce=").unwrap();
                let moved = format!(r#"{head};nonce="ffffffffffffffffffffffffffffffff""#);
                r.headers
                    .insert("signature-input", HeaderValue::from_str(&moved).unwrap());
            },
            bad_signature,
        ),
        (
            "signature",
            |r| {
                let sig = r.header("signature").unwrap();
                let flipped = if sig.starts_with("comms=:A") {
                    sig.replacen("comms=:A", "comms=:B", 1)
                } else {
                    format!("comms=:A{}", &sig[8..])
                };
                r.headers
                    .insert("signature", HeaderValue::from_str(&flipped).unwrap());
            },
            bad_signature,
        ),
        (
            "coverage removed from the input",
            |r| {
                let input = r
                    .header("signature-input")
                    .unwrap()
                    .replace(" \"x-request-id\"", "");
                r.headers
                    .insert("signature-input", HeaderValue::from_str(&input).unwrap());
            },
            bad_signature,
        ),
        (
            "unknown key",
            |r| {
                let input = r
                    .header("signature-input")
                    .unwrap()
                    .replace("keyid=\"billing\"", "keyid=\"mallory\"");
                r.headers
                    .insert("signature-input", HeaderValue::from_str(&input).unwrap());
            },
            |e| matches!(e, VerifyError::UnknownKey(Some(k)) if k == "mallory"),
        ),
        (
            "another service's key",
            |r| {
                let input = r
                    .header("signature-input")
                    .unwrap()
                    .replace("keyid=\"billing\"", "keyid=\"other\"");
                r.headers
                    .insert("signature-input", HeaderValue::from_str(&input).unwrap());
            },
            bad_signature,
        ),
        (
            "signature label mismatch",
            |r| {
                let sig = r
                    .header("signature")
                    .unwrap()
                    .replacen("comms=", "other=", 1);
                r.headers
                    .insert("signature", HeaderValue::from_str(&sig).unwrap());
            },
            |e| matches!(e, VerifyError::MalformedHeader(h) if h == "signature"),
        ),
    ];
    for (what, tamper, expected) in cases {
        let mut copy = r.clone();
        tamper(&mut copy);
        let err = check(&verifier(), &copy).await.expect_err(what);
        assert!(expected(&err), "{what}: got {err:?}");
    }
    // The untouched request still verifies (the failures above stored no nonce).
    check(&verifier(), &r).await.unwrap();
}

#[tokio::test]
async fn coverage_the_profile_requires_is_enforced() {
    let r = genuine().await;
    let created = created_of(&r);
    let required = ["@method", "@authority", "@path", "@query", "content-digest"];
    for (i, dropped) in required.iter().enumerate() {
        let mut copy = r.clone();
        let components: Vec<&str> = required
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, c)| *c)
            .collect();
        let nonce = format!("{:032x}", i + 1);
        copy.sign_as(
            "comms",
            &components,
            &params(created, "billing", &nonce),
            SECRET,
        );
        let err = check(&verifier(), &copy).await.unwrap_err();
        assert!(
            matches!(err, VerifyError::NotCovered(c) if c == *dropped),
            "{dropped}: {err:?}"
        );
    }
    // A bodiless GET need not cover content-digest.
    let mut get = r.clone();
    get.method = Method::GET;
    get.body = bytes::Bytes::new();
    get.headers.remove("content-length");
    get.headers.remove("content-digest");
    get.sign_as(
        "comms",
        &required[..4],
        &params(created, "billing", &"9".repeat(32)),
        SECRET,
    );
    check(&verifier(), &get).await.unwrap();
    // An unsupported derived component is refused, not ignored.
    let mut copy = r.clone();
    copy.sign_as(
        "comms",
        &[
            "@method",
            "@authority",
            "@path",
            "@query",
            "content-digest",
            "@status",
        ],
        &params(created, "billing", &"8".repeat(32)),
        SECRET,
    );
    assert!(matches!(
        check(&verifier(), &copy).await,
        Err(VerifyError::UnsupportedComponent(c)) if c == "@status"
    ));
}

#[tokio::test]
async fn other_signers_choices_are_accepted_and_checked() {
    let r = genuine().await;
    let created = created_of(&r);
    let all = [
        "@method",
        "@authority",
        "@path",
        "@query",
        "content-digest",
        "date",
    ];
    let mut copy = r.clone();
    copy.headers.insert(
        "date",
        HeaderValue::from_static("Tue, 01 Dec 2026 10:00:00 GMT"),
    );
    // Another label, `date` covered, a base64url nonce of 22 characters as Python's
    // requests-http-signature sends, no `alg`, parameters in another order.
    copy.sign_as(
        "sig-b21",
        &all,
        &format!(r#";keyid="billing";nonce="Ab-_0123456789xyzQRS9w";created={created}"#),
        SECRET,
    );
    let caller = check(&verifier(), &copy).await.unwrap();
    assert_eq!(
        (caller.service_id(), caller.key_id()),
        ("billing", "billing")
    );
    // The authority is compared in lower case, as RFC 9421 normalises it: signed for
    // `localhost`, received with a `Host` of `LOCALHOST`.
    let mut upper = r.clone();
    let port = r
        .header("host")
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    upper.headers.insert(
        "host",
        HeaderValue::from_str(&format!("localhost:{port}")).unwrap(),
    );
    upper.sign_as(
        "comms",
        &["@method", "@authority", "@path", "@query", "content-digest"],
        &params(created, "billing", &"7".repeat(32)),
        SECRET,
    );
    upper.headers.insert(
        "host",
        HeaderValue::from_str(&format!("LOCALHOST:{port}")).unwrap(),
    );
    check(&verifier(), &upper).await.unwrap();
    // The covered `date` is checked.
    let mut changed = copy.clone();
    changed.headers.insert(
        "date",
        HeaderValue::from_static("Tue, 01 Dec 2026 10:00:01 GMT"),
    );
    assert!(matches!(
        check(&verifier(), &changed).await,
        Err(VerifyError::BadSignature)
    ));
    // Of several signatures, the first with a known key is used.
    let mut two = r.clone();
    let input = two.header("signature-input").unwrap().to_owned();
    let sig = two.header("signature").unwrap().to_owned();
    two.headers.insert(
        "signature-input",
        HeaderValue::from_str(&format!(
            r#"unknown=("@method");created={created};keyid="nobody";nonce="{}", {input}"#,
            "1".repeat(32)
        ))
        .unwrap(),
    );
    two.headers.insert(
        "signature",
        HeaderValue::from_str(&format!("unknown=:AAAA:, {sig}")).unwrap(),
    );
    check(&verifier(), &two).await.unwrap();
}

#[tokio::test]
async fn signature_parameters_are_checked() {
    let r = genuine().await;
    let created = created_of(&r);
    let covered = ["@method", "@authority", "@path", "@query", "content-digest"];
    let nonce = "0123456789abcdef0123456789abcdef";
    type Expect = fn(&VerifyError) -> bool;
    let cases: Vec<(String, Expect)> = vec![
        (
            format!(r#";created={created};keyid="billing";alg="hmac-sha512";nonce="{nonce}""#),
            |e| matches!(e, VerifyError::UnsupportedAlgorithm(a) if a == "hmac-sha512"),
        ),
        (format!(r#";created={created};keyid="billing""#), |e| {
            matches!(e, VerifyError::MalformedSignature(_))
        }),
        (format!(r#";keyid="billing";nonce="{nonce}""#), |e| {
            matches!(e, VerifyError::MalformedSignature(_))
        }),
        (
            format!(r#";created={created};keyid="billing";nonce="short""#),
            |e| matches!(e, VerifyError::MalformedNonce),
        ),
        (
            format!(r#";created={created};keyid="billing";nonce="{nonce}+/""#),
            |e| matches!(e, VerifyError::MalformedNonce),
        ),
        (
            format!(
                r#";created={created};keyid="billing";nonce="{}""#,
                "n".repeat(129)
            ),
            |e| matches!(e, VerifyError::MalformedNonce),
        ),
        (
            format!(
                r#";created={created};expires={};keyid="billing";nonce="{nonce}""#,
                created - 400
            ),
            |e| matches!(e, VerifyError::Expired),
        ),
        (
            format!(r#";created="{created}";keyid="billing";nonce="{nonce}""#),
            |e| matches!(e, VerifyError::MalformedSignature(_)),
        ),
    ];
    for (params, expected) in cases {
        let mut copy = r.clone();
        copy.sign_as("comms", &covered, &params, SECRET);
        let err = check(&verifier(), &copy).await.expect_err(&params);
        assert!(expected(&err), "{params}: {err:?}");
    }
    // An `expires` still ahead, and a 128-character nonce, are fine.
    let mut copy = r.clone();
    copy.sign_as(
        "comms",
        &covered,
        &format!(
            r#";created={created};expires={};keyid="billing";nonce="{}""#,
            created + 60,
            "n".repeat(128)
        ),
        SECRET,
    );
    check(&verifier(), &copy).await.unwrap();
}

#[tokio::test]
async fn missing_and_malformed_headers_are_named() {
    let r = genuine().await;
    for name in ["signature", "content-digest"] {
        let mut copy = r.clone();
        copy.headers.remove(name);
        let err = check(&verifier(), &copy).await.unwrap_err();
        let named = match &err {
            VerifyError::MissingHeader(n) => n == name,
            VerifyError::CoveredFieldNotOnce(n) => n == name,
            _ => false,
        };
        assert!(named, "{name}: {err:?}");
    }
    let mut copy = r.clone();
    copy.headers.remove("signature-input");
    copy.headers.remove("signature");
    assert!(matches!(
        check(&verifier(), &copy).await,
        Err(VerifyError::MissingHeader(n)) if n == "signature-input"
    ));
    for (name, value) in [
        ("signature-input", "comms=(\"@method\""),
        ("signature-input", "comms=(@method)"),
        ("signature", "comms=notbytes"),
        ("content-digest", "sha-256=abc"),
    ] {
        let mut copy = r.clone();
        copy.headers.insert(name, HeaderValue::from_static(value));
        let err = check(&verifier(), &copy).await.unwrap_err();
        assert!(
            matches!(&err, VerifyError::MalformedHeader(n) if n == name)
                || matches!(&err, VerifyError::UnknownKey(None))
                || matches!(&err, VerifyError::BadSignature),
            "{name}={value}: {err:?}"
        );
    }
    // A legacy-looking request is refused unless legacy is accepted.
    let mut copy = r.clone();
    copy.headers.remove("signature-input");
    copy.headers
        .insert("x-signature", HeaderValue::from_static("00"));
    assert!(matches!(
        check(&verifier(), &copy).await,
        Err(VerifyError::LegacyNotAccepted)
    ));
}

#[tokio::test]
async fn stale_and_future_timestamps_are_refused() {
    // Requests signed with a clock far off are outside a 1 s window of this one.
    let r = genuine().await;
    let v = verifier().max_skew(Duration::from_secs(1));
    let created = created_of(&r);
    for (shift, stale) in [(-30i64, true), (30, false)] {
        let mut copy = r.clone();
        let moved = (created as i64 + shift) as u64;
        copy.sign_as(
            "comms",
            COVERED,
            &params(moved, "billing", "0123456789abcdef0123456789abcdef"),
            SECRET,
        );
        let err = check(&v, &copy).await.unwrap_err();
        if stale {
            assert!(
                matches!(err, VerifyError::StaleTimestamp(d) if d >= Duration::from_secs(29)),
                "{err:?}"
            );
        } else {
            assert!(
                matches!(err, VerifyError::FutureTimestamp(d) if d >= Duration::from_secs(29)),
                "{err:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_secret_is_rotated_without_downtime() {
    let server = TestServer::always(Reply::status(200)).await;
    let client = |key_id: Option<&str>, secret: &str| {
        let builder = Executor::builder()
            .base_url(server.url())
            .service_id("billing")
            .secret(secret)
            .retry(RetryConfig::none())
            .breaker(BreakerConfig::disabled());
        match key_id {
            Some(key_id) => builder.key_id(key_id),
            None => builder,
        }
        .build()
        .unwrap()
    };
    // Callers still on the old secret (under the default key id, the service id), and callers
    // already on the new one.
    let old = client(None, SECRET);
    let new = client(Some("billing-2026-12"), "the-new-secret");
    old.execute(Call::get("/a")).await.unwrap();
    new.execute(Call::get("/b")).await.unwrap();
    new.execute(Call::get("/c")).await.unwrap();
    let requests = server.requests();

    // During the overlap both keys verify, each named in the caller.
    let overlap = Verifier::new().service("billing", SECRET).key(
        "billing-2026-12",
        "billing",
        "the-new-secret",
    );
    let mut seen = Vec::new();
    for r in &requests {
        let caller = check(&overlap, r).await.unwrap();
        assert_eq!(caller.service_id(), "billing");
        seen.push(caller.key_id().to_owned());
    }
    assert_eq!(seen, ["billing", "billing-2026-12", "billing-2026-12"]);
    let usage = overlap.key_usage();
    let counts: Vec<(&str, u64)> = usage
        .iter()
        .map(|u| (u.key_id.as_str(), u.requests))
        .collect();
    assert_eq!(counts, [("billing", 1), ("billing-2026-12", 2)]);

    // Once the old key is retired, its signatures are refused; the new ones still pass.
    let after = Verifier::new().key("billing-2026-12", "billing", "the-new-secret");
    assert!(matches!(
        check(&after, &requests[0]).await,
        Err(VerifyError::UnknownKey(Some(k))) if k == "billing"
    ));
    check(&after, &requests[1]).await.unwrap();
    // The new key id with the old secret is not the new key.
    let confused = client(Some("billing-2026-12"), SECRET);
    confused.execute(Call::get("/d")).await.unwrap();
    let last = server.requests().pop().unwrap();
    assert!(matches!(
        check(&after, &last).await,
        Err(VerifyError::BadSignature)
    ));
}

/// A nonce store shared by two verifiers, standing in for a fleet-wide one.
#[derive(Clone, Default)]
struct Shared {
    inner: Arc<MemoryNonceStore>,
    calls: Arc<AtomicUsize>,
}

impl NonceStore for Shared {
    fn check_and_insert<'a>(
        &'a self,
        service_id: &'a str,
        nonce: &'a str,
        now: SystemTime,
        keep_until: SystemTime,
    ) -> Pin<Box<dyn Future<Output = Result<bool, BoxError>> + Send + 'a>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner
            .check_and_insert(service_id, nonce, now, keep_until)
    }
}

#[tokio::test]
async fn a_shared_store_stops_replays_across_verifiers() {
    let r = genuine().await;
    let store = Shared::default();
    let replica_a = verifier().nonce_store(store.clone());
    let replica_b = verifier().nonce_store(store.clone());
    check(&replica_a, &r).await.unwrap();
    assert!(matches!(
        check(&replica_b, &r).await,
        Err(VerifyError::Replayed)
    ));
    assert_eq!(store.calls.load(Ordering::SeqCst), 2);
}

/// A store that cannot answer: requests are refused, never let through.
struct Down;

impl NonceStore for Down {
    fn check_and_insert<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: SystemTime,
        _: SystemTime,
    ) -> Pin<Box<dyn Future<Output = Result<bool, BoxError>> + Send + 'a>> {
        Box::pin(async { Err("store unreachable".into()) })
    }
}

#[tokio::test]
async fn an_unreachable_store_fails_closed() {
    let r = genuine().await;
    let err = check(&verifier().nonce_store(Down), &r).await.unwrap_err();
    assert!(matches!(err, VerifyError::NonceStore(_)), "{err:?}");
}

#[tokio::test]
async fn the_memory_store_stays_bounded_under_a_million_nonces() {
    let store = MemoryNonceStore::with_capacity(10_000);
    let cap = store.capacity();
    let now = 1_000_000u64;
    let at = |secs: u64| UNIX_EPOCH + Duration::from_secs(secs);
    let mut accepted = Vec::new();
    let mut refused = 0;
    // A flood of unique, live nonces: the store fills, then refuses; it never evicts.
    for i in 0..1_000_000u128 {
        let nonce = format!("{i:032x}");
        match store
            .check_and_insert("billing", &nonce, at(now), at(now + 300))
            .await
        {
            Ok(true) => {
                if accepted.len() < 100 {
                    accepted.push(nonce);
                }
            }
            Ok(false) => panic!("unique nonce {i} seen as a replay"),
            Err(_) => refused += 1,
        }
        if i % 100_000 == 0 {
            assert!(store.len() <= cap);
        }
    }
    assert!(store.len() <= cap, "{} > {cap}", store.len());
    assert!(refused >= 1_000_000 - cap);
    for nonce in &accepted {
        assert!(
            !store
                .check_and_insert("billing", nonce, at(now + 1), at(now + 301))
                .await
                .unwrap()
        );
    }
    // As time passes, expired nonces make room again.
    for i in 0..1_000_000u128 {
        let t = now + 300 + (i as u64 / 1_000);
        let nonce = format!("{:032x}", i + (1 << 100));
        let fresh = store
            .check_and_insert("billing", &nonce, at(t), at(t + 5))
            .await
            .unwrap();
        assert!(fresh, "nonce {i} refused at time {t}");
    }
    assert!(store.len() <= cap);
}

async fn whoami(Extension(caller): Extension<Caller>) -> String {
    caller.service_id().to_owned()
}

async fn echo(Extension(caller): Extension<Caller>, body: String) -> String {
    format!("{}:{body}", caller.service_id())
}

#[tokio::test]
async fn a_client_round_trips_through_the_layer() {
    let app = Router::new()
        .route("/whoami", get(whoami))
        .route("/echo", post(echo))
        .layer(VerifyLayer::new(verifier()).max_body_bytes(1024));
    let url = serve(app).await;
    let client = exec(&url);
    let me = client
        .execute(Call::get("/whoami").query("x", "a b"))
        .await
        .unwrap();
    assert_eq!(me.text().unwrap(), "billing");
    let echoed = client
        .execute(Call::post("/echo").json(&"hi"))
        .await
        .unwrap();
    assert_eq!(echoed.text().unwrap(), "billing:\"hi\"");

    // Wrong secret: 401 with a generic JSON message, typed on the client side.
    let intruder = Executor::builder()
        .base_url(&url)
        .service_id("billing")
        .secret("wrong")
        .retry(RetryConfig::none())
        .breaker(BreakerConfig::disabled())
        .build()
        .unwrap();
    let err = intruder.execute(Call::get("/whoami")).await.unwrap_err();
    match err {
        Error::Unauthorized(e) => assert_eq!(e.message(), Some("unauthorized")),
        other => panic!("{other}"),
    }

    // Unsigned requests are refused too.
    let plain = reqwest::Client::new()
        .get(format!("{url}/whoami"))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 401);
    assert_eq!(plain.headers()["content-type"], "application/json");

    // Oversized bodies: 413, by declared length or by counting a chunked body.
    let err = client
        .execute(Call::post("/echo").json(&"x".repeat(4096)))
        .await
        .unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(413), "{err}");
    // A signed head whose chunked body outgrows the limit: 413 once it is counted.
    let chunks: [&[u8]; 2] = [&[b'x'; 800], &[b'y'; 800]];
    let head = signed_head(&url, "/echo", &chunks.concat(), None);
    let status = raw_request(&url, &head, &chunks, true).await;
    assert!(status.starts_with("HTTP/1.1 413"), "{status}");
}

/// A POST head to `path` signed as `billing`, with the `Content-Digest` of `body` and, if
/// given, a `Content-Length`.
fn signed_head(url: &str, path: &str, body: &[u8], length: Option<u64>) -> Recorded {
    let addr = url.trim_start_matches("http://");
    let mut head = Recorded {
        method: Method::POST,
        uri: path.parse().unwrap(),
        headers: Default::default(),
        body: Default::default(),
    };
    head.headers
        .insert("host", HeaderValue::from_str(addr).unwrap());
    head.headers.insert(
        "content-digest",
        HeaderValue::from_str(&comms::signing::content_digest(body)).unwrap(),
    );
    if let Some(length) = length {
        head.headers.insert("content-length", length.into());
    }
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nonce = format!("{created:x}{:016x}", NEXT.fetch_add(1, Ordering::SeqCst));
    head.sign_as(
        "comms",
        &["@method", "@authority", "@path", "@query", "content-digest"],
        &params(created, "billing", &nonce),
        SECRET,
    );
    head
}

/// Writes `head` and then `chunks` (chunk-encoded, or as they are) over a plain TCP stream,
/// and returns the response's status line. With no chunks, nothing follows the head.
async fn raw_request(url: &str, head: &Recorded, chunks: &[&[u8]], chunked: bool) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!("{} {} HTTP/1.1\r\n", head.method, head.uri).into_bytes();
    for (name, value) in &head.headers {
        request.extend_from_slice(format!("{name}: {}\r\n", value.to_str().unwrap()).as_bytes());
    }
    if chunked {
        request.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    request.extend_from_slice(b"\r\n");
    for chunk in chunks {
        if chunked {
            request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        }
        request.extend_from_slice(chunk);
        if chunked {
            request.extend_from_slice(b"\r\n");
        }
    }
    if chunked {
        request.extend_from_slice(b"0\r\n\r\n");
    }
    stream.write_all(&request).await.unwrap();
    let mut response = vec![0u8; 1024];
    let n = stream.read(&mut response).await.unwrap();
    String::from_utf8_lossy(&response[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// A handler that counts the requests that reach it.
fn counting_app(reached: Arc<AtomicUsize>, layer: VerifyLayer) -> Router {
    Router::new()
        .route(
            "/echo",
            post(move |body: String| async move {
                reached.fetch_add(1, Ordering::SeqCst);
                body
            }),
        )
        .layer(layer)
}

#[tokio::test]
async fn an_unsigned_head_is_refused_before_its_body_is_read() {
    let reached = Arc::new(AtomicUsize::new(0));
    let url = serve(counting_app(reached.clone(), VerifyLayer::new(verifier()))).await;
    // A head announcing a 1 GB body, which never comes: the 401 comes at once, without
    // waiting for a byte of it (the read would otherwise wait out the 10 s body timeout).
    let mut head = signed_head(&url, "/echo", b"", Some(1_000_000_000));
    head.headers.remove("signature");
    let status = tokio::time::timeout(Duration::from_secs(5), raw_request(&url, &head, &[], false))
        .await
        .expect("answered without the body");
    assert!(status.starts_with("HTTP/1.1 401"), "{status}");

    // Signed with the wrong secret, likewise.
    let mut head = signed_head(&url, "/echo", b"", Some(1_000_000_000));
    let input = head.header("signature-input").unwrap().to_owned();
    let member = &input[input.find(')').unwrap() + 1..];
    head.sign_as(
        "comms",
        &["@method", "@authority", "@path", "@query", "content-digest"],
        member,
        "not-the-secret",
    );
    let status = tokio::time::timeout(Duration::from_secs(5), raw_request(&url, &head, &[], false))
        .await
        .expect("answered without the body");
    assert!(status.starts_with("HTTP/1.1 401"), "{status}");
    assert_eq!(reached.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_signed_body_is_read_under_a_size_and_a_time_limit() {
    let reached = Arc::new(AtomicUsize::new(0));
    let layer = VerifyLayer::new(verifier())
        .max_body_bytes(1024)
        .body_timeout(Duration::from_millis(300));
    let url = serve(counting_app(reached.clone(), layer)).await;

    // A signed head declaring more than the limit: 413 without reading.
    let head = signed_head(&url, "/echo", b"", Some(1_000_000_000));
    let status = raw_request(&url, &head, &[], false).await;
    assert!(status.starts_with("HTTP/1.1 413"), "{status}");

    // A signed head whose body never arrives: 408 after the body timeout.
    let body = b"hello";
    let head = signed_head(&url, "/echo", body, Some(body.len() as u64));
    let started = std::time::Instant::now();
    let status = raw_request(&url, &head, &[], false).await;
    assert!(status.starts_with("HTTP/1.1 408"), "{status}");
    assert!(started.elapsed() >= Duration::from_millis(300));

    // The same head with its body: accepted, and then refused as a replay.
    let status = raw_request(&url, &head, &[body], false).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let status = raw_request(&url, &head, &[body], false).await;
    assert!(status.starts_with("HTTP/1.1 401"), "{status}");

    // A body that does not match the signed digest: 401, and its nonce is not spent.
    let head = signed_head(&url, "/echo", b"12345", Some(5));
    let status = raw_request(&url, &head, &[b"54321"], false).await;
    assert!(status.starts_with("HTTP/1.1 401"), "{status}");
    let status = raw_request(&url, &head, &[b"12345"], false).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(reached.load(Ordering::SeqCst), 2);
}
