//! Behaviour README.md and the rustdoc describe, each test quoting what it checks (by file and
//! item): errors' URLs and what retries, headers' precedence and what is refused, served
//! errors, streams, deadlines, the generated server's answers and `serve`'s head limits.
//! `promises.rs` has more of the same kind.

use std::time::Duration;

use comms::http::{HeaderMap, HeaderValue, StatusCode};
use comms::{Call, CallOptions, Error, Executor, service_client};
use comms_tests::{Reply, TestServer, dead_addr, plain_builder, plain_executor, serve};

const SECRET: &str = "documented-secret-XYZZY";

fn exec(url: &str) -> Executor {
    plain_executor(url, "audit", SECRET)
}

fn no_leak(text: &str, what: &str) {
    assert!(!text.contains("hunter2"), "{what} shows the query: {text}");
}

// error.rs, the `url` of `Error::Transport`, `Timeout` and `Decode`, and `HttpError::url`: "The
// request's URL, without its query."
#[tokio::test]
async fn error_urls_carry_no_query() {
    // Transport, nothing listening.
    let addr = dead_addr().await;
    let err = exec(&format!("http://{addr}"))
        .execute(Call::get("/x").query("token", "hunter2"))
        .await
        .unwrap_err();
    let Error::Transport { url, connect, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(*connect);
    no_leak(url, "Transport.url");
    no_leak(&err.to_string(), "Transport Display");
    assert!(
        err.to_string().contains("could not connect for GET"),
        "{err}"
    );
    let transport_debug = format!("{err:?}");

    // Timeout.
    let slow = TestServer::always(Reply::status(200).delay(Duration::from_secs(2))).await;
    let err = plain_builder(&slow.url(), "audit", SECRET)
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap()
        .execute(Call::get("/x").query("token", "hunter2"))
        .await
        .unwrap_err();
    let Error::Timeout { url, .. } = &err else {
        panic!("{err:?}")
    };
    no_leak(url, "Timeout.url");
    no_leak(&err.to_string(), "Timeout Display");
    let timeout_debug = format!("{err:?}");

    // Status.
    let failing = TestServer::always(Reply::status(500)).await;
    let err = exec(&failing.url())
        .execute(Call::get("/x").query("token", "hunter2"))
        .await
        .unwrap_err();
    no_leak(err.http_error().unwrap().url().unwrap(), "HttpError.url");
    no_leak(&err.to_string(), "Server Display");
    let status_debug = format!("{err:?}");

    // Decode.
    let garbage = TestServer::always(Reply::status(200).body("not json")).await;
    let err = exec(&garbage.url())
        .execute(Call::get("/x").query("token", "hunter2"))
        .await
        .unwrap()
        .json::<u32>()
        .unwrap_err();
    if let Error::Decode { url: Some(url), .. } = &err {
        no_leak(url, "Decode.url");
    }
    no_leak(&err.to_string(), "Decode Display");
    let decode_debug = format!("{err:?}");

    // The Debug forms, with their sources, separately so that the above is reported first.
    for (what, debug) in [
        ("Transport", transport_debug),
        ("Timeout", timeout_debug),
        ("Server", status_debug),
        ("Decode", decode_debug),
    ] {
        no_leak(&debug, &format!("{what} Debug"));
    }
}

// error.rs, `Error::is_retryable`: "Whether the failure is transient: a transport error, a
// timeout, 429, or 500/502/503/504."
#[tokio::test]
async fn is_retryable_is_what_its_doc_says() {
    for (status, expected) in [
        (429, true),
        (500, true),
        (502, true),
        (503, true),
        (504, true),
        (501, false),
        (505, false),
        (408, false),
        (404, false),
    ] {
        let server = TestServer::always(Reply::status(status)).await;
        let err = exec(&server.url())
            .execute(Call::get("/x"))
            .await
            .unwrap_err();
        assert_eq!(err.is_retryable(), expected, "{status}: {err:?}");
    }
}

// ExecutorBuilder::header_hook (builder.rs): "A header it returns replaces the call's own of
// that name." README: "Its headers replace a call's own of the same name."
#[tokio::test]
async fn a_hook_header_replaces_the_calls_own() {
    let server = TestServer::always(Reply::status(200)).await;
    let e = plain_builder(&server.url(), "audit", SECRET)
        .header_hook(|| async {
            let mut h = HeaderMap::new();
            h.insert("x-token", HeaderValue::from_static("from-hook"));
            Ok(h)
        })
        .build()
        .unwrap();
    e.execute(Call::get("/x").header("X-Token", "from-call"))
        .await
        .unwrap();
    let got = server.requests();
    let values: Vec<_> = got[0].headers.get_all("x-token").iter().collect();
    assert_eq!(values, ["from-hook"]);
}

// builder.rs header_hook: "so does a name comms writes itself, one that belongs to one call
// (`Idempotency-Key`, `Comms-Deadline-Ms`, trace context), a hop-by-hop one, ... or a value with
// white space at either end ... or outside ASCII (`Error::Config`, key `header_hook`)", unsent.
#[tokio::test]
async fn a_hook_setting_a_forbidden_header_ends_the_call_unsent() {
    let cases: Vec<(&'static str, HeaderValue)> = vec![
        ("idempotency-key", HeaderValue::from_static("k")),
        ("comms-deadline-ms", HeaderValue::from_static("5")),
        ("tracestate", HeaderValue::from_static("a=b")),
        ("keep-alive", HeaderValue::from_static("5")),
        ("proxy-connection", HeaderValue::from_static("close")),
        ("content-length", HeaderValue::from_static("0")),
        ("signature", HeaderValue::from_static("x")),
        ("x-padded", HeaderValue::from_static(" padded")),
        ("x-latin", HeaderValue::from_bytes(b"Zo\xEB").unwrap()),
    ];
    for (name, value) in cases {
        let server = TestServer::always(Reply::status(200)).await;
        let e = plain_builder(&server.url(), "audit", SECRET)
            .header_hook(move || {
                let value = value.clone();
                async move {
                    let mut h = HeaderMap::new();
                    h.insert(name, value);
                    Ok(h)
                }
            })
            .build()
            .unwrap();
        let err = e.execute(Call::get("/x")).await.unwrap_err();
        match &err {
            Error::Config { key, .. } => assert_eq!(key, "header_hook", "{name}"),
            other => panic!("{name}: {other:?}"),
        }
        assert_eq!(server.count(), 0, "{name}: sent");
    }
}

// README Defaults, default headers: "names comms sets itself, that belong to one call
// (`Idempotency-Key`, `Comms-Deadline-Ms`, trace context) or are hop-by-hop, and a name set
// twice, are refused"; builder.rs: "is an [`Error::Config`] from [`build`]".
#[tokio::test]
async fn default_headers_comms_owns_or_set_twice_are_refused_at_build() {
    let url = "http://127.0.0.1:1";
    for name in [
        "Idempotency-Key",
        "Comms-Deadline-Ms",
        "traceparent",
        "tracestate",
        "TE",
        "Keep-Alive",
        "Host",
        "Signature-Input",
        "Content-Length",
        "Transfer-Encoding",
    ] {
        let r = plain_builder(url, "audit", SECRET)
            .default_header(name, "v")
            .build();
        assert!(matches!(r, Err(Error::Config { .. })), "{name}: {r:?}");
    }
    let r = plain_builder(url, "audit", SECRET)
        .default_header("X-Tenant", "a")
        .default_header("x-tenant", "b")
        .build();
    assert!(matches!(r, Err(Error::Config { .. })), "set twice: {r:?}");
}

// builder.rs default_header: "A `Content-Type` replaces the one a JSON or raw body implies, but
// not one the call sets, nor a form's or multipart body's own"; "a view's of the same name
// wins"; "every call carries unless it sets the same one itself"; "The values never appear in
// `Debug` output."
#[tokio::test]
async fn default_header_precedence() {
    let server = TestServer::always(Reply::status(200)).await;
    let builder = plain_builder(&server.url(), "audit", SECRET)
        .default_header("Content-Type", "application/vnd.audit+json")
        .default_header("X-Tenant", "default-tenant-SENTINEL");
    assert!(!format!("{builder:?}").contains("SENTINEL"), "{builder:?}");
    let e = builder.build().unwrap();
    assert!(!format!("{e:?}").contains("SENTINEL"));
    // JSON body: the default type replaces application/json.
    e.execute(Call::post("/json").json(&1)).await.unwrap();
    // Raw body.
    e.execute(Call::post("/raw").body(vec![1u8, 2], "application/octet-stream"))
        .await
        .unwrap();
    // The call's own Content-Type header.
    e.execute(
        Call::post("/own")
            .header("Content-Type", "text/csv")
            .body("a,b", "text/plain"),
    )
    .await
    .unwrap();
    // A form.
    e.execute(Call::post("/form").form(&[("a", "b")]))
        .await
        .unwrap();
    // A view's value and a call's own.
    e.with(CallOptions::new().header("x-tenant", "view-tenant"))
        .execute(Call::get("/view"))
        .await
        .unwrap();
    e.execute(Call::get("/call").header("X-Tenant", "call-tenant"))
        .await
        .unwrap();
    let reqs = server.requests();
    let h = |i: usize, n: &str| {
        reqs[i]
            .headers
            .get_all(n)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(h(0, "content-type"), ["application/vnd.audit+json"], "json");
    assert_eq!(h(1, "content-type"), ["application/vnd.audit+json"], "raw");
    assert_eq!(h(2, "content-type"), ["text/csv"], "call's own");
    assert_eq!(
        h(3, "content-type"),
        ["application/x-www-form-urlencoded"],
        "form"
    );
    assert_eq!(h(4, "x-tenant"), ["view-tenant"], "view");
    assert_eq!(h(5, "x-tenant"), ["call-tenant"], "call");
}

#[service_client(
    base_url = "http://127.0.0.1:1",
    service_id = "audit",
    secret_env = "COMMS_AUDIT_UNUSED"
)]
pub trait Audit {
    #[get("/echo")]
    async fn echo(&self, #[header("X-Tenant")] tenant: &str) -> Result<String, Error>;

    #[get("/who")]
    async fn who(&self) -> Result<String, Error>;

    #[get("/who-must")]
    async fn who_must(&self) -> Result<String, Error>;

    #[post("/limited")]
    async fn limited(&self) -> Result<(), Error>;

    #[post("/redirect")]
    async fn redirect(&self) -> Result<(), Error>;
}

#[derive(Clone)]
struct AuditImpl;

impl Audit for AuditImpl {
    async fn echo(&self, tenant: &str) -> Result<String, Error> {
        Ok(tenant.to_owned())
    }
    async fn who(&self) -> Result<String, Error> {
        Ok(format!(
            "{:?}",
            comms::server::try_caller().map(|c| c.service_id().to_owned())
        ))
    }
    async fn who_must(&self) -> Result<String, Error> {
        Ok(comms::server::caller().service_id().to_owned())
    }
    async fn limited(&self) -> Result<(), Error> {
        Err(Error::too_many_requests("slow down").with_retry_after(Duration::from_millis(1500)))
    }
    async fn redirect(&self) -> Result<(), Error> {
        Err(Error::from_status(StatusCode::FOUND, "elsewhere"))
    }
}

// README per-call options: `.header("x-tenant", &tenant_id), // signed; a method's own #[header]
// wins`.
#[tokio::test]
async fn a_methods_own_header_beats_a_views() {
    let server = TestServer::always(Reply::status(200).body("\"ok\"")).await;
    let client = comms_tests::plain_client::<AuditClient>(&server.url(), SECRET);
    client
        .with(CallOptions::new().header("x-tenant", "view"))
        .echo("own")
        .await
        .unwrap();
    let reqs = server.requests();
    let values: Vec<_> = reqs[0].headers.get_all("x-tenant").iter().collect();
    assert_eq!(values, ["own"]);
}

// error.rs with_retry_after: "Sets the wait a server asks for in `Retry-After` when it sends this
// error (whole seconds, rounded up)"; from_status: "A server sends a status outside 4xx and 5xx
// as 500".
#[tokio::test]
async fn a_served_errors_retry_after_is_rounded_up_and_a_3xx_error_is_a_500() {
    let url = serve(
        AuditServer::new(AuditImpl)
            .verifier(comms::verify::Verifier::new().service("audit", SECRET))
            .into_router(),
    )
    .await;
    let e = exec(&url);
    let err = e.execute(Call::post("/limited")).await.unwrap_err();
    let he = err.http_error().unwrap();
    assert_eq!(he.status(), 429);
    assert_eq!(
        he.headers().get("retry-after").map(|v| v.to_str().unwrap()),
        Some("2"),
        "{:?}",
        he.headers()
    );
    let err = e.execute(Call::post("/redirect")).await.unwrap_err();
    assert_eq!(
        err.status(),
        Some(StatusCode::INTERNAL_SERVER_ERROR),
        "{err:?}"
    );
}

// README: "`comms::server::caller()` panics where there is no verified caller (a server built
// with `.unverified()`, ...); `comms::server::try_caller()` is an `Option`"; "A panic in a method
// is a 500 for that request; the server keeps serving."
#[tokio::test]
async fn an_unverified_server_has_no_caller() {
    let url = serve(AuditServer::new(AuditImpl).unverified().into_router()).await;
    let e = exec(&url);
    let body = e.execute(Call::get("/who")).await.unwrap();
    assert_eq!(body.json::<String>().unwrap(), "None");
    let err = e.execute(Call::get("/who-must")).await.unwrap_err();
    assert_eq!(
        err.status(),
        Some(StatusCode::INTERNAL_SERVER_ERROR),
        "{err:?}"
    );
    let body = e.execute(Call::get("/who")).await.unwrap();
    assert_eq!(body.json::<String>().unwrap(), "None");
}

// README Streaming: "`JsonLines<T>` splits lines wherever the chunks end, accepts `\r\n` and a
// last line without a break, skips blank lines, and gives an `Error::Decode` for a line that is
// not a `T` (the next lines are read as usual). A line longer than `max_response_bytes` is an
// error that ends the stream".
#[tokio::test]
async fn json_lines_from_a_real_server() {
    let body = "\u{feff}{\"id\":1}\r\n\n\r\n{\"id\":\"x\"}\n{\"id\":2}\n\n{\"id\":3}";
    let server = TestServer::always(Reply::status(200).body(body)).await;
    #[derive(serde::Deserialize, Debug)]
    struct Item {
        id: u32,
    }
    let mut items = exec(&server.url())
        .execute_streaming(Call::get("/x"))
        .await
        .unwrap()
        .into_json_lines::<Item>();
    let mut got = Vec::new();
    while let Some(item) = items.next_item().await {
        got.push(
            item.map(|i| i.id)
                .map_err(|e| matches!(e, Error::Decode { .. })),
        );
    }
    assert_eq!(got, [Ok(1), Err(true), Ok(2), Ok(3)]);

    // The line limit is the executor's max_response_bytes.
    let long = format!("{{\"id\":1}}\n\"{}\"\n{{\"id\":2}}\n", "a".repeat(200));
    let server = TestServer::always(Reply::status(200).body(long)).await;
    let e = plain_builder(&server.url(), "audit", SECRET)
        .max_response_bytes(100)
        .build()
        .unwrap();
    let mut items = e
        .execute_streaming(Call::get("/x"))
        .await
        .unwrap()
        .into_json_lines::<serde_json::Value>();
    let mut got = Vec::new();
    while let Some(item) = items.next_item().await {
        got.push(item.is_ok());
    }
    assert_eq!(got, [true, false], "the long line ends the stream");
}

// error.rs Timeout: "A call that had nothing left of its deadline when it began ... is not sent:
// `after` is zero, and it reads `GET … was not sent: no time was left of its deadline`."
#[tokio::test]
async fn a_call_with_a_zero_deadline_is_not_sent() {
    let server = TestServer::always(Reply::status(200)).await;
    let r = exec(&server.url())
        .with(CallOptions::new().deadline(Duration::ZERO))
        .execute(Call::get("/x"))
        .await;
    let err = r.expect_err("a call with no time left");
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains("was not sent"), "{err}");
    assert_eq!(server.count(), 0);
}

// README: "a comms client sends only ASCII header values: a `#[header]` argument of `"Zoë"` is an
// `Error::Encode`, unsent"; "header values with CR/LF are refused before anything is sent".
#[tokio::test]
async fn non_ascii_and_line_break_header_values_are_encode_errors_unsent() {
    let server = TestServer::always(Reply::status(200).body("\"ok\"")).await;
    let client = comms_tests::plain_client::<AuditClient>(&server.url(), SECRET);
    for v in ["Zoë", "a\r\nX-Evil: 1", "a\nb"] {
        let err = client.echo(v).await.unwrap_err();
        assert!(matches!(err, Error::Encode { .. }), "{v:?}: {err:?}");
    }
    assert_eq!(server.count(), 0);
}

// error.rs BODY_EXCERPT_LIMIT: "How many bytes of an error response's body are kept in
// [`HttpError::body`]" (1024), with "`…` when something was cut".
#[tokio::test]
async fn an_error_bodys_excerpt_is_bounded() {
    let server = TestServer::always(Reply::status(500).body("é".repeat(100_000))).await;
    let err = exec(&server.url())
        .execute(Call::get("/x"))
        .await
        .unwrap_err();
    let body = err.http_error().unwrap().body();
    assert!(
        body.len() <= comms::BODY_EXCERPT_LIMIT + '…'.len_utf8(),
        "{}",
        body.len()
    );
    assert!(body.ends_with('…'));
    assert!(format!("{err:?}").len() < 8 * 1024);
}

#[service_client(
    base_url = "http://127.0.0.1:1",
    service_id = "audit",
    secret_env = "COMMS_AUDIT_UNUSED"
)]
pub trait Extra {
    #[post("/pay", idempotent)]
    async fn pay(&self, #[header("Idempotency-Key")] key: &str) -> Result<String, Error>;

    #[post("/pay-opt", idempotent)]
    async fn pay_opt(
        &self,
        #[header("Idempotency-Key")] key: Option<&str>,
    ) -> Result<String, Error>;

    #[put("/blob")]
    async fn blob(&self, #[body(raw)] b: [u8; 4]) -> Result<u32, Error>;

    #[get("/maybe/<id>")]
    async fn maybe(&self, id: u32) -> Result<Option<String>, Error>;
}

#[derive(Clone)]
struct ExtraImpl;

impl Extra for ExtraImpl {
    async fn pay(&self, key: &str) -> Result<String, Error> {
        Ok(key.to_owned())
    }
    async fn pay_opt(&self, key: Option<&str>) -> Result<String, Error> {
        Ok(format!("{key:?}"))
    }
    async fn blob(&self, b: [u8; 4]) -> Result<u32, Error> {
        Ok(u32::from_be_bytes(b))
    }
    async fn maybe(&self, id: u32) -> Result<Option<String>, Error> {
        Ok((id == 1).then(|| "one".to_owned()))
    }
}

async fn extra_server() -> String {
    serve(
        ExtraServer::new(ExtraImpl)
            .verifier(comms::verify::Verifier::new().service("audit", SECRET))
            .into_router(),
    )
    .await
}

// README: "an `Idempotency-Key` argument is the call's own key, and, as a plain `&str`, one the
// generated server requires, a 400 without it: take an `Option<&str>` where callers without
// keys ... call the method".
#[tokio::test]
async fn a_required_idempotency_key_is_a_400_without_it() {
    let url = extra_server().await;
    let e = exec(&url);
    let err = e.execute(Call::post("/pay")).await.unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::BAD_REQUEST), "{err:?}");
    let ok = e.execute(Call::post("/pay-opt")).await.unwrap();
    assert_eq!(ok.json::<String>().unwrap(), "None");
    let client = comms_tests::plain_client::<ExtraClient>(&url, SECRET);
    assert_eq!(client.pay("k-1234567890").await.unwrap(), "k-1234567890");
}

// README: "#[body(raw)] ... `[u8; N]` ... A generated server hands the method the bytes as they
// came ...; text that is not UTF-8, or an array of another length, is a 400".
#[tokio::test]
async fn a_raw_array_of_another_length_is_a_400() {
    let url = extra_server().await;
    let e = exec(&url);
    let ok = e
        .execute(Call::put("/blob").body(vec![0u8, 0, 1, 2], "application/octet-stream"))
        .await
        .unwrap();
    assert_eq!(ok.json::<u32>().unwrap(), 258);
    for len in [3usize, 5] {
        let err = e
            .execute(Call::put("/blob").body(vec![0u8; len], "application/octet-stream"))
            .await
            .unwrap_err();
        assert_eq!(
            err.status(),
            Some(StatusCode::BAD_REQUEST),
            "{len}: {err:?}"
        );
    }
}

// README: "`Option<T>`, where a 404 is `Ok(None)` (every other error stays an error ...)", and
// "the `None` of an `Option<T>` as 404".
#[tokio::test]
async fn an_option_reads_a_404_as_none_and_nothing_else() {
    let url = extra_server().await;
    let client = comms_tests::plain_client::<ExtraClient>(&url, SECRET);
    assert_eq!(client.maybe(1).await.unwrap().as_deref(), Some("one"));
    assert_eq!(client.maybe(2).await.unwrap(), None);
    let server = TestServer::always(Reply::status(410)).await;
    let client = comms_tests::plain_client::<ExtraClient>(&server.url(), SECRET);
    assert!(client.maybe(1).await.is_err());
}

// README Receiving: "A request for a path the server does not have, or with a verb its path does
// not serve, is answered by axum before any signature is checked (a bare 404, or a 405 with
// `Allow`)"; and "A server given no `.verifier(..)` refuses every request with a 401".
#[tokio::test]
async fn unrouted_requests_get_axums_404_and_405() {
    let url = extra_server().await;
    let http = reqwest::Client::new();
    let r = http.get(format!("{url}/nowhere")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = http.get(format!("{url}/pay")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert!(r.headers().get("allow").is_some(), "{:?}", r.headers());
    let r = http.post(format!("{url}/pay")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let unguarded = serve(ExtraServer::new(ExtraImpl).into_router()).await;
    let err = exec(&unguarded)
        .execute(Call::get("/maybe/1"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::UNAUTHORIZED), "{err:?}");
}

// README: "`caller.covers("x-tenant")` tells (false for every header under a legacy signature,
// which covers none)"; "Handlers get the authenticated `Caller` (service, key id, scheme)".
#[tokio::test]
async fn a_legacy_caller_covers_no_header() {
    use axum::Extension;
    use comms::verify::{Caller, Verifier, VerifyLayer};
    let app = axum::Router::new()
        .route(
            "/c",
            axum::routing::get(|Extension(c): Extension<Caller>| async move {
                format!(
                    "{} {} {:?} {} {}",
                    c.service_id(),
                    c.key_id(),
                    c.signing(),
                    c.covers("x-tenant"),
                    c.covers("host")
                )
            }),
        )
        .layer(VerifyLayer::new(
            Verifier::new().service("audit", SECRET).accept_legacy(true),
        ));
    let url = serve(app).await;
    let rfc = exec(&url)
        .execute(Call::get("/c").header("X-Tenant", "t"))
        .await
        .unwrap();
    let rfc = String::from_utf8(rfc.into_bytes().to_vec()).unwrap();
    assert!(
        rfc.ends_with("true false") || rfc.ends_with("true true"),
        "{rfc}"
    );
    let legacy = plain_builder(&url, "audit", SECRET)
        .signing(comms::signing::Signing::Legacy)
        .build()
        .unwrap()
        .execute(Call::get("/c").header("X-Tenant", "t"))
        .await
        .unwrap();
    let legacy = String::from_utf8(legacy.into_bytes().to_vec()).unwrap();
    assert_eq!(legacy, "audit audit Legacy false false");
}

// builder.rs default_header: "a name or value HTTP cannot carry ... is an [`Error::Config`] from
// [`build`]. The values never appear in `Debug` output."; header_hook: "a `Content-Type` for a
// call whose form or multipart body has its own, or a value with white space at either end"
// is an `Error::Config`. A header value is often a credential: none is shown in the error.
#[tokio::test]
async fn refused_header_values_are_not_shown() {
    let r = plain_builder("http://127.0.0.1:1", "audit", SECRET)
        .default_header("Authorization", "Bearer SENTINEL-1\r\nX: y")
        .build();
    let err = r.expect_err("a value with a line break");
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
    assert!(!format!("{err:?} {err}").contains("SENTINEL"), "{err:?}");

    let server = TestServer::always(Reply::status(200)).await;
    let e = plain_builder(&server.url(), "audit", SECRET)
        .header_hook(|| async {
            let mut h = HeaderMap::new();
            h.insert(
                "authorization",
                HeaderValue::from_static("Bearer SENTINEL-2 "),
            );
            Ok(h)
        })
        .build()
        .unwrap();
    let err = e.execute(Call::get("/x")).await.unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
    assert!(!format!("{err:?} {err}").contains("SENTINEL"), "{err:?}");

    let e = plain_builder(&server.url(), "audit", SECRET)
        .header_hook(|| async {
            let mut h = HeaderMap::new();
            h.insert("content-type", HeaderValue::from_static("text/plain"));
            Ok(h)
        })
        .build()
        .unwrap();
    let err = e
        .execute(Call::post("/f").form(&[("a", "b")]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "form: {err:?}");

    let err = exec(&server.url())
        .execute(Call::get("/x").header("Authorization", "Bearer SENTINEL-3\r\nX: y"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Encode { .. }), "{err:?}");
    assert!(!format!("{err:?} {err}").contains("SENTINEL"), "{err:?}");
    let err = exec(&server.url())
        .with(CallOptions::new().header("Authorization", "Bearer SENTINEL-4\n"))
        .execute(Call::get("/x"))
        .await
        .unwrap_err();
    assert!(!format!("{err:?} {err}").contains("SENTINEL"), "{err:?}");
    assert_eq!(server.count(), 0);
}

// listen.rs (`serve`) and README Receiving: `comms::server::serve` "answers a head over
// `max_head_bytes` (80 KiB), or with over 100 header fields, with a 431"; heads within both are
// served. (`server/listen.rs` has the byte limit to the byte.)
#[tokio::test]
async fn serve_head_limits_at_their_defaults() {
    let listener = comms_tests::fresh_listener().await;
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
    tokio::spawn(async move { comms::server::serve(listener, app).await.unwrap() });
    let url = format!("http://{addr}");
    let send = |head: String| {
        let url = url.clone();
        async move {
            let answer =
                comms_tests::raw_exchange(&url, head.as_bytes(), Duration::from_secs(3)).await;
            answer.lines().next().unwrap_or_default().to_owned()
        }
    };
    let sized = |n: usize| {
        format!(
            "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
            "a".repeat(n)
        )
    };
    let fields = |n: usize| {
        // Host and Connection, then n - 2 more.
        let mut h = String::from("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
        for i in 0..n - 2 {
            h.push_str(&format!("X-F{i}: v\r\n"));
        }
        h.push_str("\r\n");
        h
    };
    let mut seen = Vec::new();
    for (what, head) in [
        ("60 KiB", sized(60 * 1024)),
        ("78 KiB", sized(78 * 1024)),
        ("82 KiB", sized(82 * 1024)),
        ("100 fields", fields(100)),
        ("101 fields", fields(101)),
    ] {
        seen.push((what, send(head).await));
    }
    assert_eq!(
        seen,
        [
            ("60 KiB", "HTTP/1.1 200 OK".to_owned()),
            ("78 KiB", "HTTP/1.1 200 OK".to_owned()),
            (
                "82 KiB",
                "HTTP/1.1 431 Request Header Fields Too Large".to_owned()
            ),
            ("100 fields", "HTTP/1.1 200 OK".to_owned()),
            (
                "101 fields",
                "HTTP/1.1 431 Request Header Fields Too Large".to_owned()
            ),
        ]
    );
}
