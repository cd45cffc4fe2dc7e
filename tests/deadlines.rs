//! Deadlines that travel: a chain of services A → B → C over loopback, each hop a generated
//! client and a generated server. A call's deadline goes with it as `Comms-Deadline-Ms`, and
//! every call made while serving it is bounded by what is left.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use comms::verify::Verifier;
use comms::{BreakerConfig, Call, Error, RetryConfig, service_client};
use comms_tests::serve;

const SECRET: &str = "deadline-secret";

/// `GET path` at `url`, signed as `key_id` and carrying `Comms-Deadline-Ms: value` (covered),
/// as a caller that sends a deadline but does not keep to it would: the status and text of
/// the answer. (A comms call writes the header from its own deadline, and refuses one given.)
async fn get_with_deadline(url: &str, path: &str, key_id: &str, value: &str) -> (u16, String) {
    let authority = url.trim_start_matches("http://");
    let mut head = comms_tests::Recorded::head(comms::http::Method::GET, path, authority, b"");
    head.headers
        .insert("comms-deadline-ms", value.parse().unwrap());
    head.sign_now(key_id, SECRET, &["comms-deadline-ms"]);
    head.send_to(url, b"").await
}

#[service_client(
    base_url = "http://127.0.0.1:1",
    service_id = "b",
    secret_env = "UNUSED_C"
)]
pub trait ServiceC {
    /// The milliseconds left of the deadline C was called with.
    #[get("/c")]
    async fn c(&self) -> Result<u64, Error>;

    /// The milliseconds left, `u64::MAX` without a deadline; with a body to be read first.
    #[post("/left")]
    async fn left(&self, #[body] n: u32) -> Result<u64, Error>;

    /// The milliseconds left as each of two lines is produced, after the method returned;
    /// `u64::MAX` without a deadline.
    #[get("/streamed")]
    async fn streamed(&self) -> Result<comms::JsonLines<u64>, Error>;
}

#[service_client(
    base_url = "http://127.0.0.1:1",
    service_id = "a",
    secret_env = "UNUSED_B"
)]
pub trait ServiceB {
    /// Works for a while, then asks C.
    #[get("/b")]
    async fn b(&self) -> Result<u64, Error>;
}

#[derive(Clone, Default)]
struct C {
    hits: Arc<AtomicUsize>,
    /// Answers 503 with a long `Retry-After` instead.
    busy: bool,
}

impl ServiceC for C {
    async fn c(&self) -> Result<u64, Error> {
        self.hits.fetch_add(1, Ordering::SeqCst);
        if self.busy {
            return Err(
                Error::from_status(comms::http::StatusCode::SERVICE_UNAVAILABLE, "busy")
                    .with_retry_after(Duration::from_secs(1)),
            );
        }
        let left = comms::server::deadline().expect("called with a deadline");
        Ok(left.as_millis() as u64)
    }

    async fn left(&self, _n: u32) -> Result<u64, Error> {
        Ok(comms::server::deadline().map_or(u64::MAX, |left| left.as_millis() as u64))
    }

    async fn streamed(&self) -> Result<comms::JsonLines<u64>, Error> {
        Ok(comms::JsonLines::from_items((0..2).map(|_| {
            comms::server::deadline().map_or(u64::MAX, |left| left.as_millis() as u64)
        })))
    }
}

#[derive(Clone)]
struct B {
    c: ServiceCClient,
    work: Duration,
    /// How B's own call to C ended.
    outcome: Arc<Mutex<Option<String>>>,
}

impl ServiceB for B {
    async fn b(&self) -> Result<u64, Error> {
        tokio::time::sleep(self.work).await;
        let result = self.c.c().await;
        *self.outcome.lock().unwrap() = Some(match &result {
            Ok(_) => "ok".to_owned(),
            Err(e) if e.is_timeout() => format!("timeout: {e}"),
            Err(e) => e.to_string(),
        });
        result
    }
}

/// C, and B calling it after `work`; B's URL, C's hits and B's record of its call to C.
async fn chain(work: Duration, c: C) -> (String, Arc<AtomicUsize>, Arc<Mutex<Option<String>>>) {
    let hits = c.hits.clone();
    let c_url = serve(
        ServiceCServer::new(c)
            .verifier(Verifier::new().service("b", SECRET))
            .into_router(),
    )
    .await;
    let outcome = Arc::new(Mutex::new(None));
    let b = B {
        c: ServiceCClient::builder()
            .base_url(c_url)
            .secret(SECRET)
            .retry(RetryConfig::default().base_delay(Duration::from_millis(5)))
            .breaker(BreakerConfig::disabled())
            .build()
            .unwrap(),
        work,
        outcome: outcome.clone(),
    };
    let b_url = serve(
        ServiceBServer::new(b)
            .verifier(Verifier::new().service("a", SECRET))
            .into_router(),
    )
    .await;
    (b_url, hits, outcome)
}

fn a_calling(b_url: &str, deadline: Duration) -> ServiceBClient {
    ServiceBClient::builder()
        .base_url(b_url)
        .secret(SECRET)
        .retry(RetryConfig::none())
        .breaker(BreakerConfig::disabled())
        .deadline(deadline)
        .build()
        .unwrap()
}

async fn settle(outcome: &Mutex<Option<String>>) -> String {
    for _ in 0..100 {
        if let Some(done) = outcome.lock().unwrap().clone() {
            return done;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("B never finished its call to C")
}

#[tokio::test]
async fn work_nobody_waits_for_is_not_done() {
    let (b_url, c_hits, outcome) = chain(Duration::from_millis(350), C::default()).await;
    let a = a_calling(&b_url, Duration::from_millis(300));
    let started = Instant::now();
    let err = a.b().await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(err.is_timeout(), "{err}");
    // The issue's bound: A fails within 320 ms of a 300 ms deadline (here about 301 ms).
    assert!(
        elapsed < Duration::from_millis(320),
        "A gave up at its deadline, before B's work was done: {elapsed:?}"
    );
    // By the time B's work is done A's deadline has passed: either B's method was dropped with
    // A's connection, or its call to C ended at once, unsent. C receives nothing either way.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let b_did = outcome.lock().unwrap().clone();
    assert!(
        b_did.is_none()
            || b_did
                .as_deref()
                .is_some_and(|did| did.starts_with("timeout")),
        "{b_did:?}"
    );
    assert_eq!(c_hits.load(Ordering::SeqCst), 0, "C received nothing");
}

#[tokio::test]
async fn with_time_enough_the_chain_succeeds_and_c_knows_what_is_left() {
    let (b_url, c_hits, outcome) = chain(Duration::from_millis(350), C::default()).await;
    let a = a_calling(&b_url, Duration::from_secs(1));
    let left_at_c = a.b().await.unwrap();
    assert!(
        (1..=650).contains(&left_at_c),
        "C was called with what was left of A's second after B's 350 ms: {left_at_c} ms"
    );
    assert_eq!(settle(&outcome).await, "ok");
    assert_eq!(c_hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_hop_does_not_retry_past_the_inherited_deadline() {
    let busy = C {
        busy: true,
        ..C::default()
    };
    let (b_url, c_hits, outcome) = chain(Duration::ZERO, busy).await;
    let a = a_calling(&b_url, Duration::from_millis(500));
    let started = Instant::now();
    assert!(a.b().await.is_err());
    // C asked for a second before a retry; B had half of one: it did not wait.
    assert!(settle(&outcome).await.contains("503"));
    assert_eq!(
        c_hits.load(Ordering::SeqCst),
        1,
        "no retry past the deadline"
    );
    assert!(started.elapsed() < Duration::from_millis(500));
}

#[tokio::test]
async fn a_request_arriving_with_nothing_left_gets_a_504_at_once() {
    let c = C::default();
    let hits = c.hits.clone();
    let url = serve(
        ServiceCServer::new(c)
            .verifier(Verifier::new().service("b", SECRET))
            .into_router(),
    )
    .await;
    let (status, text) = get_with_deadline(&url, "/c", "b", "0").await;
    assert_eq!(status, 504, "{text}");
    let (status, text) = get_with_deadline(&url, "/c", "b", "soon").await;
    assert_eq!(status, 400, "{text}");
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the method never ran");
    // Without a deadline, `comms::server::deadline()` is `None` (the method would panic here
    // on its `expect`, which is a 500): a call with one gets the milliseconds left.
    let (status, text) = get_with_deadline(&url, "/c", "b", "5000").await;
    assert_eq!(status, 200, "{text}");
    let left: u64 = text.parse().unwrap();
    assert!((1..=5000).contains(&left), "{left}");
}

#[tokio::test]
async fn an_inherited_deadline_stops_the_next_hop_even_when_the_caller_waits() {
    // A caller that sends a 300 ms deadline but waits for the answer anyway: B's method runs
    // to its end, and only the deadline it inherited keeps its call to C from being sent.
    let (b_url, c_hits, outcome) = chain(Duration::from_millis(350), C::default()).await;
    let (status, text) = get_with_deadline(&b_url, "/b", "a", "300").await;
    assert_eq!(
        status, 504,
        "B's own call timed out, which it answers as 504: {text}"
    );
    // Its error says so, rather than that it timed out after no time at all.
    let b_did = settle(&outcome).await;
    assert!(
        b_did.starts_with("timeout: ")
            && b_did.ends_with("/c was not sent: no time was left of its deadline"),
        "{b_did}"
    );
    assert_eq!(c_hits.load(Ordering::SeqCst), 0, "C received nothing");
}

/// How a call a handler made ended, and when: what `a_handler_behind_verify_layer_inherits_the_deadline`
/// answers and reads back.
fn how_it_ended(result: Result<comms::Response, Error>, started: Instant) -> String {
    let outcome = match result {
        Err(e) if e.is_timeout() => "timeout",
        _ => "other",
    };
    format!("{outcome} after {} ms", started.elapsed().as_millis())
}

#[tokio::test]
async fn a_handler_behind_verify_layer_inherits_the_deadline() {
    // A slow dependency, and a hand-written handler behind VerifyLayer that calls it with an
    // executor of no deadline of its own.
    let slow = comms_tests::TestServer::always(
        comms_tests::Reply::status(200).delay(Duration::from_secs(5)),
    )
    .await;
    let dependency = comms::Executor::builder()
        .base_url(slow.url())
        .service_id("b")
        .secret(SECRET)
        .retry(RetryConfig::none())
        .breaker(BreakerConfig::disabled())
        .build()
        .unwrap();
    let spawning = dependency.clone();
    let app = axum::Router::new()
        .route(
            "/work",
            axum::routing::get(move || {
                let dependency = dependency.clone();
                async move {
                    let started = Instant::now();
                    let result = dependency.execute(Call::get("/slow")).await;
                    how_it_ended(result, started)
                }
            }),
        )
        .route(
            // A task the handler spawns does not inherit the deadline (it is task-local): the
            // handler hands it over as a view's deadline, as the docs of `deadline()` say.
            "/spawned",
            axum::routing::get(move || {
                let dependency = spawning.clone();
                async move {
                    let left = comms::server::deadline().expect("arrived with a deadline");
                    let view = dependency.with(comms::CallOptions::new().deadline(left));
                    let started = Instant::now();
                    let spawned = tokio::spawn(async move {
                        let inherited = comms::server::deadline();
                        (view.execute(Call::get("/slow")).await, inherited)
                    });
                    let (result, inherited) = spawned.await.unwrap();
                    assert_eq!(inherited, None, "not inherited by the task");
                    how_it_ended(result, started)
                }
            }),
        )
        .layer(comms::verify::VerifyLayer::new(
            Verifier::new().service("a", SECRET),
        ));
    let url = serve(app).await;
    for path in ["/work", "/spawned"] {
        let (status, answer) = get_with_deadline(&url, path, "a", "200").await;
        assert_eq!(status, 200, "{answer}");
        let (outcome, ms) = answer.split_once(" after ").unwrap();
        assert_eq!(outcome, "timeout", "{path}: {answer}");
        let ms: u64 = ms.trim_end_matches(" ms").parse().unwrap();
        assert!(
            ms < 1000,
            "{path}: bounded by the 200 ms it inherited, not the 10 s default: {answer}"
        );
    }
}

#[tokio::test]
async fn every_attempt_says_what_is_left_under_the_signature() {
    let server = comms_tests::TestServer::start(|_, i| {
        if i == 0 {
            comms_tests::Reply::status(503)
        } else {
            comms_tests::Reply::status(200)
        }
    })
    .await;
    let exec = comms::Executor::builder()
        .base_url(server.url())
        .service_id("a")
        .secret(SECRET)
        .retry(
            RetryConfig::default()
                .base_delay(Duration::from_millis(50))
                .max_delay(Duration::from_millis(50)),
        )
        .breaker(BreakerConfig::disabled())
        .deadline(Duration::from_secs(2))
        .build()
        .unwrap();
    exec.execute(Call::get("/x")).await.unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let left: Vec<u64> = requests
        .iter()
        .map(|r| r.header("comms-deadline-ms").unwrap().parse().unwrap())
        .collect();
    assert!(
        left[0] <= 2000 && left[1] < left[0],
        "less is left on the retry: {left:?}"
    );
    let verifier = Verifier::new().service("a", SECRET);
    for r in &requests {
        assert!(
            r.header("signature-input")
                .unwrap()
                .contains(r#""content-digest" "comms-deadline-ms")"#),
            "covered: {:?}",
            r.header("signature-input")
        );
        verifier
            .verify(&r.method, &r.uri, &r.headers, &r.body)
            .await
            .unwrap();
    }
    // A call without a deadline sends none.
    let plain = comms_tests::plain_executor(&server.url(), "a", SECRET);
    plain.execute(Call::get("/y")).await.unwrap();
    assert!(server.requests()[2].header("comms-deadline-ms").is_none());
}

#[tokio::test]
async fn a_deadline_longer_than_the_header_says_travels_as_the_longest_it_says() {
    // A century is more than the 12 digits of milliseconds a server reads: the client sends
    // the longest it can say (almost 32 years), and the server reads a longer value as that.
    let c = C::default();
    let url = serve(
        ServiceCServer::new(c)
            .verifier(Verifier::new().service("b", SECRET))
            .into_router(),
    )
    .await;
    let century = Duration::from_secs(100 * 365 * 86_400);
    let client = ServiceCClient::builder()
        .base_url(&url)
        .secret(SECRET)
        .retry(RetryConfig::none())
        .breaker(BreakerConfig::disabled())
        .deadline(century)
        .build()
        .unwrap();
    let longest = 999_999_999_999;
    let left = client.c().await.unwrap();
    assert!((longest - 60_000..=longest).contains(&left), "{left}");
    let (status, text) = get_with_deadline(&url, "/c", "b", "99999999999999999999999").await;
    assert_eq!(status, 200, "{text}");
    let left: u64 = text.parse().unwrap();
    assert!((longest - 60_000..=longest).contains(&left), "{left}");
}

/// A request to `/left` as a client of `b` sent it, with `deadline` if given, as `recorder`
/// received it.
async fn recorded_left(
    recorder: &comms_tests::TestServer,
    deadline: Option<Duration>,
) -> comms_tests::Recorded {
    let mut builder = comms::Executor::builder()
        .base_url(recorder.url())
        .service_id("b")
        .secret(SECRET)
        .retry(RetryConfig::none())
        .breaker(BreakerConfig::disabled());
    if let Some(deadline) = deadline {
        builder = builder.deadline(deadline);
    }
    let before = recorder.requests().len();
    builder
        .build()
        .unwrap()
        .execute(Call::post("/left").json(&1))
        .await
        .unwrap();
    recorder.requests().remove(before)
}

/// Sends `request` to `url` over a fresh connection, its body `body_after` its head, and gives
/// the answer's body.
async fn send_slowly(url: &str, request: &comms_tests::Recorded, body_after: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(url.trim_start_matches("http://"))
        .await
        .unwrap();
    let mut head = format!("{} {} HTTP/1.1\r\n", request.method, request.uri);
    for (name, value) in &request.headers {
        head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap()));
    }
    head.push_str("connection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(body_after).await;
    stream.write_all(&request.body).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response.rsplit("\r\n\r\n").next().unwrap().to_owned()
}

#[tokio::test]
async fn behind_verify_layer_the_time_its_body_took_counts_against_the_deadline() {
    // The layer in front reads the body, then the generated server checks the request again:
    // what is left is counted from the head's arrival, not from the server's second look.
    let verifier = Verifier::new().service("b", SECRET);
    let url = serve(
        ServiceCServer::new(C::default())
            .verifier(verifier.clone())
            .into_router()
            .layer(comms::verify::VerifyLayer::new(verifier)),
    )
    .await;
    let recorder =
        comms_tests::TestServer::always(comms_tests::Reply::json(200, serde_json::json!(0))).await;
    let request = recorded_left(&recorder, Some(Duration::from_millis(1000))).await;
    let left: u64 = send_slowly(&url, &request, Duration::from_millis(600))
        .await
        .parse()
        .unwrap();
    assert!(left <= 420, "{left} ms left after a body 600 ms late");
}

#[tokio::test]
async fn a_deadline_the_signature_does_not_cover_is_not_taken() {
    let url = serve(
        ServiceCServer::new(C::default())
            .verifier(Verifier::new().service("b", SECRET))
            .into_router(),
    )
    .await;
    let recorder =
        comms_tests::TestServer::always(comms_tests::Reply::json(200, serde_json::json!(0))).await;
    // Added on the way to a request sent without a deadline: it does not cut the handler short.
    let mut added = recorded_left(&recorder, None).await;
    added.headers.insert(
        "comms-deadline-ms",
        comms::http::HeaderValue::from_static("5"),
    );
    let left = send_slowly(&url, &added, Duration::ZERO).await;
    assert_eq!(left, u64::MAX.to_string());
    // Nor behind a VerifyLayer that ignored it, by a server that leaves the checking to it.
    let behind = serve(
        ServiceCServer::new(C::default())
            .unverified()
            .into_router()
            .layer(comms::verify::VerifyLayer::new(
                Verifier::new().service("b", SECRET),
            )),
    )
    .await;
    for value in ["5", "0"] {
        let mut added = recorded_left(&recorder, None).await;
        added.headers.insert(
            "comms-deadline-ms",
            comms::http::HeaderValue::from_static(value),
        );
        let left = send_slowly(&behind, &added, Duration::ZERO).await;
        assert_eq!(left, u64::MAX.to_string(), "{value}");
    }
    // One the signature covers is.
    let signed = recorded_left(&recorder, Some(Duration::from_millis(5_000))).await;
    let left: u64 = send_slowly(&url, &signed, Duration::ZERO)
        .await
        .parse()
        .unwrap();
    assert!((1..=5_000).contains(&left), "{left}");
}

#[tokio::test]
async fn a_streamed_answer_is_read_with_the_deadline_in_scope() {
    // The items of a streamed answer are produced after the method returned, as the body is
    // sent: the comms calls made for them are bounded by the request's deadline all the same,
    // which `deadline()` shows while they are.
    let url = serve(
        ServiceCServer::new(C::default())
            .verifier(Verifier::new().service("b", SECRET))
            .into_router(),
    )
    .await;
    let client = |deadline: Option<Duration>| {
        let builder = ServiceCClient::builder()
            .base_url(&url)
            .secret(SECRET)
            .retry(RetryConfig::none())
            .breaker(BreakerConfig::disabled());
        match deadline {
            Some(deadline) => builder.deadline(deadline),
            None => builder,
        }
        .build()
        .unwrap()
    };
    let mut lines = client(Some(Duration::from_secs(5)))
        .streamed()
        .await
        .unwrap();
    for _ in 0..2 {
        let left = lines.next_item().await.unwrap().unwrap();
        assert!((1..=5_000).contains(&left), "{left}");
    }
    assert!(lines.next_item().await.is_none());
    // Without one, none.
    let mut lines = client(None).streamed().await.unwrap();
    assert_eq!(lines.next_item().await.unwrap().unwrap(), u64::MAX);
}
