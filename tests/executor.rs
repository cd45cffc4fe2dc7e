//! The executor's retry rules, timeouts, error mapping and limits, against real loopback
//! servers that count what they receive.

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use comms::{BreakerConfig, Call, Error, Executor, ExecutorBuilder, RetryConfig};
use comms_tests::{Fault, FaultServer, Reply, TestServer, dead_addr, fast_retry};
use serde_json::json;

const SECRET: &str = "executor-test-secret";

/// The settings every executor here shares: the test secret, no breaker.
fn builder(url: &str) -> ExecutorBuilder {
    Executor::builder()
        .base_url(url)
        .service_id("tests")
        .secret(SECRET)
        .breaker(BreakerConfig::disabled())
}

fn exec(url: &str, retry: RetryConfig) -> Executor {
    builder(url).retry(retry).build().unwrap()
}

/// An executor that accepts response bodies of at most 1 KiB.
fn limited(url: &str) -> Executor {
    builder(url).max_response_bytes(1024).build().unwrap()
}

/// Fails the first `n` requests with `status`, then answers 200.
fn fail_first(n: usize, status: u16) -> impl Fn(&comms_tests::Recorded, usize) -> Reply {
    move |_, i| {
        if i < n {
            Reply::status(status)
        } else {
            Reply::ok_json(json!({"ok": true}))
        }
    }
}

fn assert_no_secret(e: &Error) {
    assert!(!e.to_string().contains(SECRET) && !format!("{e:?}").contains(SECRET));
}

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
    let server = TestServer::always(Reply::status(503).header("retry-after", "60")).await;
    let started = Instant::now();
    let err = exec(
        &server.url(),
        fast_retry().max_retry_after(Duration::from_secs(30)),
    )
    .execute(Call::get("/x"))
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Server(_)));
    assert_eq!(server.count(), 1);
    assert!(started.elapsed() < Duration::from_secs(10));
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

#[tokio::test]
async fn every_status_maps_to_its_variant_with_the_json_message() {
    let server = TestServer::start(|r, _| {
        let status: u16 = r.uri.path()[1..].parse().unwrap();
        Reply::json(
            status,
            json!({"message": format!("failed with {status}"), "detail": 1}),
        )
    })
    .await;
    let e = exec(&server.url(), RetryConfig::none());
    type Check = fn(&Error) -> bool;
    let cases: [(u16, Check); 13] = [
        (400, |e| matches!(e, Error::BadRequest(_))),
        (401, |e| matches!(e, Error::Unauthorized(_))),
        (403, |e| matches!(e, Error::Forbidden(_))),
        (404, |e| matches!(e, Error::NotFound(_))),
        (409, |e| matches!(e, Error::Conflict(_))),
        (422, |e| matches!(e, Error::UnprocessableEntity(_))),
        (429, |e| matches!(e, Error::TooManyRequests(_))),
        (500, |e| matches!(e, Error::Server(_))),
        (503, |e| matches!(e, Error::Server(_))),
        (501, |e| matches!(e, Error::Server(_))),
        (302, |e| matches!(e, Error::Status(_))),
        (418, |e| matches!(e, Error::Status(_))),
        (304, |e| matches!(e, Error::Status(_))),
    ];
    for (status, check) in cases {
        let err = e
            .execute(Call::get(format!("/{status}")))
            .await
            .unwrap_err();
        assert!(check(&err), "{status}: {err:?}");
        let http = err.http_error().unwrap();
        assert_eq!(http.status().as_u16(), status);
        if status != 304 {
            assert_eq!(
                http.message(),
                Some(format!("failed with {status}").as_str())
            );
            assert!(http.body().contains("\"detail\":1"));
        }
        assert_eq!(http.method(), Some(&comms::http::Method::GET));
        assert_eq!(
            http.url(),
            Some(format!("{}/{status}", server.url()).as_str())
        );
        assert_no_secret(&err);
    }
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let target = TestServer::always(Reply::status(200)).await;
    let location = format!("{}/elsewhere", target.url());
    let server = TestServer::always(Reply::status(302).header("location", &location)).await;
    let err = exec(&server.url(), fast_retry())
        .execute(Call::get("/x"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Status(ref e) if e.status() == 302),
        "{err}"
    );
    assert_eq!(target.count(), 0, "the signed request did not travel");
}

#[tokio::test]
async fn bodies_are_decoded_or_reported() {
    let server = TestServer::start(|r, _| match r.uri.path() {
        "/bad-json" => Reply::status(200).body("{not json"),
        "/big" => Reply::status(200).body(vec![b'x'; 4096]),
        _ => Reply::ok_json(json!({"n": 3})),
    })
    .await;
    let e = limited(&server.url());
    let ok = e.execute(Call::get("/ok")).await.unwrap();
    assert_eq!(ok.json::<serde_json::Value>().unwrap()["n"], 3);
    let resp = e.execute(Call::get("/bad-json")).await.unwrap();
    assert!(matches!(
        resp.json::<serde_json::Value>(),
        Err(Error::Decode { .. })
    ));
    let err = e.execute(Call::get("/big")).await.unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err}");
    assert_eq!(server.count(), 3, "an oversized body is not retried");
}

#[tokio::test]
async fn bodies_in_many_chunks_are_gathered_and_limited() {
    // A chunked body arrives as one frame per chunk: the client must join them, and count
    // them all against the limit.
    let chunked = |chunks: &[&str]| {
        let mut out = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
        for chunk in chunks {
            out.extend_from_slice(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes());
        }
        out.extend_from_slice(b"0\r\n\r\n");
        out
    };
    let small = chunked(&[r#"{"name":"#, r#""Ada "#, r#"Lovelace","id":7}"#]);
    // 1000 bytes in three chunks: under the limit however the chunks are counted.
    let three = chunked(&[&"a".repeat(400), &"b".repeat(400), &"c".repeat(200)]);
    let big = chunked(&[&"x".repeat(600), &"y".repeat(600)]);
    let server = FaultServer::start(move |_, i| {
        Fault::Raw(Bytes::from(match i {
            0 => small.clone(),
            1 => three.clone(),
            _ => big.clone(),
        }))
    })
    .await;
    let e = limited(&server.url());
    let user: serde_json::Value = e.execute(Call::get("/u")).await.unwrap().json().unwrap();
    assert_eq!(user, json!({"name": "Ada Lovelace", "id": 7}));
    let body = e.execute(Call::get("/three")).await.unwrap().into_bytes();
    let expected = ["a".repeat(400), "b".repeat(400), "c".repeat(200)].concat();
    assert_eq!(body, expected.as_bytes());
    let err = e.execute(Call::get("/big")).await.unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err}");
    let why = std::error::Error::source(&err).map(|s| s.to_string());
    assert!(
        why.as_deref()
            .is_some_and(|s| s.contains("1024 byte limit")),
        "{why:?}"
    );
}

#[tokio::test]
async fn a_body_that_stalls_meets_the_attempt_timeout() {
    // The head and the first bytes arrive at once; the rest never does. The attempt's timer
    // covers reading the body too, and the next attempt gets a timer of its own.
    let head =
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"id\":";
    let server = FaultServer::start(|_, _| Fault::RawThenStall(Bytes::from_static(head))).await;
    let e = builder(&server.url())
        .timeout(Duration::from_millis(150))
        .retry(fast_retry().max_retries(1))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = e.execute(Call::get("/stalls")).await.unwrap_err();
    assert!(
        matches!(err, Error::Timeout { after, .. } if after == Duration::from_millis(150)),
        "{err}"
    );
    assert_eq!(server.count(), 2, "one retry");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn bad_calls_are_refused_before_sending() {
    let server = TestServer::always(Reply::status(200)).await;
    let e = exec(&server.url(), fast_retry());
    for call in [
        Call::get("no-slash"),
        Call::get("/a b"),
        Call::get("/a?b=1"),
        Call::get("/a/../admin"),
        Call::get("/x").segment(".."),
        Call::get("/x").header("x-bad", "a\r\nb"),
        Call::get("/x").header("bad name", "v"),
    ] {
        let err = e.execute(call).await.unwrap_err();
        assert!(matches!(err, Error::Encode { .. }), "{err}");
    }
    assert_eq!(server.count(), 0);
}

#[tokio::test]
async fn concurrent_calls_share_one_pool() {
    let server = FaultServer::start(|_, _| Fault::Reply(Reply::ok_json(json!({"ok": true})))).await;
    // Two executors built apart share the process-wide pool: the second call reuses the first
    // call's connection.
    exec(&server.url(), fast_retry())
        .execute(Call::get("/a"))
        .await
        .unwrap();
    let e = exec(&server.url(), fast_retry());
    e.execute(Call::get("/b")).await.unwrap();
    assert_eq!(server.connections(), 1, "one connection for both executors");
    // 64 calls at once: as many connections as calls in flight at most, each reused after.
    let calls = comms_tests::spawn_calls(&e, 64, || Call::get("/x")).await;
    assert_eq!(calls.ok(), 64);
    assert_eq!(server.count(), 66);
    let opened = server.connections();
    assert!((1..=64).contains(&opened), "{opened} connections");
    let again = comms_tests::spawn_calls(&e, 64, || Call::get("/y")).await;
    assert_eq!(again.ok(), 64);
    assert!(
        server.connections() <= 64,
        "the pooled connections are reused: {} in all",
        server.connections()
    );
}

#[tokio::test]
async fn each_header_is_sent_once_and_a_callers_headers_win() {
    let server = TestServer::always(Reply::ok_json(json!({}))).await;
    let e = exec(&server.url(), RetryConfig::none());
    e.execute(Call::get("/plain")).await.unwrap();
    e.execute(
        Call::get("/own")
            .header("Accept", "application/json")
            .header("X-Tag", "a"),
    )
    .await
    .unwrap();
    e.execute(Call::post("/body").json(&json!({"name": "ada"})))
        .await
        .unwrap();
    e.execute(Call::put("/raw").body(&b"plain words"[..], "text/plain"))
        .await
        .unwrap();
    let requests = server.requests();

    // Exactly the protocol's three headers, `host` and `accept`, each once, none left empty.
    let plain = &requests[0];
    let mut names: Vec<&str> = plain.headers.keys().map(|n| n.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "accept",
            "content-digest",
            "host",
            "signature",
            "signature-input",
        ]
    );
    assert_eq!(
        plain.headers.len(),
        5,
        "one value each: {:?}",
        plain.headers
    );
    assert!(plain.headers.values().all(|v| !v.is_empty()));
    let host = format!("127.0.0.1:{}", server.addr().port());
    assert_eq!(plain.header("host"), Some(host.as_str()));
    assert_eq!(plain.header("accept"), Some("*/*"));
    assert!(
        plain
            .header("signature-input")
            .unwrap()
            .contains(r#";keyid="tests";"#)
    );

    // A caller's header replaces the default, and is covered by the signature.
    let own = &requests[1];
    let accept: Vec<_> = own.headers.get_all("accept").iter().collect();
    assert_eq!(accept, ["application/json"]);
    let tags: Vec<_> = own.headers.get_all("x-tag").iter().collect();
    assert_eq!(tags, ["a"]);
    assert!(
        own.header("signature-input").unwrap().starts_with(
            r#"comms=("@method" "@authority" "@path" "@query" "content-digest" "accept" "x-tag")"#
        ),
        "{:?}",
        own.header("signature-input")
    );
    assert_ne!(own.nonce(), plain.nonce());

    // A body adds its type and its exact length, once each.
    let body = &requests[2];
    assert_eq!(body.headers.len(), 7, "{:?}", body.headers);
    assert_eq!(body.header("content-type"), Some("application/json"));
    let length = body.body.len().to_string();
    assert_eq!(body.header("content-length"), Some(length.as_str()));
    assert_eq!(body.body.as_ref(), br#"{"name":"ada"}"#);

    // A body's own type replaces the JSON default.
    let raw = &requests[3];
    let types: Vec<_> = raw.headers.get_all("content-type").iter().collect();
    assert_eq!(types, ["text/plain"]);
    assert_eq!(raw.header("content-length"), Some("11"));
}

#[tokio::test]
async fn a_clients_own_default_headers_are_kept() {
    let server = TestServer::always(Reply::ok_json(json!({}))).await;
    let mut defaults = reqwest::header::HeaderMap::new();
    defaults.insert("accept", "application/x-mine".parse().unwrap());
    defaults.insert("user-agent", "billing/1.0".parse().unwrap());
    let client = reqwest::Client::builder()
        .default_headers(defaults)
        .build()
        .unwrap();
    let e = builder(&server.url()).http_client(client).build().unwrap();
    e.execute(Call::get("/x")).await.unwrap();
    let request = &server.requests()[0];
    assert_eq!(request.header("accept"), Some("application/x-mine"));
    assert_eq!(request.header("user-agent"), Some("billing/1.0"));
    assert_eq!(request.headers.get_all("accept").iter().count(), 1);
    assert!(
        request
            .header("signature")
            .is_some_and(|s| s.starts_with("comms=:"))
    );
}

#[tokio::test]
async fn headers_a_signature_cannot_carry_are_refused_unsent() {
    let server = TestServer::always(Reply::status(200)).await;
    let e = builder(&server.url()).build().unwrap();
    // A covered header set twice would be refused by every verifier.
    let err = e
        .execute(Call::get("/x").header("X-Tag", "a").header("X-Tag", "b"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Encode { .. }) && err.to_string().contains("x-tag"),
        "{err}"
    );
    // Headers comms writes itself cannot be set by a call.
    for name in [
        "Signature",
        "signature-input",
        "Content-Digest",
        "Host",
        "content-length",
        "X-Signature",
    ] {
        let err = e
            .execute(Call::get("/x").header(name, "forged"))
            .await
            .unwrap_err();
        assert!(matches!(&err, Error::Encode { .. }), "{name}: {err}");
    }
    assert_eq!(server.count(), 0, "nothing was sent");
}

#[tokio::test]
async fn default_headers_are_sent_signed_and_a_calls_own_wins() {
    let server = TestServer::always(Reply::status(200)).await;
    let e = builder(&server.url())
        .default_header("X-Tenant", "acme")
        .default_header("Authorization", "Bearer token-value-123")
        .build()
        .unwrap();
    assert!(
        !format!("{e:?}").contains("token-value-123"),
        "values never appear in Debug"
    );
    e.execute(Call::get("/a")).await.unwrap();
    e.execute(Call::get("/b").header("X-Tenant", "other"))
        .await
        .unwrap();
    let requests = server.requests();
    assert_eq!(requests[0].header("x-tenant"), Some("acme"));
    assert_eq!(
        requests[0].header("authorization"),
        Some("Bearer token-value-123")
    );
    assert_eq!(requests[1].header("x-tenant"), Some("other"));
    assert_eq!(requests[1].headers.get_all("x-tenant").iter().count(), 1);
    let verifier = comms::verify::Verifier::new().service("tests", SECRET);
    for r in &requests {
        let input = r.header("signature-input").unwrap();
        assert!(
            input.contains(r#""x-tenant""#) && input.contains(r#""authorization""#),
            "default headers are covered: {input}"
        );
        verifier
            .verify(&r.method, &r.uri, &r.headers, &r.body)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_default_header_comms_sets_itself_or_http_cannot_carry_is_a_config_error() {
    for (name, value) in [
        ("Signature", "x"),
        ("signature-input", "x"),
        ("Content-Digest", "x"),
        ("Host", "evil"),
        ("Content-Length", "1"),
        ("bad name", "x"),
        ("X-Ok", "line\nbreak"),
    ] {
        let err = builder("http://127.0.0.1:1")
            .default_header(name, value)
            .build()
            .unwrap_err();
        assert!(
            matches!(&err, Error::Config { key, .. } if key == "default_header"),
            "{name}: {err}"
        );
    }
}
