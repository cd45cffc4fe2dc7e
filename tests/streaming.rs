//! Streamed calls by hand (`Executor::execute_streaming`) against loopback servers: the body is
//! handed over as it arrives; retries, signing and the breaker work up to the head; a body
//! that breaks off is a typed error from the stream, never retried; the call's deadline bounds
//! the body and the attempt timeout does not; JSON lines arrive across any chunk boundaries.

use std::time::{Duration, Instant};

use bytes::Bytes;
use comms::verify::Verifier;
use comms::{BreakerConfig, ByteStream, Call, CircuitState, Error, Executor, RetryConfig};
use comms_tests::{Fault, FaultServer, Reply, TestServer, fast_retry, fed, paced, serve_stream};
use serde::Deserialize;

const SECRET: &str = "stream-secret";
/// How long a test waits for what must come at once, so that a broken stream fails the test
/// instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(5);

fn executor(url: &str, retry: RetryConfig, breaker: BreakerConfig) -> Executor {
    comms_tests::executor_with(url, "billing", SECRET, retry, breaker)
}

/// The body of a streamed call whose head is a success.
async fn open(exec: &Executor, call: Call) -> ByteStream {
    exec.execute_streaming(call).await.unwrap().into_stream()
}

async fn next(body: &mut ByteStream) -> Option<Result<Bytes, Error>> {
    tokio::time::timeout(PATIENCE, body.next_chunk())
        .await
        .expect("the stream answers within the test's patience")
}

/// Every chunk until the end or the first error.
async fn read_all(body: &mut ByteStream) -> (Vec<u8>, Option<Error>) {
    let mut all = Vec::new();
    while let Some(chunk) = next(body).await {
        match chunk {
            Ok(chunk) => all.extend_from_slice(&chunk),
            Err(e) => return (all, Some(e)),
        }
    }
    (all, None)
}

#[tokio::test]
async fn chunks_are_handed_over_as_the_server_sends_them() {
    let (feeder, body) = fed();
    let body = std::sync::Mutex::new(Some(body));
    let url = serve_stream(move || body.lock().unwrap().take().expect("one request")).await;
    let exec = executor(&url, RetryConfig::none(), BreakerConfig::disabled());

    let response = tokio::time::timeout(PATIENCE, exec.execute_streaming(Call::get("/stream")))
        .await
        .expect("the head arrives before any of the body")
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.method(), Some(&comms::http::Method::GET));
    assert!(response.url().unwrap().ends_with("/stream"));
    let mut body = response.into_stream();
    // Each chunk reaches the client before the server has the next one to send.
    for piece in ["first", "second", "third"] {
        feeder.send(Ok(Bytes::from(piece))).unwrap();
        assert_eq!(next(&mut body).await.unwrap().unwrap(), piece);
    }
    drop(feeder);
    assert!(
        next(&mut body).await.is_none(),
        "the stream ends with the body"
    );
    assert!(body.next_chunk().await.is_none(), "and stays ended");
}

#[tokio::test]
async fn a_first_chunk_is_handed_over_while_the_rest_never_comes() {
    let head = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n";
    let server = FaultServer::start(move |_, _| Fault::RawThenStall(Bytes::from(head))).await;
    let exec = comms_tests::plain_executor(&server.url(), "billing", SECRET);
    let mut body = open(&exec, Call::get("/export")).await;
    assert_eq!(next(&mut body).await.unwrap().unwrap(), "first");
}

#[tokio::test]
async fn a_503_head_is_retried_and_the_stream_after_it_delivered_from_signed_attempts() {
    let server = TestServer::start(|_, i| match i {
        0 => Reply::status(503),
        _ => Reply::status(200).body("the whole export"),
    })
    .await;
    let exec = executor(&server.url(), fast_retry(), BreakerConfig::default());
    let response = exec
        .execute_streaming(Call::get("/export").query("year", 2026))
        .await
        .unwrap();
    let (body, error) = read_all(&mut response.into_stream()).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(body, b"the whole export");

    let requests = server.requests();
    assert_eq!(requests.len(), 2, "one retry");
    for r in &requests {
        assert_eq!(r.uri, "/export?year=2026");
        Verifier::new()
            .service("billing", SECRET)
            .verify(&r.method, &r.uri, &r.headers, &r.body)
            .await
            .unwrap();
    }
    assert_ne!(requests[0].nonce(), requests[1].nonce(), "signed afresh");
}

#[tokio::test]
async fn a_head_outside_2xx_is_the_calls_error_as_for_a_buffered_call() {
    let server = TestServer::start(|r, _| match r.uri.path() {
        "/missing" => Reply::json(404, serde_json::json!({"message": "no export 7"})),
        _ => Reply::status(503),
    })
    .await;
    let exec = executor(&server.url(), fast_retry(), BreakerConfig::disabled());
    match exec.execute_streaming(Call::get("/missing")).await {
        Err(Error::NotFound(e)) => assert_eq!(e.message(), Some("no export 7")),
        other => panic!("{other:?}"),
    }
    assert_eq!(server.count(), 1, "a 404 is not retried");
    let err = exec
        .execute_streaming(Call::get("/down"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Server(_)), "{err}");
    assert_eq!(server.count(), 1 + 4, "a 503 is retried three times");
}

#[tokio::test]
async fn the_breaker_counts_heads_and_not_the_bodies_after_them() {
    let server = FaultServer::start(|r, _| match r.uri.path() {
        "/fail" => Fault::Reply(Reply::status(503)),
        "/cut" => Fault::TruncatedBody,
        _ => Fault::Reply(Reply::status(200).body("fine")),
    })
    .await;
    let breaker = BreakerConfig::default()
        .failure_threshold(2)
        .open_for(Duration::from_secs(60));
    let exec = executor(&server.url(), RetryConfig::none(), breaker);
    let stream = |path: &'static str| exec.execute_streaming(Call::get(path));

    // Bodies that break after a 2xx head fail their streams, not the attempts.
    for _ in 0..3 {
        let mut body = stream("/cut").await.unwrap().into_stream();
        let (_, error) = read_all(&mut body).await;
        assert!(matches!(error, Some(Error::Transport { .. })), "{error:?}");
    }
    assert_eq!(exec.circuit_state(), Some(CircuitState::Closed));
    // A 2xx head is a success: it ends a run of failures.
    assert!(stream("/fail").await.is_err());
    stream("/ok").await.unwrap();
    assert!(stream("/fail").await.is_err());
    assert_eq!(exec.circuit_state(), Some(CircuitState::Closed));
    // Two failed heads in a row open it, and the next call fails fast, unsent.
    assert!(stream("/fail").await.is_err());
    assert_eq!(exec.circuit_state(), Some(CircuitState::Open));
    let sent = server.count();
    let err = stream("/ok").await.unwrap_err();
    assert!(err.is_circuit_open(), "{err}");
    assert_eq!(server.count(), sent);
}

#[tokio::test]
async fn a_body_that_breaks_off_is_a_transport_error_from_the_stream_and_never_retried() {
    let chunked_cut = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n";
    let cases = [
        (
            "a body shorter than its length",
            Fault::TruncatedBody,
            "short",
        ),
        ("a body that never starts", Fault::ResetAfterHead, ""),
        (
            "a chunked body without its last chunk",
            Fault::Raw(Bytes::from(chunked_cut)),
            "hello",
        ),
    ];
    for (case, fault, arrived) in cases {
        let server = FaultServer::start(move |_, _| fault.clone()).await;
        let exec = executor(&server.url(), fast_retry(), BreakerConfig::disabled());
        let call = Call::get("/export").query("token", "s3cr3t");
        let mut body = open(&exec, call).await;
        let (got, error) = read_all(&mut body).await;
        assert!(arrived.as_bytes().starts_with(&got), "{case}: {got:?}");
        let shown = format!("{error:?}");
        assert!(
            !shown.contains("s3cr3t"),
            "{case}: the query stays out: {shown}"
        );
        match error {
            Some(
                ref e @ Error::Transport {
                    ref method,
                    ref url,
                    connect,
                    ..
                },
            ) => {
                // The head had arrived: nothing says the request could not be sent.
                assert_eq!(
                    e.to_string(),
                    format!("connection failed during GET {}/export", server.url()),
                    "{case}"
                );
                assert_eq!(*method, comms::http::Method::GET, "{case}");
                assert_eq!(*url, format!("{}/export", server.url()), "{case}");
                assert!(!connect, "{case}");
            }
            other => panic!("{case}: {other:?}"),
        }
        assert!(next(&mut body).await.is_none(), "{case}: the error ends it");
        assert_eq!(server.count(), 1, "{case}: a stream is not retried");
    }
}

#[tokio::test]
async fn the_calls_deadline_bounds_the_body() {
    let head = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n";
    let server = FaultServer::start(move |_, _| Fault::RawThenStall(Bytes::from(head))).await;
    let exec = Executor::builder()
        .base_url(server.url())
        .service_id("billing")
        .secret(SECRET)
        .deadline(Duration::from_millis(400))
        .build()
        .unwrap();
    let started = Instant::now();
    let mut body = open(&exec, Call::get("/export")).await;
    assert_eq!(next(&mut body).await.unwrap().unwrap(), "first");
    match next(&mut body).await {
        Some(Err(Error::Timeout { after, url, .. })) => {
            assert_eq!(after, Duration::from_millis(400));
            assert!(url.ends_with("/export"), "{url}");
        }
        other => panic!("{other:?}"),
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(380) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(next(&mut body).await.is_none());
}

#[tokio::test]
async fn json_lines_at_hand_are_a_timeout_once_the_deadline_has_passed() {
    // A hundred lines in one chunk, arrived in time; all but the first read after the
    // deadline, which bounds the reading as it does a chunk's.
    let lines: String = (0..100).map(|i| format!("{{\"id\":{i}}}\n")).collect();
    let url = serve_stream(move || ByteStream::from_chunks([Bytes::from(lines.clone())])).await;
    let exec = Executor::builder()
        .base_url(&url)
        .service_id("billing")
        .secret(SECRET)
        .retry(RetryConfig::none())
        .deadline(Duration::from_millis(200))
        .build()
        .unwrap();
    let mut items = exec
        .execute_streaming(Call::get("/stream"))
        .await
        .unwrap()
        .into_json_lines::<Event>();
    assert_eq!(items.next_item().await.unwrap().unwrap(), Event { id: 0 });
    tokio::time::sleep(Duration::from_millis(300)).await;
    match items.next_item().await {
        Some(Err(Error::Timeout { after, .. })) => assert_eq!(after, Duration::from_millis(200)),
        other => panic!("{other:?}"),
    }
    assert!(items.next_item().await.is_none(), "the timeout ends it");
}

#[tokio::test]
async fn the_attempt_timeout_ends_at_the_head() {
    let url = serve_stream(|| {
        let pieces = (0..4).map(|i| Bytes::from(format!("piece {i};")));
        paced(pieces.collect(), Duration::from_millis(250))
    })
    .await;
    // Each attempt has 200 ms; the body takes 750 ms, and arrives whole.
    let exec = Executor::builder()
        .base_url(&url)
        .service_id("billing")
        .secret(SECRET)
        .timeout(Duration::from_millis(200))
        .retry(RetryConfig::none())
        .build()
        .unwrap();
    let mut body = open(&exec, Call::get("/stream")).await;
    let (got, error) = read_all(&mut body).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(got, b"piece 0;piece 1;piece 2;piece 3;");
}

#[derive(Debug, Deserialize, PartialEq)]
struct Event {
    id: u64,
}

#[tokio::test]
async fn json_lines_arrive_across_awkward_chunk_boundaries() {
    let pieces = [
        "{\"id\":1}\n{\"i",
        "d\":2}\r",
        "\n\n   \n{\"id\":",
        "3}\nnot json\n",
        "{\"id\":4}",
    ];
    let url = serve_stream(move || {
        let pieces = pieces.iter().map(|p| Bytes::from_static(p.as_bytes()));
        paced(pieces.collect(), Duration::from_millis(20))
    })
    .await;
    let exec = executor(&url, RetryConfig::none(), BreakerConfig::disabled());
    let mut events = exec
        .execute_streaming(Call::get("/stream"))
        .await
        .unwrap()
        .into_json_lines::<Event>();
    let mut got = Vec::new();
    while let Some(item) = tokio::time::timeout(PATIENCE, events.next_item())
        .await
        .unwrap()
    {
        got.push(item);
    }
    assert_eq!(got.len(), 5, "{got:?}");
    for (i, id) in [(0, 1), (1, 2), (2, 3), (4, 4)] {
        assert_eq!(got[i].as_ref().unwrap(), &Event { id }, "{got:?}");
    }
    match &got[3] {
        Err(Error::Decode { url, .. }) => assert!(url.as_deref().unwrap().ends_with("/stream")),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn max_response_bytes_bounds_a_json_line_and_not_a_streamed_body() {
    let long_line = format!("[{}1]\n", "1,".repeat(1000));
    let lines = format!("{{\"id\":1}}\n{long_line}{{\"id\":2}}\n");
    let url = serve_stream(move || {
        let chunks = lines.as_bytes().chunks(300).map(Bytes::copy_from_slice);
        ByteStream::from_chunks(chunks.collect::<Vec<_>>())
    })
    .await;
    let exec = Executor::builder()
        .base_url(&url)
        .service_id("billing")
        .secret(SECRET)
        .max_response_bytes(1024)
        .build()
        .unwrap();

    let mut events = exec
        .execute_streaming(Call::get("/stream"))
        .await
        .unwrap()
        .into_json_lines::<Event>();
    assert_eq!(events.next_item().await.unwrap().unwrap(), Event { id: 1 });
    let err = events.next_item().await.unwrap().unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err}");
    let source = std::error::Error::source(&err).unwrap().to_string();
    assert!(source.contains("1024 byte limit"), "{source}");
    assert!(
        events.next_item().await.is_none(),
        "a line too long ends it"
    );

    // The same body, over the limit as a whole, streams in full; read whole, it is refused.
    let mut body = open(&exec, Call::get("/stream")).await;
    let (got, error) = read_all(&mut body).await;
    assert!(error.is_none(), "{error:?}");
    assert!(got.len() > 2000, "{}", got.len());
    let err = exec.execute(Call::get("/stream")).await.unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err}");
}

/// Items, then the end; like many streams (`futures::stream::unfold`, `async-stream`), it must
/// not be polled once it has ended.
struct Strict {
    items: Vec<Result<u64, Error>>,
    ended: bool,
}

impl futures_core::Stream for Strict {
    type Item = Result<u64, Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        assert!(!self.ended, "polled after it ended");
        if self.items.is_empty() {
            self.ended = true;
            return std::task::Poll::Ready(None);
        }
        std::task::Poll::Ready(Some(self.items.remove(0)))
    }
}

/// `JsonLines::from_stream`, like `ByteStream::from_stream` and like a received body, stays
/// ended after its stream's end or first error, never polling that stream again: a mock
/// behaves as the served stream it stands for.
#[tokio::test]
async fn json_lines_from_a_stream_stay_ended_after_its_end_or_first_error() {
    let mut items = comms::JsonLines::from_stream(Strict {
        items: vec![Ok(1)],
        ended: false,
    });
    assert_eq!(items.next_item().await.unwrap().unwrap(), 1);
    assert!(items.next_item().await.is_none());
    // Asked again, as a `select!` loop may: `None`, without polling the stream it ended.
    assert!(items.next_item().await.is_none());

    let mut items = comms::JsonLines::from_stream(Strict {
        items: vec![Err(Error::internal("the source failed")), Ok(2)],
        ended: false,
    });
    assert!(items.next_item().await.unwrap().is_err());
    let after = items.next_item().await;
    assert!(after.is_none(), "an item after the error: {after:?}");
}

/// Only the call's deadline makes a body's `Error::Timeout`. A read timeout of a client given
/// with `http_client` that fires in the body is an `Error::Transport` whose source says it
/// timed out, as documented on `ByteStream`.
#[tokio::test]
async fn a_given_clients_read_timeout_in_the_body_is_a_transport_error_that_says_so() {
    let head = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n";
    let server = FaultServer::start(move |_, _| Fault::RawThenStall(Bytes::from(head))).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .read_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let exec = comms_tests::plain_builder(&server.url(), "billing", SECRET)
        .http_client(http)
        .build()
        .unwrap();
    let mut body = open(&exec, Call::get("/export")).await;
    assert_eq!(next(&mut body).await.unwrap().unwrap(), "first");
    let err = next(&mut body).await.unwrap().unwrap_err();
    let timed_out = std::error::Error::source(&err)
        .and_then(|s| s.downcast_ref::<reqwest::Error>())
        .is_some_and(reqwest::Error::is_timeout);
    assert!(
        matches!(err, Error::Transport { connect: false, .. }) && timed_out,
        "{err:?}"
    );
    assert!(next(&mut body).await.is_none());
}
