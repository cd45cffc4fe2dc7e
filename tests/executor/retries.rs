//! Which attempts are retried and when: transient statuses, idempotency, refused and reset
//! connections, timeouts, `Retry-After`, the retry budget and the total deadline.

use super::*;

#[tokio::test]
async fn idempotent_methods_are_retried_on_each_transient_status() {
    for status in [429, 500, 502, 503, 504] {
        let server = TestServer::start(fail_first(2, status)).await;
        let e = exec(&server.url(), fast_retry());
        for call in [
            Call::get("/x"),
            Call::put("/x"),
            Call::delete("/x"),
            Call::head("/x"),
        ] {
            let response = e.execute(call).await.unwrap();
            assert_eq!(response.status(), 200);
        }
        assert_eq!(
            server.count(),
            2 + 4,
            "status {status}: two failures then four successes"
        );
    }
}

#[tokio::test]
async fn non_transient_statuses_are_not_retried() {
    for status in [400, 401, 403, 404, 409, 422, 501, 505] {
        let server = TestServer::always(Reply::status(status)).await;
        let err = exec(&server.url(), fast_retry())
            .execute(Call::get("/x"))
            .await
            .unwrap_err();
        assert_eq!(err.status().map(|s| s.as_u16()), Some(status));
        assert_eq!(server.count(), 1, "status {status}");
    }
}

#[tokio::test]
async fn post_and_patch_are_not_retried_unless_marked() {
    let server = TestServer::always(Reply::status(503)).await;
    let e = exec(&server.url(), fast_retry());
    assert!(matches!(
        e.execute(Call::post("/x")).await,
        Err(Error::Server(_))
    ));
    assert!(matches!(
        e.execute(Call::patch("/x")).await,
        Err(Error::Server(_))
    ));
    assert_eq!(server.count(), 2);
    // Marked idempotent: 1 + 3 retries, one key throughout.
    assert!(e.execute(Call::post("/x").idempotent(true)).await.is_err());
    assert_eq!(server.count(), 2 + 4);
    let keys: std::collections::HashSet<String> = server.requests()[2..]
        .iter()
        .map(|r| r.header("idempotency-key").unwrap().to_owned())
        .collect();
    assert_eq!(keys.len(), 1);
    // A GET marked not idempotent is sent once.
    assert!(e.execute(Call::get("/x").idempotent(false)).await.is_err());
    assert_eq!(server.count(), 7);
}

#[tokio::test]
async fn post_reaches_a_server_that_comes_up_during_retries() {
    let addr = dead_addr().await;
    let e = exec(
        &format!("http://{addr}"),
        RetryConfig::default()
            .max_retries(20)
            .base_delay(Duration::from_millis(50))
            .max_delay(Duration::from_millis(50))
            .no_budget(),
    );
    let call = tokio::spawn(async move { e.execute(Call::post("/orders")).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let server = TestServer::start_on(addr, |_, _| Reply::status(201)).await;
    let response = call.await.unwrap().unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(server.count(), 1, "the POST was delivered exactly once");
}

#[tokio::test]
async fn connection_refused_is_retried_then_reported() {
    let dead = dead_addr().await;
    let started = Instant::now();
    let err = exec(&format!("http://{dead}"), fast_retry())
        .execute(Call::post("/x"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err}");
    assert!(err.is_retryable());
    assert!(std::error::Error::source(&err).is_some());
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_no_secret(&err);

    // The retries happened: four refused attempts (the call and three retries) are four breaker
    // failures, which is this breaker's threshold.
    let dead = dead_addr().await;
    let e = builder(&format!("http://{dead}"))
        .retry(fast_retry())
        .breaker(BreakerConfig::default().failure_threshold(4))
        .build()
        .unwrap();
    assert!(matches!(
        e.execute(Call::post("/x")).await,
        Err(Error::Transport { .. })
    ));
    assert!(
        e.execute(Call::post("/x"))
            .await
            .unwrap_err()
            .is_circuit_open(),
        "four attempts were made"
    );
}

#[tokio::test]
async fn timeouts_are_retried_only_when_idempotent() {
    let server = TestServer::always(Reply::status(200).delay(Duration::from_secs(5))).await;
    let e = builder(&server.url())
        .timeout(Duration::from_millis(150))
        .retry(fast_retry().max_retries(2))
        .build()
        .unwrap();
    let err = e.execute(Call::get("/slow")).await.unwrap_err();
    assert!(
        matches!(err, Error::Timeout { after, .. } if after == Duration::from_millis(150)),
        "{err}"
    );
    assert_eq!(server.count(), 3);
    let err = e.execute(Call::post("/slow")).await.unwrap_err();
    assert!(err.is_timeout());
    assert_eq!(server.count(), 4);
}

#[tokio::test]
async fn resets_are_retried_only_when_idempotent() {
    let server = FaultServer::start(|_, _| Fault::ResetBeforeHead).await;
    let e = exec(&server.url(), fast_retry());
    let err = e.execute(Call::get("/x")).await.unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err}");
    assert_eq!(server.count(), 4);
    let err = e.execute(Call::post("/x")).await.unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err}");
    assert_eq!(
        server.count(),
        5,
        "a POST that may have been processed is not resent"
    );
}

#[tokio::test]
async fn retry_after_seconds_and_date_are_honoured() {
    let server = TestServer::start(|_, i| match i {
        0 => Reply::status(503).header("retry-after", "1"),
        1 => {
            let at = SystemTime::now() + Duration::from_secs(2);
            Reply::status(429).header("retry-after", &httpdate::fmt_http_date(at))
        }
        _ => Reply::status(200),
    })
    .await;
    let started = Instant::now();
    exec(&server.url(), fast_retry())
        .execute(Call::get("/x"))
        .await
        .unwrap();
    assert_eq!(server.count(), 3);
    // One second, then at least one more (the date has whole-second precision).
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn retry_after_beyond_the_cap_is_not_waited_for() {
    // More seconds than a u64 holds are beyond any cap too, not an unreadable value.
    for seconds in ["60", "18446744073709551616"] {
        let server = TestServer::always(Reply::status(503).header("retry-after", seconds)).await;
        let started = Instant::now();
        let err = exec(
            &server.url(),
            fast_retry().max_retry_after(Duration::from_secs(30)),
        )
        .execute(Call::get("/x"))
        .await
        .unwrap_err();
        assert!(matches!(err, Error::Server(_)));
        assert_eq!(server.count(), 1, "{seconds}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}

#[tokio::test]
async fn the_budget_floor_bounds_retries_without_traffic() {
    let server = TestServer::always(Reply::status(503)).await;
    let e = exec(&server.url(), fast_retry().max_retries(10).budget(0.0, 1));
    assert!(e.execute(Call::get("/x")).await.is_err());
    assert_eq!(server.count(), 2, "the floor's one token buys one retry");
    assert!(e.execute(Call::get("/x")).await.is_err());
    assert_eq!(server.count(), 3, "the budget is spent: no retry");
}

/// A retry its call never makes (dropped while it waits) gives its token back, so that other
/// callers' real retries still have it.
#[tokio::test]
async fn a_retry_abandoned_in_its_wait_gives_its_budget_token_back() {
    let server = TestServer::start(|_, i| match i {
        0 => Reply::status(503).header("retry-after", "1"),
        1 => Reply::status(503),
        _ => Reply::status(200),
    })
    .await;
    let e = exec(&server.url(), fast_retry().max_retries(3).budget(0.0, 1));
    let abandoned = tokio::time::timeout(Duration::from_millis(100), e.execute(Call::get("/x")));
    assert!(abandoned.await.is_err(), "given up on in its wait");
    assert_eq!(server.count(), 1, "only the first attempt was made");
    // The token the abandoned retry took is back: this call's 503 is retried to a 200.
    e.execute(Call::get("/x")).await.unwrap();
    assert_eq!(server.count(), 3);
}

/// The same for a retry given up on while its header hook runs: nothing was sent.
#[tokio::test]
async fn a_retry_abandoned_in_its_header_hook_gives_its_budget_token_back() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let server = TestServer::start(|_, i| match i {
        0 | 1 => Reply::status(503),
        _ => Reply::status(200),
    })
    .await;
    let hooks = Arc::new(AtomicUsize::new(0));
    let counted = hooks.clone();
    let e = Executor::builder()
        .base_url(server.url())
        .service_id("tests")
        .secret("retries-secret")
        .breaker(comms::BreakerConfig::disabled())
        .retry(fast_retry().max_retries(3).budget(0.0, 1))
        .header_hook(move || {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 1 {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
                Ok(comms::http::HeaderMap::new())
            }
        })
        .build()
        .unwrap();
    let abandoned = tokio::time::timeout(Duration::from_millis(200), e.execute(Call::get("/x")));
    assert!(abandoned.await.is_err(), "given up on in its retry's hook");
    assert_eq!(server.count(), 1, "only the first attempt was sent");
    e.execute(Call::get("/x")).await.unwrap();
    assert_eq!(server.count(), 3);
}

#[tokio::test]
async fn the_budget_grows_with_traffic() {
    let server = TestServer::always(Reply::status(503)).await;
    let e = exec(&server.url(), fast_retry().max_retries(10).budget(0.5, 0));
    for _ in 0..10 {
        assert!(e.execute(Call::get("/x")).await.is_err());
    }
    assert_eq!(server.count(), 10 + 5, "ten calls at 50% buy five retries");
    // Clones share the budget.
    let clone = e.clone();
    assert!(clone.execute(Call::get("/x")).await.is_err());
    assert_eq!(server.count(), 16);
}

#[tokio::test]
async fn the_total_deadline_cuts_attempts_and_waits() {
    let server = TestServer::always(Reply::status(200).delay(Duration::from_secs(5))).await;
    let e = builder(&server.url())
        .deadline(Duration::from_millis(300))
        .retry(fast_retry())
        .build()
        .unwrap();
    let started = Instant::now();
    let err = e.execute(Call::get("/x")).await.unwrap_err();
    assert!(
        matches!(err, Error::Timeout { after, .. } if after == Duration::from_millis(300)),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(server.count(), 1);

    // A Retry-After longer than what is left of the deadline ends the call at once.
    let server = TestServer::always(Reply::status(503).header("retry-after", "5")).await;
    let e = builder(&server.url())
        .deadline(Duration::from_secs(2))
        .retry(fast_retry())
        .build()
        .unwrap();
    let started = Instant::now();
    assert!(matches!(
        e.execute(Call::get("/x")).await,
        Err(Error::Server(_))
    ));
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(server.count(), 1);
}
