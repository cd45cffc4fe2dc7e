//! What comes back: each status as its error variant, redirects not followed, bodies decoded,
//! gathered and limited, a stalled body, and calls refused before sending.

use super::*;

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
async fn an_error_message_is_bounded_and_shown_on_one_line() {
    let long = "é".repeat(4 << 20);
    let server = TestServer::always(Reply::json(503, json!({ "message": long }))).await;
    let err = exec(&server.url(), RetryConfig::none())
        .execute(Call::get("/x"))
        .await
        .unwrap_err();
    let message = err.http_error().and_then(|e| e.message()).unwrap();
    assert!(message.len() <= 1024 + '…'.len_utf8(), "{}", message.len());
    assert!(message.ends_with("é…"));
    assert!(err.to_string().len() < 1200);
    // A line break in a message does not start a line of its own where the error is shown.
    let forged =
        "no user\n2026-01-01T00:00:00Z  WARN comms::verify: forged\r\u{7}\u{2028}\u{202e}x";
    let server = TestServer::always(Reply::json(404, json!({ "message": forged }))).await;
    let err = exec(&server.url(), RetryConfig::none())
        .execute(Call::get("/x"))
        .await
        .unwrap_err();
    let shown = err.to_string();
    assert!(
        !shown.contains(['\n', '\r', '\u{7}', '\u{2028}', '\u{202e}']),
        "{shown}"
    );
    assert!(
        shown.ends_with(
            r"no user\n2026-01-01T00:00:00Z  WARN comms::verify: forged\r\u{7}\u{2028}\u{202e}x"
        ),
        "{shown}"
    );
    // The message itself is as the server sent it.
    assert_eq!(err.http_error().and_then(|e| e.message()), Some(forged));
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
    // Where it pointed is the caller's to read, and `Debug` shows the header's name only.
    let http = err.http_error().unwrap();
    assert_eq!(http.headers()["location"], location.as_str());
    assert!(format!("{err:?}").contains("\"location\""), "{err:?}");
    assert!(!format!("{err:?}").contains("/elsewhere"), "{err:?}");

    // A client of the user's that follows redirects (reqwest's default) has sent the signed
    // request on before comms sees anything: the call is not handed the other location's
    // answer as the target's, but fails, naming the setting to change.
    let e = builder(&server.url())
        .retry(fast_retry())
        .http_client(reqwest::Client::new())
        .build()
        .unwrap();
    for call in [Call::get("/x"), Call::post("/x").json(&1)] {
        let err = e.execute(call).await.unwrap_err();
        assert!(
            matches!(&err, Error::Config { key, .. } if key == "http_client"),
            "{err}"
        );
        assert!(err.to_string().contains(&location), "{err}");
    }
    let err = e.execute_streaming(Call::get("/x")).await.unwrap_err();
    assert!(matches!(&err, Error::Config { .. }), "{err}");
    assert_eq!(server.count(), 4, "not retried");
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
        // Its request line names an authority, not the path the signature covers, and a 2xx
        // turns the connection into a tunnel, the body never read.
        Call::new(comms::http::Method::CONNECT, "/x"),
    ] {
        let err = e.execute(call).await.unwrap_err();
        assert!(matches!(err, Error::Encode { .. }), "{err}");
    }
    assert_eq!(server.count(), 0);
}

/// A client given with `http_client` that was not redirected is not taken for one, whatever
/// the URL holds: the response's URL (reqwest reads it back from the request's URI) is the
/// request's.
#[tokio::test]
async fn an_unredirected_answer_through_a_users_client_is_the_targets() {
    let server = TestServer::always(Reply::ok_json(json!({"ok": true}))).await;
    let base = format!("{}/p;v=1/x:y!$'()*+,=~", server.url());
    let e = builder(&base)
        .retry(RetryConfig::none())
        .http_client(reqwest::Client::new())
        .build()
        .unwrap();
    let call = Call::get("/items")
        .segment("a/b %2F é")
        .query("q", "x y'|{}^`\"<>")
        .query("é", "&=+#");
    let response = e.execute(call).await.unwrap();
    assert_eq!(response.status(), 200);
    e.execute(Call::post("/")).await.unwrap();
}

#[tokio::test]
async fn a_wait_beyond_the_cap_ends_the_call_with_the_wait_asked_for() {
    let server = TestServer::start(|r, _| match r.uri.path() {
        "/later" => Reply::status(429).header("retry-after", "120"),
        "/date" => Reply::status(503).header("retry-after", "Fri, 01 Jan 2100 00:00:00 GMT"),
        _ => Reply::status(503),
    })
    .await;
    let e = builder(&server.url())
        .retry(fast_retry().max_retry_after(Duration::from_secs(5)))
        .build()
        .unwrap();
    let err = e.execute(Call::get("/later")).await.unwrap_err();
    assert!(matches!(err, Error::TooManyRequests(_)), "{err}");
    let http = err.http_error().unwrap();
    assert_eq!(http.retry_after(), Some(Duration::from_secs(120)));
    assert_eq!(http.headers()["retry-after"], "120");
    assert_eq!(server.count(), 1, "not retried past the cap");
    let err = e.execute(Call::get("/date")).await.unwrap_err();
    let asked = err.http_error().unwrap().retry_after().unwrap();
    assert!(
        asked > Duration::from_secs(60 * 60 * 24 * 365 * 50),
        "{asked:?}"
    );
    // None asked for, none read.
    let err = e.execute(Call::get("/plain")).await.unwrap_err();
    let http = err.http_error().unwrap();
    assert_eq!(http.retry_after(), None);
    assert!(http.headers().contains_key("content-length"), "{http:?}");
    // An error built by a handler has no headers of its own.
    assert!(
        comms::HttpError::new(comms::http::StatusCode::NOT_FOUND)
            .headers()
            .is_empty()
    );
}
