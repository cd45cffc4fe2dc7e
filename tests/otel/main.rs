//! The `otel` feature, read back through the OpenTelemetry SDK's in-memory exporters: a CLIENT
//! span per attempt under the HTTP client conventions, the trace context signed into every
//! attempt and continued by the receiving side's SERVER span, and the metrics' recorded values.
//!
//! Spans: each test records its `tracing` spans (calls, SERVER spans, its own) on its own
//! thread (`set_default`) with a current-thread runtime, so its tracer provider sees exactly
//! its own calls and the servers it starts. Attempt spans come from the global tracer
//! provider, shared by every test, so a test takes those in the traces of its own spans.
//! Metrics: comms records through the global meter provider, one for the process, so one
//! provider is installed before any test calls, and each test reads the points of its own
//! server's port.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use comms::service_client;
use comms::verify::{Verifier, VerifyLayer};
use comms::{BreakerConfig, Call, Error, Executor, RetryConfig};
use comms_tests::{
    Fault, FaultServer, Reply, TestServer, fast_retry, plain_executor, serve, traceparent,
};
use opentelemetry::baggage::BaggageExt as _;
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{SpanKind, Status, TracerProvider as _};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing_subscriber::layer::SubscriberExt;

const SECRET: &str = "otel-test-secret";

/// The process's meter and tracer providers, installed before the first call of any test.
struct Meters {
    provider: SdkMeterProvider,
    exporter: InMemoryMetricExporter,
    /// Every test's attempt spans.
    attempts: InMemorySpanExporter,
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
        let attempts = InMemorySpanExporter::default();
        opentelemetry::global::set_tracer_provider(
            SdkTracerProvider::builder()
                .with_simple_exporter(attempts.clone())
                .build(),
        );
        Meters {
            provider,
            exporter,
            attempts,
        }
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

/// A test's finished spans: those of its `tracing` spans, and the attempt spans in their traces.
struct Spans(InMemorySpanExporter);

impl Spans {
    fn get_finished_spans(&self) -> Result<Vec<SpanData>, std::convert::Infallible> {
        let mut spans = self.0.get_finished_spans().unwrap();
        let traces: Vec<_> = spans.iter().map(|s| s.span_context.trace_id()).collect();
        let attempts = meters().attempts.get_finished_spans().unwrap();
        spans.extend(
            attempts
                .into_iter()
                .filter(|a| traces.contains(&a.span_context.trace_id())),
        );
        Ok(spans)
    }
}

/// A tracer whose spans go to an exporter of the test's own, the process's meter provider and
/// propagator installed first.
fn test_tracer() -> (InMemorySpanExporter, opentelemetry_sdk::trace::SdkTracer) {
    meters();
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    (exporter, provider.tracer("otel-test"))
}

/// Records this thread's spans, comms' `DEBUG` call spans included, until the guard drops.
fn record_spans() -> (Spans, tracing::subscriber::DefaultGuard) {
    let (exporter, tracer) = test_tracer();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(tracer))
        .with(tracing_subscriber::filter::LevelFilter::DEBUG);
    (
        Spans(exporter),
        tracing::subscriber::set_default(subscriber),
    )
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

/// The one SERVER span among `spans` (the first, should there be more); none fails the test,
/// showing every span.
fn server_span(spans: &[SpanData]) -> &SpanData {
    spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Server)
        .unwrap_or_else(|| panic!("a SERVER span: {spans:#?}"))
}

/// Serves `app` behind a `VerifyLayer` that knows the `billing` caller: its URL.
async fn serve_verified(app: Router) -> String {
    serve(app.layer(VerifyLayer::new(Verifier::new().service("billing", SECRET)))).await
}

/// [`serve_verified`], with axum told the peer of each connection (`client.address`): the
/// address it listens on.
async fn serve_verified_with_peers(app: Router) -> std::net::SocketAddr {
    let app = app.layer(VerifyLayer::new(Verifier::new().service("billing", SECRET)));
    let listener = comms_tests::fresh_listener().await;
    let addr = listener.local_addr().unwrap();
    let served = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, served).await.unwrap() });
    addr
}

/// `call`, made and polled with `cx` as the current context.
async fn execute_in(cx: opentelemetry::Context, exec: &Executor, call: Call) -> comms::Response {
    let call = {
        let _attached = cx.clone().attach();
        exec.execute(call)
    };
    call.with_context(cx).await.unwrap()
}

/// C, and B: a route behind `VerifyLayer` whose handler calls C, in its current context with
/// `b_adds` added to the baggage; then A's call to B, made in `a_cx`. Returns C, which
/// recorded what B sent it.
async fn relay_through_b(a_cx: opentelemetry::Context, b_adds: Option<KeyValue>) -> TestServer {
    let c = TestServer::always(Reply::ok_json(serde_json::json!({"from": "c"}))).await;
    let c_url = c.url();
    let b_app = Router::new().route(
        "/relay",
        get(move || {
            let (c_url, b_adds) = (c_url.clone(), b_adds.clone());
            async move {
                let cx = match b_adds {
                    Some(entry) => opentelemetry::Context::current_with_baggage([entry]),
                    None => opentelemetry::Context::current(),
                };
                let to_c = plain_executor(&c_url, "billing", SECRET);
                execute_in(cx, &to_c, item(9)).await;
                "relayed"
            }
        }),
    );
    let b_url = serve_verified(b_app).await;
    let to_b = plain_executor(&b_url, "billing", SECRET);
    execute_in(a_cx, &to_b, Call::get("/relay").route("/relay")).await;
    c
}

/// The one span named `name`; any other count fails the test, showing every span.
fn only_span<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    match spans_named(spans, name)[..] {
        [span] => span,
        ref found => panic!("{} spans named {name:?}, not one: {spans:#?}", found.len()),
    }
}

/// A server that answers after 2 s: longer than any call to it waits.
async fn slow_server() -> TestServer {
    TestServer::always(Reply::ok_json(serde_json::json!({})).delay(Duration::from_secs(2))).await
}

fn executor(url: &str, retry: RetryConfig, breaker: BreakerConfig) -> Executor {
    comms_tests::executor_with(url, "billing", SECRET, retry, breaker)
}

fn item(id: u32) -> Call {
    Call::get("/items").segment(id).route("/items/<id>")
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

mod client;
mod conformance;
mod server;
