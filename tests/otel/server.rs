//! The receiving side: SERVER spans continuing the caller's trace, through `VerifyLayer` and
//! a generated server, and the server's request durations.

use super::*;

/// A SERVER span has what the conventions ask of one beside the path: the query (a signed
/// URL's credentials redacted), the protocol's version and the caller's user agent.
#[tokio::test]
async fn a_server_span_has_the_query_the_protocol_version_and_the_user_agent() {
    let (spans, _guard) = record_spans();
    let app = Router::new().route("/search", get(|| async { "found" }));
    let url = serve_verified(app).await;
    plain_executor(&url, "billing", SECRET)
        .execute(
            Call::get("/search")
                .route("/search")
                .query("q", "otel")
                .query("sig", "s3cr3t")
                .header("User-Agent", "inventory/2.1"),
        )
        .await
        .unwrap();

    let spans = spans.get_finished_spans().unwrap();
    let server = server_span(&spans);
    assert_eq!(text(server, "url.path").as_deref(), Some("/search"));
    assert_eq!(
        text(server, "url.query").as_deref(),
        Some("q=otel&sig=REDACTED")
    );
    assert_eq!(
        text(server, "network.protocol.version").as_deref(),
        Some("1.1")
    );
    assert_eq!(
        text(server, "user_agent.original").as_deref(),
        Some("inventory/2.1")
    );
    // Where the request was sent, from its `Host` header; the caller's address only when the
    // server was told its connections' peers.
    let port = url.rsplit_once(':').unwrap().1.parse::<i64>().unwrap();
    assert_eq!(text(server, "server.address").as_deref(), Some("127.0.0.1"));
    assert_eq!(attr(server, "server.port"), Some(&Value::I64(port)));
    assert_eq!(attr(server, "client.address"), None);
}

/// With axum told the peers of its connections, a SERVER span has the caller's address and
/// port; a `Forwarded` or `X-Forwarded-For` header, the caller's own word, is not taken for
/// it. `server.address` is the `Host` header's host, an IPv6 address without its brackets,
/// and the scheme's port when the header has none.
#[tokio::test]
async fn a_server_span_has_the_callers_address_when_axum_was_given_it() {
    let (spans, _guard) = record_spans();
    let addr =
        serve_verified_with_peers(Router::new().route("/search", get(|| async { "found" }))).await;
    plain_executor(&format!("http://{addr}"), "billing", SECRET)
        .execute(
            Call::get("/search")
                .route("/search")
                .header("x-forwarded-for", "203.0.113.9")
                .header("forwarded", "for=203.0.113.9"),
        )
        .await
        .unwrap();

    // A raw request with another Host: the span names it, not the socket's address.
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut raw = tokio::net::TcpStream::connect(addr).await.unwrap();
    raw.write_all(b"GET /unsigned HTTP/1.1\r\nHost: [::1]\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    raw.read_to_end(&mut answer).await.unwrap();

    let spans = spans.get_finished_spans().unwrap();
    let servers: Vec<_> = spans
        .iter()
        .filter(|s| s.span_kind == SpanKind::Server)
        .collect();
    assert_eq!(servers.len(), 2, "{spans:#?}");
    let signed = servers
        .iter()
        .find(|s| text(s, "url.path").as_deref() == Some("/search"))
        .unwrap();
    assert_eq!(text(signed, "client.address").as_deref(), Some("127.0.0.1"));
    // `client.port` is opt-in, and comms has no switch for it.
    assert_eq!(attr(signed, "client.port"), None);
    assert_eq!(text(signed, "server.address").as_deref(), Some("127.0.0.1"));
    assert_eq!(
        attr(signed, "server.port"),
        Some(&Value::I64(i64::from(addr.port())))
    );
    let unsigned = servers
        .iter()
        .find(|s| text(s, "url.path").as_deref() == Some("/unsigned"))
        .unwrap();
    assert_eq!(text(unsigned, "server.address").as_deref(), Some("::1"));
    assert_eq!(attr(unsigned, "server.port"), Some(&Value::I64(80)));
    assert_eq!(
        text(unsigned, "client.address").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(attr(unsigned, "client.port"), None);
}

/// A → B → C: A calls B's route behind `VerifyLayer`, whose handler calls C. Every span is in
/// A's trace, B's SERVER span is the child of A's attempt, and B's call to C is the child of
/// B's SERVER span.
#[tokio::test]
async fn a_chain_of_services_shares_one_trace() {
    let (spans, _guard) = record_spans();
    let c = relay_through_b(opentelemetry::Context::current(), None).await;

    let spans = spans.get_finished_spans().unwrap();
    let kind = |kind: SpanKind| {
        let named: Vec<&SpanData> = spans_named(&spans, "GET /relay")
            .into_iter()
            .filter(|s| s.span_kind == kind)
            .collect();
        assert_eq!(named.len(), 1, "{spans:#?}");
        named[0]
    };
    let a_attempt = kind(SpanKind::Client);
    // Added with `Router::layer`, the layer runs after routing: its span has the route.
    let b_server = kind(SpanKind::Server);
    assert_eq!(text(b_server, "http.route").as_deref(), Some("/relay"));
    let b_attempt = only_span(&spans, "GET /items/<id>");
    let trace = a_attempt.span_context.trace_id();
    for span in &spans {
        assert_eq!(span.span_context.trace_id(), trace, "{span:#?}");
    }
    assert_eq!(b_server.span_kind, SpanKind::Server);
    assert_eq!(b_server.parent_span_id, a_attempt.span_context.span_id());
    assert!(b_server.parent_span_is_remote);
    assert_eq!(text(b_server, "url.path").as_deref(), Some("/relay"));
    assert_eq!(
        text(b_server, "http.response.status_code").as_deref(),
        Some("200")
    );
    // B's call span sits in its SERVER span, and its attempt in that.
    let b_call = spans
        .iter()
        .find(|s| s.span_context.span_id() == b_attempt.parent_span_id)
        .expect("B's call span");
    assert_eq!(b_call.name, "comms.call");
    assert_eq!(b_call.parent_span_id, b_server.span_context.span_id());
    // C received B's attempt's context.
    let sent = c.requests()[0].header("traceparent").unwrap().to_owned();
    assert_eq!(sent, traceparent(&b_attempt.span_context));
}

#[service_client(
    base_url = "http://127.0.0.1:9",
    service_id = "billing",
    secret_env = "COMMS_OTEL_TEST_SECRET"
)]
pub trait Shelf {
    #[get("/shelf/<id>")]
    async fn entry(&self, id: u32) -> Result<String, Error>;
}

impl Shelf for Books {
    async fn entry(&self, id: u32) -> Result<String, Error> {
        Ok(format!("shelf {id}"))
    }
}

/// A generated server behind `VerifyLayer` serves each request in the layer's one SERVER
/// span, which it names with its route: one span, and one duration, per request.
#[tokio::test]
async fn a_generated_server_behind_verify_layer_is_one_server_span_a_request() {
    let (spans, _guard) = record_spans();
    // Behind a proxy ending TLS, told the scheme requests reach it by.
    let verifier = Verifier::new().service("billing", SECRET).scheme("https");
    let router = ShelfServer::new(Books)
        .verifier(verifier.clone())
        .into_router()
        .layer(VerifyLayer::new(verifier));
    let url = serve(router).await;
    let client: ShelfClient = comms_tests::plain_client(&url, SECRET);
    assert_eq!(client.entry(71).await.unwrap(), "shelf 71");

    let spans = spans.get_finished_spans().unwrap();
    let servers: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.span_kind == SpanKind::Server)
        .collect();
    assert_eq!(servers.len(), 1, "{spans:#?}");
    assert_eq!(servers[0].name, "GET /shelf/<id>");
    assert_eq!(text(servers[0], "url.scheme").as_deref(), Some("https"));
    assert_eq!(
        text(servers[0], "http.route").as_deref(),
        Some("/shelf/<id>")
    );
    // One duration for the request, by the server's route (not axum's `{p1}`). (This test's
    // alone are `https`.)
    let durations = points_where("http.server.request.duration", |p| {
        let route = p.attributes.get("http.route");
        route.is_some_and(|route| route.starts_with("/shelf/"))
            && p.attributes.get("url.scheme").map(String::as_str) == Some("https")
    });
    assert_eq!(durations.len(), 1, "{durations:?}");
    assert_eq!(durations[0].attributes["http.route"], "/shelf/<id>");
    assert_eq!(durations[0].attributes["url.scheme"], "https");
    assert_eq!(durations[0].value, 1.0);
}

/// Served under a prefix, the route is the server's template under that prefix, as the
/// conventions want every static segment of it: `/v1` (`Router::nest`), or a prefix that holds
/// a captured value (`nest_service("/{tenant}", ..)`), written as axum writes it.
#[tokio::test]
async fn a_nested_servers_route_is_its_template_under_the_prefix() {
    let (spans, _guard) = record_spans();
    let inner = || {
        ShelfServer::new(Books)
            .verifier(Verifier::new().service("billing", SECRET))
            .into_router()
    };
    let url = serve(
        Router::new()
            .nest("/v1", inner())
            .nest_service("/{tenant}", inner()),
    )
    .await;
    for (prefix, route, path) in [
        ("/v1", "/v1/shelf/<id>", "/v1/shelf/3"),
        ("/acme-4711", "/{tenant}/shelf/<id>", "/acme-4711/shelf/3"),
    ] {
        let client: ShelfClient = comms_tests::plain_client(&format!("{url}{prefix}"), SECRET);
        assert_eq!(client.entry(3).await.unwrap(), "shelf 3");
        let finished = spans.get_finished_spans().unwrap();
        let server = finished
            .iter()
            .rev()
            .find(|s| s.span_kind == SpanKind::Server)
            .expect("the SERVER span");
        assert_eq!(server.name, format!("GET {route}"));
        assert_eq!(text(server, "http.route").as_deref(), Some(route));
        assert_eq!(text(server, "url.path").as_deref(), Some(path));
        let durations = points_where("http.server.request.duration", |p| {
            p.attributes.get("http.route").map(String::as_str) == Some(route)
        });
        assert_eq!(durations.len(), 1, "{route}: {durations:?}");
    }
}

/// Records this thread's spans as [`record_spans`] does, but for the SERVER spans, which the
/// subscriber's filter leaves out (`comms::server` at `WARN`).
fn record_spans_but_servers() -> (Spans, tracing::subscriber::DefaultGuard) {
    let (exporter, tracer) = test_tracer();
    let filter = tracing_subscriber::filter::Targets::new()
        .with_default(tracing::Level::DEBUG)
        .with_target("comms::server", tracing::Level::WARN);
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(tracer))
        .with(filter);
    (
        Spans(exporter),
        tracing::subscriber::set_default(subscriber),
    )
}

#[service_client(
    base_url = "http://127.0.0.1:9",
    service_id = "billing",
    secret_env = "COMMS_OTEL_TEST_SECRET"
)]
pub trait Relay {
    #[post("/relay-once", idempotent)]
    async fn relay(&self) -> Result<String, Error>;
}

/// A relay to C at its URL.
#[derive(Clone)]
struct Relayer(String);

impl Relay for Relayer {
    async fn relay(&self) -> Result<String, Error> {
        plain_executor(&self.0, "billing", SECRET)
            .execute(item(9))
            .await?;
        Ok("relayed".to_owned())
    }
}

/// An idempotent method runs in a task of its own; with the SERVER span left out by a filter,
/// that task is still in the trace the request carried.
#[tokio::test]
async fn an_idempotent_method_whose_server_span_is_left_out_continues_the_trace() {
    let (spans, _guard) = record_spans_but_servers();
    let c = TestServer::always(Reply::ok_json(serde_json::json!({"from": "c"}))).await;
    let router = RelayServer::new(Relayer(c.url()))
        .verifier(Verifier::new().service("billing", SECRET))
        .into_router();
    let client: RelayClient = comms_tests::plain_client(&serve(router).await, SECRET);
    assert_eq!(client.relay().await.unwrap(), "relayed");

    let spans = spans.get_finished_spans().unwrap();
    let trace = only_span(&spans, "POST /relay-once")
        .span_context
        .trace_id();
    let sent = c.requests()[0].header("traceparent").unwrap().to_owned();
    assert!(
        sent.contains(&trace.to_string()),
        "C got {sent}; A's trace {trace}"
    );
}

/// With B's SERVER span left out by a filter (`comms::server` at `WARN`), B serves the request
/// in the trace it carried all the same: its call to C continues A's trace.
#[tokio::test]
async fn a_server_span_a_filter_leaves_out_still_continues_the_trace() {
    let (spans, _guard) = record_spans_but_servers();
    relayed_in_one_trace(spans).await;
}

/// A relayed through B to C, with B's SERVER span left out: B's call to C continues A's trace,
/// its call span a child of A's attempt.
async fn relayed_in_one_trace(spans: Spans) {
    let c = relay_through_b(opentelemetry::Context::current(), None).await;

    let spans = spans.get_finished_spans().unwrap();
    assert!(
        !spans.iter().any(|s| s.span_kind == SpanKind::Server),
        "{spans:#?}"
    );
    let a_attempt = only_span(&spans, "GET /relay");
    let b_attempt = only_span(&spans, "GET /items/<id>");
    let trace = a_attempt.span_context.trace_id();
    assert_eq!(b_attempt.span_context.trace_id(), trace, "{spans:#?}");
    // B's call span, the parent of its attempt, is a child of A's attempt.
    let b_call = spans
        .iter()
        .find(|s| s.span_context.span_id() == b_attempt.parent_span_id)
        .expect("B's call span");
    assert_eq!(b_call.name, "comms.call");
    assert_eq!(
        b_call.parent_span_id,
        a_attempt.span_context.span_id(),
        "{spans:#?}"
    );
    let sent = c.requests()[0].header("traceparent").unwrap().to_owned();
    assert!(sent.contains(&trace.to_string()), "{sent}");
}

/// A layer that takes every span and event and does nothing with them: a log's, in the tests.
struct Everything;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Everything {}

/// With the SERVER spans left out of tracing-opentelemetry's layer by a filter of its own
/// (`comms=off` there), while another layer (a log) still takes them: the span is made, but
/// holds no trace.
fn record_spans_but_servers_in_the_otel_layer() -> (Spans, tracing::subscriber::DefaultGuard) {
    use tracing_subscriber::Layer as _;
    let (exporter, tracer) = test_tracer();
    let filter = tracing_subscriber::filter::Targets::new()
        .with_default(tracing::Level::DEBUG)
        .with_target("comms::server", tracing::level_filters::LevelFilter::OFF);
    let subscriber = tracing_subscriber::registry()
        .with(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(filter),
        )
        .with(Everything);
    (
        Spans(exporter),
        tracing::subscriber::set_default(subscriber),
    )
}

/// A SERVER span that tracing-opentelemetry's layer does not take, made for another layer, is
/// served as one a filter left out: B's call to C continues A's trace, rather than each hop
/// starting one of its own.
#[tokio::test]
async fn a_server_span_only_the_otel_layer_leaves_out_still_continues_the_trace() {
    let (spans, _guard) = record_spans_but_servers_in_the_otel_layer();
    relayed_in_one_trace(spans).await;
}

#[service_client(
    base_url = "http://127.0.0.1:9",
    service_id = "billing",
    secret_env = "COMMS_OTEL_TEST_SECRET"
)]
pub trait Ledger {
    #[get("/ledger/<id>")]
    async fn entry(&self, id: u32) -> Result<String, Error>;
}

#[derive(Clone)]
struct Books;

impl Ledger for Books {
    async fn entry(&self, id: u32) -> Result<String, Error> {
        if id == 0 {
            return Err(Error::internal("no entry zero"));
        }
        if id == 4 {
            return Err(Error::not_found("no entry four"));
        }
        if id == 9 {
            tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        }
        Ok(format!("entry {id}"))
    }
}

/// A generated server's SERVER span is named by its route and continues the caller's trace;
/// its request durations are recorded by route and status. A 5xx is the server's error; a 4xx
/// is its caller's, and leaves the server's span unset, as the conventions have it.
#[tokio::test]
async fn a_generated_server_continues_the_trace_and_records_its_durations() {
    let (spans, _guard) = record_spans();
    let router = LedgerServer::new(Books)
        .verifier(Verifier::new().service("billing", SECRET))
        .into_router();
    let url = serve(router).await;
    let client: LedgerClient = comms_tests::plain_client(&url, SECRET);
    assert_eq!(client.entry(5).await.unwrap(), "entry 5");
    let err = client.entry(0).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(500));
    let err = client.entry(4).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(404));

    let spans = spans.get_finished_spans().unwrap();
    let served = spans_named(&spans, "GET /ledger/<id>");
    let (clients, servers): (Vec<&SpanData>, Vec<&SpanData>) =
        served.iter().partition(|s| s.span_kind == SpanKind::Client);
    assert_eq!((clients.len(), servers.len()), (3, 3), "{spans:#?}");
    for (client, server) in clients.iter().zip(&servers) {
        assert_eq!(server.parent_span_id, client.span_context.span_id());
        assert_eq!(
            server.span_context.trace_id(),
            client.span_context.trace_id()
        );
        assert_eq!(text(server, "http.route").as_deref(), Some("/ledger/<id>"));
    }
    assert_eq!(servers[0].status, Status::Unset);
    assert_eq!(text(servers[1], "error.type").as_deref(), Some("500"));
    assert!(matches!(servers[1].status, Status::Error { .. }));
    assert_eq!(
        attr(servers[2], "http.response.status_code"),
        Some(&Value::I64(404))
    );
    assert_eq!(attr(servers[2], "error.type"), None);
    assert_eq!(servers[2].status, Status::Unset);
    // The caller's span of the same 404 is an error: a client counts every 4xx.
    assert_eq!(text(clients[2], "error.type").as_deref(), Some("404"));
    assert!(matches!(clients[2].status, Status::Error { .. }));

    let durations = points_where("http.server.request.duration", |p| {
        p.attributes.get("http.route").map(String::as_str) == Some("/ledger/<id>")
    });
    let by_status: HashMap<&str, f64> = durations
        .iter()
        .map(|p| (p.attributes["http.response.status_code"].as_str(), p.value))
        .collect();
    assert_eq!(
        by_status,
        HashMap::from([("200", 1.0), ("404", 1.0), ("500", 1.0)])
    );
    let failed = durations
        .iter()
        .find(|p| p.attributes["http.response.status_code"] == "500")
        .unwrap();
    assert_eq!(failed.attributes["error.type"], "500");
}

/// A request whose caller hangs up before the answer ends its SERVER span as `cancelled`, an
/// error, and its duration is recorded with that `error.type` and no status code.
#[tokio::test]
async fn a_request_whose_caller_hangs_up_ends_as_cancelled() {
    let (spans, _guard) = record_spans();
    let router = LedgerServer::new(Books)
        .verifier(Verifier::new().service("billing", SECRET))
        .into_router();
    let url = serve(router).await;
    let client = LedgerClient::builder()
        .base_url(&url)
        .secret(SECRET)
        .timeout(std::time::Duration::from_millis(100))
        .retry(RetryConfig::none())
        .breaker(BreakerConfig::disabled())
        .build()
        .unwrap();
    let err = client.entry(9).await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");

    // The server notices the closed connection and drops the serving of the request.
    let mut server = None;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let finished = spans.get_finished_spans().unwrap();
        server = finished
            .into_iter()
            .find(|s| s.name == "GET /ledger/<id>" && s.span_kind == SpanKind::Server);
        if server.is_some() {
            break;
        }
    }
    let server = server.expect("the SERVER span ended");
    assert_eq!(text(&server, "error.type").as_deref(), Some("cancelled"));
    assert_eq!(text(&server, "http.response.status_code"), None);
    assert!(matches!(server.status, Status::Error { .. }));
    let cancelled = points_where("http.server.request.duration", |p| {
        p.attributes.get("error.type").map(String::as_str) == Some("cancelled")
            && p.attributes.get("http.route").map(String::as_str) == Some("/ledger/<id>")
    });
    assert_eq!(cancelled.len(), 1, "{cancelled:?}");
    assert_eq!(cancelled[0].attributes["http.route"], "/ledger/<id>");
    assert!(
        !cancelled[0]
            .attributes
            .contains_key("http.response.status_code")
    );
}

/// A request without a trace context is served in the span around the router (a tracing
/// middleware's, say), not in a trace of its own.
#[tokio::test]
async fn a_request_without_a_trace_is_served_in_the_span_around_it() {
    use tracing::Instrument;

    let (spans, _guard) = record_spans();
    let app = Router::new()
        .route("/plain", get(|| async { "plain" }))
        .layer(VerifyLayer::new(Verifier::new().service("billing", SECRET)))
        .layer(axum::middleware::from_fn(
            |request: axum::extract::Request, next: axum::middleware::Next| {
                next.run(request).instrument(tracing::info_span!("outer"))
            },
        ));
    let url = serve(app).await;
    // Unsigned and untraced: refused, but still in a SERVER span.
    let status = reqwest::get(format!("{url}/plain")).await.unwrap().status();
    assert_eq!(status, 401);

    let spans = spans.get_finished_spans().unwrap();
    let outer = only_span(&spans, "outer");
    // Behind `Router::layer`, after routing: named by the route axum matched.
    let served = only_span(&spans, "GET /plain");
    assert_eq!(text(served, "http.route").as_deref(), Some("/plain"));
    assert_eq!(served.span_kind, SpanKind::Server);
    assert_eq!(served.parent_span_id, outer.span_context.span_id());
    assert_eq!(
        served.span_context.trace_id(),
        outer.span_context.trace_id()
    );
    assert_eq!(
        text(served, "http.response.status_code").as_deref(),
        Some("401")
    );
}

/// What a served stream does, step by step.
#[derive(Clone, Copy)]
enum Step {
    Chunk(&'static str),
    Fail,
    Stall,
}

struct Script(std::collections::VecDeque<Step>);

impl futures_core::Stream for Script {
    type Item = Result<bytes::Bytes, Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        match self.0.pop_front() {
            None => Poll::Ready(None),
            Some(Step::Chunk(text)) => {
                Poll::Ready(Some(Ok(bytes::Bytes::from_static(text.as_bytes()))))
            }
            Some(Step::Fail) => Poll::Ready(Some(Err(Error::internal("the feed broke")))),
            Some(Step::Stall) => {
                self.0.push_front(Step::Stall);
                Poll::Pending
            }
        }
    }
}

#[service_client(
    base_url = "http://127.0.0.1:9",
    service_id = "billing",
    secret_env = "COMMS_OTEL_TEST_SECRET"
)]
pub trait Feeds {
    #[get("/feeds/<n>")]
    async fn feed(&self, n: u32) -> Result<comms::ByteStream, Error>;
}

#[derive(Clone)]
struct Feeder;

impl Feeds for Feeder {
    async fn feed(&self, n: u32) -> Result<comms::ByteStream, Error> {
        let steps: &[Step] = match n {
            1 => &[Step::Chunk("one "), Step::Chunk("two")],
            2 => &[Step::Chunk("one "), Step::Fail],
            _ => &[Step::Chunk("one "), Step::Stall],
        };
        Ok(comms::ByteStream::from_stream(Script(
            steps.iter().copied().collect(),
        )))
    }
}

/// A streamed answer's SERVER span lasts as long as its body: it ends when the stream does, as
/// an error when the stream failed part way (after its 200 head), and as `cancelled` when the
/// caller hung up first.
#[tokio::test]
async fn a_streamed_answers_span_ends_with_its_body() {
    let (spans, _guard) = record_spans();
    let router = FeedsServer::new(Feeder)
        .verifier(Verifier::new().service("billing", SECRET))
        .into_router();
    let url = serve(router).await;
    let client: FeedsClient = comms_tests::plain_client(&url, SECRET);
    let server_span = |n: usize| {
        let finished = spans.get_finished_spans().unwrap();
        let served: Vec<SpanData> = finished
            .into_iter()
            .filter(|s| s.name == "GET /feeds/<n>" && s.span_kind == SpanKind::Server)
            .collect();
        served.get(n).cloned()
    };

    // Whole.
    let mut whole = client.feed(1).await.unwrap();
    let mut read = Vec::new();
    while let Some(chunk) = whole.next_chunk().await {
        read.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(read, b"one two");
    let span = server_span(0).expect("the whole stream's span ended");
    assert_eq!(span.status, Status::Unset);
    assert_eq!(text(&span, "error.type"), None);

    // Failed after its head: the client sees the break, the span the error.
    let mut failing = client.feed(2).await.unwrap();
    assert_eq!(failing.next_chunk().await.unwrap().unwrap(), "one ");
    assert!(failing.next_chunk().await.unwrap().is_err());
    let span = server_span(1).expect("the failed stream's span ended");
    assert_eq!(text(&span, "error.type").as_deref(), Some("stream_error"));
    assert_eq!(
        text(&span, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert!(matches!(span.status, Status::Error { .. }));
    // The failure's warning is an event of the request's span.
    assert!(
        span.events
            .iter()
            .any(|e| e.name.contains("a served stream failed")),
        "{:?}",
        span.events
    );

    // Abandoned by its caller mid-stream.
    let mut stalled = client.feed(3).await.unwrap();
    assert_eq!(stalled.next_chunk().await.unwrap().unwrap(), "one ");
    assert!(
        server_span(2).is_none(),
        "the stalled stream's span ended early"
    );
    drop(stalled);
    let mut span = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        span = server_span(2);
        if span.is_some() {
            break;
        }
    }
    let span = span.expect("the abandoned stream's span ended");
    assert_eq!(text(&span, "error.type").as_deref(), Some("cancelled"));

    // A HEAD is answered with the GET's head, its body never read: its span ends there.
    let head = plain_executor(&url, "billing", SECRET)
        .execute(Call::head("/feeds/1"))
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    let finished = spans.get_finished_spans().unwrap();
    let span = finished
        .iter()
        .find(|s| s.name == "HEAD /feeds/<n>" && s.span_kind == SpanKind::Server)
        .expect("the HEAD's span ended");
    assert_eq!(text(span, "error.type"), None);
    assert_eq!(
        text(span, "http.response.status_code").as_deref(),
        Some("200")
    );

    // Each request's duration is recorded once, with how its body ended.
    let durations = points_where("http.server.request.duration", |p| {
        p.attributes.get("http.route").map(String::as_str) == Some("/feeds/<n>")
    });
    let mut ended: Vec<(Option<&str>, f64)> = durations
        .iter()
        .map(|p| (p.attributes.get("error.type").map(String::as_str), p.value))
        .collect();
    ended.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        ended,
        [
            (None, 1.0),
            (None, 1.0),
            (Some("cancelled"), 1.0),
            (Some("stream_error"), 1.0)
        ]
    );
}

#[service_client(
    base_url = "http://127.0.0.1:9",
    service_id = "billing",
    secret_env = "COMMS_OTEL_TEST_SECRET"
)]
pub trait LayeredFeeds {
    #[get("/layered-feeds/<n>")]
    async fn feed(&self, n: u32) -> Result<comms::ByteStream, Error>;
}

impl LayeredFeeds for Feeder {
    async fn feed(&self, n: u32) -> Result<comms::ByteStream, Error> {
        Feeds::feed(self, n).await
    }
}

/// Behind `VerifyLayer`, a streamed answer's span (the layer's) still lasts as long as its body,
/// and ends as the body did.
#[tokio::test]
async fn behind_verify_layer_a_streamed_answers_span_ends_with_its_body() {
    let (spans, _guard) = record_spans();
    let verifier = Verifier::new().service("billing", SECRET);
    let router = LayeredFeedsServer::new(Feeder)
        .verifier(verifier.clone())
        .into_router()
        .layer(VerifyLayer::new(verifier));
    let url = serve(router).await;
    let client: LayeredFeedsClient = comms_tests::plain_client(&url, SECRET);
    let servers = || {
        let finished = spans.get_finished_spans().unwrap();
        let served: Vec<SpanData> = finished
            .into_iter()
            .filter(|s| s.span_kind == SpanKind::Server)
            .collect();
        served
    };

    let mut failing = client.feed(2).await.unwrap();
    assert_eq!(failing.next_chunk().await.unwrap().unwrap(), "one ");
    assert!(failing.next_chunk().await.unwrap().is_err());
    let mut stalled = client.feed(3).await.unwrap();
    assert_eq!(stalled.next_chunk().await.unwrap().unwrap(), "one ");
    let ended = servers();
    assert_eq!(
        ended.len(),
        1,
        "the stalled stream's span ended early: {ended:#?}"
    );
    assert_eq!(ended[0].name, "GET /layered-feeds/<n>");
    assert_eq!(
        text(&ended[0], "error.type").as_deref(),
        Some("stream_error")
    );
    drop(stalled);
    let mut ended = servers();
    for _ in 0..50 {
        if ended.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        ended = servers();
    }
    assert_eq!(ended.len(), 2, "{ended:#?}");
    assert_eq!(text(&ended[1], "error.type").as_deref(), Some("cancelled"));
    let durations = points_where("http.server.request.duration", |p| {
        p.attributes.get("http.route").map(String::as_str) == Some("/layered-feeds/<n>")
    });
    let total: f64 = durations.iter().map(|p| p.value).sum();
    assert_eq!(total, 2.0, "{durations:?}");
}

/// The scheme in a request line is the sender's to write (`GET x1://host/path`, which hyper
/// takes): the server's duration is not recorded under it, or any caller, signed or not, could
/// multiply its series until the SDK's limit pushes every other request into overflow.
#[tokio::test]
async fn a_request_lines_scheme_does_not_name_the_servers_series() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    meters();
    let url = serve_verified(Router::new().route("/any-scheme", get(|| async { "ok" }))).await;
    let authority = url.trim_start_matches("http://").to_owned();
    for scheme in ["x1", "x2", "x3"] {
        let mut stream = tokio::net::TcpStream::connect(&authority).await.unwrap();
        let request = format!(
            "GET {scheme}://{authority}/any-scheme HTTP/1.1\r\nHost: {authority}\r\n\
             Connection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    }

    let durations = points_where("http.server.request.duration", |p| {
        p.attributes.get("http.route").map(String::as_str) == Some("/any-scheme")
    });
    assert_eq!(durations.len(), 1, "{durations:?}");
    assert_eq!(durations[0].attributes["url.scheme"], "http");
    assert_eq!(durations[0].value, 3.0);
}

/// A SERVER span continues the trace a request carries only when the request's signature held
/// and covers it: otherwise anybody could put spans into another trace, or decide whether a
/// parent-based sampler records them. A request refused, or signed without covering its
/// `traceparent`, is served as one without a trace, linked to the trace it claimed; a legacy
/// one, whose signature covers no header, is taken as sent (as its deadline is).
#[tokio::test]
async fn only_a_signed_trace_context_is_continued() {
    use comms::http::{HeaderValue, Method};
    use comms_tests::Recorded;

    let (spans, _guard) = record_spans();
    let verifier = Verifier::new()
        .service("billing", SECRET)
        .accept_legacy(true);
    let app = Router::new()
        .route("/claimed/{case}", get(|| async { "ok" }))
        .layer(VerifyLayer::new(verifier));
    let url = serve(app).await;
    let authority = url.trim_start_matches("http://").to_owned();
    let claimed = "4bf92f3577b34da6a3ce929d0e0e4736";
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let request = |case: &str, covered: &[&str]| {
        let mut head = Recorded::head(Method::GET, &format!("/claimed/{case}"), &authority, b"");
        head.headers.insert(
            "traceparent",
            HeaderValue::from_str(&format!("00-{claimed}-00f067aa0ba902b7-01")).unwrap(),
        );
        let nonce = format!("{case:0>16}{created:x}");
        let params =
            format!(r#";created={created};keyid="billing";alg="hmac-sha256";nonce="{nonce}""#);
        head.sign_as("comms", covered, &params, SECRET);
        head
    };
    let required = ["@method", "@authority", "@path", "@query", "content-digest"];
    let mut unsigned = request("unsigned", &required);
    unsigned.headers.remove("signature");
    let uncovered = request("uncovered", &required);
    let covered = request("covered", &[&required[..], &["traceparent"]].concat());
    let mut legacy = request("legacy", &required);
    for name in ["signature", "signature-input"] {
        legacy.headers.remove(name);
    }
    let ts = created.to_string();
    let string = comms::signing::legacy_string_to_sign("GET", "/claimed/legacy", created);
    let secret = comms::signing::Secret::from(SECRET);
    for (name, value) in [
        ("x-service-id", "billing".to_owned()),
        ("x-timestamp", ts),
        ("x-signature", comms::signing::sign_legacy(&secret, &string)),
    ] {
        legacy
            .headers
            .insert(name, HeaderValue::from_str(&value).unwrap());
    }

    let http = reqwest::Client::new();
    for (head, status) in [
        (&unsigned, 401),
        (&uncovered, 200),
        (&covered, 200),
        (&legacy, 200),
    ] {
        let mut headers = head.headers.clone();
        headers.remove("host");
        let answer = http
            .get(format!("{url}{}", head.uri))
            .headers(headers)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), status, "{}", head.uri);
    }

    let finished = spans.get_finished_spans().unwrap();
    let served = |case: &str| {
        let path = format!("/claimed/{case}");
        let found: Vec<&SpanData> = finished
            .iter()
            .filter(|s| s.span_kind == SpanKind::Server)
            .filter(|s| text(s, "url.path").as_deref() == Some(path.as_str()))
            .collect();
        assert_eq!(found.len(), 1, "{case}: {finished:#?}");
        found[0]
    };
    for case in ["unsigned", "uncovered"] {
        let span = served(case);
        assert_ne!(span.span_context.trace_id().to_string(), claimed, "{case}");
        let links: Vec<String> = span
            .links
            .iter()
            .map(|link| link.span_context.trace_id().to_string())
            .collect();
        assert_eq!(links, [claimed], "{case}");
    }
    for case in ["covered", "legacy"] {
        let span = served(case);
        assert_eq!(span.span_context.trace_id().to_string(), claimed, "{case}");
        assert!(span.links.is_empty(), "{case}");
    }

    // A generated server's own SERVER span likewise.
    let shelf = ShelfServer::new(Books)
        .verifier(Verifier::new().service("billing", SECRET))
        .into_router();
    let shelf = serve(shelf).await;
    let answer = http
        .get(format!("{shelf}/shelf/3"))
        .header("traceparent", format!("00-{claimed}-00f067aa0ba902b7-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    let spans = spans.get_finished_spans().unwrap();
    let refused = spans
        .iter()
        .find(|s| text(s, "url.path").as_deref() == Some("/shelf/3"))
        .unwrap();
    assert_eq!(refused.name, "GET /shelf/<id>");
    assert_ne!(refused.span_context.trace_id().to_string(), claimed);
    assert_eq!(refused.links.len(), 1);
}

/// A service behind `VerifyLayer` that fails to answer (returns its error, not a response) is
/// a failure of the server's, not a caller that hung up: its SERVER span ends with `error.type`
/// `_OTHER`, not `cancelled`.
#[tokio::test]
async fn a_service_that_fails_to_answer_is_not_a_cancelled_request() {
    use std::future::{Ready, ready};
    use std::task::{Context, Poll};

    use comms::http::{Method, Request, Response};
    use tower_layer::Layer as _;
    use tower_service::Service;

    #[derive(Clone)]
    struct Failing;

    impl Service<Request<axum::body::Body>> for Failing {
        type Response = Response<axum::body::Body>;
        type Error = std::io::Error;
        type Future = Ready<Result<Self::Response, Self::Error>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: Request<axum::body::Body>) -> Self::Future {
            ready(Err(std::io::Error::other("the backend is gone")))
        }
    }

    let (spans, _guard) = record_spans();
    let mut service = VerifyLayer::new(Verifier::new().service("billing", SECRET)).layer(Failing);
    let mut head = comms_tests::Recorded::head(Method::GET, "/fails", "svc.internal", b"");
    head.sign_now("billing", SECRET, &[]);
    let mut request = Request::get("/fails")
        .body(axum::body::Body::empty())
        .unwrap();
    *request.headers_mut() = head.headers.clone();
    assert!(service.call(request).await.is_err());

    let spans = spans.get_finished_spans().unwrap();
    let served = server_span(&spans);
    assert_eq!(text(served, "url.path").as_deref(), Some("/fails"));
    assert_eq!(text(served, "error.type").as_deref(), Some("_OTHER"));
    assert!(matches!(served.status, Status::Error { .. }));
}
