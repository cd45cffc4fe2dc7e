//! An application may build its clients, and even call through them, before it installs its
//! telemetry (a client made as a static, a health check made before the configuration that
//! names the exporter is read): a client takes its tracer, and comms its instruments, from the
//! global providers installed when they are used, not when the client was built or first
//! called.
//!
//! Its own test binary, because it installs the process's global providers itself.

use comms::Call;
use comms_tests::{Reply, TestServer, plain_executor, traceparent};
use opentelemetry::trace::SpanKind;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
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

#[tokio::test]
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
    opentelemetry::global::set_tracer_provider(
        SdkTracerProvider::builder()
            .with_simple_exporter(spans.clone())
            .build(),
    );
    let metrics = InMemoryMetricExporter::default();
    let meter_provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(metrics.clone()).build())
        .build();
    opentelemetry::global::set_meter_provider(meter_provider.clone());
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());

    exec.execute(Call::get("/items").route("/items"))
        .await
        .unwrap();

    let spans = spans.get_finished_spans().unwrap();
    let [attempt] = &spans[..] else {
        panic!("one attempt span: {spans:#?}");
    };
    assert_eq!(attempt.name, "GET /items");
    assert_eq!(attempt.span_kind, SpanKind::Client);
    let sent = server.requests()[1]
        .header("traceparent")
        .map(str::to_owned);
    assert_eq!(sent, Some(traceparent(&attempt.span_context)));
    assert_eq!(server.requests()[0].header("traceparent"), None);
    assert_eq!(durations(&meter_provider, &metrics), 1);
}
