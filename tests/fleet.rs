//! Fleet scale on a real `redis-server`: replay protection across verifier replicas, breaker
//! state across caller replicas, and what happens when Redis dies mid-run.
//!
//! `.ci/run` installs `redis-server` and starts one, named by `COMMS_TEST_REDIS_URL`; tests that
//! kill Redis start their own on a free port. Outside CI, a machine without `redis-server`
//! skips these tests with a message; in CI a missing server fails them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::{Duration, Instant, SystemTime};

use comms::redis::{RedisNonceStore, WhenUnavailable, share_breakers};
use comms::verify::{NonceStore, Verifier, VerifyError};
use comms::{BreakerConfig, Call, CircuitState, Error, Executor, RetryConfig};
use comms_tests::{Recorded, RedisServer, Reply, TestServer};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

macro_rules! redis_or_skip {
    () => {
        match RedisServer::start().await {
            Ok(server) => server,
            Err(why) => {
                eprintln!("skipping: {why}");
                return;
            }
        }
    };
}

/// The URL of the Redis `.ci/run` starts, named by `COMMS_TEST_REDIS_URL`, or else of one of
/// our own (kept running by the second value), for tests that do not stop it.
macro_rules! shared_redis_or_skip {
    () => {
        match std::env::var("COMMS_TEST_REDIS_URL") {
            // Empty is unset, as a shell's `VAR= cargo test` means it.
            Ok(url) if !url.is_empty() => (url, None),
            _ => {
                let own = redis_or_skip!();
                (own.url(), Some(own))
            }
        }
    };
}

const SECRET: &str = "fleet-secret";

async fn genuine(count: usize) -> Vec<Recorded> {
    let server = TestServer::always(Reply::status(200)).await;
    let exec = Executor::builder()
        .base_url(server.url())
        .service_id("billing")
        .secret(SECRET)
        .breaker(BreakerConfig::disabled())
        .build()
        .unwrap();
    for i in 0..count {
        exec.execute(Call::post("/orders").segment(i))
            .await
            .unwrap();
    }
    server.requests()
}

fn replica(store: RedisNonceStore) -> Verifier {
    Verifier::new()
        .service("billing", SECRET)
        .nonce_store(store)
}

async fn check(v: &Verifier, r: &Recorded) -> Result<(), VerifyError> {
    v.verify(&r.method, &r.uri, &r.headers, &r.body)
        .await
        .map(|_| ())
}

#[tokio::test]
async fn a_replay_to_another_replica_is_refused() {
    let (url, _own) = shared_redis_or_skip!();
    let a = replica(RedisNonceStore::new(&url).unwrap().namespace("replay-test"));
    let b = replica(RedisNonceStore::new(&url).unwrap().namespace("replay-test"));
    let requests = genuine(3).await;
    check(&a, &requests[0]).await.unwrap();
    assert!(matches!(
        check(&b, &requests[0]).await,
        Err(VerifyError::Replayed)
    ));
    assert!(matches!(
        check(&a, &requests[0]).await,
        Err(VerifyError::Replayed)
    ));
    check(&b, &requests[1]).await.unwrap();
    assert!(matches!(
        check(&a, &requests[1]).await,
        Err(VerifyError::Replayed)
    ));
    // Another namespace is another deployment.
    let other = replica(RedisNonceStore::new(&url).unwrap().namespace("elsewhere"));
    check(&other, &requests[0]).await.unwrap();
}

#[tokio::test]
async fn gates_one_behind_the_other_on_two_instances_of_one_redis_store_admit_a_request_once() {
    let (url, _own) = shared_redis_or_skip!();
    // Each gate's verifier made on its own, as separate parts of a service may make them: the
    // inner leaves the nonce to the outer, since their stores say they are one Redis.
    let store = || RedisNonceStore::new(&url).unwrap().namespace("gates-test");
    assert_eq!(store().location(), store().location());
    assert_ne!(
        store().location(),
        RedisNonceStore::new(&url)
            .unwrap()
            .namespace("other")
            .location()
    );
    let inner = axum::Router::new()
        .route("/x", axum::routing::get(|| async { "served" }))
        .layer(comms::verify::VerifyLayer::new(replica(store())));
    let gated = inner.layer(comms::verify::VerifyLayer::new(replica(store())));
    let served = comms_tests::serve(gated).await;
    let recorder = TestServer::always(Reply::status(200)).await;
    comms_tests::plain_executor(&recorder.url(), "billing", SECRET)
        .execute(Call::get("/x"))
        .await
        .unwrap();
    let request = recorder.requests().remove(0);
    let send = || async {
        let mut sent = reqwest::Client::new().get(format!("{served}{}", request.uri));
        for (name, value) in &request.headers {
            sent = sent.header(name, value);
        }
        sent.send().await.unwrap().status().as_u16()
    };
    assert_eq!(send().await, 200, "admitted once, by both");
    assert_eq!(send().await, 401, "and its replay refused");
}

#[tokio::test]
async fn a_dead_redis_refuses_by_default_and_recovers() {
    let mut redis = redis_or_skip!();
    let strict = replica(
        RedisNonceStore::new(&redis.url())
            .unwrap()
            .namespace("kill-test"),
    );
    let lenient = replica(
        RedisNonceStore::new(&redis.url())
            .unwrap()
            .namespace("kill-test")
            .when_unavailable(WhenUnavailable::LocalOnly),
    );
    let requests = genuine(4).await;
    check(&strict, &requests[0]).await.unwrap();

    redis.kill();
    let started = Instant::now();
    let err = check(&strict, &requests[1]).await.unwrap_err();
    assert!(matches!(err, VerifyError::NonceStore(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the timeout bounds the wait"
    );
    // Told to, a replica checks locally: accepted once, refused on replay.
    check(&lenient, &requests[2]).await.unwrap();
    assert!(matches!(
        check(&lenient, &requests[2]).await,
        Err(VerifyError::Replayed)
    ));

    redis.restart().await;
    let mut recovered = false;
    for _ in 0..50 {
        match check(&strict, &requests[3]).await {
            Ok(()) => {
                recovered = true;
                break;
            }
            Err(VerifyError::NonceStore(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(other) => panic!("{other:?}"),
        }
    }
    assert!(recovered, "the store reconnected");
    assert!(matches!(
        check(&strict, &requests[3]).await,
        Err(VerifyError::Replayed)
    ));
}

/// A server whose nonce store cannot answer refuses with a 503 and `Retry-After`, not a 401:
/// the signature is not at fault, and a client retries it, signed afresh, once Redis is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nonce_store_outage_is_a_503_that_clients_retry() {
    let mut redis = redis_or_skip!();
    let store = RedisNonceStore::new(&redis.url())
        .unwrap()
        .namespace("outage-test");
    let app = axum::Router::new()
        .route("/x", axum::routing::post(|| async { "served" }))
        .layer(comms::verify::VerifyLayer::new(replica(store)));
    let url = comms_tests::serve(app).await;
    let exec = Executor::builder()
        .base_url(&url)
        .service_id("billing")
        .secret(SECRET)
        .retry(RetryConfig::none())
        .breaker(BreakerConfig::disabled())
        .build()
        .unwrap();
    exec.execute(Call::post("/x")).await.unwrap();

    redis.kill();
    let err = exec.execute(Call::post("/x")).await.unwrap_err();
    let comms::Error::Server(refusal) = &err else {
        panic!("{err:?}");
    };
    assert_eq!(refusal.status(), 503);
    assert!(err.is_retryable());

    // Retried while Redis comes back: the call goes through, its retry waiting the second
    // `Retry-After` asks for (rather than the 10 ms its backoff would).
    let retrying = Executor::builder()
        .base_url(&url)
        .service_id("billing")
        .secret(SECRET)
        .retry(
            RetryConfig::default()
                .max_retries(5)
                .base_delay(Duration::from_millis(10))
                .no_budget(),
        )
        .breaker(BreakerConfig::disabled())
        .build()
        .unwrap();
    let back = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        redis.restart().await;
        redis
    });
    let started = Instant::now();
    let answer = retrying
        .execute(Call::post("/x").idempotent(true))
        .await
        .unwrap();
    assert_eq!(answer.text().unwrap(), "served");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1"
    );
    let _redis = back.await.unwrap();
}

/// Sends one command to the Redis at `url` (no password) and returns its reply line, such as
/// `:1234` for an integer: a look at what the store wrote, without a client of our own.
/// Fills the Redis at `url` as `noeviction` would find it full: a limit below what it uses
/// already, so that it refuses every write, and still answers everything else.
async fn fill(url: &str) {
    assert_eq!(
        redis_command(url, &["CONFIG", "SET", "maxmemory-policy", "noeviction"]).await,
        "+OK"
    );
    assert_eq!(
        redis_command(url, &["CONFIG", "SET", "maxmemory", "1"]).await,
        "+OK"
    );
}

async fn redis_command(url: &str, args: &[&str]) -> String {
    let args: Vec<&[u8]> = args.iter().map(|arg| arg.as_bytes()).collect();
    redis_bytes_command(url, &args).await
}

/// [`redis_command`] with arguments that need not be UTF-8.
async fn redis_bytes_command(url: &str, args: &[&[u8]]) -> String {
    let address = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap();
    let stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let mut stream = tokio::io::BufReader::new(stream);
    let mut command = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        command.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        command.extend_from_slice(arg);
        command.extend_from_slice(b"\r\n");
    }
    stream.get_mut().write_all(&command).await.unwrap();
    let mut reply = String::new();
    stream.read_line(&mut reply).await.unwrap();
    reply.trim_end().to_owned()
}

/// A nonce no earlier run of these tests used, for a Redis that outlives a run.
fn fresh_nonce(tag: u64) -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{nanos:032x}{tag:08x}")
}

/// The milliseconds Redis will keep `key`.
async fn pttl(url: &str, key: &str) -> i64 {
    let reply = redis_command(url, &["PTTL", key]).await;
    reply.trim_start_matches(':').parse().expect(&reply)
}

#[tokio::test]
async fn redis_keeps_a_nonce_to_the_millisecond_past_its_window_plus_the_drift_margin() {
    let (url, _own) = shared_redis_or_skip!();
    let exact = RedisNonceStore::new(&url)
        .unwrap()
        .namespace("ttl-test")
        .clock_drift_margin(Duration::ZERO);
    // keep_until 1.9 s away: the key must outlive 1.9 s, not a whole second less.
    let nonce = fresh_nonce(1);
    let now = SystemTime::now();
    let keep_until = now + Duration::from_millis(1900);
    assert!(
        exact
            .check_and_insert("billing", &nonce, now, keep_until)
            .await
            .unwrap()
    );
    let key = format!("ttl-test:nonce:billing:{nonce}");
    let left = pttl(&url, &key).await;
    assert!((1400..=1900).contains(&left), "PTTL {left}");
    // A replay in the window's last second is still refused.
    tokio::time::sleep_until((Instant::now() + Duration::from_millis(1200)).into()).await;
    assert!(
        !exact
            .check_and_insert("billing", &nonce, SystemTime::now(), keep_until)
            .await
            .unwrap(),
        "replay accepted {:?} after the first request",
        now.elapsed().unwrap_or_default()
    );

    // The margin is added on top, 5 s by default.
    let margined = RedisNonceStore::new(&url).unwrap().namespace("ttl-test");
    let nonce = fresh_nonce(2);
    let now = SystemTime::now();
    assert!(
        margined
            .check_and_insert("billing", &nonce, now, now + Duration::from_millis(1500))
            .await
            .unwrap()
    );
    let left = pttl(&url, &format!("ttl-test:nonce:billing:{nonce}")).await;
    assert!((6000..=6500).contains(&left), "PTTL {left}");
}

/// Whether `store` takes `nonce` as new, for a request made now.
async fn fresh_in(store: &RedisNonceStore, nonce: &str) -> bool {
    let now = SystemTime::now();
    store
        .check_and_insert("billing", nonce, now, now + Duration::from_secs(301))
        .await
        .unwrap()
}

#[tokio::test]
async fn local_only_remembers_what_it_accepted_before_during_and_after_an_outage() {
    let mut redis = redis_or_skip!();
    let url = redis.url();
    let store = RedisNonceStore::new(&url)
        .unwrap()
        .namespace("local-only")
        .when_unavailable(WhenUnavailable::LocalOnly);
    let in_redis = |nonce: &str| {
        let key = format!("local-only:nonce:billing:{nonce}");
        let url = url.clone();
        async move { redis_command(&url, &["EXISTS", &key]).await == ":1" }
    };
    let (before, during) = (fresh_nonce(1), fresh_nonce(2));
    assert!(fresh_in(&store, &before).await);
    assert!(in_redis(&before).await, "accepted through Redis");

    redis.kill();
    assert!(
        !fresh_in(&store, &before).await,
        "accepted through Redis before the outage, refused during it"
    );
    assert!(fresh_in(&store, &during).await, "accepted locally");
    assert!(!fresh_in(&store, &during).await, "and refused on replay");

    // A new, empty Redis: it has seen neither nonce.
    redis.restart().await;
    let mut back = false;
    for probe in 3..53 {
        let probe = fresh_nonce(probe);
        assert!(fresh_in(&store, &probe).await);
        if in_redis(&probe).await {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back, "the store reached Redis again");
    assert!(
        !fresh_in(&store, &during).await,
        "accepted during the outage, refused after it"
    );
    assert!(!fresh_in(&store, &before).await);
    assert!(
        !in_redis(&during).await,
        "the replica's memory refused it, not Redis"
    );
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn caller(url: &str, sync: comms::BreakerSync) -> Executor {
    caller_open_for(url, sync, Duration::from_millis(500))
}

/// A caller that does not retry, whose breaker opens after three failures for `open_for`.
fn caller_open_for(url: &str, sync: comms::BreakerSync, open_for: Duration) -> Executor {
    Executor::builder()
        .base_url(url)
        .service_id("billing")
        .secret(SECRET)
        .retry(RetryConfig::none())
        .breaker(
            BreakerConfig::default()
                .failure_threshold(3)
                .open_for(open_for),
        )
        .breaker_sync(sync)
        .build()
        .unwrap()
}

/// A server answering 503 until the flag it comes with is cleared, then 200.
async fn failing_until_told() -> (TestServer, Arc<AtomicBool>) {
    let failing = Arc::new(AtomicBool::new(true));
    let flag = failing.clone();
    let server = TestServer::start(move |_, _| {
        if flag.load(SeqCst) {
            Reply::status(503)
        } else {
            Reply::status(200)
        }
    })
    .await;
    (server, failing)
}

/// Two replicas' breaker syncs on `channel`, once both are subscribed.
async fn two_replicas(url: &str, channel: &str) -> (comms::BreakerSync, comms::BreakerSync) {
    let a = share_breakers(url, channel).unwrap();
    let b = share_breakers(url, channel).unwrap();
    wait_for("both replicas to subscribe", || {
        a.is_connected() && b.is_connected()
    })
    .await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_open_and_close_their_breakers_together() {
    let redis = redis_or_skip!();
    let (server, failing) = failing_until_told().await;
    // Two replicas of one caller: each its own breaker, linked through Redis.
    let (sync_a, sync_b) = two_replicas(&redis.url(), "open-together").await;
    let a = caller(&server.url(), sync_a);
    let b = caller(&server.url(), sync_b);

    for _ in 0..3 {
        assert!(a.execute(Call::get("/x")).await.is_err());
    }
    assert_eq!(a.circuit_state(), Some(CircuitState::Open));
    wait_for("b to open", || {
        b.circuit_state() == Some(CircuitState::Open)
    })
    .await;
    assert!(
        b.execute(Call::get("/x"))
            .await
            .unwrap_err()
            .is_circuit_open()
    );
    assert_eq!(server.count(), 3, "b never called the failing service");

    // The service recovers; b's probe succeeds after the open period, and a closes with it.
    failing.store(false, SeqCst);
    tokio::time::sleep(Duration::from_millis(550)).await;
    b.execute(Call::get("/x")).await.expect("the probe");
    assert_eq!(b.circuit_state(), Some(CircuitState::Closed));
    wait_for("a to close", || {
        a.circuit_state() == Some(CircuitState::Closed)
    })
    .await;
    a.execute(Call::get("/x")).await.expect("a flows again");
    assert_eq!(server.count(), 5);
}

/// Has Redis close every client connection but subscribers' (what its `timeout` does to an
/// idle one, or a restart to all).
async fn close_connections(url: &str) {
    let killed = redis_command(url, &["CLIENT", "KILL", "TYPE", "normal"]).await;
    assert!(killed.starts_with(':'), "CLIENT KILL answered {killed}");
}

#[tokio::test]
async fn a_check_after_redis_closed_the_stores_connection_is_answered() {
    let redis = redis_or_skip!();
    let store = RedisNonceStore::new(&redis.url())
        .unwrap()
        .namespace("closed");
    assert!(fresh_in(&store, &fresh_nonce(1)).await);
    close_connections(&redis.url()).await;
    // The first command finds the connection closed; it is made again on a new one, so a
    // genuine request is not refused while Redis is up.
    let later = SystemTime::now() + Duration::from_secs(301);
    let result = store
        .check_and_insert("billing", &fresh_nonce(2), SystemTime::now(), later)
        .await;
    assert!(
        matches!(result, Ok(true)),
        "a fresh nonce with Redis up: {:?}",
        result.map_err(|e| e.to_string())
    );
    // And a replay is still one.
    let nonce = fresh_nonce(3);
    assert!(fresh_in(&store, &nonce).await);
    close_connections(&redis.url()).await;
    assert!(
        !fresh_in(&store, &nonce).await,
        "a replay after the connection closed"
    );
}

/// What a [`command_proxy`] does, once armed, with the command it watches for.
#[derive(Clone, Copy)]
enum OnCommand {
    /// Hands it on to Redis, then closes its client's connection before the reply comes back:
    /// Redis ran the command, and only its reply is lost. Once, then disarmed.
    LoseReply,
    /// Holds it, and everything after it on that connection, unanswered.
    Hold,
}

/// A proxy in front of the Redis at `redis_url`, forwarding both ways, that once armed does
/// `on` with the next `command` a client sends.
async fn command_proxy(
    redis_url: &str,
    command: &'static str,
    on: OnCommand,
) -> (String, Arc<AtomicBool>) {
    use tokio::io::AsyncReadExt;
    let redis = redis_url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let marker = format!("${}\r\n{command}\r\n", command.len()).into_bytes();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let armed = Arc::new(AtomicBool::new(false));
    let trigger = armed.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let upstream = tokio::net::TcpStream::connect(&redis).await.unwrap();
            let (armed, marker) = (trigger.clone(), marker.clone());
            tokio::spawn(async move {
                let (mut from_client, mut to_client) = client.into_split();
                let (mut from_redis, mut to_redis) = upstream.into_split();
                let replies = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut from_redis, &mut to_client).await;
                });
                let mut buffer = vec![0u8; 64 * 1024];
                while let Ok(n @ 1..) = from_client.read(&mut buffer).await {
                    let chunk = &buffer[..n];
                    let watched = chunk.windows(marker.len()).any(|w| w == marker);
                    match on {
                        OnCommand::LoseReply if watched && armed.swap(false, SeqCst) => {
                            replies.abort();
                            let _ = replies.await;
                            to_redis.write_all(chunk).await.unwrap();
                            // Redis runs it; the client's connection closes unanswered.
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            return;
                        }
                        OnCommand::Hold if watched && armed.load(SeqCst) => {
                            let _held = (from_client, to_redis);
                            return std::future::pending::<()>().await;
                        }
                        _ => {}
                    }
                    if to_redis.write_all(chunk).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (format!("redis://{address}/"), armed)
}

#[tokio::test]
async fn a_request_whose_nonce_reply_was_lost_is_not_taken_for_its_replay() {
    let redis = redis_or_skip!();
    for policy in [WhenUnavailable::Refuse, WhenUnavailable::LocalOnly] {
        let (url, armed) = command_proxy(&redis.url(), "SET", OnCommand::LoseReply).await;
        let store = RedisNonceStore::new(&url)
            .unwrap()
            .namespace("lost-reply")
            .when_unavailable(policy);
        assert!(fresh_in(&store, &fresh_nonce(1)).await);
        armed.store(true, SeqCst);
        let nonce = fresh_nonce(2);
        let now = SystemTime::now();
        let first = store
            .check_and_insert("billing", &nonce, now, now + Duration::from_secs(301))
            .await
            .map_err(|e| e.to_string());
        assert!(!armed.load(SeqCst), "{policy:?}: the proxy lost no reply");
        assert_eq!(first, Ok(true), "{policy:?}: the genuine request");
        // Its replay is one.
        assert!(!fresh_in(&store, &nonce).await, "{policy:?}: the replay");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transition_after_redis_closed_the_publishing_connection_reaches_the_others() {
    let redis = redis_or_skip!();
    let (server, failing) = failing_until_told().await;
    let (sync_a, sync_b) = two_replicas(&redis.url(), "publisher-closed").await;
    let a = caller(&server.url(), sync_a.clone());
    let b = caller(&server.url(), sync_b.clone());
    // a opens, b follows, then a's probe closes both: a's publishing connection is made.
    for _ in 0..3 {
        assert!(a.execute(Call::get("/x")).await.is_err());
    }
    wait_for("b to open", || {
        b.circuit_state() == Some(CircuitState::Open)
    })
    .await;
    failing.store(false, SeqCst);
    tokio::time::sleep(Duration::from_millis(550)).await;
    a.execute(Call::get("/x")).await.expect("a's probe");
    wait_for("b to close", || {
        b.circuit_state() == Some(CircuitState::Closed)
    })
    .await;
    // Redis closes it while it is idle; the next transition still reaches b.
    close_connections(&redis.url()).await;
    assert!(sync_a.is_connected() && sync_b.is_connected());
    failing.store(true, SeqCst);
    for _ in 0..3 {
        assert!(a.execute(Call::get("/x")).await.is_err());
    }
    assert_eq!(a.circuit_state(), Some(CircuitState::Open));
    wait_for("b to open again", || {
        b.circuit_state() == Some(CircuitState::Open)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_long_outage_a_later_blip_is_recovered_from_at_once() {
    let mut redis = redis_or_skip!();
    let sync = share_breakers(&redis.url(), "backoff").unwrap();
    wait_for("the subscription", || sync.is_connected()).await;
    // Long enough for the waits between attempts to grow to their longest, 5 s.
    redis.kill();
    tokio::time::sleep(Duration::from_secs(7)).await;
    redis.restart().await;
    let deadline = Instant::now() + Duration::from_secs(8);
    while !sync.is_connected() {
        assert!(Instant::now() < deadline, "never subscribed again");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A blip: the subscription, up again for a while, starts its waits afresh.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    redis.restart().await;
    wait_for("the blip to be noticed", || !sync.is_connected()).await;
    let started = Instant::now();
    wait_for("the subscription again", || sync.is_connected()).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "deaf for {:?} after a blip",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breakers_work_alone_when_redis_dies() {
    let mut redis = redis_or_skip!();
    let server = TestServer::always(Reply::status(503)).await;
    let sync_a = share_breakers(&redis.url(), "dies").unwrap();
    let sync_b = share_breakers(&redis.url(), "dies").unwrap();
    wait_for("both replicas to subscribe", || {
        sync_a.is_connected() && sync_b.is_connected()
    })
    .await;
    let a = caller(&server.url(), sync_a.clone());
    let b = caller(&server.url(), sync_b.clone());

    redis.kill();
    wait_for("the subscriptions to drop", || {
        !sync_a.is_connected() && !sync_b.is_connected()
    })
    .await;
    for _ in 0..3 {
        assert!(a.execute(Call::get("/x")).await.is_err());
    }
    assert_eq!(
        a.circuit_state(),
        Some(CircuitState::Open),
        "a still opens on its own"
    );
    assert!(
        a.execute(Call::get("/x"))
            .await
            .unwrap_err()
            .is_circuit_open()
    );
    assert_eq!(
        b.circuit_state(),
        Some(CircuitState::Closed),
        "b decides alone meanwhile"
    );

    // Redis returns: the replicas resubscribe and share transitions again.
    redis.restart().await;
    wait_for("resubscription", || {
        sync_a.is_connected() && sync_b.is_connected()
    })
    .await;
    for _ in 0..3 {
        assert!(b.execute(Call::get("/x")).await.is_err());
    }
    assert_eq!(b.circuit_state(), Some(CircuitState::Open));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_open_forever_holds_a_breaker_open_only_for_its_own_open_period() {
    let redis = redis_or_skip!();
    let server = TestServer::always(Reply::status(200)).await;
    let sync = share_breakers(&redis.url(), "forged").unwrap();
    wait_for("the replica to subscribe", || sync.is_connected()).await;
    let replica = caller(&server.url(), sync);
    replica.execute(Call::get("/x")).await.unwrap();

    // Anyone who can publish on the channel: "open until the end of time".
    let forged = format!("{:016x} open {} {}", 1, u64::MAX, server.url());
    redis_command(&redis.url(), &["PUBLISH", "forged:breaker", &forged]).await;
    wait_for("the forged open to arrive", || {
        replica.circuit_state() == Some(CircuitState::Open)
    })
    .await;
    match replica.execute(Call::get("/x")).await.unwrap_err() {
        comms::Error::CircuitOpen { retry_in, .. } => {
            assert!(retry_in <= Duration::from_millis(500), "{retry_in:?}")
        }
        other => panic!("{other:?}"),
    }
    // The caller's own open_for is 500 ms: then a probe goes through and closes the breaker.
    tokio::time::sleep(Duration::from_millis(550)).await;
    replica.execute(Call::get("/x")).await.expect("the probe");
    assert_eq!(replica.circuit_state(), Some(CircuitState::Closed));
    assert_eq!(server.count(), 2);
}

/// A TCP proxy in front of Redis: it can let its connections die without closing them (it
/// stops forwarding on them but keeps their sockets open, no FIN, no RST, as a NAT, a firewall
/// or a load balancer that forgot a connection does), make new connections silent from the
/// start (Redis hung behind a load balancer), and delay every reply.
#[derive(Clone, Default)]
struct SilentProxy {
    port: u16,
    /// The connections that forward nothing, by number.
    dead: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<u64>>>,
    /// Whether new connections are dead from the start.
    dead_from_start: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// How long each reply is held, in milliseconds.
    delay_ms: std::sync::Arc<std::sync::atomic::AtomicU64>,
    accepted: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl SilentProxy {
    async fn start(redis_url: &str) -> SilentProxy {
        use std::sync::atomic::Ordering;
        let target = redis_url
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = SilentProxy {
            port: listener.local_addr().unwrap().port(),
            ..SilentProxy::default()
        };
        let shared = proxy.clone();
        tokio::spawn(async move {
            loop {
                let (client, _) = listener.accept().await.unwrap();
                let id = shared.accepted.fetch_add(1, Ordering::SeqCst) + 1;
                if shared.dead_from_start.load(Ordering::SeqCst) {
                    shared.dead.lock().unwrap().insert(id);
                }
                let Ok(server) = tokio::net::TcpStream::connect(&target).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pump(client_read, server_write, id, shared.clone(), false));
                tokio::spawn(pump(server_read, client_write, id, shared.clone(), true));
            }
        });
        proxy
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Every connection accepted so far goes silent.
    fn silence_existing(&self) {
        let accepted = self.accepted.load(std::sync::atomic::Ordering::SeqCst);
        self.dead.lock().unwrap().extend(1..=accepted);
    }

    fn is_dead(&self, id: u64) -> bool {
        self.dead.lock().unwrap().contains(&id)
    }

    fn delay(&self, millis: u64) {
        self.delay_ms
            .store(millis, std::sync::atomic::Ordering::SeqCst);
    }

    fn accepted(&self) -> u64 {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Forwards `from` to `to` (each reply held for the proxy's delay, when `replies`) until
/// connection `id` is dead, then holds both open and forwards nothing.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    id: u64,
    proxy: SilentProxy,
    replies: bool,
) {
    use tokio::io::AsyncReadExt;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let writing = proxy.clone();
    let writer = tokio::spawn(async move {
        while let Some((arrived, bytes)) = rx.recv().await {
            if replies {
                let delay = writing.delay_ms.load(std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep_until((arrived + Duration::from_millis(delay)).into()).await;
            }
            if writing.is_dead(id) {
                let _open = to;
                return std::future::pending::<()>().await;
            }
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
    });
    let mut buf = [0u8; 16384];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if proxy.is_dead(id) {
            let _open = from;
            return std::future::pending::<()>().await;
        }
        let _ = tx.send((Instant::now(), buf[..n].to_vec()));
    }
    drop(tx);
    let _ = writer.await;
}

async fn insert(store: &RedisNonceStore, tag: u64) -> Result<bool, comms::BoxError> {
    let now = SystemTime::now();
    store
        .check_and_insert(
            "billing",
            &fresh_nonce(tag),
            now,
            now + Duration::from_secs(301),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_redis_is_answered_again_after_a_moment_slower_than_the_timeout() {
    let redis = redis_or_skip!();
    let proxy = SilentProxy::start(&redis.url()).await;
    let store = RedisNonceStore::new(&proxy.url())
        .unwrap()
        .namespace("slow")
        .timeout(Duration::from_millis(400));
    assert!(insert(&store, 0).await.unwrap());
    // Redis answers in 250 ms, within the timeout; then once in 600 ms, beyond it.
    proxy.delay(250);
    assert!(insert(&store, 1).await.unwrap());
    proxy.delay(600);
    assert!(insert(&store, 2).await.is_err());
    proxy.delay(250);
    tokio::time::sleep(Duration::from_millis(700)).await;
    // A new connection and its first command take longer than the timeout together; the
    // connection is kept, and the commands after it are answered.
    let mut answered = 0;
    for i in 0..6 {
        answered += u32::from(insert(&store, 10 + i).await.is_ok());
    }
    assert!(answered >= 5, "{answered} of 6 answered");
}

/// With Redis refusing connections from the start, a failed attempt to connect is remembered
/// for a moment: checks arriving together do not each connect in turn behind the one
/// connecting (which held each for the whole timeout), and under `LocalOnly` they are
/// answered from this replica's memory at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_with_redis_down_from_the_start_do_not_queue_to_connect() {
    let dead = comms_tests::dead_addr().await;
    for when in [WhenUnavailable::LocalOnly, WhenUnavailable::Refuse] {
        let store = Arc::new(
            RedisNonceStore::new(&format!("redis://{dead}/"))
                .unwrap()
                .namespace("down-from-start")
                .when_unavailable(when),
        );
        let checks: Vec<_> = (0..20u64)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let started = Instant::now();
                    let fresh = insert(&store, 2000 + i).await;
                    (started.elapsed(), fresh.is_ok())
                })
            })
            .collect();
        let mut longest = Duration::ZERO;
        for check in checks {
            let (took, answered) = check.await.unwrap();
            assert_eq!(answered, when == WhenUnavailable::LocalOnly, "{when:?}");
            longest = longest.max(took);
        }
        // The 1 s command timeout is what queueing to connect took.
        assert!(
            longest < Duration::from_millis(600),
            "{when:?}: a check took {longest:?}"
        );
    }
}

/// With Redis silent (connections accepted, nothing answered) the first check finds out at
/// its timeout; from then on, checks arriving together do not wait for the attempt another
/// one is making: under `LocalOnly` they are answered locally at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_do_not_wait_for_a_connection_attempt_once_one_failed() {
    let redis = redis_or_skip!();
    let proxy = SilentProxy::start(&redis.url()).await;
    proxy.dead_from_start.store(true, SeqCst);
    let timeout = Duration::from_millis(400);
    let store = Arc::new(
        RedisNonceStore::new(&proxy.url())
            .unwrap()
            .namespace("silent-from-start")
            .when_unavailable(WhenUnavailable::LocalOnly)
            .timeout(timeout),
    );
    assert!(insert(&store, 3000).await.unwrap());
    for wave in 0..3u64 {
        // After the pause, one check makes the next attempt, and waits it out.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let checks: Vec<_> = (0..20u64)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let started = Instant::now();
                    let fresh = insert(&store, 4000 + 100 * wave + i).await;
                    (started.elapsed(), fresh.unwrap())
                })
            })
            .collect();
        let mut slow = 0;
        for check in checks {
            let (took, fresh) = check.await.unwrap();
            assert!(fresh);
            slow += usize::from(took >= Duration::from_millis(200));
        }
        assert!(slow <= 1, "wave {wave}: {slow} checks waited");
    }
}

/// A check dropped by its caller while it connects (the client hung up) is no failed
/// attempt: the next check connects, and Redis answers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_dropped_while_connecting_leaves_redis_in_use() {
    use std::future::Future;
    let redis = redis_or_skip!();
    // A first poll is usually still connecting when it returns; on a busy machine the other
    // worker can have connected and answered by then, which drops nothing: a fresh store each
    // time, until one is dropped mid-connect.
    for round in 0..20 {
        let store = RedisNonceStore::new(&redis.url())
            .unwrap()
            .namespace("dropped-connect");
        let dropped = {
            let mut first = std::pin::pin!(insert(&store, 2 * round));
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            first.as_mut().poll(&mut cx).is_pending()
        };
        assert!(insert(&store, 2 * round + 1).await.unwrap());
        if dropped {
            return;
        }
    }
    panic!("no first check was still connecting when polled once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_waits_no_longer_than_its_timeout_while_redis_is_silent() {
    let redis = redis_or_skip!();
    let proxy = SilentProxy::start(&redis.url()).await;
    let timeout = Duration::from_millis(300);
    let store = std::sync::Arc::new(
        RedisNonceStore::new(&proxy.url())
            .unwrap()
            .namespace("silent-timeout")
            .timeout(timeout),
    );
    assert!(insert(&store, 0).await.unwrap());
    proxy
        .dead_from_start
        .store(true, std::sync::atomic::Ordering::SeqCst);
    proxy.silence_existing();
    // Checks arriving every 10 ms, some while another is connecting afresh.
    let mut checks = Vec::new();
    for i in 0..60u64 {
        let store = store.clone();
        checks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10 * i)).await;
            let started = Instant::now();
            assert!(insert(&store, 1000 + i).await.is_err());
            started.elapsed()
        }));
    }
    let mut longest = Duration::ZERO;
    for check in checks {
        longest = longest.max(check.await.unwrap());
    }
    // Well under twice the timeout, which waiting for a connecting check's lock would take.
    assert!(longest < timeout * 16 / 10, "a check took {longest:?}");
}

/// Publishes another replica's open of `authority`'s breaker on `namespace`'s channel every
/// 250 ms until `replica`'s breaker is open; fails with `why()` after 15 s.
async fn opened_by_another_replica(
    redis_url: &str,
    namespace: &str,
    authority: &str,
    replica: &Executor,
    why: impl Fn() -> String,
) {
    let channel = format!("{namespace}:breaker");
    let open = format!("{:016x} open {} {authority}", 7, u64::MAX);
    let started = Instant::now();
    loop {
        redis_command(redis_url, &["PUBLISH", &channel, &open]).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
        if replica.circuit_state() == Some(CircuitState::Open) {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "{}", why());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nonce_store_reconnects_when_its_connection_dies_without_closing() {
    let redis = redis_or_skip!();
    let proxy = SilentProxy::start(&redis.url()).await;
    let store = RedisNonceStore::new(&proxy.url())
        .unwrap()
        .namespace("silent")
        .timeout(Duration::from_millis(300));
    let now = SystemTime::now();
    let later = now + Duration::from_secs(301);
    assert!(
        store
            .check_and_insert("billing", &fresh_nonce(0), now, later)
            .await
            .unwrap()
    );
    proxy.silence_existing();
    // The check on the silent connection times out, and is refused; the store then connects
    // again, and the next one is answered.
    let started = Instant::now();
    let mut refused = 0;
    loop {
        let now = SystemTime::now();
        match store
            .check_and_insert("billing", &fresh_nonce(1 + refused), now, later)
            .await
        {
            Ok(fresh) => {
                assert!(fresh);
                break;
            }
            Err(_) => refused += 1,
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still refused after {refused} checks"
        );
    }
    assert!(refused >= 1, "the silent connection answered");
}

/// `PUBSUB NUMSUB channel`: how many connections subscribe to `channel`.
async fn subscribers(url: &str, channel: &str) -> u64 {
    use tokio::io::AsyncReadExt;
    let address = url.trim_start_matches("redis://").trim_end_matches('/');
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let command = format!(
        "*3\r\n$6\r\nPUBSUB\r\n$6\r\nNUMSUB\r\n${}\r\n{channel}\r\n",
        channel.len()
    );
    stream.write_all(command.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    let mut buf = [0u8; 1024];
    // `*2 $len channel :count`: read until the count's line is whole.
    while !String::from_utf8_lossy(&reply).contains("\r\n:") || !reply.ends_with(b"\r\n") {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "redis closed the connection");
        reply.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&reply).into_owned();
    let count = text.rsplit("\r\n:").next().unwrap().trim_end();
    count.parse().expect(&text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breaker_subscription_that_dies_without_closing_is_renewed() {
    let redis = redis_or_skip!();
    let proxy = SilentProxy::start(&redis.url()).await;
    let server = TestServer::always(Reply::status(200)).await;
    let sync = share_breakers(&proxy.url(), "silent").unwrap();
    wait_for("the subscription", || sync.is_connected()).await;
    let replica = caller(&server.url(), sync.clone());
    replica.execute(Call::get("/x")).await.unwrap();
    proxy.silence_existing();
    // Within its check period and a ping's timeout, the subscriber notices and subscribes
    // again; another replica's open (published straight to Redis) then reaches this one.
    let started = Instant::now();
    opened_by_another_replica(&redis.url(), "silent", &server.url(), &replica, || {
        format!(
            "no transition received since the connection died (connected: {})",
            sync.is_connected()
        )
    })
    .await;
    assert!(
        started.elapsed() > Duration::from_secs(1),
        "the silent connection delivered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sync_tasks_end_with_the_last_client_using_it() {
    let redis = redis_or_skip!();
    let server = TestServer::always(Reply::status(200)).await;
    let sync = share_breakers(&redis.url(), "ending").unwrap();
    wait_for("the subscription", || sync.is_connected()).await;
    let client = caller(&server.url(), sync.clone());
    client.execute(Call::get("/x")).await.unwrap();
    assert_eq!(subscribers(&redis.url(), "ending:breaker").await, 1);
    // The sync dropped, the client still uses it.
    drop(sync);
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(subscribers(&redis.url(), "ending:breaker").await, 1);
    client.execute(Call::get("/x")).await.unwrap();
    // The client gone too: the subscriber ends within its check period.
    drop(client);
    let started = Instant::now();
    while subscribers(&redis.url(), "ending:breaker").await > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "the subscriber outlived every client"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_renewed_while_redis_is_silent_is_renewed_again() {
    let redis = redis_or_skip!();
    let proxy = SilentProxy::start(&redis.url()).await;
    let server = TestServer::always(Reply::status(200)).await;
    let sync = share_breakers(&proxy.url(), "silent-again").unwrap();
    wait_for("the subscription", || sync.is_connected()).await;
    let replica = caller(&server.url(), sync.clone());
    replica.execute(Call::get("/x")).await.unwrap();
    // Redis hangs: the subscription and every new connection go silent.
    proxy
        .dead_from_start
        .store(true, std::sync::atomic::Ordering::SeqCst);
    proxy.silence_existing();
    let started = Instant::now();
    while sync.is_connected() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the ping never failed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Redis answers again, on new connections: the subscriber gives up the silent one it was
    // subscribing on, subscribes anew, and another replica's open reaches this one.
    proxy
        .dead_from_start
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let before = proxy.accepted();
    opened_by_another_replica(
        &redis.url(),
        "silent-again",
        &server.url(),
        &replica,
        || {
            format!(
                "no transition since Redis answered again ({} connections made since)",
                proxy.accepted() - before
            )
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_redis_under_load_settles_on_one_connection() {
    let redis = redis_or_skip!();
    let proxy = SilentProxy::start(&redis.url()).await;
    let store = std::sync::Arc::new(
        RedisNonceStore::new(&proxy.url())
            .unwrap()
            .namespace("slow-load")
            .timeout(Duration::from_millis(400)),
    );
    assert!(insert(&store, 0).await.unwrap());
    // One reply slower than the timeout drops the connection, as it should.
    proxy.delay(600);
    assert!(insert(&store, 1).await.is_err());
    proxy.delay(250);
    tokio::time::sleep(Duration::from_millis(700)).await;
    // Checks every 10 ms for 5 s, each answered in 250 ms: those that wait while the new
    // connection is made do not drop it, and after a moment no check is refused.
    let started = Instant::now();
    let mut checks = Vec::new();
    for i in 0..500u64 {
        let store = store.clone();
        checks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10 * i)).await;
            let at = started.elapsed();
            (at, insert(&store, 100 + i).await.is_ok())
        }));
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let connections = proxy.accepted();
    let mut late_refusals = 0;
    for check in checks {
        let (at, ok) = check.await.unwrap();
        late_refusals += u32::from(at > Duration::from_millis(2500) && !ok);
    }
    assert_eq!(
        (proxy.accepted() - connections, late_refusals),
        (0, 0),
        "new connections and refusals in the last 2.5 s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_redis_is_subscribed_to() {
    // Each reply in 600 ms: every command is within the timeout, connecting and subscribing
    // together are not.
    let redis = redis_or_skip!();
    let proxy = SilentProxy::start(&redis.url()).await;
    proxy.delay(600);
    let sync = share_breakers(&proxy.url(), "slow-subscribe").unwrap();
    let started = Instant::now();
    while !sync.is_connected() {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "never subscribed ({} connections made)",
            proxy.accepted()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_redis_answered_for_is_not_let_through_locally_when_only_its_get_is_slow() {
    // Redis answers a replay's `SET NX` with nil: the nonce is recorded, by another replica.
    // The `GET` after it (which tells a check its own earlier write) goes unanswered. That is
    // no outage for this replica's memory to stand in for: under LocalOnly, that memory has
    // never seen the nonce, and would accept the replay.
    let redis = redis_or_skip!();
    let (proxied, stall) = command_proxy(&redis.url(), "GET", OnCommand::Hold).await;
    let a = replica(RedisNonceStore::new(&redis.url()).unwrap().namespace("get"));
    let b = replica(
        RedisNonceStore::new(&proxied)
            .unwrap()
            .namespace("get")
            .when_unavailable(WhenUnavailable::LocalOnly)
            .timeout(Duration::from_millis(300)),
    );
    let requests = genuine(2).await;
    // b's connection is made, and answers.
    check(&b, &requests[1]).await.unwrap();
    check(&a, &requests[0]).await.unwrap();
    stall.store(true, SeqCst);
    let replay = check(&b, &requests[0]).await;
    assert!(
        matches!(&replay, Err(VerifyError::NonceStore(e)) if e.to_string().contains("did not tell by whom")),
        "{replay:?}"
    );
}

#[tokio::test]
async fn with_noeviction_a_full_redis_refuses_requests_rather_than_forget_nonces() {
    // Redis evicts keys with a TTL under memory pressure (the `volatile-*` and `allkeys-*`
    // policies), and every nonce key has one: a nonce evicted inside its window lets its
    // request be replayed. Under `noeviction`, as the module docs ask, a full Redis refuses
    // the write instead, and the store refuses the request: a new one as the store's error,
    // and a replay of a nonce Redis holds as a replay.
    let redis = redis_or_skip!();
    let url = redis.url();
    let a = replica(RedisNonceStore::new(&url).unwrap().namespace("full"));
    let b = replica(RedisNonceStore::new(&url).unwrap().namespace("full"));
    let requests = genuine(2).await;
    check(&a, &requests[0]).await.unwrap();
    fill(&url).await;
    let replay = check(&b, &requests[0]).await;
    assert!(matches!(replay, Err(VerifyError::Replayed)), "{replay:?}");
    let refused = check(&b, &requests[1]).await;
    assert!(
        matches!(&refused, Err(VerifyError::NonceStore(e)) if e.to_string().contains("OOM")),
        "{refused:?}"
    );
}

/// Redis pub/sub ignores the database number: two deployments kept apart by database
/// (`/1` and `/2`) on one Redis, with one namespace, must not share breaker transitions, as
/// their nonces are not shared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breakers_on_two_databases_of_one_redis_are_not_linked() {
    let redis = redis_or_skip!();
    let (server, _failing) = failing_until_told().await;
    let db = |n: u8| format!("{}{n}", redis.url());
    let staging = share_breakers(&db(1), "billing").unwrap();
    let prod = share_breakers(&db(2), "billing").unwrap();
    wait_for("both to subscribe", || {
        staging.is_connected() && prod.is_connected()
    })
    .await;
    let staging = caller(&server.url(), staging);
    let prod = caller(&server.url(), prod);
    prod.execute(Call::get("/x")).await.unwrap_err();
    for _ in 0..3 {
        staging.execute(Call::get("/x")).await.unwrap_err();
    }
    assert_eq!(staging.circuit_state(), Some(CircuitState::Open));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        prod.circuit_state(),
        Some(CircuitState::Closed),
        "staging's open reached prod's breaker through another database"
    );
}

/// Counts the messages published on `channel` of the Redis at `url`, from now on.
async fn count_messages(url: &str, channel: &str) -> Arc<std::sync::atomic::AtomicUsize> {
    let address = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let mut stream = tokio::io::BufReader::new(stream);
    let command = format!(
        "*2\r\n$9\r\nSUBSCRIBE\r\n${}\r\n{channel}\r\n",
        channel.len()
    );
    stream
        .get_mut()
        .write_all(command.as_bytes())
        .await
        .unwrap();
    // The subscription's confirmation: `*3`, `$9`, `subscribe`, `$n`, channel, `:1`.
    let mut line = String::new();
    for _ in 0..6 {
        line.clear();
        stream.read_line(&mut line).await.unwrap();
    }
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        let mut line = String::new();
        loop {
            line.clear();
            match stream.read_line(&mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) if line.trim_end() == "message" => {
                    counted.fetch_add(1, SeqCst);
                }
                Ok(_) => {}
            }
        }
    });
    count
}

/// While Redis does not answer, a replica's transitions wait to be published. Those a later
/// transition of the same target has overtaken are not worth sending: once Redis answers, the
/// others hear each target's latest state, not a backlog of its past opens and closes (which
/// would flap their breakers, and which grows without bound while Redis hangs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transitions_held_up_by_a_silent_redis_are_not_published_as_a_backlog() {
    let redis = redis_or_skip!();
    let proxy = SilentProxy::start(&redis.url()).await;
    let (server, failing) = failing_until_told().await;
    let sync = share_breakers(&proxy.url(), "backlog").unwrap();
    wait_for("the replica to subscribe", || sync.is_connected()).await;
    let replica = Executor::builder()
        .base_url(server.url())
        .service_id("billing")
        .secret(SECRET)
        .retry(RetryConfig::none())
        .breaker(
            BreakerConfig::default()
                .failure_threshold(1)
                .open_for(Duration::from_millis(20)),
        )
        .breaker_sync(sync)
        .build()
        .unwrap();
    // One transition through a healthy Redis: the publisher has its connection.
    let heard = count_messages(&redis.url(), "backlog:breaker").await;
    replica.execute(Call::get("/x")).await.unwrap_err();
    wait_for("the open to be published", || heard.load(SeqCst) == 1).await;

    // Redis goes silent; the target flaps, forty transitions.
    proxy.dead_from_start.store(true, SeqCst);
    proxy.silence_existing();
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(25)).await;
        failing.store(false, SeqCst);
        replica.execute(Call::get("/x")).await.expect("the probe");
        failing.store(true, SeqCst);
        replica.execute(Call::get("/x")).await.unwrap_err();
    }
    assert_eq!(replica.circuit_state(), Some(CircuitState::Open));
    // Redis answers again.
    proxy.dead_from_start.store(false, SeqCst);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = heard.load(SeqCst) - 1;
    assert!(
        after <= 2,
        "{after} transitions of one target published after the outage"
    );
}

/// A caller whose breaker opens after three failures and stays open a minute: long enough for
/// an open made during an outage to be still on when Redis is back.
fn slow_closing_caller(url: &str, sync: comms::BreakerSync) -> Executor {
    caller_open_for(url, sync, Duration::from_secs(60))
}

/// Waits up to 5 s for Redis to answer `args` with `expected`.
async fn replies(url: &str, args: &[&str], expected: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reply = redis_command(url, args).await;
        if reply == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{args:?}: {reply}, not {expected}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits up to `limit` for `replica`'s breaker to be open.
async fn opens_within(replica: &Executor, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while replica.circuit_state() != Some(CircuitState::Open) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    replica.circuit_state() == Some(CircuitState::Open)
}

/// A breaker that opens while Redis is stopped is heard by the other replica once Redis is
/// back (restarted empty), whichever of the two comes first: the opening replica publishing it
/// again, or the other subscribing again (it then reads the targets open now).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breaker_opened_while_redis_was_down_is_heard_once_redis_is_back() {
    let mut redis = redis_or_skip!();
    let server = TestServer::always(Reply::status(503)).await;
    let (sync_a, sync_b) = two_replicas(&redis.url(), "lost-open").await;
    let a = slow_closing_caller(&server.url(), sync_a.clone());
    let b = slow_closing_caller(&server.url(), sync_b.clone());
    // b has a breaker for the target (one failure, below the threshold).
    assert!(b.execute(Call::get("/x")).await.is_err());

    redis.kill();
    wait_for("the subscriptions to drop", || {
        !sync_a.is_connected() && !sync_b.is_connected()
    })
    .await;
    for _ in 0..3 {
        assert!(a.execute(Call::get("/x")).await.is_err());
    }
    assert_eq!(a.circuit_state(), Some(CircuitState::Open));
    // The outage outlasts the publisher's first attempts.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(b.circuit_state(), Some(CircuitState::Closed));

    redis.restart().await;
    assert!(
        opens_within(&b, Duration::from_secs(10)).await,
        "a's open, made while Redis was down, never reached b once Redis was back"
    );
    assert_eq!(a.circuit_state(), Some(CircuitState::Open));
}

/// The same with a Redis that does not answer for a while (`CLIENT PAUSE`) rather than one
/// that is down: the open published into the pause times out, and is published again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breaker_opened_while_redis_was_paused_is_heard_once_redis_answers() {
    let redis = redis_or_skip!();
    let server = TestServer::always(Reply::status(503)).await;
    let (sync_a, sync_b) = two_replicas(&redis.url(), "paused-open").await;
    let a = slow_closing_caller(&server.url(), sync_a.clone());
    let b = slow_closing_caller(&server.url(), sync_b.clone());
    assert!(b.execute(Call::get("/x")).await.is_err());
    // The publisher's connection is made (one transition through a healthy Redis).
    let other = TestServer::always(Reply::status(503)).await;
    let warm = slow_closing_caller(&other.url(), sync_a.clone());
    for _ in 0..3 {
        assert!(warm.execute(Call::get("/x")).await.is_err());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    assert_eq!(
        redis_command(&redis.url(), &["CLIENT", "PAUSE", "3000", "ALL"]).await,
        "+OK"
    );
    for _ in 0..3 {
        assert!(a.execute(Call::get("/x")).await.is_err());
    }
    assert_eq!(a.circuit_state(), Some(CircuitState::Open));
    assert!(
        opens_within(&b, Duration::from_secs(10)).await,
        "a's open, made while Redis was paused, never reached b once Redis answered"
    );
}

/// A replica that subscribes after another's breaker opened (it started later, or its
/// subscription was down) reads the open; once the breaker closed, a replica joining reads
/// nothing open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_subscribing_after_an_open_reads_it_and_not_once_it_closed() {
    let redis = redis_or_skip!();
    let (server, failing) = failing_until_told().await;
    let replica = |sync| caller_open_for(&server.url(), sync, Duration::from_secs(3));
    let sync_a = share_breakers(&redis.url(), "late-join").unwrap();
    wait_for("a to subscribe", || sync_a.is_connected()).await;
    let a = replica(sync_a.clone());
    for _ in 0..3 {
        assert!(a.execute(Call::get("/x")).await.is_err());
    }
    assert_eq!(a.circuit_state(), Some(CircuitState::Open));
    let opened = Instant::now();
    let open = "late-join:breaker:open";
    replies(&redis.url(), &["HLEN", open], ":1").await;

    // b starts now, and makes its first call to the target after subscribing.
    let sync_b = share_breakers(&redis.url(), "late-join").unwrap();
    wait_for("b to subscribe", || sync_b.is_connected()).await;
    let b = replica(sync_b.clone());
    failing.store(false, SeqCst);
    let refused = b.execute(Call::get("/x")).await;
    assert!(
        opened.elapsed() >= Duration::from_secs(3)
            || refused.as_ref().is_err_and(Error::is_circuit_open),
        "b called a target another replica had opened: {refused:?}"
    );

    // The open period ends, a's probe succeeds and closes it: the open is removed.
    tokio::time::sleep(Duration::from_secs(3).saturating_sub(opened.elapsed())).await;
    a.execute(Call::get("/x")).await.unwrap();
    assert_eq!(a.circuit_state(), Some(CircuitState::Closed));
    replies(&redis.url(), &["HLEN", open], ":0").await;
    let sync_c = share_breakers(&redis.url(), "late-join").unwrap();
    wait_for("c to subscribe", || sync_c.is_connected()).await;
    let c = replica(sync_c.clone());
    c.execute(Call::get("/x")).await.unwrap();
}

/// A full Redis (`maxmemory` reached, `noeviction`) is up and holds every nonce; it only
/// refuses writes. A replay of a request another replica accepted is refused, under
/// `LocalOnly` too, whose memory (which never saw the nonce) decides only for a nonce Redis
/// does not hold; a new one is then checked by that memory.
#[tokio::test]
async fn a_replay_recorded_in_a_full_redis_is_refused_under_local_only() {
    let redis = redis_or_skip!();
    let url = redis.url();
    let requests = genuine(2).await;
    let a = replica(RedisNonceStore::new(&url).unwrap().namespace("full-local"));
    let b = replica(
        RedisNonceStore::new(&url)
            .unwrap()
            .namespace("full-local")
            .when_unavailable(WhenUnavailable::LocalOnly),
    );
    check(&a, &requests[0]).await.expect("accepted once, at a");
    fill(&url).await;
    let replay = check(&b, &requests[0]).await;
    assert!(
        matches!(replay, Err(VerifyError::Replayed)),
        "a replay of a nonce Redis holds, at another replica while Redis was full: {replay:?}"
    );
    // A nonce Redis does not hold, and cannot record: b's memory decides, once.
    check(&b, &requests[1])
        .await
        .expect("a new request, checked locally");
    assert!(matches!(
        check(&b, &requests[1]).await,
        Err(VerifyError::Replayed)
    ));
}

/// A full Redis (`noeviction`, as the nonces ask) refuses writes but still carries pub/sub: a
/// transition is published though the hash of opens cannot be written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_redis_still_carries_breaker_transitions() {
    let redis = redis_or_skip!();
    let url = redis.url();
    let server = TestServer::always(Reply::status(503)).await;
    let (sync_a, sync_b) = two_replicas(&url, "full-publish").await;
    let a = slow_closing_caller(&server.url(), sync_a.clone());
    let b = slow_closing_caller(&server.url(), sync_b.clone());
    assert!(b.execute(Call::get("/x")).await.is_err());
    fill(&url).await;
    assert!(
        redis_command(&url, &["HSET", "probe", "f", "v"])
            .await
            .starts_with("-OOM")
    );
    for _ in 0..3 {
        assert!(a.execute(Call::get("/x")).await.is_err());
    }
    assert_eq!(a.circuit_state(), Some(CircuitState::Open));
    assert!(
        opens_within(&b, Duration::from_secs(5)).await,
        "a's open never reached b through a full Redis"
    );
}

// `Idempotency-Key` answers shared by replicas through Redis.
#[path = "fleet/idempotency.rs"]
mod idempotency;

/// A TCP proxy that sends each new connection to the address it is told last: a name or a
/// virtual address that a failover moves to the new primary. Connections made before a switch
/// stay where they were, as with DNS.
#[derive(Clone)]
struct SwitchProxy {
    port: u16,
    target: Arc<std::sync::Mutex<String>>,
}

impl SwitchProxy {
    async fn start(redis_url: &str) -> SwitchProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = SwitchProxy {
            port: listener.local_addr().unwrap().port(),
            target: Arc::new(std::sync::Mutex::new(String::new())),
        };
        proxy.switch_to(redis_url);
        let target = Arc::clone(&proxy.target);
        tokio::spawn(async move {
            loop {
                let (mut client, _) = listener.accept().await.unwrap();
                let address = target.lock().unwrap().clone();
                tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&address).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        proxy
    }

    fn switch_to(&self, redis_url: &str) {
        let address = redis_url
            .trim_start_matches("redis://")
            .trim_end_matches('/');
        *self.target.lock().unwrap() = address.to_owned();
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

/// A failover from `old` to `new`: `old` follows `new` as its replica (keeping its clients'
/// connections), and `proxy` sends new connections to `new`.
async fn fail_over(old: &RedisServer, new: &RedisServer, proxy: &SwitchProxy) {
    let new_port = new
        .url()
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    let reply = redis_command(&old.url(), &["REPLICAOF", "127.0.0.1", &new_port]).await;
    assert_eq!(reply, "+OK");
    proxy.switch_to(&new.url());
}

/// A failover that demotes the store's Redis to a replica leaves the store's connection open
/// (Redis keeps a demoted primary's clients), and every write on it is refused `READONLY`: the
/// store connects again, and reaches the primary its address now leads to, rather than refusing
/// every request until the process restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_failover_demotes_its_redis_the_nonce_store_follows_its_address_to_the_new_primary()
{
    let old = redis_or_skip!();
    let new = redis_or_skip!();
    let proxy = SwitchProxy::start(&old.url()).await;
    let store = RedisNonceStore::new(&proxy.url())
        .unwrap()
        .namespace("failover");
    assert!(insert(&store, 1).await.unwrap());

    fail_over(&old, &new, &proxy).await;

    let mut answers = Vec::new();
    for tag in 2..40 {
        let answer = insert(&store, tag).await;
        let accepted = matches!(answer, Ok(true));
        answers.push(answer.map_err(|e| e.to_string()));
        if accepted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        matches!(answers.last(), Some(Ok(true))),
        "the store never reached the new primary: {answers:?}"
    );
    assert!(
        answers.len() <= 2,
        "one refusal at most, on the connection to the demoted Redis: {answers:?}"
    );
}

/// A breaker channel whose Redis is demoted by a failover publishes to the new primary: its
/// connection, refused `READONLY` on a transition, connects again. (Its subscription may stay
/// where it is: a replica passes on what its primary publishes.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_failover_demotes_its_redis_breaker_transitions_reach_the_other_replicas_again() {
    let old = redis_or_skip!();
    let new = redis_or_skip!();
    let proxy = SwitchProxy::start(&old.url()).await;
    let (first, second) = two_replicas(&proxy.url(), "failover-breakers").await;

    fail_over(&old, &new, &proxy).await;

    let (server, _failing) = failing_until_told().await;
    let a = caller(&server.url(), first);
    let b = caller(&server.url(), second);
    // Each open is published once the first replica's connections have moved: the first
    // transition's write is refused READONLY, and the ones after it go to the new primary.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for _ in 0..3 {
            let _ = a.execute(Call::get("/x")).await;
        }
        if b.circuit_state() == Some(CircuitState::Open) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the second replica never heard of the first's open"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The open is kept on the new primary, for the replicas that subscribe later; on the
    // demoted Redis the write was refused.
    wait_for_redis("the open kept on the new primary", || async {
        let target = server.url();
        let kept = ["HEXISTS", "failover-breakers:breaker:open", &target];
        redis_command(&new.url(), &kept).await == ":1"
    })
    .await;
}

/// Waits until `done` is true, asking every 50 ms, for at most 10 s.
async fn wait_for_redis<F: std::future::Future<Output = bool>>(
    what: &str,
    mut done: impl FnMut() -> F,
) {
    for _ in 0..200 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// The hash of opens keeps a field per target until the target's close is published: one whose
/// open is long over, and that is never called again (a host retired), is deleted by the next
/// replica that reads the hash, where it would stay for ever; an open still running, or just
/// over, stays, and the replica applies it. A field that is not a message, or not even UTF-8
/// (something else wrote it), is deleted too, and hides nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opens_long_over_are_deleted_from_redis_by_the_replica_that_reads_them() {
    let (url, _own) = shared_redis_or_skip!();
    let channel = format!("stale-opens-{}", fresh_nonce(1));
    let key = format!("{channel}:breaker:open");
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let entries = [
        ("http://retired:1", now - 3_600_000, false),
        ("http://just-over:1", now - 10_000, true),
        ("http://open:1", now + 600_000, true),
    ];
    for (target, until, _) in entries {
        let message = format!("0123456789abcdef open {until} {target}");
        assert_eq!(
            redis_command(&url, &["HSET", &key, target, &message]).await,
            ":1"
        );
    }
    assert_eq!(
        redis_command(&url, &["HSET", &key, "http://garbled:1", "not a message"]).await,
        ":1"
    );
    let unreadable: [&[u8]; 4] = [b"HSET", key.as_bytes(), b"http://junk:1", b"\xff\xfe junk"];
    assert_eq!(redis_bytes_command(&url, &unreadable).await, ":1");

    let sync = share_breakers(&url, &channel).unwrap();
    wait_for("the replica to subscribe", || sync.is_connected()).await;
    wait_for_redis("the stale fields deleted", || async {
        redis_command(&url, &["HLEN", &key]).await == ":2"
    })
    .await;
    for (target, _, kept) in entries {
        let exists = redis_command(&url, &["HEXISTS", &key, target]).await;
        assert_eq!(exists == ":1", kept, "{target}: {exists}");
    }
    // The open still running was applied: a call to its target is refused, unsent.
    let refused = caller("http://open:1", sync.clone())
        .execute(Call::get("/x"))
        .await;
    assert!(
        refused.as_ref().is_err_and(Error::is_circuit_open),
        "{refused:?}"
    );
    redis_command(&url, &["DEL", &key]).await;
}

/// A zero command timeout, which no Redis could answer within, is not taken: the store keeps
/// its timeout, says so at WARN, and answers.
#[tokio::test]
async fn a_zero_timeout_is_not_taken() {
    let (url, _own) = shared_redis_or_skip!();
    let (logs, _guard) = comms_tests::record_logs(tracing::Level::WARN);
    let store = RedisNonceStore::new(&url)
        .unwrap()
        .namespace("zero-timeout")
        .timeout(Duration::ZERO);
    logs.line(
        "warning about the zero timeout",
        &["WARN", "RedisNonceStore::timeout(0) ignored", "kept=1s"],
    );
    assert!(fresh_in(&store, &fresh_nonce(1)).await);
}
