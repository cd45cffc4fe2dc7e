//! With `--features otel`: comms' `otel` feature under a full OpenTelemetry pipeline, so the
//! loopback figures show what it costs a service that exports traces and metrics.
//!
//! Spans go through tracing-opentelemetry's layer (at `INFO`, what services run at: each
//! attempt's CLIENT span, not the `DEBUG` call span) to the SDK's batch processor and an
//! exporter that drops them; metrics to the SDK's meter provider with a periodic reader; W3C
//! trace context is injected into every attempt. Only the comms variants pay: the reqwest
//! baselines make no spans, so their ratios show the cost.

/// Installs the pipeline when the feature is on; says what the run measures.
/// `COMMS_BENCH_OTEL=spans,metrics,propagation` (the default: all three) picks the parts, to
/// see what each costs.
pub(crate) fn install() -> String {
    #[cfg(feature = "otel")]
    {
        let parts = std::env::var("COMMS_BENCH_OTEL")
            .unwrap_or_else(|_| "spans,metrics,propagation".to_owned());
        let on = |part: &str| parts.split(',').any(|p| p.trim() == part);
        let (spans, metrics, propagation) = (on("spans"), on("metrics"), on("propagation"));
        pipeline::install(spans, metrics, propagation);
        format!(
            "otel: on; spans {} (tracing-opentelemetry layer at INFO, batch processor, dropping exporter), metrics {} (SDK meter provider), propagation {} (W3C)",
            if spans { "on" } else { "off" },
            if metrics { "on" } else { "off" },
            if propagation { "on" } else { "off" },
        )
    }
    #[cfg(not(feature = "otel"))]
    {
        "otel: off (the feature is not built)".to_owned()
    }
}

#[cfg(feature = "otel")]
mod pipeline {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::error::OTelSdkResult;
    use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    /// Takes every batch and keeps nothing: the cost of export over a network is not comms'.
    #[derive(Debug)]
    struct Dropping;

    impl SpanExporter for Dropping {
        async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
            Ok(())
        }
    }

    pub(super) fn install(spans: bool, metrics: bool, propagation: bool) {
        if propagation {
            opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        }
        if metrics {
            let meters = SdkMeterProvider::builder()
                .with_reader(PeriodicReader::builder(InMemoryMetricExporter::default()).build())
                .build();
            opentelemetry::global::set_meter_provider(meters);
        }
        if spans {
            let tracer = SdkTracerProvider::builder()
                .with_batch_exporter(Dropping)
                .build()
                .tracer("comms-bench");
            tracing_subscriber::registry()
                .with(tracing_opentelemetry::layer().with_tracer(tracer))
                .with(tracing_subscriber::filter::LevelFilter::INFO)
                .init();
        }
    }
}
