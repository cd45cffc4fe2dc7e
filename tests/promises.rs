//! Promises README.md and RELIABILITY.md make that no other test file shows directly:
//! defaults, what is retried, what is refused with which variant, and what a server answers
//! with which status. Each test quotes the promise it checks.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::routing::{get, post};
use comms::http::Method;
use comms::verify::{Verifier, VerifyLayer};
use comms::{BreakerConfig, Call, CallOptions, Error, Executor, RetryConfig, service_client};
use comms_tests::{Recorded, Reply, TestServer, fast_retry, serve};

const SECRET: &str = "promises-secret";

fn exec(url: &str, retry: RetryConfig) -> Executor {
    Executor::builder()
        .base_url(url)
        .service_id("docs")
        .secret(SECRET)
        .breaker(BreakerConfig::disabled())
        .retry(retry)
        .build()
        .unwrap()
}

fn verifier() -> Verifier {
    Verifier::new().service("docs", SECRET)
}

// ---------------------------------------------------------------------------------------------
// README: "timeouts, resets, 429/500/502/503/504 for GET HEAD OPTIONS PUT DELETE (and
// TRACE, by hand)". The existing tests try GET PUT DELETE HEAD; OPTIONS and TRACE here.

#[tokio::test]
async fn options_and_trace_by_hand_are_retried_on_a_503() {
    for method in [Method::OPTIONS, Method::TRACE] {
        let server = TestServer::start(|_, i| {
            if i < 2 {
                Reply::status(503)
            } else {
                Reply::status(200)
            }
        })
        .await;
        let response = exec(&server.url(), fast_retry())
            .execute(Call::new(method.clone(), "/x"))
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{method}");
        assert_eq!(server.count(), 3, "{method}: two 503s retried");
    }
}

// README: only 429/500/502/503/504 are retried statuses; a 408 to a GET is not among them.
#[tokio::test]
async fn a_408_to_a_get_is_not_retried() {
    let server = TestServer::always(Reply::status(408)).await;
    let err = exec(&server.url(), fast_retry())
        .execute(Call::get("/x"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Status(_)), "{err:?}");
    assert_eq!(server.count(), 1);
}

// ---------------------------------------------------------------------------------------------
// README: "`Retry-After` honoured, seconds or HTTP date, up to 30 s (longer: no retry)",
// with the default cap (the existing test sets the cap explicitly).

#[tokio::test]
async fn a_retry_after_over_the_default_30_s_cap_ends_the_call_at_once() {
    let in_a_minute = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(60));
    for value in ["31".to_owned(), in_a_minute] {
        let server = TestServer::always(Reply::status(503).header("retry-after", &value)).await;
        let started = Instant::now();
        let err = exec(&server.url(), fast_retry())
            .execute(Call::get("/x"))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Server(_)), "{err:?}");
        assert_eq!(server.count(), 1, "{value}: not retried");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    // Within the cap, it is waited for.
    let server = TestServer::start(|_, i| {
        if i == 0 {
            Reply::status(429).header("retry-after", "1")
        } else {
            Reply::status(200)
        }
    })
    .await;
    let started = Instant::now();
    exec(&server.url(), fast_retry())
        .execute(Call::get("/x"))
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(950));
    assert_eq!(server.count(), 2);
}

// ---------------------------------------------------------------------------------------------
// README: "response size | 16 MiB", the default of `max_response_bytes`.

#[tokio::test]
async fn the_default_response_limit_is_16_mib() {
    const LIMIT: usize = 16 * 1024 * 1024;
    let server = TestServer::start(|r, _| {
        let n = if r.uri.path() == "/at" {
            LIMIT
        } else {
            LIMIT + 1
        };
        Reply::status(200).body(vec![b'a'; n])
    })
    .await;
    let e = exec(&server.url(), RetryConfig::none());
    let at = e.execute(Call::get("/at")).await.unwrap();
    assert_eq!(at.into_bytes().len(), LIMIT);
    let over = e.execute(Call::get("/over")).await.unwrap_err();
    assert!(matches!(over, Error::Decode { .. }), "{over:?}");
}

// ---------------------------------------------------------------------------------------------
// README: "breaker | opens after 5 consecutive failed attempts ..., open 30 s, then 1 probe" (the
// builder's default, not a configured one), and README: shared by all clients of a target.

#[tokio::test]
async fn the_default_breaker_opens_after_five_failures_for_30_s_for_every_client() {
    let server = TestServer::always(Reply::status(500)).await;
    let build = || {
        Executor::builder()
            .base_url(server.url())
            .service_id("docs")
            .secret(SECRET)
            .retry(RetryConfig::none())
            .build()
            .unwrap()
    };
    let first = build();
    for i in 0..5 {
        let err = first.execute(Call::get("/x")).await.unwrap_err();
        assert!(matches!(err, Error::Server(_)), "call {i}: {err:?}");
    }
    assert_eq!(server.count(), 5);
    // Another client of the same target, built afterwards, finds it open.
    let err = build().execute(Call::get("/x")).await.unwrap_err();
    match err {
        Error::CircuitOpen { retry_in, .. } => assert!(
            retry_in > Duration::from_secs(28) && retry_in <= Duration::from_secs(30),
            "{retry_in:?}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(server.count(), 5, "the open breaker touched no network");
}

// ---------------------------------------------------------------------------------------------
// README: a signed request's body is read under 2 MiB by default (413 beyond), by
// `VerifyLayer` and by a generated server alike.

#[service_client(
    base_url = "http://127.0.0.1:1",
    service_id = "docs",
    secret_env = "COMMS_TEST_PROMISES_UNUSED"
)]
pub trait Promised {
    #[post("/up")]
    async fn up(&self, #[body] data: String) -> Result<u64, Error>;

    #[get("/big")]
    async fn big(&self, #[header("X-Big")] big: &str) -> Result<u64, Error>;

    #[post("/float")]
    async fn float(&self, #[body] x: f64) -> Result<String, Error>;

    #[post("/maybe")]
    async fn maybe(&self, #[body] x: Option<f64>) -> Result<String, Error>;

    #[get("/nan")]
    async fn nan(&self) -> Result<f64, Error>;

    #[head("/gone")]
    async fn gone(&self) -> Result<(), Error>;

    #[post("/slow", idempotent)]
    async fn slow(&self, #[body] n: u32) -> Result<u32, Error>;
}

#[derive(Clone)]
struct PromisedImpl;

impl Promised for PromisedImpl {
    async fn up(&self, data: String) -> Result<u64, Error> {
        Ok(data.len() as u64)
    }
    async fn big(&self, big: &str) -> Result<u64, Error> {
        Ok(big.len() as u64)
    }
    async fn float(&self, x: f64) -> Result<String, Error> {
        Ok(format!("{x}"))
    }
    async fn maybe(&self, x: Option<f64>) -> Result<String, Error> {
        Ok(format!("{x:?}"))
    }
    async fn nan(&self) -> Result<f64, Error> {
        Ok(f64::NAN)
    }
    async fn gone(&self) -> Result<(), Error> {
        Err(Error::not_found("a message a HEAD answer cannot carry"))
    }
    async fn slow(&self, n: u32) -> Result<u32, Error> {
        tokio::time::sleep(Duration::from_secs(7)).await;
        Ok(n)
    }
}

async fn promised_server() -> (String, PromisedClient) {
    let url = serve(
        PromisedServer::new(PromisedImpl)
            .verifier(verifier())
            .into_router(),
    )
    .await;
    let client = comms_tests::plain_client::<PromisedClient>(&url, SECRET);
    (url, client)
}

#[tokio::test]
async fn the_default_body_limit_is_2_mib_for_the_layer_and_a_generated_server() {
    const LIMIT: usize = 2 * 1024 * 1024;
    // Behind VerifyLayer.
    let app = Router::new()
        .route(
            "/up",
            post(|body: axum::body::Bytes| async move { body.len().to_string() }),
        )
        .layer(VerifyLayer::new(verifier()));
    let url = serve(app).await;
    let e = exec(&url, RetryConfig::none());
    let ok = e
        .execute(Call::post("/up").body(vec![b'a'; LIMIT], "application/octet-stream"))
        .await
        .unwrap();
    assert_eq!(ok.text().unwrap(), LIMIT.to_string());
    let err = e
        .execute(Call::post("/up").body(vec![b'a'; LIMIT + 1], "application/octet-stream"))
        .await
        .unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(413), "{err:?}");

    // A generated server: a JSON string of exactly 2 MiB with its quotes, then one byte more.
    let (_url, client) = promised_server().await;
    let at = "a".repeat(LIMIT - 2);
    assert_eq!(client.up(at).await.unwrap(), (LIMIT - 2) as u64);
    let err = client.up("a".repeat(LIMIT - 1)).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(413), "{err:?}");
}

// ---------------------------------------------------------------------------------------------
// README: "A nonce store that cannot answer (Redis down) gets the request a 503 with
// `Retry-After: 1`, not a 401", and RELIABILITY.md: a comms client retries it. Shown here with
// a store of our own that always fails, so no redis-server is needed.

#[tokio::test]
async fn a_nonce_store_that_cannot_answer_is_a_503_with_retry_after_1_that_clients_retry() {
    let reached = Arc::new(AtomicUsize::new(0));
    let counted = reached.clone();
    let app = Router::new()
        .route("/x", get(|| async { "ok" }))
        .layer(VerifyLayer::new(
            verifier().nonce_store(comms_tests::DownNonceStore),
        ))
        .layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                counted.fetch_add(1, Ordering::SeqCst);
                next.run(request)
            },
        ));
    let url = serve(app).await;

    let authority = url.trim_start_matches("http://");
    let mut head = Recorded::head(Method::GET, "/x", authority, b"");
    head.sign_now("docs", SECRET, &[]);
    let response = reqwest::Client::new()
        .get(format!("{url}/x"))
        .headers(head.headers.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    assert_eq!(reached.swap(0, Ordering::SeqCst), 1);

    let err = exec(&url, fast_retry().max_retries(1))
        .execute(Call::get("/x"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Server(_)), "{err:?}");
    assert_eq!(
        reached.load(Ordering::SeqCst),
        2,
        "the 503 was retried once"
    );
}

// ---------------------------------------------------------------------------------------------
// README: "A header of hundreds of kilobytes can outgrow what the server's HTTP/1
// reader takes of a request's head (hyper's buffer, about 400 KiB), and is a 431".

#[tokio::test]
async fn a_header_of_hundreds_of_kilobytes_is_a_431() {
    let (_url, client) = promised_server().await;
    assert_eq!(client.big(&"a".repeat(10_000)).await.unwrap(), 10_000);
    let err = client.big(&"a".repeat(600 * 1024)).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(431), "{err:?}");
}

// ---------------------------------------------------------------------------------------------
// README: "a `rediss://` URL (TLS) is refused with `Error::Config`" — for each of the three
// ways of naming a Redis (a unit test covers the nonce store only).

#[tokio::test]
async fn a_rediss_url_is_a_config_error_everywhere_a_redis_is_named() {
    let url = "rediss://127.0.0.1:6380/0";
    let nonces = comms::redis::RedisNonceStore::new(url).err();
    assert!(matches!(nonces, Some(Error::Config { .. })), "{nonces:?}");
    let answers = comms::redis::RedisIdempotencyStore::new(url).err();
    assert!(matches!(answers, Some(Error::Config { .. })), "{answers:?}");
    let sync = comms::redis::share_breakers(url, "docs").err();
    assert!(matches!(sync, Some(Error::Config { .. })), "{sync:?}");
}

// ---------------------------------------------------------------------------------------------
// README: a view's header that belongs to one call (`Idempotency-Key`,
// `Comms-Deadline-Ms`, `traceparent`, `tracestate`) or is hop-by-hop (`Connection`, `TE`,
// `Upgrade`, ...) makes the view's calls fail with `Error::Config`, unsent. The existing test
// tries only the headers comms writes itself.

#[tokio::test]
async fn a_views_per_call_or_hop_by_hop_header_fails_its_calls_unsent() {
    let server = TestServer::always(Reply::status(200)).await;
    let e = exec(&server.url(), RetryConfig::none());
    for name in [
        "Idempotency-Key",
        "Comms-Deadline-Ms",
        "traceparent",
        "tracestate",
        "Connection",
        "TE",
        "Upgrade",
        "Keep-Alive",
        "Transfer-Encoding",
        "Proxy-Connection",
        "Trailer",
    ] {
        let err = e
            .with(CallOptions::new().header(name, "1"))
            .execute(Call::get("/x"))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Config { .. }), "{name}: {err:?}");
    }
    assert_eq!(server.count(), 0);
}

// README: "A view holds one value per header name."
#[tokio::test]
async fn a_view_holds_one_value_per_header_name() {
    let server = TestServer::always(Reply::status(200)).await;
    let e = exec(&server.url(), RetryConfig::none());
    e.with(
        CallOptions::new()
            .header("x-tenant", "a")
            .header("X-Tenant", "b"),
    )
    .execute(Call::get("/x"))
    .await
    .unwrap();
    let sent: Vec<_> = server.requests()[0]
        .headers
        .get_all("x-tenant")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(sent.len(), 1, "{sent:?}");
}

// ---------------------------------------------------------------------------------------------
// README: `.body_timeout(d)` is "10 s by default, a 408; or what is left of the request's
// deadline, when that is shorter, a 504". A signed request carrying `Comms-Deadline-Ms: 300`
// whose body never comes is answered well before the 10 s default, as its deadline ends it.

#[tokio::test]
async fn a_body_is_waited_for_no_longer_than_the_requests_deadline() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = Router::new()
        .route("/up", post(|body: String| async move { body }))
        .layer(VerifyLayer::new(verifier()));
    let url = serve(app).await;
    let authority = url.trim_start_matches("http://");
    let mut head = Recorded::head(Method::POST, "/up", authority, b"hello");
    head.headers.insert("content-length", 5u64.into());
    head.headers
        .insert("comms-deadline-ms", "300".parse().unwrap());
    head.sign_now("docs", SECRET, &["comms-deadline-ms"]);
    let mut bytes = b"POST /up HTTP/1.1\r\n".to_vec();
    for (name, value) in &head.headers {
        bytes.extend_from_slice(format!("{name}: {}\r\n", value.to_str().unwrap()).as_bytes());
    }
    bytes.extend_from_slice(b"\r\n");
    let mut stream = tokio::net::TcpStream::connect(authority).await.unwrap();
    let started = Instant::now();
    stream.write_all(&bytes).await.unwrap();
    let mut answer = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("an answer before the 10 s body timeout")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]).to_string();
    assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
    assert!(answer.contains("the deadline passed"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// README: JSON has no NaN: a `#[body]` f64 holding one arrives as a 400,
// an `Option<f64>` as `None`; an f64 answer holding one is a `Decode` error at the client.

#[tokio::test]
async fn nan_goes_as_null_a_400_for_an_f64_and_none_for_an_option() {
    let (_url, client) = promised_server().await;
    assert_eq!(client.float(1.5).await.unwrap(), "1.5");
    let err = client.float(f64::NAN).await.unwrap_err();
    assert!(matches!(err, Error::BadRequest(_)), "{err:?}");
    assert_eq!(client.maybe(Some(f64::INFINITY)).await.unwrap(), "None");
    let err = client.nan().await.unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
}

// README: "(a `#[head]` method's answer has no body: the variant only)".
#[tokio::test]
async fn a_head_methods_error_arrives_as_its_variant_without_a_message() {
    let (_url, client) = promised_server().await;
    match client.gone().await.unwrap_err() {
        Error::NotFound(e) => assert_eq!(e.message(), None, "{e:?}"),
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// README: "a `created` within 300 s either way" (the default skew; the existing
// tests set a 1 s one), and README: "a nonce of 16 to 128 characters of
// `A-Z a-z 0-9 - _`".

/// The status of `GET /x`, signed as the profile asks with `created` and `nonce` as given.
async fn status_signed(url: &str, created: i64, nonce: &str) -> u16 {
    let authority = url.trim_start_matches("http://");
    let mut head = Recorded::head(Method::GET, "/x", authority, b"");
    let params = format!(r#";created={created};keyid="docs";alg="hmac-sha256";nonce="{nonce}""#);
    head.sign_as(
        "comms",
        &["@method", "@authority", "@path", "@query", "content-digest"],
        &params,
        SECRET,
    );
    head.send_to(url, b"").await.0
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn fresh_nonce() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("promises{:016x}", NEXT.fetch_add(1, Ordering::SeqCst))
}

#[tokio::test]
async fn the_default_skew_window_is_300_s_either_way() {
    let app = Router::new()
        .route("/x", get(|| async { "ok" }))
        .layer(VerifyLayer::new(verifier()));
    let url = serve(app).await;
    let now = unix_now();
    for (offset, expected) in [(-290, 200), (290, 200), (-310, 401), (310, 401)] {
        let status = status_signed(&url, now + offset, &fresh_nonce()).await;
        assert_eq!(status, expected, "created {offset:+} s");
    }
}

#[tokio::test]
async fn a_nonce_of_16_to_128_url_safe_characters_is_taken_and_no_other() {
    let app = Router::new()
        .route("/x", get(|| async { "ok" }))
        .layer(VerifyLayer::new(verifier()));
    let url = serve(app).await;
    let now = unix_now();
    let unique = |len: usize, fill: char| {
        let tag = fresh_nonce();
        let mut n: String = tag.chars().rev().take(len.min(tag.len())).collect();
        while n.len() < len {
            n.push(fill);
        }
        n
    };
    for (nonce, expected) in [
        (unique(16, 'a'), 200),
        (unique(128, '_'), 200),
        (format!("{}-", unique(20, 'a')), 200),
        (unique(15, 'a'), 401),
        (unique(129, 'a'), 401),
        (format!("{}+/=", unique(20, 'a')), 401),
    ] {
        assert_eq!(status_signed(&url, now, &nonce).await, expected, "{nonce}");
    }
}

// ---------------------------------------------------------------------------------------------
// README: a multipart body has "a random boundary (`comms-` and 32 hex digits ...),
// names quoted as browsers quote them (a `"` as `%22`, a line break as `%0D` or `%0A`)".

#[tokio::test]
async fn a_multipart_boundary_is_comms_and_32_hex_digits_and_names_are_quoted_as_browsers_do() {
    let server = TestServer::always(Reply::status(200)).await;
    let form = comms::Multipart::new().text("a\"b\r\nc", "v").file(
        "f",
        "x\"y\n.txt",
        "text/plain",
        b"data".to_vec(),
    );
    exec(&server.url(), RetryConfig::none())
        .execute(Call::post("/up").multipart(&form))
        .await
        .unwrap();
    let sent = &server.requests()[0];
    let content_type = sent.header("content-type").unwrap();
    let boundary = content_type
        .strip_prefix("multipart/form-data; boundary=comms-")
        .unwrap_or_else(|| panic!("{content_type}"));
    assert_eq!(boundary.len(), 32, "{boundary}");
    assert!(
        boundary.bytes().all(|b| b.is_ascii_hexdigit()),
        "{boundary}"
    );
    let body = String::from_utf8_lossy(&sent.body);
    assert!(body.contains(r#"name="a%22b%0D%0Ac""#), "{body}");
    assert!(body.contains(r#"filename="x%22y%0A.txt""#), "{body}");
}

// ---------------------------------------------------------------------------------------------
// README: the retry budget is per built client, and a view "shares the
// client's pool, budget and breaker".

#[tokio::test]
async fn a_view_spends_its_clients_retry_budget() {
    let server = TestServer::always(Reply::status(503)).await;
    let e = exec(&server.url(), fast_retry().max_retries(10).budget(0.0, 1));
    let view = e.with(CallOptions::new().header("x-tenant", "t"));
    assert!(view.execute(Call::get("/x")).await.is_err());
    assert_eq!(
        server.count(),
        2,
        "the floor's one token buys the view one retry"
    );
    assert!(e.execute(Call::get("/x")).await.is_err());
    assert_eq!(
        server.count(),
        3,
        "the client finds the budget spent by its view"
    );
}

// ---------------------------------------------------------------------------------------------
// README: "a repeat arriving while the first runs waits for it, within its deadline and
// at most 5 s, then gets a 409". The existing test shows the deadline; this one the 5 s cap for
// a repeat that carries no deadline (the method runs 7 s).

#[tokio::test]
async fn a_repeat_without_a_deadline_waits_at_most_5_s_for_the_first_run_then_gets_a_409() {
    let (url, _) = promised_server().await;
    let e = exec(&url, RetryConfig::none());
    let call = || {
        Call::post("/slow")
            .header("Idempotency-Key", "promises-k1")
            .idempotent(true)
            .timeout(Duration::from_secs(20))
            .json(&3u32)
    };
    let first = tokio::spawn({
        let e = e.clone();
        async move { e.execute(call()).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let err = e.execute(call()).await.unwrap_err();
    let waited = started.elapsed();
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
    assert!(
        waited >= Duration::from_millis(4_500) && waited < Duration::from_millis(6_500),
        "{waited:?}"
    );
    assert_eq!(first.await.unwrap().unwrap().json::<u32>().unwrap(), 3);
}
