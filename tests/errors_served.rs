//! The server side of errors and responses: what a handler returns, served by a real axum
//! server on loopback, arrives at a comms client as the same variant with the same message,
//! or as the same response.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Router, body::Body};
use comms::http::StatusCode;
use comms::{BreakerConfig, Call, Error, Executor, Response, RetryConfig, service_client};
use comms_tests::{built_error, built_errors, dead_addr, serve};

fn exec(url: &str, retry: RetryConfig) -> Executor {
    Executor::builder()
        .base_url(url)
        .service_id("tests")
        .secret("errors-served-secret")
        .retry(retry)
        .breaker(BreakerConfig::disabled())
        .build()
        .unwrap()
}

/// What a hand-written handler answers for its result: a response as built, an error as
/// `comms::Error`'s `IntoResponse` (the generated server's answer) makes it.
fn served(result: Result<Response, Error>) -> axum::response::Response {
    match result {
        Ok(response) => response.into_http().map(Body::from),
        Err(error) => error.into_response(),
    }
}

#[tokio::test]
async fn each_constructor_arrives_as_its_variant_with_its_message() {
    let app = Router::new().route(
        "/errors/{kind}",
        get(|Path(kind): Path<String>| async move { served(Err(built_error(&kind))) }),
    );
    let url = serve(app).await;
    let e = exec(&url, RetryConfig::none());
    for (kind, sent, is_variant) in built_errors() {
        let received = e
            .execute(Call::get("/errors").segment(kind))
            .await
            .unwrap_err();
        assert!(is_variant(&received), "{kind}: {received:?}");
        assert_eq!(received.status(), sent.status(), "{kind}");
        let http = received.http_error().unwrap();
        assert_eq!(
            http.message(),
            sent.http_error().unwrap().message(),
            "{kind}"
        );
        assert_eq!(
            http.details::<serde_json::Value>().unwrap(),
            sent.http_error().unwrap().details().unwrap(),
            "{kind}"
        );
        // The client's copy was received: it names the request it answered.
        assert_eq!(http.url(), Some(format!("{url}/errors/{kind}").as_str()));
        assert_eq!(
            received.to_string(),
            format!(
                "{} for GET {url}/errors/{kind}: {}",
                sent.status().unwrap(),
                sent.http_error().unwrap().message().unwrap()
            )
        );
    }
}

#[tokio::test]
async fn a_429_with_retry_after_is_waited_out_by_a_retrying_client() {
    let seen = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route(
            "/limited",
            get(|State(seen): State<Arc<AtomicUsize>>| async move {
                let result = if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                    Err(Error::too_many_requests("slow down")
                        .with_retry_after(Duration::from_secs(1)))
                } else {
                    Response::builder(StatusCode::OK).body("at last").build()
                };
                served(result)
            }),
        )
        .with_state(seen.clone());
    let url = serve(app).await;
    // Backoff alone would wait milliseconds: only `Retry-After` makes the wait a second.
    let retry = RetryConfig::default()
        .max_retries(1)
        .base_delay(Duration::from_millis(1))
        .max_delay(Duration::from_millis(5))
        .no_budget();
    let started = Instant::now();
    let response = exec(&url, retry)
        .execute(Call::get("/limited"))
        .await
        .unwrap();
    assert_eq!(response.text().unwrap(), "at last");
    assert_eq!(seen.load(Ordering::SeqCst), 2);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

/// A handler that calls another service and passes its failure on with `?`.
async fn report(ledger: Executor) -> Result<Response, Error> {
    let account = ledger.execute(Call::get("/accounts/7")).await?;
    Response::builder(StatusCode::OK)
        .body(account.into_bytes())
        .build()
}

/// What a caller of a server whose handler is [`report`] over `ledger` gets back.
async fn report_served(ledger: Executor) -> Error {
    let app = Router::new().route(
        "/report",
        get(move || {
            let ledger = ledger.clone();
            async move { served(report(ledger).await) }
        }),
    );
    let url = serve(app).await;
    exec(&url, RetryConfig::none())
        .execute(Call::get("/report"))
        .await
        .unwrap_err()
}

#[tokio::test]
async fn a_failed_call_the_handler_propagates_arrives_without_its_details() {
    let dead = format!("http://{}", dead_addr().await);
    let ledger = exec(&dead, RetryConfig::none());
    let inner = report(ledger.clone()).await.unwrap_err();
    assert!(matches!(inner, Error::Transport { .. }), "{inner:?}");
    assert!(inner.to_string().contains(&dead), "{inner}");

    let received = report_served(ledger).await;
    assert!(matches!(received, Error::Server(_)), "{received:?}");
    assert_eq!(received.status(), Some(StatusCode::BAD_GATEWAY));
    let http = received.http_error().unwrap();
    assert_eq!(http.message(), Some("Bad Gateway"));
    assert!(!http.body().contains(&dead), "{}", http.body());
}

/// A dependency's refusal passed on with `?` (its 404 for an account that does not exist) is a
/// 424: the caller neither retries it, running the handler and its lookup again, nor counts it
/// against its breaker on a service whose other answers are fine. As a 502 it opened the
/// caller's breaker after two calls, with four lookups each.
#[tokio::test]
async fn a_dependencys_refusal_passed_on_is_a_424_that_callers_neither_retry_nor_count() {
    let lookups = Arc::new(AtomicUsize::new(0));
    let seen = lookups.clone();
    let ledger_url = serve(Router::new().route(
        "/accounts/7",
        get(move || {
            seen.fetch_add(1, Ordering::SeqCst);
            async { served(Err(Error::not_found("no account 7"))) }
        }),
    ))
    .await;
    let ledger = exec(&ledger_url, RetryConfig::default());
    let url = serve(Router::new().route(
        "/report",
        get(move || {
            let ledger = ledger.clone();
            async move { served(report(ledger).await) }
        }),
    ))
    .await;
    let caller = Executor::builder()
        .base_url(&url)
        .service_id("tests")
        .secret("errors-served-secret")
        .build()
        .unwrap();
    // More calls than the default breaker's 5 failures in a row.
    let calls = 8;
    for _ in 0..calls {
        let received = caller.execute(Call::get("/report")).await.unwrap_err();
        assert!(matches!(received, Error::Status(_)), "{received:?}");
        assert_eq!(received.status(), Some(StatusCode::FAILED_DEPENDENCY));
        assert!(!received.is_retryable());
        let http = received.http_error().unwrap();
        assert_eq!(http.message(), Some("Failed Dependency"));
        assert!(!http.body().contains("account"), "{}", http.body());
    }
    assert_eq!(
        lookups.load(Ordering::SeqCst),
        calls,
        "one lookup a call: nobody retried"
    );
    assert_eq!(caller.circuit_state(), Some(comms::CircuitState::Closed));
}

#[tokio::test]
async fn a_header_hooks_error_the_handler_propagates_arrives_without_its_words() {
    // A hook's token source failing, as a status the hook chose: the call ends with it as it
    // is, and a handler passing it on answers a bare 500, not the hook's 401 and words.
    let upstream = serve(Router::new().route("/accounts/7", get(|| async { "{}" }))).await;
    let ledger = Executor::builder()
        .base_url(&upstream)
        .service_id("tests")
        .secret("errors-served-secret")
        .retry(RetryConfig::none())
        .header_hook(|| async {
            Err(Error::unauthorized(
                "vault.internal:8200 refused: token expired for role orders-prod",
            ))
        })
        .build()
        .unwrap();
    let inner = report(ledger.clone()).await.unwrap_err();
    assert!(matches!(inner, Error::Unauthorized(_)), "{inner:?}");
    assert!(inner.to_string().contains("vault.internal"), "{inner}");

    let received = report_served(ledger).await;
    assert!(matches!(received, Error::Server(_)), "{received:?}");
    assert_eq!(received.status(), Some(StatusCode::INTERNAL_SERVER_ERROR));
    let http = received.http_error().unwrap();
    assert_eq!(http.message(), Some("Internal Server Error"));
    assert!(!http.body().contains("vault"), "{}", http.body());
}

#[tokio::test]
async fn a_built_response_arrives_as_built() {
    let app = Router::new().route(
        "/files/report",
        get(|| async {
            served(
                Response::builder(StatusCode::CREATED)
                    .header("x-report-id", "r-42")
                    .header("content-type", "application/octet-stream")
                    .body(&b"\x00\x01report\xff"[..])
                    .build(),
            )
        }),
    );
    let url = serve(app).await;
    let response = exec(&url, RetryConfig::none())
        .execute(Call::get("/files/report"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["x-report-id"], "r-42");
    assert_eq!(
        response.headers()["content-type"],
        "application/octet-stream"
    );
    assert_eq!(response.bytes().as_ref(), b"\x00\x01report\xff");
    assert_eq!(response.url(), Some(format!("{url}/files/report").as_str()));
    assert_eq!(response.method(), Some(&comms::http::Method::GET));
}

#[tokio::test]
async fn a_response_the_handler_could_not_build_is_a_500() {
    let app = Router::new().route(
        "/broken",
        get(|| async {
            served(
                Response::builder(StatusCode::OK)
                    .header("x-note", "line\nbreak")
                    .build(),
            )
        }),
    );
    let url = serve(app).await;
    let received = exec(&url, RetryConfig::none())
        .execute(Call::get("/broken"))
        .await
        .unwrap_err();
    assert!(matches!(received, Error::Server(_)), "{received:?}");
    assert_eq!(received.status(), Some(StatusCode::INTERNAL_SERVER_ERROR));
    let http = received.http_error().unwrap();
    assert_eq!(http.message(), Some("Internal Server Error"));
}

/// A lookup whose 404 is `None`; only ever called here (`server = false`, with the workspace's
/// `server` feature on).
#[service_client(
    base_url = "http://127.0.0.1:9",
    service_id = "billing",
    secret_env = "COMMS_TEST_LOOKUP_SECRET",
    server = false
)]
pub trait Lookup {
    #[get("/users/<id>")]
    async fn find(&self, id: u64) -> Result<Option<serde_json::Value>, Error>;
}

#[tokio::test]
async fn a_header_hooks_not_found_is_an_error_not_an_absent_resource() {
    // Nothing was sent, so nothing was found absent: the hook's 404 is the call's error.
    let server =
        comms_tests::TestServer::always(comms_tests::Reply::ok_json(serde_json::json!({"id": 7})))
            .await;
    let client = LookupClient::builder()
        .base_url(server.url())
        .secret("errors-served-secret")
        .retry(RetryConfig::none())
        .breaker(BreakerConfig::disabled())
        .header_hook(|| async { Err(Error::not_found("no token for this tenant")) })
        .build()
        .unwrap();
    let got = client.find(7).await;
    assert_eq!(server.count(), 0);
    assert!(matches!(got, Err(Error::NotFound(_))), "{got:?}");
    // Its message says whose error it is, not the target's.
    assert_eq!(
        got.unwrap_err().to_string(),
        "404 Not Found: no token for this tenant (the call's header hook failed; nothing was sent)"
    );
    // The target's own 404 is still `None`.
    let missing = comms_tests::TestServer::always(comms_tests::Reply::status(404)).await;
    let client = LookupClient::builder()
        .base_url(missing.url())
        .secret("errors-served-secret")
        .retry(RetryConfig::none())
        .build()
        .unwrap();
    assert!(matches!(client.find(7).await, Ok(None)));
}
