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
use comms_tests::{Recorded, Reply, TestServer};

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

#[tokio::test]
async fn each_tampered_field_is_caught() {
    let r = genuine().await;
    type Tamper = fn(&mut Recorded);
    type Expect = fn(&VerifyError) -> bool;
    let cases: Vec<(&str, Tamper, Expect)> = vec![
        (
            "method",
            |r| r.method = Method::PUT,
            |e| matches!(e, VerifyError::BadSignature),
        ),
        (
            "path",
            |r| r.uri = Uri::from_static("/orders/8?a=1"),
            |e| matches!(e, VerifyError::BadSignature),
        ),
        (
            "query",
            |r| r.uri = Uri::from_static("/orders/7?a=2"),
            |e| matches!(e, VerifyError::BadSignature),
        ),
        (
            "extra query",
            |r| r.uri = Uri::from_static("/orders/7?a=1&admin=1"),
            |e| matches!(e, VerifyError::BadSignature),
        ),
        (
            "body",
            |r| r.body = bytes::Bytes::from_static(br#"{"qty":200}"#),
            |e| matches!(e, VerifyError::ContentHashMismatch),
        ),
        (
            "service id",
            |r| {
                r.headers
                    .insert("x-service-id", HeaderValue::from_static("other"));
            },
            |e| matches!(e, VerifyError::BadSignature),
        ),
        (
            "unknown service",
            |r| {
                r.headers
                    .insert("x-service-id", HeaderValue::from_static("mallory"));
            },
            |e| matches!(e, VerifyError::UnknownService(s) if s == "mallory"),
        ),
        (
            "timestamp",
            |r| {
                let ts: u64 = r.headers["x-timestamp"].to_str().unwrap().parse().unwrap();
                r.headers.insert(
                    "x-timestamp",
                    HeaderValue::from_str(&(ts - 1).to_string()).unwrap(),
                );
            },
            |e| matches!(e, VerifyError::BadSignature),
        ),
        (
            "nonce",
            |r| {
                r.headers.insert(
                    "x-nonce",
                    HeaderValue::from_static("ffffffffffffffffffffffffffffffff"),
                );
            },
            |e| matches!(e, VerifyError::BadSignature),
        ),
        (
            "signature",
            |r| {
                let mut sig = r.headers["x-signature"].to_str().unwrap().to_owned();
                let last = if sig.ends_with('0') { '1' } else { '0' };
                sig.pop();
                sig.push(last);
                r.headers
                    .insert("x-signature", HeaderValue::from_str(&sig).unwrap());
            },
            |e| matches!(e, VerifyError::BadSignature),
        ),
        (
            "content hash header",
            |r| {
                r.headers.insert(
                    "x-content-sha256",
                    HeaderValue::from_static(comms::signing::EMPTY_SHA256),
                );
            },
            |e| matches!(e, VerifyError::ContentHashMismatch),
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
async fn missing_and_malformed_headers_are_named() {
    let r = genuine().await;
    for name in [
        "x-service-id",
        "x-timestamp",
        "x-nonce",
        "x-content-sha256",
        "x-signature",
    ] {
        let mut copy = r.clone();
        copy.headers.remove(name);
        let err = check(&verifier(), &copy).await.unwrap_err();
        assert!(
            matches!(err, VerifyError::MissingHeader(n) if n == name),
            "{name}: {err:?}"
        );
    }
    for (name, value) in [
        ("x-timestamp", "soon"),
        ("x-timestamp", "-5"),
        ("x-nonce", "xyz"),
        ("x-nonce", "0011223344556677889900AABBCCDDEEFF"),
        ("x-content-sha256", "abc"),
        ("x-signature", "v2=nothex"),
    ] {
        let mut copy = r.clone();
        copy.headers.insert(name, HeaderValue::from_static(value));
        let err = check(&verifier(), &copy).await.unwrap_err();
        assert!(
            matches!(err, VerifyError::MalformedHeader(n) if n == name),
            "{name}={value}: {err:?}"
        );
    }
    // A bare hex signature is legacy, refused unless legacy is accepted.
    let mut copy = r.clone();
    let sig = copy.headers["x-signature"].to_str().unwrap()[3..].to_owned();
    copy.headers
        .insert("x-signature", HeaderValue::from_str(&sig).unwrap());
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
    let ts: u64 = r.headers["x-timestamp"].to_str().unwrap().parse().unwrap();
    for (shift, stale) in [(-30i64, true), (30, false)] {
        let mut copy = r.clone();
        let moved = (ts as i64 + shift).to_string();
        copy.headers
            .insert("x-timestamp", HeaderValue::from_str(&moved).unwrap());
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
    let at = |secs: u64| UNIX_EPOCH + Duration::from_secs(secs);
    let now = 1_000_000u64;
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

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
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
    let status = raw_chunked_post(&url, "/echo", &[&[b'x'; 800], &[b'y'; 800]]).await;
    assert!(status.starts_with("HTTP/1.1 413"), "{status}");
}

/// Sends a chunked POST over a plain TCP stream and returns the status line.
async fn raw_chunked_post(url: &str, path: &str, chunks: &[&[u8]]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request =
        format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\n\r\n")
            .into_bytes();
    for chunk in chunks {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    stream.write_all(&request).await.unwrap();
    let mut response = vec![0u8; 1024];
    let n = stream.read(&mut response).await.unwrap();
    String::from_utf8_lossy(&response[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}
