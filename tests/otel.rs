//! The `otel` feature, read back through the OpenTelemetry SDK's in-memory exporters: a CLIENT
//! span per attempt under the HTTP client conventions, the trace context signed into every
//! attempt and continued by the receiving side's SERVER span, and the metrics' recorded values.
//!
//! Spans: each test records on its own thread (`set_default`) with a current-thread runtime,
//! so its tracer provider sees exactly its own calls and the servers it starts. Metrics: comms
//! takes its instruments from the global meter provider once per process, so one provider is
//! installed before any test calls, and each test reads the points of its own server's port.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use comms::service_client;
use comms::verify::{Verifier, VerifyLayer};
use comms::{BreakerConfig, Call, Error, Executor, RetryConfig};
use comms_tests::{Reply, TestServer, fast_retry, serve};
use opentelemetry::trace::{SpanKind, Status, TracerProvider as _};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing_subscriber::layer::SubscriberExt;

const SECRET: &str = "otel-test-secret";

/// The process's meter provider, installed before the first call of any test.
struct Meters {
    provider: SdkMeterProvider,
    exporter: InMemoryMetricExporter,
}

fn meters() -> &'static Meters {
    static METERS: OnceLock<Meters> = OnceLock::new();
    METERS.get_or_init(|| {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let exporter = InMemoryMetricExporter::default();
        let provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(exporter.clone()).build())
            .build();
        opentelemetry::global::set_meter_provider(provider.clone());
        Meters { provider, exporter }
    })
}

/// One data point: its attributes as text, and its value (a sum's or gauge's value, or a
/// histogram's count).
#[derive(Debug)]
struct Point {
    attributes: HashMap<String, String>,
    value: f64,
    sum: f64,
}

/// The points of metric `name` whose `server.port` is `port`.
fn points(name: &str, port: u16) -> Vec<Point> {
    let port = port.to_string();
    points_where(name, |p| p.attributes.get("server.port") == Some(&port))
}

fn texts<'a>(attributes: impl Iterator<Item = &'a KeyValue>) -> HashMap<String, String> {
    attributes
        .map(|kv| (kv.key.to_string(), kv.value.to_string()))
        .collect()
}

fn collect(data: &AggregatedMetrics, out: &mut Vec<Point>) {
    match data {
        AggregatedMetrics::F64(MetricData::Histogram(h)) => {
            out.extend(h.data_points().map(|p| Point {
                attributes: texts(p.attributes()),
                value: p.count() as f64,
                sum: p.sum(),
            }))
        }
        AggregatedMetrics::U64(MetricData::Sum(s)) => out.extend(s.data_points().map(|p| Point {
            attributes: texts(p.attributes()),
            value: p.value() as f64,
            sum: 0.0,
        })),
        AggregatedMetrics::I64(MetricData::Gauge(g)) => {
            out.extend(g.data_points().map(|p| Point {
                attributes: texts(p.attributes()),
                value: p.value() as f64,
                sum: 0.0,
            }))
        }
        other => panic!("unexpected metric data {other:?}"),
    }
}

/// Records this thread's spans, comms' `DEBUG` call spans included, until the guard drops.
fn record_spans() -> (InMemorySpanExporter, tracing::subscriber::DefaultGuard) {
    meters();
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("otel-test")))
        .with(tracing_subscriber::filter::LevelFilter::DEBUG);
    (exporter, tracing::subscriber::set_default(subscriber))
}

fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

fn text(span: &SpanData, key: &str) -> Option<String> {
    attr(span, key).map(Value::to_string)
}

fn spans_named<'a>(spans: &'a [SpanData], name: &str) -> Vec<&'a SpanData> {
    spans.iter().filter(|s| s.name == name).collect()
}

fn executor(url: &str, retry: RetryConfig, breaker: BreakerConfig) -> Executor {
    Executor::builder()
        .base_url(url)
        .service_id("billing")
        .secret(SECRET)
        .retry(retry)
        .breaker(breaker)
        .build()
        .unwrap()
}

fn item(id: u32) -> Call {
    Call::get("/items").segment(id).route("/items/<id>")
}

#[tokio::test]
async fn a_success_is_one_client_span_under_its_call_and_its_context_is_signed() {
    let (spans, _guard) = record_spans();
    let server = TestServer::always(Reply::ok_json(serde_json::json!({}))).await;
    let port = server.addr().port();
    executor(
        &server.url(),
        RetryConfig::none(),
        BreakerConfig::disabled(),
    )
    .execute(item(7))
    .await
    .unwrap();

    let spans = spans.get_finished_spans().unwrap();
    let [attempt] = spans_named(&spans, "GET /items/<id>")[..] else {
        panic!("one attempt span: {spans:#?}");
    };
    let [call] = spans_named(&spans, "comms.call")[..] else {
        panic!("one call span: {spans:#?}");
    };
    assert_eq!(attempt.span_kind, SpanKind::Client);
    assert_eq!(attempt.parent_span_id, call.span_context.span_id());
    assert_eq!(
        attempt.span_context.trace_id(),
        call.span_context.trace_id()
    );
    for (key, value) in [
        ("http.request.method", "GET"),
        ("server.address", "127.0.0.1"),
        ("server.port", &port.to_string()),
        ("url.template", "/items/<id>"),
        ("url.full", &format!("{}/items/7", server.url())),
        ("http.response.status_code", "200"),
    ] {
        assert_eq!(text(attempt, key).as_deref(), Some(value), "{key}");
    }
    assert_eq!(attr(attempt, "error.type"), None);
    assert_eq!(attr(attempt, "http.request.resend_count"), None);
    assert_eq!(attempt.status, Status::Unset);

    // The request carried the attempt's context, covered by a signature that verifies.
    let request = &server.requests()[0];
    let traceparent = request.header("traceparent").expect("a traceparent");
    assert_eq!(
        traceparent,
        format!(
            "00-{}-{}-01",
            attempt.span_context.trace_id(),
            attempt.span_context.span_id()
        )
    );
    assert!(
        request
            .header("signature-input")
            .unwrap()
            .contains("\"traceparent\""),
        "{:?}",
        request.header("signature-input")
    );
    Verifier::new()
        .service("billing", SECRET)
        .verify(
            &request.method,
            &request.uri,
            &request.headers,
            &request.body,
        )
        .await
        .unwrap();

    let durations = points("http.client.request.duration", port);
    assert_eq!(durations.len(), 1, "{durations:?}");
    let point = &durations[0];
    assert_eq!(point.value, 1.0);
    assert!(point.sum > 0.0 && point.sum < 5.0, "{point:?}");
    assert_eq!(point.attributes["http.response.status_code"], "200");
    assert_eq!(point.attributes["url.template"], "/items/<id>");
    assert_eq!(point.attributes["http.request.method"], "GET");
    assert!(!point.attributes.contains_key("error.type"));
}

#[tokio::test]
async fn a_503_retried_to_a_200_is_two_attempt_spans_and_one_retry() {
    let (spans, _guard) = record_spans();
    let server = TestServer::start(|_, i| match i {
        0 => Reply::status(503),
        _ => Reply::ok_json(serde_json::json!({})),
    })
    .await;
    let port = server.addr().port();
    executor(&server.url(), fast_retry(), BreakerConfig::disabled())
        .execute(item(1))
        .await
        .unwrap();

    let spans = spans.get_finished_spans().unwrap();
    let attempts = spans_named(&spans, "GET /items/<id>");
    assert_eq!(attempts.len(), 2, "{spans:#?}");
    let (first, second) = (attempts[0], attempts[1]);
    assert_eq!(
        text(first, "http.response.status_code").as_deref(),
        Some("503")
    );
    assert_eq!(text(first, "error.type").as_deref(), Some("503"));
    assert!(matches!(first.status, Status::Error { .. }));
    assert_eq!(attr(first, "http.request.resend_count"), None);
    assert_eq!(
        text(second, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(
        attr(second, "http.request.resend_count"),
        Some(&Value::I64(1))
    );
    assert_eq!(attr(second, "error.type"), None);
    assert_eq!(first.parent_span_id, second.parent_span_id);
    // Each attempt sent its own span's context.
    let sent: Vec<String> = server
        .requests()
        .iter()
        .map(|r| r.header("traceparent").unwrap().to_owned())
        .collect();
    assert!(sent[0].contains(&first.span_context.span_id().to_string()));
    assert!(sent[1].contains(&second.span_context.span_id().to_string()));

    let mut durations = points("http.client.request.duration", port);
    durations.sort_by(|a, b| {
        a.attributes["http.response.status_code"].cmp(&b.attributes["http.response.status_code"])
    });
    assert_eq!(durations.len(), 2, "{durations:?}");
    assert_eq!(durations[0].attributes["http.response.status_code"], "200");
    assert_eq!(durations[1].attributes["http.response.status_code"], "503");
    assert_eq!(durations[1].attributes["error.type"], "503");
    assert_eq!((durations[0].value, durations[1].value), (1.0, 1.0));
    let retries = points("comms.client.retries", port);
    assert_eq!(retries.len(), 1, "{retries:?}");
    assert_eq!(retries[0].value, 1.0);
}

#[tokio::test]
async fn a_timeout_is_an_attempt_and_a_call_of_error_type_timeout() {
    let (spans, _guard) = record_spans();
    let server =
        TestServer::always(Reply::ok_json(serde_json::json!({})).delay(Duration::from_secs(2)))
            .await;
    let port = server.addr().port();
    let err = executor(
        &server.url(),
        RetryConfig::none(),
        BreakerConfig::disabled(),
    )
    .execute(item(2).timeout(Duration::from_millis(100)))
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");

    let spans = spans.get_finished_spans().unwrap();
    let [attempt] = spans_named(&spans, "GET /items/<id>")[..] else {
        panic!("one attempt span: {spans:#?}");
    };
    let [call] = spans_named(&spans, "comms.call")[..] else {
        panic!("one call span: {spans:#?}");
    };
    assert_eq!(text(attempt, "error.type").as_deref(), Some("timeout"));
    assert_eq!(attr(attempt, "http.response.status_code"), None);
    assert!(matches!(attempt.status, Status::Error { .. }));
    assert_eq!(text(call, "error.type").as_deref(), Some("timeout"));
    assert!(matches!(call.status, Status::Error { .. }));

    let durations = points("http.client.request.duration", port);
    assert_eq!(durations.len(), 1, "{durations:?}");
    assert_eq!(durations[0].attributes["error.type"], "timeout");
    assert!(durations[0].sum >= 0.1, "{:?}", durations[0]);
}

#[tokio::test]
async fn an_open_breaker_refuses_without_an_attempt_span_and_is_counted() {
    let (spans, _guard) = record_spans();
    let server = TestServer::always(Reply::status(503)).await;
    let port = server.addr().port();
    let exec = executor(
        &server.url(),
        RetryConfig::none(),
        BreakerConfig::default()
            .failure_threshold(1)
            .open_for(Duration::from_secs(60)),
    );
    let first = exec.execute(item(3)).await.unwrap_err();
    assert_eq!(first.status().map(|s| s.as_u16()), Some(503));
    let second = exec.execute(item(3)).await.unwrap_err();
    assert!(matches!(second, Error::CircuitOpen { .. }), "{second}");
    assert_eq!(server.count(), 1);

    let spans = spans.get_finished_spans().unwrap();
    assert_eq!(
        spans_named(&spans, "GET /items/<id>").len(),
        1,
        "{spans:#?}"
    );
    let calls = spans_named(&spans, "comms.call");
    assert_eq!(calls.len(), 2, "{spans:#?}");
    assert_eq!(text(calls[0], "error.type").as_deref(), Some("503"));
    assert_eq!(
        text(calls[1], "error.type").as_deref(),
        Some("circuit_open")
    );
    assert!(matches!(calls[1].status, Status::Error { .. }));

    let refusals = points("comms.client.breaker.refusals", port);
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert_eq!(refusals[0].value, 1.0);
    let transitions = points("comms.client.breaker.transitions", port);
    assert_eq!(transitions.len(), 1, "{transitions:?}");
    assert_eq!(transitions[0].attributes["comms.breaker.state"], "open");
    assert_eq!(transitions[0].value, 1.0);
    let state = points("comms.client.breaker.state", port);
    assert_eq!(state.len(), 1, "{state:?}");
    assert_eq!(state[0].value, 2.0, "open");
}

#[tokio::test]
async fn an_exhausted_retry_budget_is_counted() {
    let _spans = record_spans();
    let server = TestServer::always(Reply::status(503)).await;
    let port = server.addr().port();
    // No floor and no deposits to speak of: the first retry is refused.
    let exec = executor(
        &server.url(),
        fast_retry().budget(0.0, 0),
        BreakerConfig::disabled(),
    );
    exec.execute(item(4)).await.unwrap_err();
    assert_eq!(server.count(), 1);
    let refusals = points("comms.client.retry_budget.refusals", port);
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert_eq!(refusals[0].value, 1.0);
    assert!(points("comms.client.retries", port).is_empty());
}

/// A → B → C: A calls B's route behind `VerifyLayer`, whose handler calls C. Every span is in
/// A's trace, B's SERVER span is the child of A's attempt, and B's call to C is the child of
/// B's SERVER span.
#[tokio::test]
async fn a_chain_of_services_shares_one_trace() {
    let (spans, _guard) = record_spans();
    let c = TestServer::always(Reply::ok_json(serde_json::json!({"from": "c"}))).await;
    let c_url = c.url();
    let b_app = Router::new()
        .route(
            "/relay",
            get(move || {
                let c_url = c_url.clone();
                async move {
                    let to_c = executor(&c_url, RetryConfig::none(), BreakerConfig::disabled());
                    to_c.execute(item(9)).await.unwrap();
                    "relayed"
                }
            }),
        )
        .layer(VerifyLayer::new(Verifier::new().service("billing", SECRET)));
    let b_url = serve(b_app).await;
    executor(&b_url, RetryConfig::none(), BreakerConfig::disabled())
        .execute(Call::get("/relay").route("/relay"))
        .await
        .unwrap();

    let spans = spans.get_finished_spans().unwrap();
    let [a_attempt] = spans_named(&spans, "GET /relay")[..] else {
        panic!("A's attempt: {spans:#?}");
    };
    // The layer runs before routing, so its span is named by the method alone.
    let [b_server] = spans_named(&spans, "GET")[..] else {
        panic!("B's SERVER span: {spans:#?}");
    };
    let [b_attempt] = spans_named(&spans, "GET /items/<id>")[..] else {
        panic!("B's attempt: {spans:#?}");
    };
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
    assert_eq!(
        sent,
        format!("00-{trace}-{}-01", b_attempt.span_context.span_id())
    );
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
        Ok(format!("entry {id}"))
    }
}

/// A generated server's SERVER span is named by its route and continues the caller's trace;
/// its request durations are recorded by route and status.
#[tokio::test]
async fn a_generated_server_continues_the_trace_and_records_its_durations() {
    let (spans, _guard) = record_spans();
    let router = LedgerServer::new(Books)
        .verifier(Verifier::new().service("billing", SECRET))
        .into_router();
    let url = serve(router).await;
    let client = LedgerClient::builder()
        .base_url(&url)
        .secret(SECRET)
        .retry(RetryConfig::none())
        .breaker(BreakerConfig::disabled())
        .build()
        .unwrap();
    assert_eq!(client.entry(5).await.unwrap(), "entry 5");
    let err = client.entry(0).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(500));

    let spans = spans.get_finished_spans().unwrap();
    let served = spans_named(&spans, "GET /ledger/<id>");
    let (clients, servers): (Vec<&SpanData>, Vec<&SpanData>) =
        served.iter().partition(|s| s.span_kind == SpanKind::Client);
    assert_eq!((clients.len(), servers.len()), (2, 2), "{spans:#?}");
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

    let durations = points_where("http.server.request.duration", |p| {
        p.attributes.get("http.route").map(String::as_str) == Some("/ledger/<id>")
    });
    let by_status: HashMap<&str, f64> = durations
        .iter()
        .map(|p| (p.attributes["http.response.status_code"].as_str(), p.value))
        .collect();
    assert_eq!(by_status, HashMap::from([("200", 1.0), ("500", 1.0)]));
    let failed = durations
        .iter()
        .find(|p| p.attributes["http.response.status_code"] == "500")
        .unwrap();
    assert_eq!(failed.attributes["error.type"], "500");
}

/// The points of `name` that `keep` keeps, whatever their port.
fn points_where(name: &str, keep: impl Fn(&Point) -> bool) -> Vec<Point> {
    let meters = meters();
    meters.provider.force_flush().unwrap();
    let exported = meters.exporter.get_finished_metrics().unwrap();
    let mut found = Vec::new();
    if let Some(resource) = exported.last() {
        for scope in resource.scope_metrics() {
            for metric in scope.metrics().filter(|m| m.name() == name) {
                collect(metric.data(), &mut found);
            }
        }
    }
    found.into_iter().filter(keep).collect()
}
