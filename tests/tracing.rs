//! Tracing output of calls: a span per call, events for retries and breaker transitions, and
//! never a secret or a signature. Each test records on its own thread (`set_default`) and runs
//! its calls on a current-thread runtime, so it sees exactly its own calls' output.

use std::sync::Arc;

use comms::{BreakerConfig, Call, Executor, RetryConfig};
use comms_tests::{Reply, TestServer, fast_retry, record_logs};

const SECRET: &str = "tracing-test-secret";

/// An executor named `inventory` calling `server`, signed with [`SECRET`].
fn inventory(server: &TestServer, retry: RetryConfig, breaker: BreakerConfig) -> Executor {
    inventory_builder(server, retry, breaker).build().unwrap()
}

/// What [`inventory`] builds, to be given more.
fn inventory_builder(
    server: &TestServer,
    retry: RetryConfig,
    breaker: BreakerConfig,
) -> comms::ExecutorBuilder {
    Executor::builder()
        .name("inventory")
        .base_url(server.url())
        .service_id("tests")
        .secret(SECRET)
        .retry(retry)
        .breaker(breaker)
}

#[tokio::test]
async fn calls_are_traced_without_secrets() {
    let (logs, _guard) = record_logs(tracing::Level::DEBUG);

    let server = TestServer::always(Reply::status(503)).await;
    let e = inventory(
        &server,
        fast_retry().max_retries(2),
        BreakerConfig::default().failure_threshold(3),
    );
    assert!(
        e.execute(Call::get("/items").segment(42).route("/items/<id>"))
            .await
            .is_err()
    );
    assert!(
        e.execute(Call::get("/items/1"))
            .await
            .unwrap_err()
            .is_circuit_open()
    );

    let text = logs.text();
    assert!(text.contains("comms.call"), "{text}");
    assert!(
        text.contains("service=inventory") && text.contains("route=/items/<id>"),
        "{text}"
    );
    assert_eq!(text.matches("retrying").count(), 2, "{text}");
    assert!(text.contains("circuit breaker opened"), "{text}");
    // The span's fields, on the line of the event that ends the call (with `otel`, the span
    // also carries the error's type after them).
    let ended = logs.line(
        "end of the call",
        &["comms::executor: call failed", "route=/items/<id>"],
    );
    assert!(ended.contains("attempts=3 status=503"), "{ended}");
    assert!(!text.contains(SECRET), "the secret leaked into the logs");
    for r in server.requests() {
        let signature = r.header("signature").unwrap();
        assert!(
            !text.contains(&signature["comms=:".len()..signature.len() - 1]),
            "a signature leaked into the logs"
        );
    }
}

/// A call's span reports its last attempt's status: none when that attempt got no response,
/// whatever an earlier one got.
#[tokio::test]
async fn a_call_whose_last_attempt_timed_out_reports_no_status() {
    let (logs, _guard) = record_logs(tracing::Level::DEBUG);

    // A 503, then a retry that is never answered in time.
    let server = TestServer::start(|_, i| match i {
        0 => Reply::status(503),
        _ => Reply::status(200).delay(std::time::Duration::from_secs(5)),
    })
    .await;
    let e = inventory_builder(
        &server,
        fast_retry().max_retries(1),
        BreakerConfig::disabled(),
    )
    .timeout(std::time::Duration::from_millis(200))
    .build()
    .unwrap();
    let err = e
        .execute(Call::get("/slow").route("/slow"))
        .await
        .unwrap_err();
    assert!(matches!(err, comms::Error::Timeout { .. }), "{err:?}");

    let ended = logs.line("end of the call", &["comms::executor: call failed"]);
    assert!(ended.contains("attempts=2"), "{ended}");
    assert!(!ended.contains("status="), "{ended}");
}

/// An attempt that is never sent (its header hook gave a header comms refuses) is not counted:
/// the span's attempts and status are those of the requests made.
#[tokio::test]
async fn an_attempt_never_sent_is_not_counted() {
    let (logs, _guard) = record_logs(tracing::Level::DEBUG);

    let server = TestServer::always(Reply::status(503)).await;
    let hooked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = hooked.clone();
    let e = inventory_builder(
        &server,
        fast_retry().max_retries(1),
        BreakerConfig::disabled(),
    )
    .header_hook(move || {
        let first = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
        async move {
            let mut headers = comms::http::HeaderMap::new();
            if !first {
                // One a call owns: refused, the retry not sent.
                headers.insert("idempotency-key", "k".parse().unwrap());
            }
            Ok(headers)
        }
    })
    .build()
    .unwrap();
    let err = e.execute(Call::get("/x").route("/x")).await.unwrap_err();
    assert!(matches!(err, comms::Error::Config { .. }), "{err:?}");
    assert_eq!(server.count(), 1);

    let ended = logs.line("end of the call", &["comms::executor: call failed"]);
    assert!(ended.contains("attempts=1 status=503"), "{ended}");
}

/// At `INFO`, what most services log at, the per-call span is not recorded, and a retry's
/// warning still says which service and which request it is about.
#[tokio::test]
async fn at_info_retries_name_their_call_without_a_span() {
    let (logs, _guard) = record_logs(tracing::Level::INFO);

    let server = TestServer::always(Reply::status(503)).await;
    let e = inventory(
        &server,
        fast_retry().max_retries(1),
        BreakerConfig::disabled(),
    );
    let err = e
        .execute(Call::get("/items").segment(42).route("/items/<id>"))
        .await
        .unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(503));

    let text = logs.text();
    let retry = logs.line("retry warning", &["retrying"]);
    assert!(retry.contains("WARN"), "{retry}");
    assert!(retry.contains("service=inventory"), "{retry}");
    assert!(
        retry.contains(&format!("GET {}/items/42", server.url())),
        "{retry}"
    );
    assert!(
        !text.contains("comms.call"),
        "the DEBUG span was recorded:\n{text}"
    );
    assert!(
        !text.contains("call failed"),
        "a DEBUG event was recorded:\n{text}"
    );
}

/// An exhausted retry budget is reported once, with a count, not once per refused retry: in a
/// partial outage that would be a warning for every failing call.
#[tokio::test]
async fn an_exhausted_budget_warns_once_not_per_call() {
    let (logs, _guard) = record_logs(tracing::Level::INFO);

    let server = TestServer::always(Reply::status(503)).await;
    let e = inventory(
        &server,
        fast_retry().max_retries(5).budget(0.0, 1),
        BreakerConfig::disabled(),
    );
    for _ in 0..20 {
        assert!(e.execute(Call::get("/items")).await.is_err());
    }
    assert_eq!(server.count(), 21, "the floor's one token bought one retry");

    let text = logs.text();
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("retry budget exhausted"))
        .collect();
    assert_eq!(warnings.len(), 1, "{text}");
    assert!(warnings[0].contains("WARN"), "{}", warnings[0]);
    assert!(warnings[0].contains("service=inventory"), "{}", warnings[0]);
    assert!(warnings[0].contains("refused=1"), "{}", warnings[0]);
}

/// A flood of unsigned requests makes one warning, with the count, not one per request.
#[tokio::test]
async fn a_flood_of_refused_requests_warns_once() {
    let (logs, _guard) = record_logs(tracing::Level::INFO);
    let verifier = comms::verify::Verifier::new().service("tests", SECRET);
    let app = axum::Router::new()
        .route("/items", axum::routing::get(|| async { "ok" }))
        .layer(comms::verify::VerifyLayer::new(verifier));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/items", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = reqwest::Client::new();
    for _ in 0..30 {
        let status = client.get(&url).send().await.unwrap().status();
        assert_eq!(status, 401);
    }
    let text = logs.text();
    let warnings: Vec<&str> = text.lines().filter(|l| l.contains("refused")).collect();
    assert_eq!(warnings.len(), 1, "{text}");
    assert!(
        warnings[0].contains("WARN") && warnings[0].contains("refused=1"),
        "{}",
        warnings[0]
    );
    assert!(
        warnings[0].contains("missing header `signature-input`"),
        "{}",
        warnings[0]
    );
}
