//! Streams, both sides: a generated server answers methods returning `ByteStream` and
//! `JsonLines<T>` as their streams produce, chunked, and a generated client from the same trait
//! reads them as they arrive, over loopback with signatures verified. A stream that fails or
//! panics part way cuts the response short, which the client sees as an error from its stream.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use comms::verify::Verifier;
use comms::{ByteStream, Call, Error, JsonLines, service_client};
use comms_tests::{Feeder, fed, serve};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

const SECRET: &str = "streaming-served-secret";
const PATIENCE: Duration = Duration::from_secs(5);

#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct Event {
    pub id: u64,
    pub what: String,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct Search {
    pub what: String,
}

#[service_client(
    base_url = "http://127.0.0.1:9",
    service_id = "billing",
    secret_env = "COMMS_TEST_STREAMING_SECRET"
)]
pub trait Exports {
    #[get("/exports/<id>")]
    async fn export(&self, id: u64) -> Result<ByteStream, Error>;

    #[get("/whoami")]
    async fn whoami(&self) -> Result<ByteStream, Error>;

    #[get("/events")]
    async fn events(
        &self,
        #[query] from: u64,
        #[query] count: u64,
    ) -> Result<JsonLines<Event>, Error>;

    #[post("/search")]
    async fn search(&self, #[body] search: &Search) -> Result<JsonLines<Event>, Error>;

    #[get("/broken/<after>")]
    async fn broken(&self, after: u64) -> Result<JsonLines<Event>, Error>;

    #[get("/panics")]
    async fn panics(&self) -> Result<ByteStream, Error>;

    #[get("/missing")]
    async fn missing(&self) -> Result<ByteStream, Error>;

    #[get("/relay")]
    async fn relay(&self) -> Result<JsonLines<Event>, Error>;

    /// Empty chunks, until the service is told to stop.
    #[get("/quiet")]
    async fn quiet(&self) -> Result<ByteStream, Error>;

    /// One event as a `RawValue` received pretty-printed, with line breaks of its own.
    #[get("/pretty")]
    async fn pretty(&self) -> Result<JsonLines<Box<RawValue>>, Error>;

    /// Lines of 1 KiB without end; the service knows when it is dropped.
    #[get("/long")]
    async fn long(&self) -> Result<JsonLines<String>, Error>;
}

fn event(id: u64) -> Event {
    Event {
        id,
        what: format!("event {id}"),
    }
}

/// The service: `export` sends what the test feeds it; `relay` passes on what it reads from
/// `events` through `upstream`, a client of this same server.
#[derive(Clone, Default)]
struct ExportsImpl {
    export: Arc<Mutex<Option<ByteStream>>>,
    upstream: Arc<OnceLock<ExportsClient>>,
    /// Ends `quiet`'s stream.
    stop: Arc<AtomicBool>,
    /// Set when `long`'s stream is dropped.
    long_dropped: Arc<AtomicBool>,
}

/// Sets its flag when dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Exports for ExportsImpl {
    async fn export(&self, id: u64) -> Result<ByteStream, Error> {
        match id {
            7 => Ok(self.export.lock().unwrap().take().expect("fed once")),
            _ => Err(Error::not_found(format!("no export {id}"))),
        }
    }

    async fn whoami(&self) -> Result<ByteStream, Error> {
        let caller = comms::server::caller();
        Ok(ByteStream::from_chunks([
            "service ".to_owned(),
            caller.service_id().to_owned(),
        ]))
    }

    async fn events(&self, from: u64, count: u64) -> Result<JsonLines<Event>, Error> {
        Ok(JsonLines::from_items((from..from + count).map(event)))
    }

    async fn search(&self, search: &Search) -> Result<JsonLines<Event>, Error> {
        let what = search.what.clone();
        Ok(JsonLines::from_items((1..=3).map(move |id| Event {
            id,
            what: what.clone(),
        })))
    }

    async fn broken(&self, after: u64) -> Result<JsonLines<Event>, Error> {
        let items = (0..after)
            .map(|id| Ok(event(id)))
            .chain([Err(Error::internal("the export's source failed"))]);
        Ok(JsonLines::from_stream(Items(items)))
    }

    async fn panics(&self) -> Result<ByteStream, Error> {
        let chunks = (0..3).map(|i| match i {
            0 => Bytes::from_static(b"before the panic"),
            _ => panic!("a served stream panics"),
        });
        Ok(ByteStream::from_chunks(chunks))
    }

    async fn missing(&self) -> Result<ByteStream, Error> {
        Err(Error::not_found("no such export"))
    }

    async fn relay(&self) -> Result<JsonLines<Event>, Error> {
        let upstream = self.upstream.get().expect("set before serving");
        let mut events = upstream.events(1, 5).await?;
        // The first is dropped, so what is passed on starts part way through the body.
        events.next_item().await.transpose()?;
        Ok(events)
    }

    async fn quiet(&self) -> Result<ByteStream, Error> {
        let stop = self.stop.clone();
        let empties = std::iter::from_fn(move || (!stop.load(Ordering::SeqCst)).then(Bytes::new));
        Ok(ByteStream::from_chunks(empties))
    }

    async fn pretty(&self) -> Result<JsonLines<Box<RawValue>>, Error> {
        let text = serde_json::to_string_pretty(&event(1)).unwrap();
        assert!(text.contains('\n'));
        Ok(JsonLines::from_items(
            [RawValue::from_string(text).unwrap()],
        ))
    }

    async fn long(&self) -> Result<JsonLines<String>, Error> {
        let dropped = DropFlag(self.long_dropped.clone());
        Ok(JsonLines::from_items(std::iter::repeat_with(move || {
            let _held = &dropped;
            "a".repeat(1024)
        })))
    }
}

/// A stream of an iterator's results.
struct Items<I>(I);

impl<I: Iterator + Unpin> futures_core::Stream for Items<I> {
    type Item = I::Item;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<I::Item>> {
        std::task::Poll::Ready(self.0.next())
    }
}

/// `service`, served behind a verifier that knows the clients' secret.
fn exports_router(service: ExportsImpl) -> axum::Router {
    ExportsServer::new(service)
        .verifier(Verifier::new().service("billing", SECRET))
        .into_router()
}

/// A served `ExportsImpl` and a client of it; the feeder of `export(7)`'s body.
async fn serve_exports() -> (ExportsClient, Feeder) {
    let service = ExportsImpl::default();
    let (feeder, body) = fed();
    *service.export.lock().unwrap() = Some(body);
    let upstream = service.upstream.clone();
    let url = serve(exports_router(service)).await;
    let client = ExportsClient::builder()
        .base_url(&url)
        .secret(SECRET)
        .retry(comms::RetryConfig::none())
        .build()
        .unwrap();
    assert!(upstream.set(client.clone()).is_ok());
    (client, feeder)
}

async fn within<T>(what: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, what)
        .await
        .expect("within the test's patience")
}

async fn all_items(mut events: JsonLines<Event>) -> Vec<Result<Event, Error>> {
    let mut all = Vec::new();
    while let Some(item) = within(events.next_item()).await {
        all.push(item);
    }
    all
}

#[tokio::test]
async fn a_served_stream_reaches_the_client_chunk_by_chunk() {
    let (exports, feeder) = serve_exports().await;
    let mut body = within(exports.export(7)).await.unwrap();
    for piece in ["one", "two", "three"] {
        feeder.send(Ok(Bytes::from(piece))).unwrap();
        assert_eq!(within(body.next_chunk()).await.unwrap().unwrap(), piece);
    }
    drop(feeder);
    assert!(within(body.next_chunk()).await.is_none());
}

#[tokio::test]
async fn a_served_stream_runs_behind_the_verifier_with_its_caller() {
    let (exports, _) = serve_exports().await;
    let mut body = exports.whoami().await.unwrap();
    let mut text = Vec::new();
    while let Some(chunk) = within(body.next_chunk()).await {
        text.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(text, b"service billing");

    let stranger = ExportsClient::builder()
        .base_url(exports.executor().base_url())
        .secret("not-the-secret")
        .build()
        .unwrap();
    let err = stranger.whoami().await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized(_)), "{err}");
}

#[tokio::test]
async fn json_lines_round_trip_from_a_query_and_from_a_body() {
    let (exports, _) = serve_exports().await;
    let events: Vec<Event> = all_items(exports.events(10, 3).await.unwrap())
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(events, [event(10), event(11), event(12)]);

    let search = Search {
        what: "refunds".into(),
    };
    let found = all_items(exports.search(&search).await.unwrap()).await;
    let found: Vec<_> = found.into_iter().map(Result::unwrap).collect();
    assert_eq!(found.len(), 3);
    assert!(found.iter().all(|e| e.what == "refunds"), "{found:?}");

    // On the wire: NDJSON, chunked.
    let call = Call::get("/events").query("from", 1).query("count", 2);
    let response = exports.executor().execute_streaming(call).await.unwrap();
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    assert_eq!(response.headers()["transfer-encoding"], "chunked");
    assert!(!response.headers().contains_key("content-length"));
    let mut body = Vec::new();
    let mut stream = response.into_stream();
    while let Some(chunk) = within(stream.next_chunk()).await {
        body.extend_from_slice(&chunk.unwrap());
    }
    let expected = "{\"id\":1,\"what\":\"event 1\"}\n{\"id\":2,\"what\":\"event 2\"}\n";
    assert_eq!(String::from_utf8(body).unwrap(), expected);
}

#[tokio::test]
async fn a_stream_received_by_a_served_method_is_passed_on_from_where_it_was_read() {
    let (exports, _) = serve_exports().await;
    let relayed = all_items(exports.relay().await.unwrap()).await;
    let relayed: Vec<_> = relayed.into_iter().map(Result::unwrap).collect();
    assert_eq!(relayed, [event(2), event(3), event(4), event(5)]);
}

#[tokio::test]
async fn a_served_stream_that_fails_or_panics_part_way_cuts_the_response_short() {
    let (exports, _) = serve_exports().await;
    let got = all_items(exports.broken(2).await.unwrap()).await;
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[0].as_ref().unwrap(), &event(0));
    assert_eq!(got[1].as_ref().unwrap(), &event(1));
    assert!(matches!(got[2], Err(Error::Transport { .. })), "{got:?}");

    let mut body = exports.panics().await.unwrap();
    let mut received = Vec::new();
    let error = loop {
        match within(body.next_chunk()).await {
            Some(Ok(chunk)) => received.extend_from_slice(&chunk),
            Some(Err(e)) => break e,
            None => panic!("a stream that panicked ended as if whole"),
        }
    };
    assert!(matches!(error, Error::Transport { .. }), "{error}");
    assert!(b"before the panic".starts_with(&received), "{received:?}");

    // The server keeps serving.
    let events = all_items(exports.events(1, 1).await.unwrap()).await;
    assert_eq!(events.len(), 1);
}

/// Sends `request` as it is over a fresh connection and reads to the connection's end: the
/// status line, the headers (lowercased) and the body.
async fn raw_exchange(url: &str, request: &str) -> (String, String, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(url.trim_start_matches("http://"))
        .await
        .unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut all = Vec::new();
    within(stream.read_to_end(&mut all)).await.unwrap();
    let end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    let head = String::from_utf8_lossy(&all[..end]).into_owned();
    let (status, headers) = head.split_once("\r\n").unwrap_or((&head, ""));
    (
        status.to_owned(),
        headers.to_lowercase(),
        all[end + 4..].to_vec(),
    )
}

/// HTTP/1.0 has no chunked encoding: a streamed body would end where the connection closes,
/// and one cut short would read as whole. Such a request gets the stream gathered and sent
/// with its length, or, when it fails or outgrows 16 MiB, a 500 and nothing of it.
#[tokio::test]
async fn an_http10_request_gets_a_streamed_answer_whole_or_a_500() {
    let url = serve(
        ExportsServer::new(ExportsImpl::default())
            .unverified()
            .into_router(),
    )
    .await;
    let (status, headers, body) = raw_exchange(
        &url,
        "GET /events?from=1&count=3 HTTP/1.0\r\nHost: x\r\n\r\n",
    )
    .await;
    assert!(status.ends_with("200 OK"), "{status}");
    assert!(
        headers.contains(&format!("content-length: {}", body.len())),
        "{headers}"
    );
    let lines: Vec<Event> = body
        .split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| serde_json::from_slice(line).unwrap())
        .collect();
    assert_eq!(lines, [event(1), event(2), event(3)]);

    // Failing after two items, and endless: a 500, with none of the items.
    for path in ["/broken/2", "/long"] {
        let request = format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n");
        let (status, _, body) = raw_exchange(&url, &request).await;
        assert!(
            status.ends_with("500 Internal Server Error"),
            "{path}: {status}"
        );
        let body = String::from_utf8_lossy(&body);
        assert_eq!(body, r#"{"message":"internal error"}"#, "{path}");
    }

    // HTTP/1.1 is streamed as before, chunked.
    let (status, headers, _) = raw_exchange(
        &url,
        "GET /events?from=1&count=3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(status.ends_with("200 OK"), "{status}");
    assert!(headers.contains("transfer-encoding: chunked"), "{headers}");
}

#[tokio::test]
async fn a_streamed_methods_errors_and_refusals_arrive_as_error_variants() {
    let (exports, _) = serve_exports().await;
    match exports.missing().await {
        Err(Error::NotFound(e)) => assert_eq!(e.message(), Some("no such export")),
        other => panic!("{other:?}"),
    }
    match exports.export(8).await {
        Err(Error::NotFound(e)) => assert_eq!(e.message(), Some("no export 8")),
        other => panic!("{other:?}"),
    }
    let err = exports
        .executor()
        .execute_streaming(Call::get("/exports/seven"))
        .await
        .unwrap_err();
    match err {
        Error::BadRequest(e) => assert!(e.message().unwrap().contains("`id`"), "{e}"),
        other => panic!("{other}"),
    }
}

/// What code written against the trait sees, whoever implements it.
async fn count_events(exports: &impl Exports) -> Result<usize, Error> {
    let mut events = exports.events(0, 4).await?;
    let mut count = 0;
    while let Some(event) = events.next_item().await {
        event?;
        count += 1;
    }
    Ok(count)
}

#[tokio::test]
async fn code_written_against_the_trait_reads_a_mocks_streams_and_a_clients_alike() {
    let (exports, _) = serve_exports().await;
    assert_eq!(count_events(&exports).await.unwrap(), 4);
    assert_eq!(count_events(&ExportsImpl::default()).await.unwrap(), 4);
}

/// Serves `router` on a single-threaded runtime of its own thread, so that a server stuck on
/// its thread cannot stop the test from noticing.
fn serve_apart(router: axum::Router) -> String {
    let (sent, address) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            sent.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, router).await.unwrap();
        });
    });
    format!("http://{}", address.recv().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_served_stream_of_empty_chunks_leaves_its_thread_to_other_requests() {
    let service = ExportsImpl::default();
    let stop = service.stop.clone();
    let url = serve_apart(exports_router(service));
    let exports = ExportsClient::builder()
        .base_url(&url)
        .secret(SECRET)
        .retry(comms::RetryConfig::none())
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let quiet = tokio::spawn({
        let exports = exports.clone();
        async move { exports.quiet().await.map(drop) }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The server's one thread still serves another request beside it.
    let other = tokio::time::timeout(PATIENCE, exports.events(0, 1)).await;
    stop.store(true, Ordering::SeqCst);
    let events = other.expect("answered").expect("another request's head");
    assert_eq!(all_items(events).await.len(), 1);
    within(quiet)
        .await
        .unwrap()
        .expect("the quiet stream's head");
}

#[tokio::test]
async fn a_served_item_is_one_line_however_it_serializes() {
    let (exports, _) = serve_exports().await;
    let mut lines = within(exports.pretty()).await.unwrap();
    let mut items = Vec::new();
    while let Some(item) = within(lines.next_item()).await {
        items.push(item.map(|raw| serde_json::from_str::<Event>(raw.get())));
    }
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0].as_ref().unwrap().as_ref().unwrap(), &event(1));
}

#[tokio::test]
async fn json_lines_ended_by_a_line_over_the_limit_let_go_of_their_body() {
    let service = ExportsImpl::default();
    let long_dropped = service.long_dropped.clone();
    let url = serve(exports_router(service)).await;
    let exports = ExportsClient::builder()
        .base_url(&url)
        .secret(SECRET)
        .retry(comms::RetryConfig::none())
        .max_response_bytes(512)
        .build()
        .unwrap();
    let mut lines = within(exports.long()).await.unwrap();
    let err = within(lines.next_item()).await.unwrap().unwrap_err();
    assert!(
        matches!(&err, Error::Decode { source, .. } if source.to_string().contains("512 byte limit")),
        "{err:?}"
    );
    assert!(within(lines.next_item()).await.is_none());
    // Still held, the ended stream holds neither the connection nor the producer behind it.
    let until = std::time::Instant::now() + PATIENCE;
    while !long_dropped.load(Ordering::SeqCst) {
        assert!(
            std::time::Instant::now() < until,
            "the producer is still held"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(lines);
}

/// Streams a served method read from until they ended on an error, then returned.
#[service_client(
    base_url = "http://127.0.0.1:9",
    service_id = "billing",
    secret_env = "COMMS_TEST_STREAMING_SECRET"
)]
pub trait Relays {
    /// An upstream feed, passed on from its first item that decodes.
    #[get("/relay/lines")]
    async fn lines(&self) -> Result<JsonLines<Event>, Error>;

    /// An upstream body, read until it broke off.
    #[get("/relay/bytes")]
    async fn bytes(&self) -> Result<ByteStream, Error>;

    /// Items whose source failed, read past the failure.
    #[get("/relay/items")]
    async fn items(&self) -> Result<JsonLines<Event>, Error>;
}

#[derive(Clone)]
struct RelaysImpl {
    /// Answers with a line over the upstream client's limit (64 bytes), two short lines in
    /// the same chunk, and then nothing.
    lines: comms::Executor,
    /// Answers with a chunked body that breaks off after its first chunk.
    bytes: comms::Executor,
}

impl Relays for RelaysImpl {
    async fn lines(&self) -> Result<JsonLines<Event>, Error> {
        let call = Call::get("/feed");
        let mut events = self
            .lines
            .execute_streaming(call)
            .await?
            .into_json_lines::<Event>();
        // An item that does not decode is skipped, and the next read as usual; the line over
        // the limit is such an error too, but ends the stream.
        loop {
            match events.next_item().await {
                Some(Ok(_)) | None => break,
                Some(Err(Error::Decode { .. })) => continue,
                Some(Err(e)) => return Err(e),
            }
        }
        Ok(events)
    }

    async fn bytes(&self) -> Result<ByteStream, Error> {
        let mut body = self
            .bytes
            .execute_streaming(Call::get("/export"))
            .await?
            .into_stream();
        while let Some(chunk) = body.next_chunk().await {
            if chunk.is_err() {
                break;
            }
        }
        Ok(body)
    }

    async fn items(&self) -> Result<JsonLines<Event>, Error> {
        let mut items = JsonLines::from_stream(Items(
            vec![
                Ok(event(1)),
                Err(Error::internal("the source failed")),
                Ok(event(2)),
            ]
            .into_iter(),
        ));
        assert_eq!(items.next_item().await.unwrap()?, event(1));
        assert!(items.next_item().await.unwrap().is_err());
        assert!(
            items.next_item().await.is_none(),
            "it ends at its first error"
        );
        Ok(items)
    }
}

/// A received stream that ended on an error (a line over its limit, a body that broke off) or
/// given items that did, returned by a served method, is passed on cut short, never as a
/// whole body: what its caller gets ends on an error, however little of it was left.
#[tokio::test]
async fn a_stream_that_ended_on_an_error_is_passed_on_cut_short() {
    use comms_tests::{Fault, FaultServer};
    let long = format!("{{\"id\":0,\"what\":\"{}\"}}\n", "x".repeat(100));
    let first = format!("{long}{}\n{}\n", json(1), json(2));
    let lines_head = format!(
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{first}\r\n",
        first.len()
    );
    let lines_upstream =
        FaultServer::start(move |_, _| Fault::RawThenStall(Bytes::from(lines_head.clone()))).await;
    let cut = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n";
    let bytes_upstream = FaultServer::start(move |_, _| Fault::Raw(Bytes::from(cut))).await;
    let upstream = |url: &str| {
        comms_tests::plain_builder(url, "relay", "upstream-secret")
            .retry(comms::RetryConfig::none())
            .max_response_bytes(64)
            .build()
            .unwrap()
    };
    let service = RelaysImpl {
        lines: upstream(&lines_upstream.url()),
        bytes: upstream(&bytes_upstream.url()),
    };
    let url = serve(
        RelaysServer::new(service)
            .verifier(Verifier::new().service("billing", SECRET))
            .into_router(),
    )
    .await;
    let relays = RelaysClient::builder()
        .base_url(&url)
        .secret(SECRET)
        .retry(comms::RetryConfig::none())
        .build()
        .unwrap();

    for (case, items) in [
        ("lines", within(relays.lines()).await.unwrap()),
        ("items", within(relays.items()).await.unwrap()),
    ] {
        let got = all_items(items).await;
        assert!(
            matches!(got.last(), Some(Err(Error::Transport { .. }))),
            "{case}: passed on as a whole body: {got:?}"
        );
        assert!(
            got.len() <= 1,
            "{case}: nothing held of it is passed on: {got:?}"
        );
    }

    let mut body = within(relays.bytes()).await.unwrap();
    let mut got = Vec::new();
    while let Some(chunk) = within(body.next_chunk()).await {
        got.push(chunk);
    }
    assert!(
        matches!(got.as_slice(), [Err(Error::Transport { .. })]),
        "bytes: passed on as a whole body: {got:?}"
    );
}

fn json(id: u64) -> String {
    serde_json::to_string(&event(id)).unwrap()
}
