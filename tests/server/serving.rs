//! How a generated server fits a service: unverified, merged with other routes, the errors
//! and responses a method returns, a method's `Retry-After`, `Option` results.

use super::*;

#[tokio::test]
async fn an_unverified_server_serves_without_a_caller() {
    let router = DirectoryServer::new(DirectoryImpl::default())
        .unverified()
        .into_router();
    let url = serve(router).await;
    let text = reqwest::get(format!("{url}/users/5"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let body: User = serde_json::from_str(&text).unwrap();
    assert_eq!(body.id, 5);
    // `caller()` panics there, which the server turns into a 500.
    let status = reqwest::get(format!("{url}/whoami"))
        .await
        .unwrap()
        .status();
    assert_eq!(status, 500);
    // The body limit holds without verification too.
    let small = DirectoryServer::new(DirectoryImpl::default())
        .unverified()
        .max_body_bytes(64)
        .into_router();
    let url = serve(small).await;
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(100));
    let status = reqwest::Client::new()
        .post(format!("{url}/users"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 413);
}

#[tokio::test]
async fn the_router_merges_with_other_routes() {
    let router = DirectoryServer::new(DirectoryImpl::default())
        .verifier(Verifier::new().service("billing", SECRET))
        .into_router()
        .route("/health", axum::routing::get(|| async { "ok" }));
    let url = serve(router).await;
    let health = reqwest::get(format!("{url}/health")).await.unwrap();
    assert_eq!(health.text().await.unwrap(), "ok");
}

#[tokio::test]
async fn every_error_constructor_comes_back_as_its_variant_and_message() {
    let (_, client, _) = pair().await;
    for (kind, sent, is_variant) in comms_tests::built_errors() {
        let received = client.fail(kind).await.unwrap_err();
        assert!(is_variant(&received), "{kind}: {received}");
        assert_eq!(received.status(), sent.status(), "{kind}");
        assert_eq!(
            received.http_error().and_then(|e| e.message()),
            sent.http_error().and_then(|e| e.message()),
            "{kind}"
        );
    }
}

#[tokio::test]
async fn a_returned_response_is_sent_as_it_is() {
    let (_, client, _) = pair().await;
    let head = client.exists(42).await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["x-exists"], "42");
    let raw = client.raw().await.unwrap();
    assert_eq!(raw.status(), 201);
    assert_eq!(raw.headers()["x-kind"], "raw");
    assert_eq!(raw.bytes().as_ref(), b"\x00bytes");
}

/// A TCP proxy to `upstream` that, on its first connection, lets the request through and then
/// drops the connection as the response starts to come back: the method ran, its answer is lost.

#[tokio::test]
async fn a_retry_after_from_a_method_is_honoured_by_the_client() {
    let (service, _, url) = pair().await;
    let retry = RetryConfig::default().base_delay(std::time::Duration::from_millis(1));
    let client = client_of(&url, SECRET, retry);
    let started = std::time::Instant::now();
    assert_eq!(
        client.busy().await.unwrap(),
        2,
        "the second attempt succeeds"
    );
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "the client waited the Retry-After the method asked for"
    );
    assert_eq!(service.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_optional_result_is_none_for_a_404_and_every_other_error_stays_one() {
    let (service, client, _) = pair().await;
    assert_eq!(
        client.maybe(1).await.unwrap(),
        Some(User {
            id: 1,
            name: "one".into()
        })
    );
    assert_eq!(
        client.maybe(2).await.unwrap(),
        None,
        "None is served as a 404"
    );
    assert!(matches!(client.maybe(0).await, Err(Error::Forbidden(_))));
    assert!(matches!(client.maybe(3).await, Err(Error::Server(_))));
    assert_eq!(service.calls.load(Ordering::SeqCst), 4);
    // A 404 from any server is `None` to the client.
    let elsewhere = comms_tests::TestServer::always(comms_tests::Reply::status(404)).await;
    let client = client_of(&elsewhere.url(), SECRET, RetryConfig::none());
    assert_eq!(client.maybe(1).await.unwrap(), None);
}
