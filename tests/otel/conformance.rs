//! Conformance with the OpenTelemetry HTTP semantic conventions (semantic-conventions v1.44.0:
//! docs/http/http-spans.md, docs/http/http-metrics.md,
//! docs/general/attribute-requirement-level.md), where the other suites do not show it: the
//! query keys redacted, the protocol version on the server's duration, no opt-in attribute
//! without a switch, one `server.address` on both sides, and baggage carried.

use super::*;

use opentelemetry::propagation::TextMapCompositePropagator;
use opentelemetry_sdk::propagation::BaggagePropagator;
use tracing::Instrument as _;

/// http-spans.md, HTTP server span, note [10] on `url.query` (and [4] on `url.full`): since
/// v1.42.0 the keys to redact are `X-Amz-Signature`, `X-Amz-Credential`,
/// `X-Amz-Security-Token`, `AWSAccessKeyId`, `Signature`, `sig`, `X-Goog-Signature`.
#[tokio::test]
async fn server_url_query_redacts_the_aws_sigv4_keys() {
    let (spans, _guard) = record_spans();
    let url = serve_verified(Router::new().route("/presigned", get(|| async { "ok" }))).await;
    plain_executor(&url, "billing", SECRET)
        .execute(
            Call::get("/presigned")
                .route("/presigned")
                .query("q", "1")
                .query("X-Amz-Signature", "abc")
                .query("X-Amz-Credential", "AKIA")
                .query("X-Amz-Security-Token", "tok"),
        )
        .await
        .unwrap();

    let spans = spans.get_finished_spans().unwrap();
    let server = server_span(&spans);
    assert_eq!(
        text(server, "url.query").as_deref(),
        Some(
            "q=1&X-Amz-Signature=REDACTED&X-Amz-Credential=REDACTED&X-Amz-Security-Token=REDACTED"
        )
    );
}

/// http-metrics.md, `http.server.request.duration`: `network.protocol.version` is
/// `Recommended`, as on the SERVER span.
#[tokio::test]
async fn server_duration_has_the_protocol_version() {
    let (spans, _guard) = record_spans();
    let url = serve_verified(Router::new().route("/proto-version", get(|| async { "ok" }))).await;
    plain_executor(&url, "billing", SECRET)
        .execute(Call::get("/proto-version").route("/proto-version"))
        .await
        .unwrap();

    let spans = spans.get_finished_spans().unwrap();
    let server = server_span(&spans);
    assert_eq!(
        text(server, "network.protocol.version").as_deref(),
        Some("1.1")
    );
    let durations = points_where("http.server.request.duration", |p| {
        p.attributes.get("http.route").map(String::as_str) == Some("/proto-version")
    });
    assert_eq!(durations.len(), 1, "{durations:?}");
    assert_eq!(
        durations[0]
            .attributes
            .get("network.protocol.version")
            .map(String::as_str),
        Some("1.1"),
        "{durations:?}"
    );
}

/// http-metrics.md, `http.client.request.duration`: `url.template` is `Opt-In`, and
/// attribute-requirement-level.md, Opt-In: "Instrumentation that doesn't support configuration
/// MUST NOT populate `Opt-In` attributes." comms has no switch for it: the span has it.
#[tokio::test]
async fn client_duration_has_no_opt_in_url_template_by_default() {
    meters();
    let server = TestServer::always(Reply::ok_json(serde_json::json!({}))).await;
    let port = server.addr().port();
    plain_executor(&server.url(), "billing", SECRET)
        .execute(item(2))
        .await
        .unwrap();
    let durations = points("http.client.request.duration", port);
    assert_eq!(durations.len(), 1, "{durations:?}");
    assert!(
        !durations[0].attributes.contains_key("url.template"),
        "{durations:?}"
    );
}

/// http-spans.md, HTTP server span: `client.port` is `Opt-In` (see the requirement level's
/// MUST NOT above); `client.address`, the peer, is `Recommended`.
#[tokio::test]
async fn server_span_has_no_opt_in_client_port_by_default() {
    let (spans, _guard) = record_spans();
    let addr =
        serve_verified_with_peers(Router::new().route("/peer", get(|| async { "ok" }))).await;
    plain_executor(&format!("http://{addr}"), "billing", SECRET)
        .execute(Call::get("/peer").route("/peer"))
        .await
        .unwrap();

    let spans = spans.get_finished_spans().unwrap();
    let server = server_span(&spans);
    // Recommended, and set: the peer.
    assert_eq!(text(server, "client.address").as_deref(), Some("127.0.0.1"));
    assert_eq!(attr(server, "client.port"), None);
}

/// http-spans.md, "Setting `server.address` and `server.port`": the two are "intended,
/// whenever possible, to be the same on the client and server sides"; registry/server.md:
/// `server.address` is a domain name or an IP address: `::1`, not the URL's `[::1]`.
#[tokio::test]
async fn an_ipv6_server_address_is_the_same_on_both_sides() {
    let (spans, _guard) = record_spans();
    let listener = tokio::net::TcpListener::bind("[::1]:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = Router::new()
        .route("/items/{id}", get(|| async { "ok" }))
        .layer(VerifyLayer::new(Verifier::new().service("billing", SECRET)));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    plain_executor(&format!("http://[::1]:{port}"), "billing", SECRET)
        .execute(item(3))
        .await
        .unwrap();

    let spans = spans.get_finished_spans().unwrap();
    let server = server_span(&spans);
    let client = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Client)
        .unwrap_or_else(|| panic!("a CLIENT span: {spans:#?}"));
    let durations = points("http.client.request.duration", port);
    assert_eq!(text(server, "server.address").as_deref(), Some("::1"));
    assert_eq!(
        (
            text(client, "server.address"),
            durations[0].attributes.get("server.address").cloned()
        ),
        (Some("::1".to_owned()), Some("::1".to_owned())),
        "client span and client metric"
    );
}

/// Installs W3C trace context + W3C baggage, as an application using baggage does. A superset
/// of the trace context alone, so the other tests of the process are unaffected.
fn composite_propagator() {
    meters();
    opentelemetry::global::set_text_map_propagator(TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
    ]));
}

fn subscriber_at(
    level: tracing_subscriber::filter::LevelFilter,
) -> tracing::subscriber::DefaultGuard {
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(InMemorySpanExporter::default())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("otel-test")))
        .with(level);
    tracing::subscriber::set_default(subscriber)
}

/// A context of its own, with the baggage entry `tenant=acme`.
fn tenant_acme() -> opentelemetry::Context {
    opentelemetry::Context::new().with_baggage([KeyValue::new("tenant", "acme")])
}

/// A call made in the application's `handling` span, with baggage in the current context
/// (attached while the call is made and while it is polled).
async fn call_with_baggage(exec: &Executor) {
    async {
        let cx = opentelemetry::Context::current_with_baggage([KeyValue::new("tenant", "acme")]);
        execute_in(cx, exec, item(4)).await;
    }
    .instrument(tracing::info_span!("handling"))
    .await;
}

/// Baggage (with a composite propagator) is not dropped by comms. At the default `INFO` level,
/// where `comms.call` is off, the attempt's context is the application's `tracing` span's,
/// made before the baggage was attached: the baggage is the current context's.
#[tokio::test]
async fn baggage_travels_when_the_call_span_is_off() {
    composite_propagator();
    let _guard = subscriber_at(tracing_subscriber::filter::LevelFilter::INFO);
    let server = TestServer::always(Reply::ok_json(serde_json::json!({}))).await;
    call_with_baggage(&plain_executor(&server.url(), "billing", SECRET)).await;
    let request = &server.requests()[0];
    assert!(request.header("traceparent").is_some());
    assert_eq!(request.header("baggage"), Some("tenant=acme"));
}

/// With `comms.call` on (`DEBUG`), the call span is made in the current context and
/// the baggage travels.
#[tokio::test]
async fn baggage_travels_when_the_call_span_is_on() {
    composite_propagator();
    let _guard = subscriber_at(tracing_subscriber::filter::LevelFilter::DEBUG);
    let server = TestServer::always(Reply::ok_json(serde_json::json!({}))).await;
    call_with_baggage(&plain_executor(&server.url(), "billing", SECRET)).await;
    let request = &server.requests()[0];
    assert_eq!(request.header("baggage"), Some("tenant=acme"));
    // Signed with the rest, so the server trusts the context.
    assert!(
        request
            .header("signature-input")
            .unwrap()
            .contains("\"baggage\""),
        "{:?}",
        request.header("signature-input")
    );
}

/// A → B → C with baggage: B's SERVER span continues A's context with its baggage,
/// and B's handler's call carries it on to C.
#[tokio::test]
async fn baggage_is_carried_through_a_served_request() {
    composite_propagator();
    let _guard = subscriber_at(tracing_subscriber::filter::LevelFilter::DEBUG);
    let c = relay_through_b(tenant_acme(), None).await;
    assert_eq!(c.requests()[0].header("baggage"), Some("tenant=acme"));
}

/// A → B → C at the default `INFO` level, B's handler adding baggage of its own: C gets A's
/// entry and B's, the span's baggage and the current context's merged, not the one replacing
/// the other.
#[tokio::test]
async fn baggage_a_handler_adds_joins_what_its_request_carried() {
    composite_propagator();
    let _guard = subscriber_at(tracing_subscriber::filter::LevelFilter::INFO);
    let c = relay_through_b(tenant_acme(), Some(KeyValue::new("hop", "b"))).await;
    let baggage = c.requests()[0]
        .header("baggage")
        .unwrap_or_default()
        .to_owned();
    let mut entries: Vec<&str> = baggage.split(',').map(str::trim).collect();
    entries.sort_unstable();
    assert_eq!(entries, ["hop=b", "tenant=acme"], "{baggage}");
}
