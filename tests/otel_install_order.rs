//! An application may build its clients before it installs its telemetry (a client made as a
//! static, or before the configuration that names the exporter is read): a client takes its
//! tracer from the global tracer provider at its first call, not when it is built.
//!
//! Its own test binary, because it installs the process's global providers itself.

use comms::Call;
use comms_tests::{Reply, TestServer, plain_executor, traceparent};
use opentelemetry::trace::SpanKind;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use tracing_subscriber::layer::SubscriberExt;

#[tokio::test]
async fn a_client_built_before_the_tracer_provider_is_installed_makes_its_spans() {
    let server = TestServer::always(Reply::ok_json(serde_json::json!({}))).await;
    let exec = plain_executor(&server.url(), "billing", "install-order-secret");

    // Installed after the client was built.
    let exporter = InMemorySpanExporter::default();
    opentelemetry::global::set_tracer_provider(
        SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build(),
    );
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let subscriber =
        tracing_subscriber::registry().with(tracing_subscriber::filter::LevelFilter::INFO);
    let _guard = tracing::subscriber::set_default(subscriber);

    exec.execute(Call::get("/items").route("/items"))
        .await
        .unwrap();

    let spans = exporter.get_finished_spans().unwrap();
    let [attempt] = &spans[..] else {
        panic!("one attempt span: {spans:#?}");
    };
    assert_eq!(attempt.name, "GET /items");
    assert_eq!(attempt.span_kind, SpanKind::Client);
    let sent = server.requests()[0]
        .header("traceparent")
        .map(str::to_owned);
    assert_eq!(sent, Some(traceparent(&attempt.span_context)));
}
