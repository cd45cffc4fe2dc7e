//! The connection pool and the headers a call sends: each once, the caller's winning, defaults
//! signed, and the ones a signature cannot carry refused.

use super::*;

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
    // A content type made at run time (a `&'static str` was needed once).
    let text = format!("text/plain; charset={}", "utf-8");
    e.execute(Call::put("/raw").body(&b"plain words"[..], &text))
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
    assert_eq!(types, ["text/plain; charset=utf-8"]);
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
    // Headers comms writes itself cannot be set by a call, nor can hop-by-hop ones, which an
    // intermediary removes from under the signature.
    const OWN: &str = "set by comms itself";
    const HOP: &str = "hop-by-hop";
    // Nor those it writes from the call's deadline and trace context, which a call's own
    // value would not survive.
    const CONTEXT: &str = "deadline or trace context";
    for (name, why) in [
        ("Comms-Deadline-Ms", CONTEXT),
        ("traceparent", CONTEXT),
        ("TraceState", CONTEXT),
        ("Signature", OWN),
        ("signature-input", OWN),
        ("Content-Digest", OWN),
        ("Host", OWN),
        ("content-length", OWN),
        ("X-Signature", OWN),
        ("Connection", HOP),
        ("TE", HOP),
        ("upgrade", HOP),
        ("Keep-Alive", HOP),
        ("proxy-connection", HOP),
        ("trailer", HOP),
    ] {
        let err = e
            .execute(Call::get("/x").header(name, "forged"))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Encode { .. }) && err.to_string().contains(why),
            "{name}: {err}"
        );
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
        // Belongs to one call: shared by all, one key would answer every call alike.
        ("Idempotency-Key", "k"),
        ("Comms-Deadline-Ms", "100"),
        ("traceparent", "00-x"),
        ("Connection", "close"),
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
    // Set twice (in any case): which value was meant is not guessed, nor are both sent.
    let err = builder("http://127.0.0.1:1")
        .default_header("X-Feature", "a")
        .default_header("x-feature", "b")
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, Error::Config { key, .. } if key == "default_header"),
        "{err}"
    );
    assert!(err.to_string().contains("more than once"), "{err}");
}

/// A view's or a default `Content-Type` replaces the one a JSON or raw body only implies; the
/// call's own, and a form's or multipart body's, stay.
#[tokio::test]
async fn a_views_or_default_content_type_replaces_the_one_a_body_implies() {
    let server = TestServer::always(Reply::ok_json(json!({}))).await;
    let merge = "application/merge-patch+json";
    let with_default = builder(&server.url())
        .default_header("content-type", merge)
        .build()
        .unwrap();
    let plain = exec(&server.url(), RetryConfig::none());
    let view = plain.with(comms::CallOptions::new().header("content-type", merge));
    let patch = || Call::patch("/a").json(&json!({"n": 1}));
    with_default.execute(patch()).await.unwrap();
    view.execute(patch()).await.unwrap();
    view.execute(Call::post("/raw").body("x", "text/plain"))
        .await
        .unwrap();
    // The call's own wins over both; a view's over a default.
    with_default
        .with(comms::CallOptions::new().header("content-type", "application/x-view"))
        .execute(patch())
        .await
        .unwrap();
    view.execute(patch().header("content-type", "application/x-own"))
        .await
        .unwrap();
    view.execute(Call::post("/form").form(&[("a", "b")]))
        .await
        .unwrap();

    let seen = server.requests();
    let types: Vec<_> = seen.iter().map(|r| r.header("content-type")).collect();
    assert_eq!(
        types,
        [
            Some(merge),
            Some(merge),
            Some(merge),
            Some("application/x-view"),
            Some("application/x-own"),
            Some("application/x-www-form-urlencoded"),
        ]
    );
    let verifier = comms::verify::Verifier::new().service("tests", SECRET);
    for r in &seen {
        assert_eq!(r.headers.get_all("content-type").iter().count(), 1);
        verifier
            .verify(&r.method, &r.uri, &r.headers, &r.body)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_legacy_call_may_repeat_a_header_it_does_not_sign() {
    let server = TestServer::always(Reply::ok_json(json!({}))).await;
    let exec = builder(&server.url())
        .signing(comms::Signing::Legacy)
        .build()
        .unwrap();
    exec.execute(
        Call::get("/forwarded")
            .header("x-forwarded-for", "10.0.0.1")
            .header("x-forwarded-for", "10.0.0.2"),
    )
    .await
    .unwrap();
    let seen = &server.requests()[0];
    let values: Vec<_> = seen.headers.get_all("x-forwarded-for").iter().collect();
    assert_eq!(values, ["10.0.0.1", "10.0.0.2"]);
    assert!(seen.header("x-signature").is_some());
}

#[tokio::test]
async fn a_bodiless_post_put_or_patch_says_its_body_is_empty() {
    // RFC 9110 §8.6: a user agent sends `Content-Length: 0` for a method whose body has a
    // meaning even when it has none (Python's `requests` does; some front ends answer 411
    // without it). Methods whose body has no meaning carry no length; a legacy signature's
    // requests are framed alike.
    let verifier = comms::verify::Verifier::new()
        .service("tests", SECRET)
        .accept_legacy(true);
    /// Each request's method and `Content-Length`.
    type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, Option<String>)>>>;
    let seen = Seen::default();
    let log = seen.clone();
    let app = axum::Router::new()
        .fallback(move |req: axum::extract::Request| {
            let log = log.clone();
            async move {
                let length = req.headers().get("content-length");
                let length = length.map(|v| v.to_str().unwrap().to_owned());
                log.lock().unwrap().push((req.method().to_string(), length));
            }
        })
        .layer(comms::verify::VerifyLayer::new(verifier));
    let url = comms_tests::serve(app).await;
    for signing in [comms::Signing::Rfc9421, comms::Signing::Legacy] {
        seen.lock().unwrap().clear();
        let e = builder(&url)
            .signing(signing)
            .retry(RetryConfig::none())
            .build()
            .unwrap();
        for call in [
            Call::post("/x"),
            Call::put("/x"),
            Call::patch("/x"),
            Call::get("/x"),
            Call::delete("/x"),
            Call::head("/x"),
            Call::post("/x").json(&1),
        ] {
            e.execute(call).await.unwrap();
        }
        let seen = seen.lock().unwrap().clone();
        let expected = [
            ("POST", Some("0")),
            ("PUT", Some("0")),
            ("PATCH", Some("0")),
            ("GET", None),
            ("DELETE", None),
            ("HEAD", None),
            ("POST", Some("1")),
        ]
        .map(|(m, l)| (m.to_owned(), l.map(str::to_owned)));
        assert_eq!(seen, expected, "{signing:?}");
    }
}
