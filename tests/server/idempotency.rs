//! Idempotency keys: a retried POST whose first answer was lost runs once; a key reused or
//! still running is refused.

use super::*;

#[tokio::test]
async fn a_retried_idempotent_post_whose_answer_was_lost_runs_once() {
    let (service, _, url) = pair().await;
    let (proxy, connections) = comms_tests::losing_first_answer(&url, &url).await;
    let retry = RetryConfig::default()
        .base_delay(std::time::Duration::from_millis(10))
        .max_retries(2);
    let client = client_of(&proxy, SECRET, retry);
    // The first attempt runs the method (n = 1) and loses its answer; the retry, with the same
    // Idempotency-Key, gets that answer instead of running it again.
    assert_eq!(client.order("book").await.unwrap(), 1);
    assert_eq!(
        service.calls.load(Ordering::SeqCst),
        1,
        "the method ran once"
    );
    assert_eq!(
        connections.load(Ordering::SeqCst),
        2,
        "the first answer was lost, and the call retried"
    );
    // Another call is another key: it runs.
    assert_eq!(client.order("pen").await.unwrap(), 2);
}

#[tokio::test]
async fn an_idempotency_key_reused_or_still_running_is_refused() {
    let (service, _, url) = pair().await;
    let exec = comms_tests::plain_executor(&url, "billing", SECRET);
    let order = |item: &str, key: &str| {
        Call::post("/orders")
            .header("Idempotency-Key", key)
            .idempotent(true)
            .json(item)
    };
    let first = exec.execute(order("book", "k-1")).await.unwrap();
    let again = exec.execute(order("book", "k-1")).await.unwrap();
    assert_eq!(first.bytes(), again.bytes(), "the same answer");
    assert_eq!(service.calls.load(Ordering::SeqCst), 1);
    // The same key for another body: 422.
    let err = exec.execute(order("pen", "k-1")).await.unwrap_err();
    assert!(matches!(err, Error::UnprocessableEntity(_)), "{err}");
    // The same key while the first request still runs: it waits for the first one's answer.
    let slow = tokio::spawn({
        let exec = exec.clone();
        async move { exec.execute(order("slow", "k-2")).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let repeat = exec.execute(order("slow", "k-2")).await.unwrap();
    let first = slow.await.unwrap().unwrap();
    assert_eq!(repeat.bytes(), first.bytes(), "the first one's answer");
    assert_eq!(service.calls.load(Ordering::SeqCst), 2);
    // Still running when the repeat's deadline comes: 409. (The repeat is sent by hand with
    // its deadline, by a caller that waits past it for the answer; a comms call would end at
    // its own deadline, as the server answers.)
    let slow = tokio::spawn({
        let exec = exec.clone();
        async move { exec.execute(order("slow", "k-3")).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let headers = [
        ("content-type", "application/json"),
        ("idempotency-key", "k-3"),
        ("comms-deadline-ms", "100"),
    ];
    let (status, text) =
        send_signed(&url, "/orders", br#""slow""#, &headers, ("billing", SECRET)).await;
    assert_eq!(status, 409, "{text}");
    slow.await.unwrap().unwrap();
    assert_eq!(service.calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn an_idempotency_key_empty_or_too_long_is_refused_unrun() {
    let (service, _, url) = pair().await;
    let exec = comms_tests::plain_executor(&url, "billing", SECRET);
    let order = |key: &str| {
        Call::post("/orders")
            .header("Idempotency-Key", key)
            .idempotent(true)
            .json("book")
    };
    for key in [String::new(), "k".repeat(256), "a b".to_owned()] {
        let err = exec.execute(order(&key)).await.unwrap_err();
        let Error::BadRequest(err) = err else {
            panic!("a 400 for a key of {} bytes: {err}", key.len());
        };
        assert!(
            err.message()
                .unwrap_or_default()
                .contains("Idempotency-Key")
        );
    }
    assert_eq!(service.calls.load(Ordering::SeqCst), 0, "nothing ran");
    // 255 bytes is a key.
    let longest = "k".repeat(255);
    let first = exec.execute(order(&longest)).await.unwrap();
    let again = exec.execute(order(&longest)).await.unwrap();
    assert_eq!(first.bytes(), again.bytes());
    assert_eq!(service.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_idempotent_call_whose_attempt_timed_out_is_answered_by_the_first_run() {
    let (service, _, url) = pair().await;
    let client = DirectoryClient::builder()
        .base_url(&url)
        .secret(SECRET)
        .timeout(std::time::Duration::from_millis(350))
        .retry(
            RetryConfig::default()
                .base_delay(std::time::Duration::from_millis(10))
                .max_retries(3),
        )
        .breaker(BreakerConfig::disabled())
        .build()
        .unwrap();
    // The method takes 500 ms: the first attempt times out at 350 ms and its connection is
    // dropped, but the method runs on to its end and its answer is kept; the retry, with the
    // same key, waits for that answer instead of being refused while the method runs.
    assert_eq!(client.order("slow").await.unwrap(), 1);
    assert_eq!(
        service.calls.load(Ordering::SeqCst),
        1,
        "the method ran once"
    );
    assert_eq!(
        service.finished.load(Ordering::SeqCst),
        1,
        "to its end, though its caller hung up"
    );
}

/// A served `DirectoryImpl` whose idempotent methods keep their answers in `store`, and an
/// executor calling it.
async fn served_with(
    store: impl comms::server::IdempotencyStore,
) -> (DirectoryImpl, comms::Executor) {
    let service = DirectoryImpl::default();
    let router = DirectoryServer::new(service.clone())
        .verifier(Verifier::new().service("billing", SECRET))
        .idempotency_store(store)
        .into_router();
    let url = serve(router).await;
    (
        service,
        comms_tests::plain_executor(&url, "billing", SECRET),
    )
}

/// The default store is one server's, shared by its clones: two routers from clones of one
/// server (two listeners) answer a key once between them; two servers built apart each keep
/// their own, and run it again, as the README says.
#[tokio::test]
async fn a_servers_clones_share_its_store_and_servers_built_apart_do_not() {
    let service = DirectoryImpl::default();
    let server =
        DirectoryServer::new(service.clone()).verifier(Verifier::new().service("billing", SECRET));
    let apart =
        DirectoryServer::new(service.clone()).verifier(Verifier::new().service("billing", SECRET));
    let urls = [
        serve(server.clone().into_router()).await,
        serve(server.into_router()).await,
        serve(apart.into_router()).await,
    ];
    let order = || {
        Call::post("/orders")
            .header("Idempotency-Key", "k-shared")
            .idempotent(true)
            .json("book")
    };
    let mut answers = Vec::new();
    for url in &urls {
        let exec = comms_tests::plain_executor(url, "billing", SECRET);
        answers.push(exec.execute(order()).await.unwrap().bytes().clone());
    }
    assert_eq!(
        answers[0], answers[1],
        "the clone answered from the first run"
    );
    assert_ne!(
        answers[0], answers[2],
        "the server built apart ran it again"
    );
    assert_eq!(service.calls.load(Ordering::SeqCst), 2);
}

/// A store's time to live is how long an answer is kept, not how long a request may run: a
/// method slower than it still holds its key, and the repeat is answered by its run.
#[tokio::test]
async fn a_method_running_longer_than_the_stores_time_to_live_holds_its_key() {
    let (service, exec) = served_with(comms::server::MemoryIdempotencyStore::new(
        1000,
        std::time::Duration::from_millis(200),
    ))
    .await;
    // The method takes 500 ms; the repeat comes 300 ms in, past the 200 ms time to live.
    let order = || {
        Call::post("/orders")
            .header("Idempotency-Key", "k-ttl")
            .idempotent(true)
            .json("slow")
    };
    let first = tokio::spawn({
        let exec = exec.clone();
        async move { exec.execute(order()).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let repeat = exec.execute(order()).await.unwrap();
    let first = first.await.unwrap().unwrap();
    assert_eq!(first.json::<u64>().unwrap(), 1);
    assert_eq!(
        repeat.json::<u64>().unwrap(),
        1,
        "answered by the first run"
    );
    assert_eq!(
        service.calls.load(Ordering::SeqCst),
        1,
        "the method ran once"
    );
}

#[tokio::test]
async fn an_answer_asking_for_the_request_again_is_not_kept() {
    let (service, _, url) = pair().await;
    let retry = RetryConfig::default()
        .base_delay(std::time::Duration::from_millis(10))
        .max_retries(2);
    let client = client_of(&url, SECRET, retry);
    // The first run answers 429; the retry, with the same key, runs the method again rather
    // than being answered the 429 from memory.
    assert_eq!(client.enqueue().await.unwrap(), 2);
    assert_eq!(service.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_argument_refused_before_the_method_ran_leaves_the_key_free() {
    let (service, _, url) = pair().await;
    let exec = comms_tests::plain_executor(&url, "billing", SECRET);
    let order = |body: serde_json::Value| {
        Call::post("/orders")
            .header("Idempotency-Key", "k-mistake")
            .idempotent(true)
            .json(&body)
    };
    // A number where the method takes a string: a 400 from the argument, the method unrun.
    let err = exec.execute(order(serde_json::json!(5))).await.unwrap_err();
    assert!(matches!(err, Error::BadRequest(_)), "{err}");
    assert_eq!(service.calls.load(Ordering::SeqCst), 0);
    // Sent again corrected under the same key, it runs: the refusal was not kept as the key's
    // answer, nor the key tied to the first body (which would be a 422).
    let ran = exec
        .execute(order(serde_json::json!("book")))
        .await
        .unwrap();
    assert_eq!(ran.json::<u64>().unwrap(), 1);
    let again = exec
        .execute(order(serde_json::json!("book")))
        .await
        .unwrap();
    assert_eq!(again.json::<u64>().unwrap(), 1, "answered from memory");
    assert_eq!(
        service.calls.load(Ordering::SeqCst),
        1,
        "the method ran once"
    );
}

#[tokio::test]
async fn an_idempotency_key_reused_on_another_path_or_query_is_refused() {
    let (service, _, url) = pair().await;
    let exec = comms_tests::plain_executor(&url, "billing", SECRET);
    let charge = |account: u32, currency: &str| {
        Call::post(format!("/accounts/{account}/charge"))
            .query("currency", currency)
            .header("Idempotency-Key", "k-charge")
            .idempotent(true)
            .json(&100u64)
    };
    let first = exec.execute(charge(1, "eur")).await.unwrap();
    assert_eq!(first.json::<u64>().unwrap(), 1);
    // The route, caller and body are the same; the account is not: refused, never answered
    // with the first account's answer.
    let err = exec.execute(charge(2, "eur")).await.unwrap_err();
    assert!(matches!(err, Error::UnprocessableEntity(_)), "{err}");
    let err = exec.execute(charge(1, "usd")).await.unwrap_err();
    assert!(matches!(err, Error::UnprocessableEntity(_)), "{err}");
    // The same request again is answered from memory.
    let again = exec.execute(charge(1, "eur")).await.unwrap();
    assert_eq!(again.json::<u64>().unwrap(), 1);
    assert_eq!(
        service.calls.load(Ordering::SeqCst),
        1,
        "the method ran once"
    );
}

#[tokio::test]
async fn an_idempotency_key_reused_for_another_header_argument_is_refused() {
    let (service, _, url) = pair().await;
    let exec = comms_tests::plain_executor(&url, "billing", SECRET);
    let order = |tenant: &str| {
        Call::post("/tenant/orders")
            .header("Idempotency-Key", "k-tenant")
            .header("X-Tenant", tenant)
            .idempotent(true)
            .json("book")
    };
    let first = exec.execute(order("acme")).await.unwrap();
    assert_eq!(first.json::<String>().unwrap(), "acme: book #1");
    // The method's `#[header]` argument is part of the request, as its body is.
    let err = exec.execute(order("globex")).await.unwrap_err();
    assert!(matches!(err, Error::UnprocessableEntity(_)), "{err}");
    let again = exec.execute(order("acme")).await.unwrap();
    assert_eq!(again.json::<String>().unwrap(), "acme: book #1");
    assert_eq!(service.calls.load(Ordering::SeqCst), 1);
}

/// A store of the application's own, keeping answers as its raw parts (as one in Redis would)
/// and giving them back through `StoredResponse::new`.
#[derive(Default)]
struct PartsStore {
    /// By scope and key: the claim holding it, and its answer: `None` while it runs, then the
    /// status and body.
    kept: std::sync::Mutex<std::collections::HashMap<String, (String, Option<Parts>)>>,
}

/// A kept answer's status and body.
type Parts = (u16, Vec<u8>);

impl comms::server::IdempotencyStore for PartsStore {
    fn claim<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
        _fingerprint: &'a str,
        claim: &'a str,
    ) -> Stored<'a, comms::server::Claim> {
        use comms::server::{Claim, StoredResponse};
        let mut kept = self.kept.lock().unwrap();
        let claim = match kept.get(&format!("{scope} {key}")) {
            None => {
                kept.insert(format!("{scope} {key}"), (claim.to_owned(), None));
                Claim::New
            }
            Some((_, None)) => Claim::InProgress,
            Some((_, Some((status, body)))) => Claim::Answered(StoredResponse::new(
                comms::http::StatusCode::from_u16(*status).unwrap(),
                comms::http::HeaderMap::from_iter([(
                    comms::http::header::CONTENT_TYPE,
                    comms::http::HeaderValue::from_static("application/json"),
                )]),
                body.clone().into(),
            )),
        };
        Box::pin(std::future::ready(Ok(claim)))
    }

    fn finish<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
        claim: &'a str,
        response: comms::server::StoredResponse,
    ) -> Stored<'a, ()> {
        let parts = (response.status.as_u16(), response.body.to_vec());
        if let Some((holder, answer @ None)) =
            self.kept.lock().unwrap().get_mut(&format!("{scope} {key}"))
            && holder == claim
        {
            *answer = Some(parts);
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn release<'a>(&'a self, scope: &'a str, key: &'a str, claim: &'a str) -> Stored<'a, ()> {
        let mut kept = self.kept.lock().unwrap();
        let id = format!("{scope} {key}");
        if kept.get(&id).is_some_and(|(holder, _)| holder == claim) {
            kept.remove(&id);
        }
        Box::pin(std::future::ready(Ok(())))
    }
}

#[tokio::test]
async fn a_store_of_the_applications_own_answers_a_repeat() {
    let (service, exec) = served_with(PartsStore::default()).await;
    let order = || {
        Call::post("/orders")
            .header("Idempotency-Key", "k-own")
            .idempotent(true)
            .json("book")
    };
    let first = exec.execute(order()).await.unwrap();
    let again = exec.execute(order()).await.unwrap();
    assert_eq!(
        (first.status(), first.bytes()),
        (again.status(), again.bytes())
    );
    assert_eq!(
        service.calls.load(Ordering::SeqCst),
        1,
        "the method ran once"
    );
}

#[tokio::test]
async fn a_store_keeping_answers_for_ever_keeps_them() {
    // `Duration::MAX` says "never expire": the answer is kept, not a panic that answers 500
    // and frees the key for the retry to run the method again.
    let (service, exec) = served_with(comms::server::MemoryIdempotencyStore::new(
        1000,
        std::time::Duration::MAX,
    ))
    .await;
    let order = || {
        Call::post("/orders")
            .header("Idempotency-Key", "k-for-ever")
            .idempotent(true)
            .json("book")
    };
    assert_eq!(
        exec.execute(order()).await.unwrap().json::<u64>().unwrap(),
        1
    );
    assert_eq!(
        exec.execute(order()).await.unwrap().json::<u64>().unwrap(),
        1
    );
    assert_eq!(
        service.calls.load(Ordering::SeqCst),
        1,
        "the method ran once"
    );
}

#[tokio::test]
async fn a_caller_hanging_up_while_its_key_is_claimed_leaves_the_key_free() {
    // The attempt times out (the caller hangs up) after the store recorded the claim and
    // before it said so: the method never ran, and its retry must be able to run it.
    // Claims recorded at once and answered 300 ms later, as over a network.
    let (service, exec) = served_with(WatchedStore {
        claims_answered_after: std::time::Duration::from_millis(300),
        ..WatchedStore::default()
    })
    .await;
    let impatient =
        exec.with(comms::CallOptions::new().timeout(std::time::Duration::from_millis(150)));
    let order = || {
        Call::post("/orders")
            .header("Idempotency-Key", "k-hung-up")
            .idempotent(true)
            .json("book")
    };
    let err = impatient.execute(order()).await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let retried = exec.execute(order()).await;
    assert_eq!(retried.unwrap().json::<u64>().unwrap(), 1);
    assert_eq!(
        service.calls.load(Ordering::SeqCst),
        1,
        "the method ran once"
    );
}

#[tokio::test]
async fn an_idempotency_key_the_signature_does_not_cover_is_refused() {
    // A key added on the way to a request signed without one would have a second request of
    // the same bytes answered with the first's answer, unrun: only a covered key is taken.
    let (service, _, url) = pair().await;
    let authority = url.trim_start_matches("http://").to_owned();
    let body = br#""book""#;
    let send = |n: u32, covered: &[&str]| {
        let mut head =
            comms_tests::Recorded::head(comms::http::Method::POST, "/orders", &authority, body);
        head.headers
            .insert("content-type", "application/json".parse().unwrap());
        head.headers
            .insert("idempotency-key", format!("k-{n}").parse().unwrap());
        head.sign_now("billing", SECRET, covered);
        head
    };
    let (status, text) = send(1, &["content-type"]).send_to(&url, body).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("must cover its Idempotency-Key"), "{text}");
    assert_eq!(service.calls.load(Ordering::SeqCst), 0, "unrun");
    let (status, text) = send(2, &["content-type", "idempotency-key"])
        .send_to(&url, body)
        .await;
    assert_eq!((status, text.as_str()), (200, "1"));
}

#[tokio::test]
async fn a_header_argument_is_part_of_a_keys_request_as_the_method_sees_it() {
    // The same key, the same `X-Tenant: acme`, but covered by the first request's signature
    // and not by the second's: the method would see no tenant in the second, which is
    // another request than the first, not its repeat.
    let (service, _, url) = pair().await;
    let authority = url.trim_start_matches("http://").to_owned();
    let body = br#""book""#;
    let order = |covered: &[&str]| {
        let mut head = comms_tests::Recorded::head(
            comms::http::Method::POST,
            "/tenant/orders",
            &authority,
            body,
        );
        for (name, value) in [
            ("content-type", "application/json"),
            ("idempotency-key", "k-seen"),
            ("x-tenant", "acme"),
        ] {
            head.headers.insert(name, value.parse().unwrap());
        }
        let always = ["content-type", "idempotency-key"];
        head.sign_now("billing", SECRET, &[&always[..], covered].concat());
        head
    };
    let (status, text) = order(&["x-tenant"]).send_to(&url, body).await;
    assert_eq!((status, text.as_str()), (200, r#""acme: book #1""#));
    let (status, text) = order(&[]).send_to(&url, body).await;
    assert_eq!(status, 422, "{text}");
    assert_eq!(service.calls.load(Ordering::SeqCst), 1);
}

#[service_client(
    base_url = "http://127.0.0.1:9",
    service_id = "billing",
    secret_env = "COMMS_TEST_SERVER_SECRET"
)]
pub trait Transfers {
    #[post("/transfers", idempotent)]
    async fn transfer(
        &self,
        #[header("X-From")] from: Option<String>,
        #[header("X-To")] to: Option<String>,
    ) -> Result<String, Error>;

    #[post("/uploads", idempotent)]
    async fn upload(&self, #[multipart] form: comms::Multipart) -> Result<String, Error>;
}

#[derive(Clone, Default)]
struct TransfersImpl {
    calls: Arc<AtomicUsize>,
}

impl Transfers for TransfersImpl {
    async fn transfer(&self, from: Option<String>, to: Option<String>) -> Result<String, Error> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(format!("from={from:?} to={to:?} #{n}"))
    }

    async fn upload(&self, form: comms::Multipart) -> Result<String, Error> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let names: Vec<_> = form.parts().iter().map(|part| part.name()).collect();
        Ok(format!("{names:?} #{n}"))
    }
}

/// A signed request to the server at `url` with `body`, its `headers` covered by the
/// signature, as `key_id` with `secret`.
async fn send_signed(
    url: &str,
    path: &str,
    body: &[u8],
    headers: &[(&str, &str)],
    (key_id, secret): (&str, &str),
) -> (u16, String) {
    let authority = url.trim_start_matches("http://");
    let mut head = comms_tests::Recorded::head(comms::http::Method::POST, path, authority, body);
    for (name, value) in headers {
        let name = comms::http::HeaderName::from_bytes(name.as_bytes()).unwrap();
        head.headers.insert(name, value.parse().unwrap());
    }
    let covered: Vec<&str> = headers.iter().map(|(name, _)| *name).collect();
    head.sign_now(key_id, secret, &covered);
    head.send_to(url, body).await
}

#[tokio::test]
async fn an_idempotency_key_reused_with_another_multipart_boundary_is_refused() {
    // The same key and body bytes, but another boundary in the signed `Content-Type`: under
    // `A` the body's parts are `x`, under `B` they are `y`. Another request, a 422, not the
    // first's answer.
    let service = TransfersImpl::default();
    let router = TransfersServer::new(service.clone())
        .verifier(Verifier::new().service("billing", SECRET))
        .into_router();
    let url = serve(router).await;
    let body = b"--A\r\ncontent-disposition: form-data; name=\"x\"\r\n\r\n1\r\n--B\r\n\
content-disposition: form-data; name=\"y\"\r\n\r\n2\r\n--A--\r\n--B--\r\n";
    let upload = |boundary: &str| {
        let content_type = format!("multipart/form-data; boundary={boundary}");
        let url = url.clone();
        async move {
            let headers = [
                ("content-type", content_type.as_str()),
                ("idempotency-key", "k-upload"),
            ];
            send_signed(&url, "/uploads", body, &headers, ("billing", SECRET)).await
        }
    };
    let (status, first) = upload("A").await;
    assert_eq!((status, first.as_str()), (200, r#""[\"x\"] #1""#));
    let (status, second) = upload("B").await;
    assert_eq!(status, 422, "{second}");
    assert_eq!(service.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn behind_a_verify_layer_an_unverified_servers_keys_are_each_callers_own() {
    // The layer verifies two services; the server behind it takes the layer's word. One key
    // from each service is two keys, as it is for a server that verifies: the second is run,
    // not answered with the first service's answer.
    let service = TransfersImpl::default();
    let router = TransfersServer::new(service.clone())
        .unverified()
        .into_router()
        .layer(comms::verify::VerifyLayer::new(
            Verifier::new()
                .service("billing", SECRET)
                .service("shipping", "shipping-secret"),
        ));
    let url = serve(router).await;
    let headers = [("idempotency-key", "k-two-callers"), ("x-from", "acct-1")];
    let as_billing = ("billing", SECRET);
    let (status, first) = send_signed(&url, "/transfers", b"", &headers, as_billing).await;
    assert_eq!(
        (status, first.as_str()),
        (200, r#""from=Some(\"acct-1\") to=None #1""#)
    );
    let as_shipping = ("shipping", "shipping-secret");
    let (status, second) = send_signed(&url, "/transfers", b"", &headers, as_shipping).await;
    assert_eq!(
        (status, second.as_str()),
        (200, r#""from=Some(\"acct-1\") to=None #2""#)
    );
    // Each caller's repeat is still answered from its own first run.
    let (status, again) = send_signed(&url, "/transfers", b"", &headers, as_billing).await;
    assert_eq!((status, again), (200, first));
    assert_eq!(service.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_header_argument_not_covered_keeps_its_place_in_a_keys_request() {
    // Both requests carry `X-From: acct-1` and `X-To: acct-1`; the first's signature covers
    // X-From only, the second's X-To only. The method sees (Some, None), then (None, Some):
    // two requests under one key, a 422, not the first's answer.
    let service = TransfersImpl::default();
    let router = TransfersServer::new(service.clone())
        .verifier(Verifier::new().service("billing", SECRET))
        .into_router();
    let url = serve(router).await;
    let authority = url.trim_start_matches("http://").to_owned();
    let send = |covered: &str| {
        let mut head =
            comms_tests::Recorded::head(comms::http::Method::POST, "/transfers", &authority, b"");
        for (name, value) in [
            ("idempotency-key", "k-transfer"),
            ("x-from", "acct-1"),
            ("x-to", "acct-1"),
        ] {
            head.headers.insert(name, value.parse().unwrap());
        }
        head.sign_now("billing", SECRET, &["idempotency-key", covered]);
        head
    };
    let (status, first) = send("x-from").send_to(&url, b"").await;
    assert_eq!(
        (status, first.as_str()),
        (200, r#""from=Some(\"acct-1\") to=None #1""#)
    );
    let (status, second) = send("x-to").send_to(&url, b"").await;
    assert_eq!(status, 422, "{second}");
    assert_eq!(service.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_key_sent_many_times_at_once_runs_once_and_one_signed_request_passes_once() {
    let (service, _, url) = pair().await;
    let exec = comms_tests::plain_executor(&url, "billing", SECRET);
    let order = || {
        Call::post("/orders")
            .header("Idempotency-Key", "k-at-once")
            .idempotent(true)
            .json("book")
    };
    let calls: Vec<_> = (0..32)
        .map(|_| {
            tokio::spawn({
                let exec = exec.clone();
                async move {
                    exec.execute(order())
                        .await
                        .map(|answer| answer.bytes().clone())
                }
            })
        })
        .collect();
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.unwrap().unwrap());
    }
    assert_eq!(service.calls.load(Ordering::SeqCst), 1);
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");

    // One signed request (one nonce) sent 16 times at once: one passes, the others are
    // replays, whichever arrives first.
    let authority = url.trim_start_matches("http://").to_owned();
    let body = br#""pen""#;
    let mut head =
        comms_tests::Recorded::head(comms::http::Method::POST, "/orders", &authority, body);
    head.headers
        .insert("content-type", "application/json".parse().unwrap());
    head.sign_now("billing", SECRET, &["content-type"]);
    let sends: Vec<_> = (0..16)
        .map(|_| {
            tokio::spawn({
                let (head, url) = (head.clone(), url.clone());
                async move { head.send_to(&url, body).await.0 }
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for send in sends {
        statuses.push(send.await.unwrap());
    }
    statuses.sort_unstable();
    assert_eq!(statuses[..2], [200, 401], "{statuses:?}");
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(service.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_value_that_does_not_serialize_is_kept_and_not_run_again() {
    let (service, _, url) = pair().await;
    let retry = RetryConfig::default()
        .base_delay(std::time::Duration::from_millis(10))
        .max_retries(3);
    let client = client_of(&url, SECRET, retry);
    // The method ran and did its work; its value cannot be written, a 500 the client retries.
    let err = client.tally("bolt").await.unwrap_err();
    assert!(matches!(err, Error::Server(_)), "{err}");
    assert_eq!(
        service.calls.load(Ordering::SeqCst),
        1,
        "the retries were answered with the kept 500, not run again"
    );
    // Another call is another key: it runs (and fails the same way).
    client.tally("nut").await.unwrap_err();
    assert_eq!(service.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_idempotent_method_requested_without_a_key_runs_to_its_end() {
    let (service, _, url) = pair().await;
    // A caller sending no Idempotency-Key (a Python service, `curl`, a call not marked
    // idempotent) that hangs up after 100 ms, while the method takes 500 ms.
    let exec = comms_tests::plain_builder(&url, "billing", SECRET)
        .timeout(std::time::Duration::from_millis(100))
        .retry(RetryConfig::none())
        .build()
        .unwrap();
    let err = exec
        .execute(Call::post("/orders").json("slow"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    let began = std::time::Instant::now();
    while service.finished.load(Ordering::SeqCst) == 0
        && began.elapsed() < std::time::Duration::from_secs(5)
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(service.calls.load(Ordering::SeqCst), 1, "it started once");
    assert_eq!(
        service.finished.load(Ordering::SeqCst),
        1,
        "an `idempotent` method ran to its end after its caller hung up"
    );
}

/// One service's trait before and after a change that renames a route's parameter: a rolling
/// deploy has replicas of both builds at once.
mod before_rename {
    use comms::{Error, service_client};

    #[service_client(
        base_url = "http://payments:8080",
        service_id = "billing",
        secret_env = "COMMS_TEST_SERVER_SECRET"
    )]
    pub trait Orders {
        #[post("/orders/<id>/pay", idempotent)]
        async fn pay(&self, id: u64) -> Result<String, Error>;
    }
}

mod after_rename {
    use comms::{Error, service_client};

    #[service_client(
        base_url = "http://payments:8080",
        service_id = "billing",
        secret_env = "COMMS_TEST_SERVER_SECRET"
    )]
    pub trait Orders {
        #[post("/orders/<order_id>/pay", idempotent)]
        async fn pay(&self, order_id: u64) -> Result<String, Error>;
    }
}

#[derive(Clone)]
struct Payments;

impl before_rename::Orders for Payments {
    async fn pay(&self, id: u64) -> Result<String, Error> {
        Ok(format!("paid {id}"))
    }
}

impl after_rename::Orders for Payments {
    async fn pay(&self, order_id: u64) -> Result<String, Error> {
        Ok(format!("paid {order_id}"))
    }
}

/// A key's scope, as the store is given it, is the service (the trait by its path, and the
/// authority of the base URL it names), the caller, and the method and route with its
/// parameters unnamed: the route parts of two builds that differ only by a parameter's name
/// are the same, so (in one module, as two builds of one service have it) their scopes are.
/// (Two modules here, since one cannot hold both traits.)
#[tokio::test]
async fn a_keys_scope_is_the_service_the_caller_and_the_route_unnamed() {
    let before = WatchedStore::default();
    let before_scopes = before.scopes.clone();
    let after = WatchedStore::default();
    let after_scopes = after.scopes.clone();
    let before = serve(
        before_rename::OrdersServer::new(Payments)
            .verifier(Verifier::new().service("billing", SECRET))
            .idempotency_store(before)
            .into_router(),
    )
    .await;
    let after = serve(
        after_rename::OrdersServer::new(Payments)
            .verifier(Verifier::new().service("billing", SECRET))
            .idempotency_store(after)
            .into_router(),
    )
    .await;
    let pay = || {
        Call::post("/orders/7/pay")
            .header("Idempotency-Key", "k-7")
            .idempotent(true)
    };
    for url in [&before, &after] {
        let paid = comms_tests::plain_executor(url, "billing", SECRET)
            .execute(pay())
            .await
            .unwrap();
        assert_eq!(paid.json::<String>().unwrap(), "paid 7");
    }
    let here = module_path!();
    assert_eq!(
        *before_scopes.lock().unwrap(),
        [format!(
            "{here}::before_rename::Orders at payments:8080|billing|POST /orders/<_>/pay"
        )]
    );
    assert_eq!(
        *after_scopes.lock().unwrap(),
        [format!(
            "{here}::after_rename::Orders at payments:8080|billing|POST /orders/<_>/pay"
        )]
    );
}
