//! `Idempotency-Key` answers shared through Redis: two generated servers (replicas), each
//! with its own `RedisIdempotencyStore` on one Redis, answer a repeat at either from the first
//! run, and run a method once per key.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;

use comms::http::{HeaderMap, HeaderValue, StatusCode};
use comms::redis::RedisIdempotencyStore;
use comms::server::{Claim, IdempotencyStore, StoredResponse};
use comms::{Error, Response, ResponseValue, service_client};

use super::*;

#[service_client(
    base_url = "http://127.0.0.1:9",
    service_id = "billing",
    secret_env = "COMMS_TEST_FLEET_SECRET"
)]
pub trait Ledger {
    #[post("/entries", idempotent)]
    async fn add(&self, #[body] item: &str) -> Result<ResponseValue<String>, Error>;

    #[post("/blobs", idempotent)]
    async fn blob(&self, #[body] item: &str) -> Result<Response, Error>;
}

/// Another service with a route of `Ledger`'s: a fleet's two services may share one Redis.
#[service_client(
    base_url = "http://127.0.0.1:9",
    service_id = "billing",
    secret_env = "COMMS_TEST_FLEET_SECRET"
)]
pub trait Journal {
    #[post("/entries", idempotent)]
    async fn add(&self, #[body] item: &str) -> Result<String, Error>;
}

#[derive(Clone)]
struct JournalImpl(Arc<AtomicUsize>);

impl Journal for JournalImpl {
    async fn add(&self, item: &str) -> Result<String, Error> {
        self.0.fetch_add(1, SeqCst);
        Ok(format!("{item} journaled"))
    }
}

/// One replica of the service; the count of runs is the fleet's, shared by every replica.
#[derive(Clone)]
struct Replica {
    name: &'static str,
    runs: Arc<AtomicUsize>,
    /// Items seen before: `flaky` fails and `panicky` panics the first time only.
    seen: Arc<Mutex<HashSet<String>>>,
}

/// A header value that is not UTF-8.
const RAW: &[u8] = b"caf\xe9 \x80\xff";

impl Ledger for Replica {
    async fn add(&self, item: &str) -> Result<ResponseValue<String>, Error> {
        let n = self.runs.fetch_add(1, SeqCst) + 1;
        let first = self.seen.lock().unwrap().insert(item.to_owned());
        match item {
            "slow" => tokio::time::sleep(Duration::from_millis(800)).await,
            "flaky" if first => return Err(Error::internal("failed on purpose")),
            "panicky" if first => panic!("panicked on purpose"),
            _ => {}
        }
        Ok(ResponseValue::new(format!("{item} #{n} by {}", self.name))
            .with_status(StatusCode::CREATED)
            .with_header("x-tag".parse().unwrap(), HeaderValue::from_static("a"))
            .with_header("x-tag".parse().unwrap(), HeaderValue::from_static("b"))
            .with_header(
                "x-raw".parse().unwrap(),
                HeaderValue::from_bytes(RAW).unwrap(),
            )
            .with_header(
                "x-replica".parse().unwrap(),
                HeaderValue::from_static(self.name),
            ))
    }

    async fn blob(&self, item: &str) -> Result<Response, Error> {
        let n = self.runs.fetch_add(1, SeqCst) + 1;
        let mut body: Vec<u8> = (0..=255).collect();
        body.extend_from_slice(format!("{item} #{n} by {}", self.name).as_bytes());
        Response::builder(StatusCode::OK)
            .header("content-type", "application/octet-stream")
            .header("x-tag", "1")
            .header("x-tag", "2")
            .body(body)
            .build()
    }
}

/// A namespace no earlier run of these tests used, for a Redis that outlives a run.
fn fresh_namespace() -> String {
    format!("idem-{}", fresh_nonce(0))
}

/// Two replicas, A and B, each with a store of its own on the Redis at `url`, in namespace
/// `namespace`: the count of the fleet's runs, and the URLs of A and B.
async fn replicas(url: &str, namespace: &str) -> (Arc<AtomicUsize>, String, String) {
    let runs = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let mut urls = Vec::new();
    for name in ["A", "B"] {
        let replica = Replica {
            name,
            runs: runs.clone(),
            seen: seen.clone(),
        };
        let store = RedisIdempotencyStore::new(url)
            .unwrap()
            .namespace(namespace);
        let router = LedgerServer::new(replica)
            .verifier(Verifier::new().service("billing", SECRET))
            .idempotency_store(store)
            .into_router();
        urls.push(comms_tests::serve(router).await);
    }
    let b = urls.pop().unwrap();
    let a = urls.pop().unwrap();
    (runs, a, b)
}

fn to(url: &str) -> Executor {
    comms_tests::plain_executor(url, "billing", SECRET)
}

/// `item` added under `key`.
fn add(item: &str, key: &str) -> Call {
    Call::post("/entries")
        .header("Idempotency-Key", key)
        .idempotent(true)
        .json(item)
}

/// `item` added under `key` at `url`, asked again while the replica answers 503 (its store
/// reconnecting to Redis), for up to 10 s.
async fn add_once_redis_answers(url: &str, item: &str, key: &str) -> comms::Response {
    let began = Instant::now();
    loop {
        match to(url).execute(add(item, key)).await {
            Ok(answer) => return answer,
            Err(err) if status(&err) == Some(503) && began.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => panic!("{err}"),
        }
    }
}

/// The headers of an answer but `Date`, which each replica's connection sets as it sends.
fn headers(response: &comms::Response) -> HeaderMap {
    let mut headers = response.headers().clone();
    headers.remove("date");
    headers
}

fn assert_same(first: &comms::Response, again: &comms::Response) {
    assert_eq!(first.status(), again.status());
    assert_eq!(headers(first), headers(again));
    assert_eq!(first.bytes(), again.bytes());
}

fn status(err: &Error) -> Option<u16> {
    err.status().map(|s| s.as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeat_at_another_replica_gets_the_first_replicas_answer() {
    let (url, _own) = shared_redis_or_skip!();
    let (runs, a, b) = replicas(&url, &fresh_namespace()).await;
    let first = to(&a).execute(add("book", "k-1")).await.unwrap();
    let again = to(&b).execute(add("book", "k-1")).await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    assert_eq!(first.text().unwrap(), "\"book #1 by A\"");
    assert_same(&first, &again);
    assert_eq!(runs.load(SeqCst), 1, "the method ran once, on A");
    // Another key runs.
    let other = to(&b).execute(add("book", "k-2")).await.unwrap();
    assert_eq!(other.text().unwrap(), "\"book #2 by B\"");

    // A generated client behind a balancer: its first attempt reaches A, which runs the
    // method, and the answer is lost; the retry, with the same key, reaches B and gets A's.
    let (balancer, _) = comms_tests::losing_first_answer(&a, &b).await;
    let client = LedgerClient::builder()
        .base_url(&balancer)
        .secret(SECRET)
        .retry(
            RetryConfig::default()
                .base_delay(Duration::from_millis(10))
                .max_retries(2),
        )
        .breaker(BreakerConfig::disabled())
        .build()
        .unwrap();
    let answer = client.add("pen").await.unwrap();
    assert_eq!(answer.status(), StatusCode::CREATED);
    assert_eq!(answer.headers()["x-replica"], "A", "A's answer, from B");
    assert_eq!(answer.into_inner(), "pen #3 by A");
    assert_eq!(runs.load(SeqCst), 3, "the method ran once for the call");
}

/// A caller sends one event to two services under the event's id as the key; the services
/// keep their answers in one Redis, in one namespace. Each runs its method: neither is
/// answered with the other's answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_services_sharing_a_store_do_not_answer_each_others_keys() {
    let (url, _own) = shared_redis_or_skip!();
    let namespace = fresh_namespace();
    let (ledger_runs, ledger, _) = replicas(&url, &namespace).await;
    let journal_runs = Arc::new(AtomicUsize::new(0));
    let journal = comms_tests::serve(
        JournalServer::new(JournalImpl(journal_runs.clone()))
            .verifier(Verifier::new().service("billing", SECRET))
            .idempotency_store(
                RedisIdempotencyStore::new(&url)
                    .unwrap()
                    .namespace(&namespace),
            )
            .into_router(),
    )
    .await;
    let booked = to(&ledger).execute(add("evt-42", "evt-42")).await.unwrap();
    assert_eq!(booked.text().unwrap(), "\"evt-42 #1 by A\"");
    let journaled = to(&journal).execute(add("evt-42", "evt-42")).await.unwrap();
    assert_eq!(
        journaled.text().unwrap(),
        "\"evt-42 journaled\"",
        "the journal answered with the ledger's kept answer"
    );
    assert_eq!(ledger_runs.load(SeqCst), 1);
    assert_eq!(journal_runs.load(SeqCst), 1, "the journal's method ran");
    // Each service still answers its own repeat from its first run.
    let again = to(&journal).execute(add("evt-42", "evt-42")).await.unwrap();
    assert_same(&journaled, &again);
    assert_eq!(journal_runs.load(SeqCst), 1);
}

/// Two teams' services, each with a trait named `Api` and a route of the same path.
mod payments {
    use comms::{Error, service_client};

    #[service_client(
        base_url = "http://payments:8080",
        service_id = "checkout",
        secret_env = "COMMS_TEST_FLEET_SECRET"
    )]
    pub trait Api {
        #[post("/v1/orders", idempotent)]
        async fn submit(&self, #[body] order: &str) -> Result<String, Error>;
    }
}

mod shipping {
    use comms::{Error, service_client};

    #[service_client(
        base_url = "http://shipping:8080",
        service_id = "checkout",
        secret_env = "COMMS_TEST_FLEET_SECRET"
    )]
    pub trait Api {
        #[post("/v1/orders", idempotent)]
        async fn submit(&self, #[body] order: &str) -> Result<String, Error>;
    }
}

#[derive(Clone)]
struct Submitted(Arc<AtomicUsize>);

impl payments::Api for Submitted {
    async fn submit(&self, order: &str) -> Result<String, Error> {
        self.0.fetch_add(1, SeqCst);
        Ok(format!("charged {order}"))
    }
}

impl shipping::Api for Submitted {
    async fn submit(&self, order: &str) -> Result<String, Error> {
        self.0.fetch_add(1, SeqCst);
        Ok(format!("shipped {order}"))
    }
}

/// A caller uses its order's id as the key at two services whose traits share a name, and
/// whose answers are kept in one Redis under one namespace: each runs its own method.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_services_whose_traits_share_a_name_do_not_answer_each_others_keys() {
    let (url, _own) = shared_redis_or_skip!();
    let namespace = fresh_namespace();
    let store = || {
        RedisIdempotencyStore::new(&url)
            .unwrap()
            .namespace(&namespace)
    };
    let (charged, shipped) = (Arc::default(), Arc::default());
    let pay = comms_tests::serve(
        payments::ApiServer::new(Submitted(Arc::clone(&charged)))
            .verifier(Verifier::new().service("checkout", SECRET))
            .idempotency_store(store())
            .into_router(),
    )
    .await;
    let ship = comms_tests::serve(
        shipping::ApiServer::new(Submitted(Arc::clone(&shipped)))
            .verifier(Verifier::new().service("checkout", SECRET))
            .idempotency_store(store())
            .into_router(),
    )
    .await;
    let submit = || {
        Call::post("/v1/orders")
            .header("Idempotency-Key", "order-42")
            .idempotent(true)
            .json("order-42")
    };
    for (url, said) in [(&pay, "charged order-42"), (&ship, "shipped order-42")] {
        let answer = comms_tests::plain_executor(url, "checkout", SECRET)
            .execute(submit())
            .await
            .unwrap();
        assert_eq!(answer.json::<String>().unwrap(), said);
    }
    assert_eq!(charged.load(SeqCst), 1);
    assert_eq!(shipped.load(SeqCst), 1, "shipping's method ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_key_sent_to_both_replicas_many_times_at_once_runs_once() {
    let (url, _own) = shared_redis_or_skip!();
    let (runs, a, b) = replicas(&url, &fresh_namespace()).await;
    let calls: Vec<_> = (0..32)
        .map(|i| {
            let replica = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { to(&replica).execute(add("pen", "k-at-once")).await })
        })
        .collect();
    let mut bodies = Vec::new();
    for call in calls {
        bodies.push(call.await.unwrap().unwrap().bytes().clone());
    }
    assert_eq!(runs.load(SeqCst), 1);
    assert!(bodies.iter().all(|body| *body == bodies[0]), "{bodies:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_keep_every_header_and_byte_across_replicas() {
    let (url, _own) = shared_redis_or_skip!();
    let (runs, a, b) = replicas(&url, &fresh_namespace()).await;
    let first = to(&a).execute(add("book", "k-h")).await.unwrap();
    let again = to(&b).execute(add("book", "k-h")).await.unwrap();
    assert_same(&first, &again);
    let tags: Vec<_> = again.headers().get_all("x-tag").iter().collect();
    assert_eq!(tags, ["a", "b"], "a repeated header, in order");
    assert_eq!(
        again.headers()["x-raw"].as_bytes(),
        RAW,
        "a value not UTF-8"
    );
    // A binary body.
    let blob = |key: &str| {
        Call::post("/blobs")
            .header("Idempotency-Key", key)
            .idempotent(true)
            .json("blob")
    };
    let first = to(&b).execute(blob("k-b")).await.unwrap();
    let again = to(&a).execute(blob("k-b")).await.unwrap();
    assert_same(&first, &again);
    let expected: Vec<u8> = (0..=255).collect();
    assert_eq!(&again.bytes()[..256], &expected[..]);
    assert!(again.bytes().ends_with(b"blob #2 by B"));
    assert_eq!(again.headers()["content-type"], "application/octet-stream");
    assert_eq!(runs.load(SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_reused_or_still_running_on_another_replica_is_refused_or_waited_for() {
    let (url, _own) = shared_redis_or_skip!();
    let (runs, a, b) = replicas(&url, &fresh_namespace()).await;
    to(&a).execute(add("book", "k-1")).await.unwrap();
    // The same key for another body, at the other replica: 422, unrun.
    let err = to(&b).execute(add("pen", "k-1")).await.unwrap_err();
    assert!(matches!(err, Error::UnprocessableEntity(_)), "{err}");
    assert_eq!(runs.load(SeqCst), 1);
    // A repeat at B while A still runs the first: it waits, and gets A's answer.
    let slow = tokio::spawn({
        let a = a.clone();
        async move { to(&a).execute(add("slow", "k-2")).await }
    });
    // Its run started on A: A holds the key.
    wait_for("the first run to start", || runs.load(SeqCst) == 2).await;
    let repeat = to(&b).execute(add("slow", "k-2")).await.unwrap();
    let first = slow.await.unwrap().unwrap();
    assert_same(&first, &repeat);
    assert_eq!(repeat.headers()["x-replica"], "A");
    assert_eq!(runs.load(SeqCst), 2);
    // Still running when the repeat's deadline comes: 409.
    let slow = tokio::spawn({
        let a = a.clone();
        async move { to(&a).execute(add("slow", "k-3")).await }
    });
    wait_for("the first run to start", || runs.load(SeqCst) == 3).await;
    // The repeat is sent by hand with its deadline, by a caller that waits past it for the
    // answer (a comms call would end at its own deadline, as the server answers).
    let authority = b.trim_start_matches("http://");
    let body = br#""slow""#;
    let mut repeat =
        comms_tests::Recorded::head(comms::http::Method::POST, "/entries", authority, body);
    for (name, value) in [
        ("content-type", "application/json"),
        ("idempotency-key", "k-3"),
        ("comms-deadline-ms", "100"),
    ] {
        repeat.headers.insert(name, value.parse().unwrap());
    }
    let covered = ["content-type", "idempotency-key", "comms-deadline-ms"];
    repeat.sign_now("billing", SECRET, &covered);
    let (status, text) = repeat.send_to(&b, body).await;
    assert_eq!(status, 409, "{text}");
    slow.await.unwrap().unwrap();
    assert_eq!(runs.load(SeqCst), 3, "the repeats ran nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_error_or_a_panic_releases_the_key_for_a_retry_at_any_replica() {
    let (url, _own) = shared_redis_or_skip!();
    let (runs, a, b) = replicas(&url, &fresh_namespace()).await;
    for (item, key) in [("flaky", "k-5xx"), ("panicky", "k-panic")] {
        let before = runs.load(SeqCst);
        let err = to(&a).execute(add(item, key)).await.unwrap_err();
        assert_eq!(status(&err), Some(500), "{item}: {err}");
        // Not kept: the retry at B runs the method again, and its answer is kept.
        let retried = to(&b).execute(add(item, key)).await.unwrap();
        assert_eq!(retried.headers()["x-replica"], "B");
        let again = to(&a).execute(add(item, key)).await.unwrap();
        assert_same(&retried, &again);
        assert_eq!(
            runs.load(SeqCst),
            before + 2,
            "{item}: ran twice, then answered"
        );
    }
}

/// A store on `url` in `namespace` whose claims lapse after `lapse`.
fn store(url: &str, namespace: &str, lapse: Duration) -> RedisIdempotencyStore {
    RedisIdempotencyStore::new(url)
        .unwrap()
        .namespace(namespace)
        .claim_lapse(lapse)
}

fn answer(status: u16) -> StoredResponse {
    StoredResponse::new(
        StatusCode::from_u16(status).unwrap(),
        HeaderMap::new(),
        bytes::Bytes::from_static(b"{}"),
    )
}

async fn claim(store: &RedisIdempotencyStore, key: &str, holder: &str) -> Claim {
    store
        .claim("billing|POST /x", key, "f", holder)
        .await
        .unwrap()
}

/// Waits, at most 10 s, for Redis to let `record` go.
async fn lapsed(url: &str, record: &str) {
    let began = Instant::now();
    while pttl(url, record).await != -2 {
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "{record} never lapsed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_claim_whose_holder_never_settles_it_lapses() {
    let (url, _own) = shared_redis_or_skip!();
    let namespace = fresh_namespace();
    // A lapse of seconds, so that a busy machine's pauses do not end it before it is looked
    // at; its end is waited for as Redis counts it.
    let s = store(&url, &namespace, Duration::from_secs(2));
    assert!(matches!(claim(&s, "k", "first").await, Claim::New));
    // Its replica died: the key stays claimed for the lapse, Redis's clock counting.
    let record = format!("{namespace}:idem:15:billing|POST /x:k");
    let left = pttl(&url, &record).await;
    assert!((1..=2000).contains(&left), "{left}");
    assert!(matches!(claim(&s, "k", "second").await, Claim::InProgress));
    lapsed(&url, &record).await;
    assert!(matches!(claim(&s, "k", "third").await, Claim::New));
    // The default lapse is an hour, and an answer is kept for the time to live.
    let s = RedisIdempotencyStore::new(&url)
        .unwrap()
        .namespace(&namespace)
        .ttl(Duration::from_secs(60));
    assert!(matches!(claim(&s, "d", "h").await, Claim::New));
    let record = format!("{namespace}:idem:15:billing|POST /x:d");
    let left = pttl(&url, &record).await;
    assert!((3_590_000..=3_600_000).contains(&left), "{left}");
    s.finish("billing|POST /x", "d", "h", answer(200))
        .await
        .unwrap();
    let left = pttl(&url, &record).await;
    assert!((50_000..=60_000).contains(&left), "{left}");
}

#[tokio::test]
async fn only_the_claim_holding_a_key_finishes_or_releases_it() {
    let (url, _own) = shared_redis_or_skip!();
    let namespace = fresh_namespace();
    // The first claim lapses after 2 s (seconds, for a busy machine's pauses), the later ones
    // only after a minute: nothing lapses before it is looked at.
    let s = store(&url, &namespace, Duration::from_secs(2));
    let long = store(&url, &namespace, Duration::from_secs(60));
    let scope = "billing|POST /x";
    assert!(matches!(claim(&s, "k", "first").await, Claim::New));
    // A claim made again (its reply lost) is still its own.
    assert!(matches!(claim(&s, "k", "first").await, Claim::New));
    // Another claim's answer or release does nothing.
    s.finish(scope, "k", "second", answer(500)).await.unwrap();
    s.release(scope, "k", "second").await.unwrap();
    assert!(matches!(claim(&s, "k", "third").await, Claim::InProgress));
    // The first claim lapses and a fourth takes the key: the first's late answer and release
    // do nothing to it.
    lapsed(&url, &format!("{namespace}:idem:15:{scope}:k")).await;
    let s = long;
    assert!(matches!(claim(&s, "k", "fourth").await, Claim::New));
    s.finish(scope, "k", "first", answer(200)).await.unwrap();
    s.release(scope, "k", "first").await.unwrap();
    assert!(matches!(claim(&s, "k", "fifth").await, Claim::InProgress));
    // The fourth's own answer is kept, and is answered; a later finish changes nothing.
    s.finish(scope, "k", "fourth", answer(201)).await.unwrap();
    s.finish(scope, "k", "fourth", answer(202)).await.unwrap();
    s.release(scope, "k", "first").await.unwrap();
    match claim(&s, "k", "sixth").await {
        Claim::Answered(r) => assert_eq!(r.status, 201),
        other => panic!("{other:?}"),
    }
    // Another fingerprint is another request; another scope another key.
    assert!(matches!(
        s.claim(scope, "k", "g", "seventh").await.unwrap(),
        Claim::Mismatch
    ));
    assert!(matches!(
        s.claim("billing|POST /y", "k", "f", "eighth")
            .await
            .unwrap(),
        Claim::New
    ));
    // An answer larger than the store keeps is not kept: the key is released.
    let small = store(&url, &fresh_namespace(), Duration::from_secs(60)).max_answer_bytes(64);
    assert!(matches!(claim(&small, "big", "h").await, Claim::New));
    let big = StoredResponse::new(
        StatusCode::OK,
        HeaderMap::new(),
        bytes::Bytes::from(vec![b'x'; 100]),
    );
    small.finish(scope, "big", "h", big).await.unwrap();
    assert!(matches!(claim(&small, "big", "again").await, Claim::New));
}

/// A claim cut off by a stalled Redis is released by the server; the release, on another
/// connection, can reach Redis before the claim it undoes. The claim, carried out after it,
/// must take nothing: it would hold the key, every retry a 409, until it lapsed.
#[tokio::test]
async fn a_claim_arriving_after_its_own_release_takes_nothing() {
    let (url, _own) = shared_redis_or_skip!();
    let namespace = fresh_namespace();
    let s = store(&url, &namespace, Duration::from_secs(60));
    let scope = "billing|POST /x";
    s.release(scope, "k", "late").await.unwrap();
    let mark = format!("{namespace}:idem:released:late");
    let left = pttl(&url, &mark).await;
    assert!(
        (50_000..=60_000).contains(&left),
        "kept as long as a claim: {left}"
    );
    let err = s.claim(scope, "k", "f", "late").await.unwrap_err();
    assert!(err.to_string().contains("released"), "{err}");
    // The key is free for the retry, which runs the method.
    assert!(matches!(claim(&s, "k", "retry").await, Claim::New));

    // A repeat's claim, cut off while the retry still held the key, released first: then the
    // retry's method fails and frees the key, and only then is the repeat's claim carried out.
    // It takes nothing either.
    s.release(scope, "k", "repeat").await.unwrap();
    s.release(scope, "k", "retry").await.unwrap();
    let err = s.claim(scope, "k", "f", "repeat").await.unwrap_err();
    assert!(err.to_string().contains("released"), "{err}");
    assert!(matches!(claim(&s, "k", "again").await, Claim::New));

    // A release that finds its claim holding the key leaves no mark.
    s.release(scope, "k", "again").await.unwrap();
    for claim in ["retry", "again"] {
        let mark = format!("{namespace}:idem:released:{claim}");
        assert_eq!(pttl(&url, &mark).await, -2, "{claim}");
    }
}

#[tokio::test]
async fn a_record_the_store_cannot_read_is_an_error_not_an_answer() {
    let (url, _own) = shared_redis_or_skip!();
    let namespace = fresh_namespace();
    let s = store(&url, &namespace, Duration::from_secs(60));
    let record = |key: &str| format!("{namespace}:idem:15:billing|POST /x:{key}");
    redis_command(
        &url,
        &[
            "HSET",
            &record("garbled"),
            "f",
            "f",
            "h",
            "x",
            "a",
            "garbage",
        ],
    )
    .await;
    redis_command(&url, &["SET", &record("string"), "1"]).await;
    redis_command(&url, &["HSET", &record("partial"), "a", "x"]).await;
    for key in ["garbled", "string", "partial"] {
        let err = s
            .claim("billing|POST /x", key, "f", "h")
            .await
            .expect_err(key);
        assert!(!err.to_string().is_empty());
    }
    for key in ["garbled", "string", "partial"] {
        redis_command(&url, &["DEL", &record(key)]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_unreachable_an_idempotent_request_is_a_503_and_runs_once_redis_is_back() {
    let mut redis = redis_or_skip!();
    let (runs, a, b) = replicas(&redis.url(), "outage").await;
    redis.kill();
    for url in [&a, &b] {
        let err = to(url).execute(add("book", "k")).await.unwrap_err();
        assert_eq!(status(&err), Some(503), "{err}");
        // Taken again once the store answers: a client waits a second before its retry.
        let retry_after = err.http_error().unwrap().headers().get("retry-after");
        assert_eq!(retry_after.unwrap(), "1", "{err}");
    }
    assert_eq!(runs.load(SeqCst), 0, "nothing ran");
    // A password in the URL is never shown, in the store or its errors.
    let secret = RedisIdempotencyStore::new("redis://:hunter2@127.0.0.1:1/").unwrap();
    assert!(!format!("{secret:?}").contains("hunter2"));
    let err = secret.claim("s", "k", "f", "h").await.unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");

    redis.restart().await;
    // Once the stores reconnect (after their pause), the request runs once, at A, and B
    // answers its repeat.
    let first = add_once_redis_answers(&a, "book", "k").await;
    let again = add_once_redis_answers(&b, "book", "k").await;
    assert_same(&first, &again);
    assert_eq!(runs.load(SeqCst), 1, "ran once");
}

/// Redis stalls (a slow script or command, a fork) for longer than a claim's timeout and its
/// release's: the claim, cut off, is a 503 and runs nothing, but Redis carries it out once it
/// answers again. The key must not stay claimed by a claim nobody holds (every retry a 409,
/// for the claim lapse, an hour): the release is asked again, and the retry runs the method.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_cut_off_by_a_stalled_redis_does_not_hold_its_key_until_it_lapses() {
    use tokio::io::AsyncReadExt;
    // A Redis of its own: the stall would hold up every other test's.
    let redis = redis_or_skip!();
    let url = redis.url();
    let runs = Arc::new(AtomicUsize::new(0));
    let replica = Replica {
        name: "A",
        runs: runs.clone(),
        seen: Arc::new(Mutex::new(HashSet::new())),
    };
    let store = RedisIdempotencyStore::new(&url)
        .unwrap()
        .namespace("stalled")
        .timeout(Duration::from_millis(200));
    let router = LedgerServer::new(replica)
        .verifier(Verifier::new().service("billing", SECRET))
        .idempotency_store(store)
        .into_router();
    let a = comms_tests::serve(router).await;
    // The store's connection is made and in use.
    to(&a).execute(add("warm", "k-warm")).await.unwrap();
    // A script that keeps Redis busy for 2 s: it serves nobody else meanwhile.
    let busy = "local s = redis.call('TIME') local t0 = s[1] * 1000000 + s[2] \
                repeat local n = redis.call('TIME') until n[1] * 1000000 + n[2] - t0 >= 2000000 \
                return 1";
    let stall = tokio::spawn({
        let url = url.clone();
        async move { redis_command(&url, &["EVAL", busy, "0"]).await }
    });
    // Redis no longer answers a PING within 300 ms (a loaded machine's Redis answers in a few):
    // the stall has begun, and has most of its 2 s to run.
    let address = url.trim_start_matches("redis://").trim_end_matches('/');
    loop {
        let mut ping = tokio::net::TcpStream::connect(address).await.unwrap();
        ping.write_all(b"PING\r\n").await.unwrap();
        let mut pong = [0u8; 7];
        let answered = tokio::time::timeout(Duration::from_millis(300), ping.read_exact(&mut pong));
        if answered.await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let err = to(&a).execute(add("book", "k")).await.unwrap_err();
    assert_eq!(status(&err), Some(503), "{err}");
    assert_eq!(runs.load(SeqCst), 1, "nothing ran");
    assert_eq!(stall.await.unwrap(), ":1");
    // Redis answers again: the retry runs the method (a 503 while the store waits to
    // reconnect; never a 409).
    let ran = add_once_redis_answers(&a, "book", "k").await;
    assert_eq!(ran.status(), StatusCode::CREATED);
    assert_eq!(runs.load(SeqCst), 2, "ran once");
}
