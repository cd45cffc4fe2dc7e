//! The circuit breaker against real servers: it opens, fails fast without touching the
//! network, admits exactly the configured probes under concurrency, and closes or reopens.

use std::time::{Duration, Instant};

use comms::{BreakerConfig, Call, Error, Executor, RetryConfig};
use comms_tests::{Reply, TestServer, spawn_calls};

fn exec(url: &str, breaker: BreakerConfig) -> Executor {
    exec_retrying(url, RetryConfig::none(), breaker)
}

fn exec_retrying(url: &str, retry: RetryConfig, breaker: BreakerConfig) -> Executor {
    builder(url, breaker).retry(retry).build().unwrap()
}

/// A builder of the executors these tests use: no retries, `breaker`, the rest to set.
fn builder(url: &str, breaker: BreakerConfig) -> comms::ExecutorBuilder {
    Executor::builder()
        .base_url(url)
        .service_id("tests")
        .secret("breaker-secret")
        .retry(RetryConfig::none())
        .breaker(breaker)
}

fn breaker(threshold: u32, open_for_ms: u64) -> BreakerConfig {
    BreakerConfig::default()
        .failure_threshold(threshold)
        .open_for(Duration::from_millis(open_for_ms))
}

#[tokio::test]
async fn opens_after_the_threshold_and_fails_fast_without_the_network() {
    let server = TestServer::always(Reply::status(503)).await;
    let e = exec(&server.url(), breaker(3, 60_000));
    for _ in 0..3 {
        assert!(matches!(
            e.execute(Call::get("/x")).await,
            Err(Error::Server(_))
        ));
    }
    assert_eq!(server.count(), 3);
    for _ in 0..100 {
        let err = e.execute(Call::get("/x")).await.unwrap_err();
        match err {
            Error::CircuitOpen {
                retry_in,
                ref authority,
            } => {
                assert!(retry_in <= Duration::from_secs(60) && retry_in > Duration::from_secs(50));
                assert_eq!(authority, &format!("http://{}", server.addr()));
            }
            other => panic!("expected CircuitOpen, got {other}"),
        }
    }
    assert_eq!(server.count(), 3, "an open breaker sends nothing");
}

#[tokio::test]
async fn an_open_period_longer_than_nanoseconds_hold_stays_open() {
    // 584 years and a nanosecond: one more nanosecond than a u64 holds (whose low 64 bits are
    // none), meant as "until told otherwise".
    let server = TestServer::always(Reply::status(503)).await;
    let e = exec(
        &server.url(),
        BreakerConfig::default()
            .failure_threshold(1)
            .open_for(Duration::from_nanos(u64::MAX) + Duration::from_nanos(1)),
    );
    assert!(matches!(
        e.execute(Call::get("/x")).await,
        Err(Error::Server(_))
    ));
    tokio::time::sleep(Duration::from_millis(10)).await;
    let err = e.execute(Call::get("/x")).await.unwrap_err();
    assert!(matches!(err, Error::CircuitOpen { .. }), "{err}");
    assert_eq!(server.count(), 1);
}

#[tokio::test]
async fn a_url_too_long_to_send_is_an_encode_error_and_no_failure_of_the_service() {
    let server = TestServer::always(Reply::status(204)).await;
    let e = exec_retrying(&server.url(), comms_tests::fast_retry(), breaker(1, 60_000));
    let long = "x".repeat(70_000);
    for call in [
        Call::get("/search").query("q", &long),
        Call::post(format!("/{long}")),
    ] {
        let err = e.execute(call).await.unwrap_err();
        assert!(matches!(err, Error::Encode { .. }), "{err}");
        assert!(
            err.to_string().contains("send large values in a body"),
            "{err}"
        );
        assert!(!err.is_retryable());
    }
    assert_eq!(server.count(), 0);
    // The healthy service is still reachable: the breaker counted nothing.
    e.execute(Call::get("/search").query("q", "ok"))
        .await
        .unwrap();
    assert_eq!(server.count(), 1);
}

#[tokio::test]
async fn client_errors_and_429_do_not_trip_it() {
    let server = TestServer::start(|r, _| Reply::status(r.uri.path()[1..].parse().unwrap())).await;
    let e = exec(&server.url(), breaker(2, 60_000));
    for status in [400, 404, 409, 422, 429, 501, 400, 429] {
        let err = e
            .execute(Call::get(format!("/{status}")))
            .await
            .unwrap_err();
        assert_eq!(err.status().map(|s| s.as_u16()), Some(status));
    }
    // Failures must be consecutive: a success in between resets the count.
    assert!(e.execute(Call::get("/500")).await.is_err());
    assert!(e.execute(Call::get("/200")).await.is_ok());
    assert!(e.execute(Call::get("/500")).await.is_err());
    assert!(e.execute(Call::get("/200")).await.is_ok());
    assert_eq!(server.count(), 12);
}

#[tokio::test]
async fn half_open_admits_exactly_one_probe_among_hundreds_then_closes() {
    let server = TestServer::start(|r, _| {
        if r.uri.path() == "/fail" {
            Reply::status(502)
        } else {
            Reply::status(200).delay(Duration::from_millis(300))
        }
    })
    .await;
    let e = exec(&server.url(), breaker(1, 200));
    assert!(e.execute(Call::get("/fail")).await.is_err());
    assert!(
        e.execute(Call::get("/ok"))
            .await
            .unwrap_err()
            .is_circuit_open()
    );
    tokio::time::sleep(Duration::from_millis(250)).await;

    let calls = spawn_calls(&e, 300, || Call::get("/ok")).await;
    assert_eq!((calls.ok(), calls.failed_fast()), (1, 299));
    assert_eq!(server.count(), 2, "one failure, one probe");
    // The probe succeeded: closed again, traffic flows.
    for _ in 0..5 {
        assert!(e.execute(Call::get("/ok")).await.is_ok());
    }
    assert_eq!(server.count(), 7);
}

#[tokio::test]
async fn configured_probe_count_is_exact() {
    let server = TestServer::start(|r, _| {
        if r.uri.path() == "/fail" {
            Reply::status(500)
        } else {
            Reply::status(503).delay(Duration::from_millis(200))
        }
    })
    .await;
    let e = exec(&server.url(), breaker(1, 100).half_open_probes(3));
    assert!(e.execute(Call::get("/fail")).await.is_err());
    tokio::time::sleep(Duration::from_millis(150)).await;
    let calls = spawn_calls(&e, 100, || Call::get("/probe")).await;
    assert_eq!(calls.ok(), 0, "the probes meet a 503");
    assert_eq!(calls.reached(), 3);
    assert_eq!(server.count(), 4);
}

#[tokio::test]
async fn a_failed_probe_reopens_it() {
    let server = TestServer::always(Reply::status(504)).await;
    let e = exec(&server.url(), breaker(2, 150));
    for _ in 0..2 {
        assert!(e.execute(Call::get("/x")).await.is_err());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        matches!(e.execute(Call::get("/x")).await, Err(Error::Server(_))),
        "the probe"
    );
    assert_eq!(server.count(), 3);
    let err = e.execute(Call::get("/x")).await.unwrap_err();
    assert!(err.is_circuit_open(), "reopened: {err}");
    assert_eq!(server.count(), 3);
}

#[tokio::test]
async fn clients_of_one_authority_share_a_breaker() {
    let server = TestServer::always(Reply::status(503)).await;
    let other = TestServer::always(Reply::status(200)).await;
    let config = breaker(2, 60_000);
    let a = exec(&server.url(), config.clone());
    let b = exec(&format!("{}/other/prefix", server.url()), config.clone());
    let c = exec(&other.url(), config);
    assert!(a.execute(Call::get("/x")).await.is_err());
    assert!(a.execute(Call::get("/x")).await.is_err());
    let err = b.execute(Call::get("/y")).await.unwrap_err();
    assert!(err.is_circuit_open(), "b learned from a: {err}");
    assert_eq!(server.count(), 2);
    assert!(
        c.execute(Call::get("/z")).await.is_ok(),
        "another authority is unaffected"
    );
}

#[tokio::test]
async fn a_stopped_server_trips_it_and_a_restarted_one_closes_it() {
    let mut server = TestServer::always(Reply::status(200)).await;
    let e = exec(&server.url(), breaker(3, 300));
    assert!(e.execute(Call::get("/x")).await.is_ok());
    server.stop();
    for _ in 0..3 {
        let err = e.execute(Call::get("/x")).await.unwrap_err();
        assert!(matches!(err, Error::Transport { .. }), "{err}");
    }
    let started = Instant::now();
    assert!(
        e.execute(Call::get("/x"))
            .await
            .unwrap_err()
            .is_circuit_open()
    );
    assert!(started.elapsed() < Duration::from_millis(200), "fail fast");
    server.restart().await;
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(
        e.execute(Call::get("/x")).await.is_ok(),
        "the probe closes it"
    );
    assert!(e.execute(Call::get("/x")).await.is_ok());
    assert_eq!(server.count(), 3);
}

#[tokio::test]
async fn retries_stop_when_the_breaker_opens_mid_call() {
    let server = TestServer::always(Reply::status(503)).await;
    let e = exec_retrying(
        &server.url(),
        RetryConfig::default()
            .max_retries(10)
            .base_delay(Duration::from_millis(1))
            .no_budget(),
        breaker(3, 60_000),
    );
    let err = e.execute(Call::get("/x")).await.unwrap_err();
    assert!(
        matches!(err, Error::Server(_)),
        "the last real error is returned: {err}"
    );
    assert_eq!(
        server.count(),
        3,
        "the breaker cut the retries at its threshold"
    );
}

/// A retry that the open breaker would refuse when its wait ends is not waited for: the call
/// ends at once with the attempt's error.
#[tokio::test]
async fn a_retry_the_breaker_would_refuse_is_not_waited_for() {
    let server = TestServer::always(Reply::status(503).header("retry-after", "2")).await;
    let e = exec_retrying(
        &server.url(),
        RetryConfig::default().no_budget(),
        breaker(1, 60_000),
    );
    let started = Instant::now();
    let err = e.execute(Call::get("/x")).await.unwrap_err();
    assert!(matches!(err, Error::Server(_)), "{err}");
    assert_eq!(server.count(), 1);
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "waited {:?} for a retry the breaker would refuse",
        started.elapsed()
    );
}

/// When the breaker's open period ends before the wait does, the retry goes ahead as its probe
/// and closes it.
#[tokio::test]
async fn a_retry_after_the_open_period_is_the_probe() {
    let server = TestServer::start(|_, n| {
        if n == 0 {
            Reply::status(503).header("retry-after", "1")
        } else {
            Reply::status(200)
        }
    })
    .await;
    let e = exec_retrying(
        &server.url(),
        RetryConfig::default().no_budget(),
        breaker(1, 200),
    );
    assert!(e.execute(Call::get("/x")).await.is_ok());
    assert_eq!(server.count(), 2);
    assert_eq!(e.circuit_state(), Some(comms::CircuitState::Closed));
}

/// A 503 whose body is over the response limit (a proxy's error page, say) is still a 503: a
/// failure for the breaker, retried, and an `Error::Server`, not a decoding error.
#[tokio::test]
async fn an_error_status_with_a_body_over_the_limit_counts_as_that_status() {
    let page = "x".repeat(2048);
    let server = TestServer::always(Reply::status(503).body(page)).await;
    let e = builder(&server.url(), breaker(2, 60_000))
        .retry(comms_tests::fast_retry().no_budget())
        .max_response_bytes(1024)
        .build()
        .unwrap();
    let err = e.execute(Call::get("/x")).await.unwrap_err();
    assert!(
        matches!(&err, Error::Server(h) if h.status() == 503),
        "{err}"
    );
    // Retried once, then the second failure opened the breaker, which refuses the next retry.
    assert_eq!(server.count(), 2);
    assert_eq!(e.circuit_state(), Some(comms::CircuitState::Open));
}

/// A retry arriving while the breaker is half-open with its probe taken would be refused, as
/// a new call is: the call ends at once with its error rather than after the wait.
#[tokio::test]
async fn a_retry_the_half_open_breaker_would_refuse_is_not_waited_for() {
    let server = TestServer::start(|r, _| match r.uri.path() {
        "/trip" => Reply::status(500),
        "/probe" => Reply::status(200).delay(Duration::from_secs(2)),
        _ => Reply::status(503)
            .header("retry-after", "1")
            .delay(Duration::from_millis(300)),
    })
    .await;
    let e = exec_retrying(
        &server.url(),
        RetryConfig::default().no_budget(),
        breaker(1, 100),
    );
    let started = Instant::now();
    // Admitted while the breaker is closed; its 503 arrives after the breaker has opened and
    // half-opened, its one probe taken.
    let slow = tokio::spawn({
        let e = e.clone();
        async move { e.execute(Call::get("/x")).await }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(e.execute(Call::get("/trip")).await.is_err());
    tokio::time::sleep(Duration::from_millis(130)).await;
    let probe = tokio::spawn({
        let e = e.clone();
        async move { e.execute(Call::get("/probe")).await }
    });
    let err = slow.await.unwrap().unwrap_err();
    assert!(matches!(err, Error::Server(_)), "{err}");
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "waited {:?} for a retry the half-open breaker would refuse",
        started.elapsed()
    );
    assert_eq!(e.circuit_state(), Some(comms::CircuitState::HalfOpen));
    probe.abort();
}

/// The server of the two tests below: its first request fails, opening a breaker whose
/// threshold is one; every later one hangs.
async fn failing_then_hanging() -> TestServer {
    TestServer::start(|_, i| match i {
        0 => Reply::status(503),
        _ => Reply::status(200).delay(Duration::from_secs(30)),
    })
    .await
}

/// A `failing_then_hanging` server and a client whose breaker (threshold one, open for a
/// second) its first answer opened, now half-open: the next call is the probe.
async fn half_open_before_a_hung_dependency() -> (TestServer, Executor) {
    let server = failing_then_hanging().await;
    let e = exec(&server.url(), breaker(1, 1000));
    assert!(matches!(
        e.execute(Call::get("/x")).await,
        Err(Error::Server(_))
    ));
    tokio::time::sleep(Duration::from_millis(1050)).await;
    (server, e)
}

#[tokio::test]
async fn a_sent_probe_its_caller_stops_waiting_for_reopens_it() {
    let (server, e) = half_open_before_a_hung_dependency().await;
    // Twenty callers in turn, each giving up after 200 ms: the first is the probe, sent to the
    // hung dependency; given up on, it is a failed probe, and the others fail fast. (Were it
    // given back, each caller in turn would be the probe.)
    let mut failed_fast = 0;
    for _ in 0..20 {
        match tokio::time::timeout(Duration::from_millis(200), e.execute(Call::get("/x"))).await {
            Err(_) => {}
            Ok(Err(err)) if err.is_circuit_open() => failed_fast += 1,
            Ok(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(failed_fast, 19);
    assert!(
        server.count() <= 2,
        "one probe at most reached the hung dependency"
    );
    assert_eq!(e.circuit_state(), Some(comms::CircuitState::Open));
}

/// A caller that stops waiting without polling the call again (a `select!` whose timer branch
/// wins, polled first) still waited for its probe: on a pooled connection to a hung dependency
/// nothing wakes the call, yet the probe is a failed one, and the callers after it fail fast.
#[tokio::test]
async fn a_probe_waited_for_in_a_select_and_dropped_unpolled_reopens_it() {
    let server = TestServer::start(|r, _| match r.uri.path() {
        "/warm" => Reply::status(200).delay(Duration::from_millis(100)),
        "/trip" => Reply::status(503),
        _ => Reply::status(200).delay(Duration::from_secs(30)),
    })
    .await;
    let e = exec(&server.url(), breaker(1, 1000));
    // Connections in the pool, so that a probe's request goes out on one at once.
    let warm = |_| {
        let e = e.clone();
        tokio::spawn(async move { e.execute(Call::get("/warm")).await.map(drop) })
    };
    for done in (0..4).map(warm).collect::<Vec<_>>() {
        done.await.unwrap().unwrap();
    }
    assert!(matches!(
        e.execute(Call::get("/trip")).await,
        Err(Error::Server(_))
    ));
    tokio::time::sleep(Duration::from_millis(1050)).await;
    let before = server.count();
    let mut failed_fast = 0;
    for _ in 0..5 {
        let call = e.execute(Call::get("/x"));
        tokio::pin!(call);
        tokio::select! {
            biased;
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            result = &mut call => match result {
                Err(err) if err.is_circuit_open() => failed_fast += 1,
                other => panic!("{other:?}"),
            },
        }
    }
    assert_eq!((failed_fast, server.count() - before), (4, 1));
    assert_eq!(e.circuit_state(), Some(comms::CircuitState::Open));
}

/// `try_join!` of two calls in the half-open state: the first is the probe, the second is
/// refused at once, and the join drops the probe in the poll that sent it. Nobody waited for
/// it: the breaker stays half-open rather than opening again, and the next call probes.
#[tokio::test]
async fn a_probe_dropped_in_the_poll_that_sent_it_gives_its_place_back() {
    let server = TestServer::start(|_, i| match i {
        0 => Reply::status(503),
        _ => Reply::status(200),
    })
    .await;
    let e = exec(&server.url(), breaker(1, 100));
    assert!(matches!(
        e.execute(Call::get("/x")).await,
        Err(Error::Server(_))
    ));
    tokio::time::sleep(Duration::from_millis(150)).await;
    // A poll that takes over a millisecond from sending to dropping (the thread preempted on a
    // loaded machine) has waited for its probe, which then fails it: such a round reopens the
    // breaker, and is tried again once it is half-open. A probe always failed never passes.
    let (mut kept, mut rounds) = (0, 0);
    while kept < 3 {
        rounds += 1;
        assert!(
            rounds <= 30,
            "the probe was taken for a failed one every time"
        );
        let both = tokio::try_join!(e.execute(Call::get("/a")), e.execute(Call::get("/b")));
        assert!(both.unwrap_err().is_circuit_open());
        match e.circuit_state() {
            Some(comms::CircuitState::HalfOpen) => kept += 1,
            _ => tokio::time::sleep(Duration::from_millis(150)).await,
        }
    }
    e.execute(Call::get("/c")).await.unwrap();
    assert_eq!(e.circuit_state(), Some(comms::CircuitState::Closed));
}

/// A probe whose call ended before sending (its header hook failed) gives its place back as the
/// call ends, not when its future is dropped.
#[tokio::test]
async fn a_probe_that_ended_unsent_gives_its_place_back_at_once() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let server = TestServer::start(|_, i| match i {
        0 => Reply::status(503),
        _ => Reply::status(200),
    })
    .await;
    let failing = Arc::new(AtomicBool::new(false));
    let hook_fails = failing.clone();
    let e = builder(&server.url(), breaker(1, 100))
        .header_hook(move || {
            let fail = hook_fails.load(Ordering::SeqCst);
            async move {
                match fail {
                    true => Err(Error::internal("token service down")),
                    false => Ok(comms::http::HeaderMap::new()),
                }
            }
        })
        .build()
        .unwrap();
    assert!(matches!(
        e.execute(Call::get("/x")).await,
        Err(Error::Server(_))
    ));
    tokio::time::sleep(Duration::from_millis(150)).await;
    failing.store(true, Ordering::SeqCst);
    let mut ended = Box::pin(e.execute(Call::get("/x")));
    assert!((&mut ended).await.is_err());
    failing.store(false, Ordering::SeqCst);
    // The ended future is still alive; the next call is the probe all the same.
    e.execute(Call::get("/x")).await.unwrap();
    assert_eq!(e.circuit_state(), Some(comms::CircuitState::Closed));
    drop(ended);
}

#[tokio::test]
async fn a_probe_dropped_before_it_is_sent_gives_its_place_back() {
    let server = failing_then_hanging().await;
    // A header hook that takes 200 ms: a caller giving up within it drops a probe unsent.
    let e = builder(&server.url(), breaker(1, 300))
        .header_hook(|| async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            Ok(comms::http::HeaderMap::new())
        })
        .build()
        .unwrap();
    let opened = tokio::time::timeout(Duration::from_secs(5), e.execute(Call::get("/x")));
    assert!(matches!(opened.await, Ok(Err(Error::Server(_)))));
    tokio::time::sleep(Duration::from_millis(350)).await;
    for _ in 0..3 {
        let call = tokio::time::timeout(Duration::from_millis(50), e.execute(Call::get("/x")));
        assert!(call.await.is_err(), "given up on in its hook");
    }
    assert_eq!(server.count(), 1, "no probe was sent");
    assert_eq!(e.circuit_state(), Some(comms::CircuitState::HalfOpen));
    // The place is free: the next caller is the probe, and it is sent.
    let call = tokio::time::timeout(Duration::from_millis(1200), e.execute(Call::get("/x")));
    assert!(call.await.is_err());
    assert_eq!(server.count(), 2);
}

/// Timeouts at the caller's deadline, shorter than the attempt timeout, say the caller was in a
/// hurry, not that the service failed: they open no breaker for the calls that have time. The
/// attempt timeout still does.
#[tokio::test]
async fn a_callers_deadline_cutting_attempts_short_does_not_open_it() {
    let server = TestServer::always(Reply::status(200).delay(Duration::from_millis(200))).await;
    let e = exec(&server.url(), breaker(3, 60_000));
    let hurried = e.with(comms::CallOptions::new().deadline(Duration::from_millis(50)));
    for _ in 0..5 {
        let err = hurried.execute(Call::get("/x")).await.unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
    }
    assert_eq!(e.circuit_state(), Some(comms::CircuitState::Closed));
    e.execute(Call::get("/x")).await.unwrap();

    // The same service behind an attempt timeout of 50 ms, with a longer deadline: the service
    // is too slow for what the client allows each attempt, and three such timeouts open it.
    let e = builder(&server.url(), breaker(3, 60_000))
        .timeout(Duration::from_millis(50))
        .deadline(Duration::from_secs(5))
        .build()
        .unwrap();
    for _ in 0..3 {
        let err = e.execute(Call::get("/y")).await.unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
    }
    assert_eq!(e.circuit_state(), Some(comms::CircuitState::Open));
}

/// A probe its caller's deadline cuts short says nothing of the dependency either: it gives
/// its place back, and a caller with time to wait is the probe that closes the breaker. (Were
/// it a failed probe, callers in a hurry would keep a recovered dependency's breaker open.)
#[tokio::test]
async fn a_probe_its_deadline_cuts_short_gives_its_place_back() {
    let server = TestServer::always(Reply::status(200).delay(Duration::from_millis(50))).await;
    let e = builder(&server.url(), breaker(1, 300))
        .timeout(Duration::from_millis(10))
        .build()
        .unwrap();
    // Slower than the 10 ms attempt timeout: it opens.
    assert!(e.execute(Call::get("/x")).await.is_err());
    assert_eq!(e.circuit_state(), Some(comms::CircuitState::Open));
    tokio::time::sleep(Duration::from_millis(350)).await;
    let patient = e.with(comms::CallOptions::new().timeout(Duration::from_secs(5)));
    let hurried = patient.with(comms::CallOptions::new().deadline(Duration::from_millis(5)));
    let err = hurried.execute(Call::get("/x")).await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert_eq!(e.circuit_state(), Some(comms::CircuitState::HalfOpen));
    patient.execute(Call::get("/x")).await.unwrap();
    assert_eq!(e.circuit_state(), Some(comms::CircuitState::Closed));
}

/// What decides is which limit was armed, not the clock when the call is polled: an attempt
/// timeout that a busy runtime reports late, after the deadline too has passed, still counts.
#[tokio::test(flavor = "current_thread")]
async fn an_attempt_timeout_noticed_after_the_deadline_still_counts() {
    let server = TestServer::always(Reply::status(200).delay(Duration::from_secs(2))).await;
    let e = builder(&server.url(), breaker(1, 60_000))
        .timeout(Duration::from_millis(100))
        .deadline(Duration::from_millis(150))
        .build()
        .unwrap();
    // The one thread is busy from 90 ms to 190 ms: the 100 ms timeout is seen at 190 ms.
    tokio::spawn(async {
        tokio::time::sleep(Duration::from_millis(90)).await;
        std::thread::sleep(Duration::from_millis(100));
    });
    let err = e.execute(Call::get("/x")).await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert_eq!(e.circuit_state(), Some(comms::CircuitState::Open));
}

/// A 504 that arrives once the deadline the request carried has run out is the hop behind
/// giving up with the deadline it inherited (`Comms-Deadline-Ms`): the caller's time running
/// out, as its own timer firing is, whichever of the two the runtime notices first. Here the
/// service answers 504 as the deadline it was told runs out, many times over, so that the
/// answer comes first in some of them.
#[tokio::test]
async fn a_504_answered_as_the_told_deadline_ran_out_is_the_callers_timeout() {
    // A service on its own thread that answers 504 when the deadline a request carries runs
    // out, at once without one.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
            let told = head
                .lines()
                .find_map(|line| line.strip_prefix("comms-deadline-ms: "))
                .map_or(0, |ms| ms.trim().parse().unwrap());
            std::thread::sleep(Duration::from_millis(told));
            let _ = stream.write_all(
                b"HTTP/1.1 504 Gateway Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            );
        }
    });
    let url = format!("http://{addr}");
    let e = builder(&url, breaker(1, 60_000))
        .deadline(Duration::from_millis(10))
        .build()
        .unwrap();
    for _ in 0..150 {
        let err = e.execute(Call::get("/x")).await.unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
        assert_eq!(e.circuit_state(), Some(comms::CircuitState::Closed));
    }

    // The same 504 with time left to wait is the service's failure.
    let patient = e.with(comms::CallOptions::new().deadline(Duration::MAX));
    let err = patient.execute(Call::get("/x")).await.unwrap_err();
    assert_eq!(
        err.status(),
        Some(http::StatusCode::GATEWAY_TIMEOUT),
        "{err}"
    );
    assert_eq!(e.circuit_state(), Some(comms::CircuitState::Open));
}

/// A timeout of the user's own reqwest client (`http_client` with `.timeout`), well before the
/// call's deadline, is the dependency hanging, not the caller's hurry: it counts.
#[tokio::test]
async fn a_timeout_of_the_users_reqwest_client_counts_whatever_the_deadline() {
    let server = TestServer::always(Reply::status(200).delay(Duration::from_secs(2))).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let e = builder(&server.url(), breaker(1, 60_000))
        .http_client(http)
        .timeout(Duration::from_secs(5))
        .deadline(Duration::from_secs(1))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = e.execute(Call::get("/x")).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert_eq!(e.circuit_state(), Some(comms::CircuitState::Open));
}

#[tokio::test]
async fn a_deadline_equal_to_the_attempt_timeout_still_counts_its_timeouts() {
    // One attempt of 100 ms, set as both: the deadline's clock starts as the call begins, a
    // moment before the attempt, but the attempt has its whole timeout, and a dependency
    // hanging past it is failing, not cut short by a caller in a hurry.
    let hung = || TestServer::always(Reply::status(200).delay(Duration::from_secs(5)));
    let server = hung().await;
    let e = builder(&server.url(), breaker(3, 60_000))
        .timeout(Duration::from_millis(100))
        .deadline(Duration::from_millis(100))
        .build()
        .unwrap();
    for _ in 0..3 {
        let err = e.execute(Call::get("/x")).await.unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
    }
    assert_eq!(server.count(), 3);
    assert_eq!(e.circuit_state(), Some(comms::CircuitState::Open));
    // The same through a per-call view.
    let server = hung().await;
    let e = exec(&server.url(), breaker(3, 60_000));
    let view = e.with(
        comms::CallOptions::new()
            .timeout(Duration::from_millis(100))
            .deadline(Duration::from_millis(100)),
    );
    for _ in 0..3 {
        let err = view.execute(Call::get("/x")).await.unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
    }
    assert_eq!(e.circuit_state(), Some(comms::CircuitState::Open));
}

/// A header hook that takes most of the attempt timeout leaves the request too little time to
/// say anything of the target: a healthy one, answering well within the attempt timeout, is not
/// counted as failing when the request the hook left a sliver of time to times out (as a hook
/// overrunning the timeout counts for nothing, the call ending unsent). A hook that is quick
/// leaves the attempt timeout to the request, and a hung target still trips the breaker.
#[tokio::test]
async fn a_slow_header_hook_leaving_the_request_a_sliver_does_not_open_it() {
    // Margins of hundreds of milliseconds either way, for a busy machine: the hook leaves the
    // request 350 ms, under half the attempt timeout, which the service's 700 ms outlasts,
    // and a quick hook's request 1 s.
    let healthy = TestServer::always(Reply::status(200).delay(Duration::from_millis(700))).await;
    let slow_hook = builder(&healthy.url(), breaker(2, 60_000))
        .timeout(Duration::from_millis(1000))
        .header_hook(|| async {
            tokio::time::sleep(Duration::from_millis(650)).await;
            Ok(comms::http::HeaderMap::new())
        })
        .build()
        .unwrap();
    for _ in 0..3 {
        let err = slow_hook.execute(Call::get("/x")).await.unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
    }
    assert_eq!(healthy.count(), 3, "each call reached the service");
    assert_eq!(slow_hook.circuit_state(), Some(comms::CircuitState::Closed));
    // The service is fine for a caller whose hook is quick.
    let quick = builder(&healthy.url(), breaker(2, 60_000))
        .timeout(Duration::from_millis(1000))
        .header_hook(|| async { Ok(comms::http::HeaderMap::new()) })
        .build()
        .unwrap();
    quick.execute(Call::get("/x")).await.unwrap();

    // A hung service still opens the breaker of a client whose hook takes a fifth of the
    // attempt timeout (a token fetched over the network), leaving the request most of it.
    let hung = TestServer::always(Reply::status(200).delay(Duration::from_secs(30))).await;
    let e = builder(&hung.url(), breaker(2, 60_000))
        .timeout(Duration::from_millis(1000))
        .header_hook(|| async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            Ok(comms::http::HeaderMap::new())
        })
        .build()
        .unwrap();
    for _ in 0..2 {
        let err = e.execute(Call::get("/x")).await.unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
    }
    assert_eq!(e.circuit_state(), Some(comms::CircuitState::Open));
}

/// A probe whose call is kept but no longer polled (a pinned call that lost a
/// `select!` and stays in scope while its caller goes on) holds its place only until its
/// attempt timeout, and a second's grace, have passed: then the half-open period starts over
/// and a fresh probe finds the recovered dependency. Until then the one probe holds, and the
/// old probe's late drop changes nothing.
#[tokio::test]
async fn a_probe_kept_but_no_longer_polled_gives_its_place_up_after_its_attempt_timeout() {
    let server = TestServer::start(|_, i| match i {
        0 => Reply::status(503),
        // Recovered, if slowish.
        _ => Reply::status(200).delay(Duration::from_millis(100)),
    })
    .await;
    let e = builder(&server.url(), breaker(1, 100))
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    assert!(matches!(
        e.execute(Call::get("/x")).await,
        Err(Error::Server(_))
    ));
    tokio::time::sleep(Duration::from_millis(150)).await;

    // The probe, raced against a 20 ms timer: the timer wins, and the call stays in scope
    // (boxed, so that the test can drop it at the end).
    let mut probe = Box::pin(e.execute(Call::get("/probe")));
    tokio::select! {
        biased;
        _ = &mut probe => panic!("the probe cannot be answered in 20 ms"),
        _ = tokio::time::sleep(Duration::from_millis(20)) => {}
    }
    let abandoned = Instant::now();
    // Within its attempt timeout, the probe out is the only one.
    match e.execute(Call::get("/other")).await {
        Err(Error::CircuitOpen { retry_in, .. }) => assert_eq!(retry_in, Duration::ZERO),
        other => panic!("a second probe was let through: {other:?}"),
    }
    assert_eq!(e.circuit_state(), Some(comms::CircuitState::HalfOpen));

    // Past its timeout and the grace, calls find the dependency again (in 5 s at most, with
    // room for a loaded machine).
    let recovered = loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        match e.execute(Call::get("/other")).await {
            Ok(_) => break abandoned.elapsed(),
            Err(err) if err.is_circuit_open() => {
                assert!(
                    abandoned.elapsed() < Duration::from_secs(5),
                    "still refused"
                );
            }
            Err(other) => panic!("{other}"),
        }
    };
    assert!(
        recovered >= Duration::from_millis(1_150),
        "the probe's place was taken before its timeout and grace: {recovered:?}"
    );
    assert_eq!(e.circuit_state(), Some(comms::CircuitState::Closed));
    // The abandoned probe's end belongs to the old half-open period: it changes nothing.
    drop(probe);
    assert_eq!(e.circuit_state(), Some(comms::CircuitState::Closed));
    assert!(e.execute(Call::get("/after")).await.is_ok());
}
