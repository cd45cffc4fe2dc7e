//! An application may build its clients, and even call through them, before it installs its
//! telemetry (a client made as a static, a configuration fetched before the exporter it names
//! is set up): a client takes its tracer again while the one it has makes no spans, and comms
//! looks at the global meter provider again every 64 recordings on a thread, so that what is
//! installed later (or replaces a provider shut down) is used from then on.
//!
//! Its own test binary, because it installs the process's global providers itself.

use comms::Call;
use comms_tests::{Reply, TestServer, plain_executor, traceparent};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use opentelemetry::InstrumentationScope;
use opentelemetry::trace::SpanKind;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracer, SdkTracerProvider};
use tracing_subscriber::layer::SubscriberExt;

/// How many `http.client.request.duration` points `exporter` holds.
fn durations(provider: &SdkMeterProvider, exporter: &InMemoryMetricExporter) -> u64 {
    provider.force_flush().unwrap();
    let mut count = 0;
    for resource in exporter.get_finished_metrics().unwrap() {
        for scope in resource.scope_metrics() {
            for metric in scope
                .metrics()
                .filter(|m| m.name() == "http.client.request.duration")
            {
                if let AggregatedMetrics::F64(MetricData::Histogram(h)) = metric.data() {
                    count += h.data_points().map(|p| p.count()).sum::<u64>();
                }
            }
        }
    }
    count
}

/// In turn, as they share the process's global providers: a client used before any is
/// installed, then tracer providers and meter providers each replaced again and again.
#[tokio::test]
async fn providers_installed_late_and_replaced_are_followed() {
    a_client_used_before_the_providers_are_installed_reports_once_they_are().await;
    each_tracer_provider_replacing_a_shut_down_one_is_taken_once().await;
    each_meter_provider_installed_in_turn_gets_the_calls_made_after_it().await;
}

async fn a_client_used_before_the_providers_are_installed_reports_once_they_are() {
    let server = TestServer::always(Reply::ok_json(serde_json::json!({}))).await;
    let exec = plain_executor(&server.url(), "billing", "install-order-secret");
    // The application's subscriber asks for attempt spans from the start.
    let subscriber =
        tracing_subscriber::registry().with(tracing_subscriber::filter::LevelFilter::INFO);
    let _guard = tracing::subscriber::set_default(subscriber);

    // A call before any provider is installed: OpenTelemetry's no-op ones.
    exec.execute(Call::get("/early").route("/early"))
        .await
        .unwrap();

    // Installed after the client was built, and called.
    let spans = InMemorySpanExporter::default();
    let tracer_provider = SdkTracerProvider::builder()
        .with_simple_exporter(spans.clone())
        .build();
    opentelemetry::global::set_tracer_provider(tracer_provider.clone());
    let metrics = InMemoryMetricExporter::default();
    let meter_provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(metrics.clone()).build())
        .build();
    opentelemetry::global::set_meter_provider(meter_provider.clone());
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());

    // The tracer is taken again at once: the next call's attempt has its span.
    exec.execute(Call::get("/items").route("/items"))
        .await
        .unwrap();
    let made = spans.get_finished_spans().unwrap();
    let [attempt] = &made[..] else {
        panic!("one attempt span: {made:#?}");
    };
    assert_eq!(attempt.name, "GET /items");
    assert_eq!(attempt.span_kind, SpanKind::Client);
    let sent = server.requests()[1]
        .header("traceparent")
        .map(str::to_owned);
    assert_eq!(sent, Some(traceparent(&attempt.span_context)));
    assert_eq!(server.requests()[0].header("traceparent"), None);

    // The instruments are made again within 64 recordings on this thread.
    let mut calls = 1;
    while durations(&meter_provider, &metrics) == 0 {
        assert!(calls <= 65, "no duration recorded in {calls} calls");
        exec.execute(Call::get("/items").route("/items"))
            .await
            .unwrap();
        calls += 1;
    }

    // A provider replaced, the old one shut down: the client's tracer, which then makes no
    // spans, is taken again.
    tracer_provider.shutdown().unwrap();
    let replaced = InMemorySpanExporter::default();
    opentelemetry::global::set_tracer_provider(
        SdkTracerProvider::builder()
            .with_simple_exporter(replaced.clone())
            .build(),
    );
    exec.execute(Call::get("/later").route("/later"))
        .await
        .unwrap();
    let made = replaced.get_finished_spans().unwrap();
    assert_eq!(made.len(), 1, "{made:#?}");
    assert_eq!(made[0].name, "GET /later");
}

/// An SDK tracer provider that counts the tracers taken from it.
struct Counting(SdkTracerProvider, Arc<AtomicUsize>);

impl opentelemetry::trace::TracerProvider for Counting {
    type Tracer = SdkTracer;

    fn tracer_with_scope(&self, scope: InstrumentationScope) -> SdkTracer {
        self.1.fetch_add(1, Ordering::Relaxed);
        self.0.tracer_with_scope(scope)
    }
}

/// Six providers in turn, each replacing one shut down: a client takes each one's tracer once
/// (at most twice), not again at every attempt, and every attempt has its span.
async fn each_tracer_provider_replacing_a_shut_down_one_is_taken_once() {
    let subscriber =
        tracing_subscriber::registry().with(tracing_subscriber::filter::LevelFilter::INFO);
    let _guard = tracing::subscriber::set_default(subscriber);
    let server = TestServer::always(Reply::ok_json(serde_json::json!({}))).await;
    let exec = plain_executor(&server.url(), "billing", "install-order-secret");
    let mut previous: Option<SdkTracerProvider> = None;
    for generation in 1..=6 {
        let spans = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(spans.clone())
            .build();
        let taken = Arc::new(AtomicUsize::new(0));
        opentelemetry::global::set_tracer_provider(Counting(provider.clone(), taken.clone()));
        if let Some(old) = previous.take() {
            old.shutdown().unwrap();
        }
        for _ in 0..20 {
            exec.execute(Call::get("/items").route("/items"))
                .await
                .unwrap();
        }
        let made = spans.get_finished_spans().unwrap().len();
        assert_eq!(made, 20, "generation {generation}");
        let taken = taken.load(Ordering::Relaxed);
        assert!(taken <= 2, "generation {generation}: taken {taken} times");
        previous = Some(provider);
    }
}

/// Ten meter providers in turn, each shutting the one before down: each gets the durations of
/// the calls made after it, from within 64 recordings.
async fn each_meter_provider_installed_in_turn_gets_the_calls_made_after_it() {
    let server = TestServer::always(Reply::ok_json(serde_json::json!({}))).await;
    let exec = plain_executor(&server.url(), "billing", "install-order-secret");
    let mut previous: Option<SdkMeterProvider> = None;
    for generation in 1..=10 {
        let exporter = InMemoryMetricExporter::default();
        let provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(exporter.clone()).build())
            .build();
        opentelemetry::global::set_meter_provider(provider.clone());
        if let Some(old) = previous.take() {
            old.shutdown().unwrap();
        }
        let mut calls = 0;
        while durations(&provider, &exporter) == 0 {
            assert!(calls <= 65, "provider {generation}: none in {calls} calls");
            exec.execute(Call::get("/items").route("/items"))
                .await
                .unwrap();
            calls += 1;
        }
        previous = Some(provider);
    }
}
