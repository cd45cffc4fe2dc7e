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
    // `try_caller()` is `None` there (the method's `expect` panics, which the server turns
    // into a 500), as it is outside any request.
    assert!(comms::server::try_caller().is_none());
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
async fn a_body_slower_than_the_servers_body_timeout_is_a_408() {
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let service = DirectoryImpl::default();
    let router = DirectoryServer::new(service.clone())
        .unverified()
        .body_timeout(Duration::from_millis(200))
        .into_router();
    let url = serve(router).await;
    let mut stream = tokio::net::TcpStream::connect(url.trim_start_matches("http://"))
        .await
        .unwrap();
    // A head announcing a body that never comes.
    let head = "POST /orders HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
                content-length: 6\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    let mut answer = [0u8; 12];
    // The default, 10 s, would outlast this.
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut answer))
        .await
        .expect("answered within the body timeout")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert_eq!(answer, "HTTP/1.1 408");
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(
        service.calls.load(Ordering::SeqCst),
        0,
        "the method never ran"
    );
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

/// A server clones, its clone serving as it does (one verifier, so one nonce store), and its
/// `Debug` names it without its service or any secret.
#[tokio::test]
async fn a_server_clones_and_shows_no_secret() {
    let server = DirectoryServer::new(DirectoryImpl::default())
        .verifier(Verifier::new().service("billing", SECRET));
    let shown = format!("{server:?}");
    assert!(shown.starts_with("DirectoryServer {"), "{shown}");
    assert!(shown.contains("billing"), "{shown}");
    assert!(!shown.contains(SECRET), "{shown}");

    let url = serve(server.clone().into_router()).await;
    let other = serve(server.into_router()).await;
    for url in [url, other] {
        let client = client_of(&url, SECRET, RetryConfig::none());
        assert_eq!(
            client.whoami().await.unwrap(),
            ["billing", "billing", "rfc9421"]
        );
        let wrong = client_of(&url, "not-the-secret", RetryConfig::none());
        assert_eq!(
            wrong.whoami().await.unwrap_err().status(),
            Some(comms::http::StatusCode::UNAUTHORIZED)
        );
    }
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
        // Details, when the method gave some, come back as they were sent.
        let details = |e: &Error| {
            e.http_error()
                .unwrap()
                .details::<serde_json::Value>()
                .unwrap()
        };
        assert_eq!(details(&received), details(&sent), "{kind}");
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

#[service_client(
    base_url = "http://127.0.0.1:9",
    service_id = "billing",
    secret_env = "COMMS_TEST_SERVER_SECRET"
)]
pub trait Raw {
    #[get("/raw/<status>")]
    async fn raw(&self, status: u16) -> Result<comms::Response, Error>;
}

#[derive(Clone)]
struct RawImpl;

impl Raw for RawImpl {
    async fn raw(&self, status: u16) -> Result<comms::Response, Error> {
        comms::Response::builder(comms::http::StatusCode::from_u16(status).unwrap())
            .header("content-type", "text/plain")
            .body("hello")
            .build()
    }
}

/// The bytes of one exchange over a fresh connection.
async fn exchange(url: &str, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(url.trim_start_matches("http://"))
        .await
        .unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut answer),
    )
    .await
    .unwrap()
    .unwrap();
    String::from_utf8(answer).unwrap()
}

/// A `comms::Response` of a status that carries no content is sent without it: a 204 or 205
/// without a `Content-Length`, any of them without the body it was built with (RFC 9110 §8.6,
/// §15.3.6).
#[tokio::test]
async fn a_raw_answer_of_a_status_without_content_is_sent_without_its_body() {
    let url = serve(RawServer::new(RawImpl).unverified().into_router()).await;
    for status in [204, 205, 304] {
        let answer = exchange(
            &url,
            &format!("GET /raw/{status} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"),
        )
        .await;
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with(&format!("HTTP/1.1 {status}")), "{head}");
        assert_eq!(body, "", "{status}: {answer}");
        let length = head.lines().find_map(|line| {
            line.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_owned)
        });
        if status != 304 {
            assert!(
                matches!(length.as_deref(), None | Some("0")),
                "{status}: {head}"
            );
        }
    }
    let answer = exchange(
        &url,
        "GET /raw/200 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.ends_with("\r\n\r\nhello"), "{answer}");
}

#[tokio::test]
async fn a_header_argument_its_signature_does_not_cover_is_taken_as_absent() {
    // A comms client's request for `me` without a tenant, captured, and delivered with one
    // added on the way: the signature holds, but the header is nobody's to vouch for, and the
    // method is called without it.
    let recorder =
        comms_tests::TestServer::always(comms_tests::Reply::json(200, serde_json::json!(["x"])))
            .await;
    let client = client_of(&recorder.url(), SECRET, RetryConfig::none());
    client.me("req-1", None).await.unwrap();
    let mut captured = recorder.requests().remove(0);
    assert!(
        !captured
            .header("signature-input")
            .unwrap()
            .contains("x-tenant")
    );
    captured
        .headers
        .insert("x-tenant", "someone-else".parse().unwrap());
    let (_, client, url) = pair().await;
    let (status, text) = captured.send_to(&url, b"").await;
    assert_eq!((status, text.as_str()), (200, r#"["req-1","None"]"#));
    // Sent by the client, the header is covered, and taken.
    let seen = client.me("req-2", Some("acme".into())).await.unwrap();
    assert_eq!(seen, ["req-2", "Some(\"acme\")"]);
    // A required header present but not covered is refused as such.
    let authority = url.trim_start_matches("http://").to_owned();
    let mut uncovered =
        comms_tests::Recorded::head(comms::http::Method::GET, "/me", &authority, b"");
    uncovered
        .headers
        .insert("x-request-id", "req-3".parse().unwrap());
    uncovered.sign_now("billing", SECRET, &[]);
    let (status, text) = uncovered.send_to(&url, b"").await;
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains("header `X-Request-Id` is not covered by the request's signature"),
        "{text}"
    );
    // A server that verifies nothing itself, behind a `VerifyLayer`: the layer's signature
    // is the one that vouches for the headers.
    let behind = DirectoryServer::new(DirectoryImpl::default())
        .unverified()
        .into_router()
        .layer(comms::verify::VerifyLayer::new(
            Verifier::new().service("billing", SECRET),
        ));
    let behind = serve(behind).await;
    let (status, text) = captured.send_to(&behind, b"").await;
    assert_eq!((status, text.as_str()), (200, r#"["req-1","None"]"#));
}

#[service_client(
    base_url = "http://127.0.0.1:9",
    service_id = "billing",
    secret_env = "COMMS_TEST_SERVER_SECRET"
)]
pub trait Negotiated {
    #[get("/report")]
    async fn report(&self, #[header("Accept")] accept: Option<String>) -> Result<String, Error>;
}

#[derive(Clone)]
struct NegotiatedImpl;

impl Negotiated for NegotiatedImpl {
    async fn report(&self, accept: Option<String>) -> Result<String, Error> {
        Ok(format!("{accept:?}"))
    }
}

#[tokio::test]
async fn an_optional_accept_argument_a_client_leaves_out_is_absent_not_its_default() {
    // The client sends `Accept: */*` of its own when the call sets none, uncovered.
    let router = NegotiatedServer::new(NegotiatedImpl)
        .verifier(Verifier::new().service("billing", SECRET))
        .into_router();
    let url = serve(router).await;
    let client = NegotiatedClient::builder()
        .base_url(&url)
        .secret(SECRET)
        .retry(RetryConfig::none())
        .build()
        .unwrap();
    assert_eq!(
        client.report(Some("text/csv".into())).await.unwrap(),
        "Some(\"text/csv\")"
    );
    assert_eq!(client.report(None).await.unwrap(), "None");
}

/// A server given neither `.verifier(..)` nor `.unverified()` refuses every request; building
/// its router says so, naming the server, where a verified or unverified one says nothing.
#[test]
fn a_server_given_no_verifier_warns_as_its_router_is_built() {
    let (logs, _guard) = comms_tests::record_logs(tracing::Level::WARN);
    let _ = DirectoryServer::new(DirectoryImpl::default())
        .verifier(Verifier::new().service("billing", SECRET))
        .into_router();
    let _ = DirectoryServer::new(DirectoryImpl::default())
        .unverified()
        .into_router();
    assert!(logs.text().is_empty(), "no warning for those");
    let _ = DirectoryServer::new(DirectoryImpl::default()).into_router();
    let text = logs.text();
    assert!(
        text.contains("WARN") && text.contains("knows no key") && text.contains("DirectoryServer"),
        "{text}"
    );
}
