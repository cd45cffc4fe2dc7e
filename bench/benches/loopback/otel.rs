//! With `--features otel`: comms' `otel` feature under a full OpenTelemetry pipeline, so the
//! loopback figures show what it costs a service that exports traces and metrics.
//!
//! Each attempt's CLIENT span comes from the global tracer provider, whose SDK batch processor
//! hands them to an exporter that drops them; a `tracing_subscriber` registry with
//! tracing-opentelemetry's layer runs at `INFO` (what services run at: the attempt spans are
//! enabled, the `DEBUG` call span is not). Metrics go to the SDK's meter provider with a
//! periodic reader; W3C trace context is injected into every attempt. Only the comms variants
//! pay: the reqwest baselines make no spans, so their ratios show the cost.

/// Installs the pipeline when the feature is on; says what the run measures.
/// `COMMS_BENCH_OTEL=spans,metrics,propagation` (the default: all three) picks the parts, to
/// see what each costs. `COMMS_BENCH_OTEL_SAMPLE=0.1` records that share of traces (a
/// parent-based ratio sampler, as services sample) instead of every one.
pub(crate) fn install() -> String {
    #[cfg(feature = "otel")]
    {
        let parts = std::env::var("COMMS_BENCH_OTEL")
            .unwrap_or_else(|_| "spans,metrics,propagation".to_owned());
        let on = |part: &str| parts.split(',').any(|p| p.trim() == part);
        let (spans, metrics, propagation) = (on("spans"), on("metrics"), on("propagation"));
        let sample = std::env::var("COMMS_BENCH_OTEL_SAMPLE")
            .ok()
            .and_then(|s| s.parse::<f64>().ok());
        pipeline::install(spans, sample, metrics, propagation);
        format!(
            "otel: on; spans {} (global tracer provider, {}, batch processor, dropping exporter; tracing-opentelemetry layer at INFO), metrics {} (SDK meter provider), propagation {} (W3C)",
            if spans { "on" } else { "off" },
            sample.map_or("every trace recorded".to_owned(), |r| format!(
                "{:.0}% of traces recorded",
                r * 100.0
            )),
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
    use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, SpanData, SpanExporter};
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

    pub(super) fn install(spans: bool, sample: Option<f64>, metrics: bool, propagation: bool) {
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
            let mut provider = SdkTracerProvider::builder().with_batch_exporter(Dropping);
            if let Some(ratio) = sample {
                provider = provider.with_sampler(Sampler::ParentBased(Box::new(
                    Sampler::TraceIdRatioBased(ratio),
                )));
            }
            let provider = provider.build();
            // comms makes its attempt spans with the global provider's tracer, and the
            // SERVER and call spans through tracing-opentelemetry's layer.
            opentelemetry::global::set_tracer_provider(provider.clone());
            let tracer = provider.tracer("comms-bench");
            tracing_subscriber::registry()
                .with(tracing_opentelemetry::layer().with_tracer(tracer))
                .with(tracing_subscriber::filter::LevelFilter::INFO)
                .init();
        }
    }
}

/// Raw reqwest instrumented by hand with the least the HTTP client conventions ask of a call: a
/// CLIENT span from the global tracer with the required attributes and the status, W3C trace
/// context injected through the global propagator, and the request duration recorded in a
/// histogram bound once to its attributes. No signature, retry or breaker: its ratio to raw
/// reqwest is what the OpenTelemetry SDK itself costs a loopback call, the floor under what
/// any instrumented client can reach.
#[cfg(feature = "otel")]
pub(crate) struct ByHand {
    tracer: opentelemetry::global::BoxedTracer,
    server: [opentelemetry::KeyValue; 2],
    durations: opentelemetry::metrics::BoundHistogram<f64>,
}

#[cfg(feature = "otel")]
impl ByHand {
    pub(crate) fn new(addr: &std::net::SocketAddr) -> ByHand {
        use opentelemetry::KeyValue;
        let server = [
            KeyValue::new("server.address", addr.ip().to_string()),
            KeyValue::new("server.port", i64::from(addr.port())),
        ];
        let durations = opentelemetry::global::meter("comms-bench")
            .f64_histogram("http.client.request.duration")
            .with_unit("s")
            .with_boundaries(vec![
                0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
            ])
            .build()
            .bind(&[
                KeyValue::new("http.request.method", "GET"),
                server[0].clone(),
                server[1].clone(),
                KeyValue::new("http.response.status_code", 200),
            ]);
        ByHand {
            tracer: opentelemetry::global::tracer("comms-bench"),
            server,
            durations,
        }
    }

    /// One call: GET /users/1 in its span, its trace context sent, its duration recorded.
    pub(crate) async fn call(&self, client: &reqwest::Client, url: &str) -> super::clients::User {
        use opentelemetry::KeyValue;
        use opentelemetry::trace::{SpanBuilder, SpanKind, TraceContextExt as _, Tracer as _};
        let started = std::time::Instant::now();
        // Built from the URL's text, as raw reqwest's calls are, so the two differ only by
        // the telemetry.
        let mut request = client.get(url).build().unwrap();
        let parent = opentelemetry::Context::current();
        // With room for the status, so that setting it does not grow the span's attributes.
        let mut attributes = Vec::with_capacity(6);
        attributes.extend([
            KeyValue::new("http.request.method", "GET"),
            self.server[0].clone(),
            self.server[1].clone(),
            KeyValue::new("url.template", "/users/{id}"),
            KeyValue::new("url.full", request.url().as_str().to_owned()),
        ]);
        let span = self.tracer.build_with_context(
            SpanBuilder::from_name("GET /users/{id}")
                .with_kind(SpanKind::Client)
                .with_attributes(attributes),
            &parent,
        );
        let cx = parent.with_span(span);
        opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.inject_context(&cx, &mut Headers(request.headers_mut()));
        });
        let response = client.execute(request).await.unwrap();
        cx.span().set_attribute(KeyValue::new(
            "http.response.status_code",
            i64::from(response.status().as_u16()),
        ));
        let user =
            super::clients::decode(std::future::ready(Ok::<_, reqwest::Error>(response))).await;
        cx.span().end();
        self.durations.record(started.elapsed().as_secs_f64());
        user
    }
}

/// A request's headers, for the propagator to write into.
#[cfg(feature = "otel")]
struct Headers<'a>(&'a mut http::HeaderMap);

#[cfg(feature = "otel")]
impl opentelemetry::propagation::Injector for Headers<'_> {
    fn set(&mut self, key: &str, value: String) {
        if value.is_empty() {
            return;
        }
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::try_from(key),
            http::HeaderValue::try_from(value),
        ) {
            self.0.insert(name, value);
        }
    }
}
