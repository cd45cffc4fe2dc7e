//! Headers and settings from the client's side: `client.with(CallOptions::new()...)`, a view of
//! a generated client whose calls take another timeout, deadline or headers, signed like any
//! other, while the client itself keeps its settings; and a header hook, asked afresh before
//! every attempt.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use comms::http::header::AUTHORIZATION;
use comms::http::{HeaderMap, HeaderValue};
use comms::verify::Verifier;
use comms::{BreakerConfig, CallOptions, Error, RetryConfig, service_client};
use comms_tests::{Recorded, Reply, TestServer, fast_retry};
use serde_json::json;

const SECRET: &str = "call-options-secret";

#[service_client(
    base_url = "http://127.0.0.1:9",
    service_id = "billing",
    secret_env = "COMMS_TEST_OPTIONS_SECRET"
)]
pub trait Accounts {
    #[get("/accounts/<id>")]
    async fn get(&self, id: u64) -> Result<serde_json::Value, Error>;

    #[get("/accounts/<id>/slow", timeout_ms = 5000)]
    async fn slow(&self, id: u64) -> Result<serde_json::Value, Error>;

    #[get("/me")]
    async fn me(&self, #[header("X-Tenant")] tenant: &str) -> Result<serde_json::Value, Error>;
}

fn client(server: &TestServer) -> AccountsClient {
    AccountsClient::builder()
        .base_url(server.url())
        .secret(SECRET)
        .default_header("x-tenant", "from-builder")
        .retry(RetryConfig::none())
        .breaker(BreakerConfig::disabled())
        .build()
        .unwrap()
}

async fn assert_signed_over(r: &Recorded, header: &str) {
    let input = r.header("signature-input").unwrap();
    assert!(input.contains(&format!("\"{header}\"")), "{input}");
    Verifier::new()
        .service("billing", SECRET)
        .verify(&r.method, &r.uri, &r.headers, &r.body)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_views_headers_are_sent_signed_over_the_defaults_and_under_the_calls_own() {
    let server = TestServer::always(Reply::ok_json(json!({}))).await;
    let accounts = client(&server);
    let view = accounts.with(
        CallOptions::new()
            .header("x-tenant", "acme")
            .header("authorization", "Bearer t0ken"),
    );
    view.get(1).await.unwrap();
    // The client itself is untouched.
    accounts.get(2).await.unwrap();
    // A method's own header argument wins over the view's.
    view.me("own").await.unwrap();

    let seen = server.requests();
    assert_eq!(seen[0].header("x-tenant"), Some("acme"));
    assert_eq!(seen[0].header("authorization"), Some("Bearer t0ken"));
    assert_signed_over(&seen[0], "authorization").await;
    assert_signed_over(&seen[0], "x-tenant").await;
    assert_eq!(seen[1].header("x-tenant"), Some("from-builder"));
    assert_eq!(seen[1].header("authorization"), None);
    assert_eq!(seen[2].header("x-tenant"), Some("own"));
    assert_eq!(seen[2].headers.get_all("x-tenant").iter().count(), 1);
    // A view's Debug shows header names, never their values.
    let shown = format!("{view:?}");
    assert!(
        shown.contains("authorization") && !shown.contains("t0ken"),
        "{shown}"
    );
}

#[tokio::test]
async fn a_views_timeout_beats_the_methods_and_a_later_view_keeps_the_earlier_settings() {
    let server =
        TestServer::always(Reply::ok_json(json!({})).delay(Duration::from_millis(400))).await;
    let accounts = client(&server);
    let quick = accounts.with(CallOptions::new().timeout(Duration::from_millis(50)));
    let started = Instant::now();
    let err = quick.slow(1).await.unwrap_err();
    assert!(
        matches!(err, Error::Timeout { after, .. } if after == Duration::from_millis(50)),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(350),
        "{:?}",
        started.elapsed()
    );
    // Stacked: the header is added, the timeout kept.
    let err = quick
        .with(CallOptions::new().header("x-trace", "1"))
        .slow(2)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert_eq!(server.requests()[1].header("x-trace"), Some("1"));
    // The method's own 5 s still applies to the client itself.
    accounts.slow(3).await.unwrap();
}

#[tokio::test]
async fn a_views_deadline_bounds_the_call_and_travels() {
    let server = TestServer::start(|_, i| match i {
        0 => Reply::ok_json(json!({})),
        _ => Reply::ok_json(json!({})).delay(Duration::from_millis(500)),
    })
    .await;
    let accounts = client(&server);
    let bounded = accounts.with(CallOptions::new().deadline(Duration::from_millis(150)));
    bounded.get(1).await.unwrap();
    let left: u64 = server.requests()[0]
        .header("comms-deadline-ms")
        .expect("the deadline travels")
        .parse()
        .unwrap();
    assert!((1..=150).contains(&left), "{left}");
    assert_signed_over(&server.requests()[0], "comms-deadline-ms").await;
    let started = Instant::now();
    let err = bounded.get(2).await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_millis(450),
        "{:?}",
        started.elapsed()
    );
    // Without the view, no deadline is sent.
    accounts.get(3).await.unwrap();
    assert_eq!(server.requests()[2].header("comms-deadline-ms"), None);
}

#[tokio::test]
async fn a_header_comms_writes_itself_fails_every_call_of_the_view_unsent() {
    let server = TestServer::always(Reply::ok_json(json!({}))).await;
    let accounts = client(&server);
    for name in [
        "signature",
        "content-digest",
        "host",
        "content-length",
        "not a name",
    ] {
        let err = accounts
            .with(CallOptions::new().header(name, "x"))
            .get(1)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Config { key, .. } if key == "CallOptions::header"),
            "{name}: {err}"
        );
    }
    assert_eq!(server.count(), 0);
    accounts.get(1).await.unwrap();
}

/// A client whose every attempt asks `hook` for headers.
fn hooked<F, Fut>(server: &TestServer, retry: RetryConfig, hook: F) -> AccountsClient
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<HeaderMap, Error>> + Send + 'static,
{
    AccountsClient::builder()
        .base_url(server.url())
        .secret(SECRET)
        .retry(retry)
        .breaker(BreakerConfig::disabled())
        .timeout(Duration::from_millis(300))
        .header_hook(hook)
        .build()
        .unwrap()
}

fn bearer(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        AUTHORIZATION,
        HeaderValue::try_from(format!("Bearer {token}")).unwrap(),
    );
    headers
}

#[tokio::test]
async fn a_header_hook_runs_before_every_attempt_and_is_signed() {
    let server = TestServer::start(|_, i| match i {
        0 => Reply::status(503),
        _ => Reply::ok_json(json!({})),
    })
    .await;
    let issued = Arc::new(AtomicUsize::new(0));
    let counter = issued.clone();
    let accounts = hooked(&server, fast_retry(), move || {
        let counter = counter.clone();
        async move {
            // A token cache that has to go somewhere for each token.
            tokio::time::sleep(Duration::from_millis(5)).await;
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            Ok(bearer(&format!("t{n}")))
        }
    });
    accounts.get(1).await.unwrap();
    assert_eq!(issued.load(Ordering::SeqCst), 2);
    let seen = server.requests();
    assert_eq!(seen[0].header("authorization"), Some("Bearer t1"));
    assert_eq!(seen[1].header("authorization"), Some("Bearer t2"));
    for r in &seen {
        assert_signed_over(r, "authorization").await;
    }
    // The hook's value replaces a call's own header of the same name.
    let tenants = hooked(&server, RetryConfig::none(), || async {
        let mut headers = HeaderMap::new();
        headers.insert("x-tenant", HeaderValue::from_static("from-hook"));
        Ok(headers)
    });
    tenants.me("own").await.unwrap();
    let last = server.requests().pop().unwrap();
    assert_eq!(last.header("x-tenant"), Some("from-hook"));
    assert_eq!(last.headers.get_all("x-tenant").iter().count(), 1);
    assert_signed_over(&last, "x-tenant").await;
}

#[tokio::test]
async fn a_failing_slow_or_overreaching_hook_ends_the_call_unsent() {
    let server = TestServer::always(Reply::ok_json(json!({}))).await;
    let failing = hooked(&server, fast_retry(), || async {
        Err::<HeaderMap, _>(Error::Config {
            key: "token".into(),
            message: "the token service is down".into(),
        })
    });
    let err = failing.get(1).await.unwrap_err();
    assert!(
        matches!(&err, Error::Config { key, .. } if key == "token"),
        "{err}"
    );

    let slow = hooked(&server, fast_retry(), || async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        Ok(HeaderMap::new())
    });
    let started = Instant::now();
    let err = slow.get(1).await.unwrap_err();
    assert!(
        matches!(err, Error::Timeout { after, .. } if after == Duration::from_millis(300)),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    let overreaching = hooked(&server, fast_retry(), || async {
        let mut headers = HeaderMap::new();
        headers.insert("signature-input", HeaderValue::from_static("forged"));
        Ok(headers)
    });
    let err = overreaching.get(1).await.unwrap_err();
    assert!(
        matches!(&err, Error::Config { key, .. } if key == "header_hook"),
        "{err}"
    );
    assert_eq!(server.count(), 0);
}

#[tokio::test]
async fn a_timeout_or_deadline_too_long_for_the_clock_means_none() {
    let server = TestServer::start(|_, i| match i {
        0 => Reply::status(503),
        _ => Reply::ok_json(json!({})),
    })
    .await;
    let accounts = AccountsClient::builder()
        .base_url(server.url())
        .secret(SECRET)
        .retry(fast_retry())
        .breaker(BreakerConfig::disabled())
        .header_hook(|| async { Ok(HeaderMap::new()) })
        .build()
        .unwrap();
    // A retry re-arms the call's timer, and the hook runs on it: neither may overflow.
    let forever = accounts.with(
        CallOptions::new()
            .timeout(Duration::MAX)
            .deadline(Duration::MAX),
    );
    forever.get(1).await.unwrap();
    assert_eq!(server.count(), 2);
    // No deadline was sent: one too far to count is none.
    assert!(
        server
            .requests()
            .iter()
            .all(|r| r.header("comms-deadline-ms").is_none())
    );
}

#[tokio::test]
async fn a_hook_runs_on_the_attempts_clock() {
    let server =
        TestServer::always(Reply::ok_json(json!({})).delay(Duration::from_millis(200))).await;
    // 200 ms of hook and 200 ms of server do not fit in a 300 ms attempt.
    let slow_hook = hooked(&server, RetryConfig::none(), || async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok(HeaderMap::new())
    });
    let started = Instant::now();
    let err = slow_hook.get(1).await.unwrap_err();
    assert!(
        matches!(err, Error::Timeout { after, .. } if after == Duration::from_millis(300)),
        "{err}"
    );
    let took = started.elapsed();
    assert!(took < Duration::from_millis(380), "{took:?}");
}

#[tokio::test]
async fn a_streamed_call_takes_the_views_headers_and_the_hooks() {
    let server = TestServer::always(Reply::ok_json(json!({"rows": 2}))).await;
    let exec = comms::Executor::builder()
        .base_url(server.url())
        .service_id("billing")
        .secret(SECRET)
        .retry(RetryConfig::none())
        .breaker(BreakerConfig::disabled())
        .header_hook(|| async { Ok(bearer("streamed")) })
        .build()
        .unwrap();
    let view = exec.with(CallOptions::new().header("x-tenant", "acme"));
    let mut body = view
        .execute_streaming(comms::Call::get("/export"))
        .await
        .unwrap()
        .into_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next_chunk().await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(bytes, br#"{"rows":2}"#);
    let seen = &server.requests()[0];
    assert_eq!(seen.header("x-tenant"), Some("acme"));
    assert_eq!(seen.header("authorization"), Some("Bearer streamed"));
    assert_signed_over(seen, "authorization").await;
    assert_signed_over(seen, "x-tenant").await;
}

/// A zero attempt timeout, given for one call or for a view, is refused before anything is
/// sent: every attempt would time out at once, and each would count against the target's
/// breaker, opening it for every client of the target in the process.
#[tokio::test]
async fn a_zero_attempt_timeout_is_refused_unsent_and_leaves_the_breaker_alone() {
    let server = TestServer::always(Reply::ok_json(json!({}))).await;
    let executor = comms_tests::plain_builder(&server.url(), "billing", SECRET)
        .retry(fast_retry())
        .breaker(BreakerConfig::default().failure_threshold(1))
        .build()
        .unwrap();
    for _ in 0..3 {
        let call = comms::Call::get("/accounts/1").timeout(Duration::ZERO);
        let err = executor.execute(call).await.unwrap_err();
        assert!(
            matches!(&err, Error::Config { key, .. } if key == "Call::timeout"),
            "{err}"
        );
        let view = executor.with(CallOptions::new().timeout(Duration::ZERO));
        let err = view
            .execute(comms::Call::get("/accounts/1"))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Config { key, .. } if key == "CallOptions::timeout"),
            "{err}"
        );
    }
    assert_eq!(server.count(), 0, "nothing sent");
    assert_eq!(executor.circuit_state(), Some(comms::CircuitState::Closed));
    executor
        .execute(comms::Call::get("/accounts/1"))
        .await
        .unwrap();
    // The timeout a call ends up with is what counts: a zero one replaced is none.
    let call = comms::Call::get("/accounts/1").timeout(Duration::ZERO);
    let view = executor.with(CallOptions::new().timeout(Duration::from_secs(1)));
    view.execute(call).await.unwrap();
    let zero = executor.with(CallOptions::new().timeout(Duration::ZERO));
    let later = zero.with(CallOptions::new().timeout(Duration::from_secs(1)));
    later
        .execute(comms::Call::get("/accounts/1"))
        .await
        .unwrap();
    assert_eq!(server.count(), 3);
}
