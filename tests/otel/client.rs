//! The calling side: attempt spans, their context on the wire, and the client's metrics.

use super::*;

#[tokio::test]
async fn a_success_is_one_client_span_under_its_call_and_its_context_is_signed() {
    let (spans, _guard) = record_spans();
    let server = TestServer::always(Reply::ok_json(serde_json::json!({}))).await;
    let port = server.addr().port();
    plain_executor(&server.url(), "billing", SECRET)
        .execute(item(7))
        .await
        .unwrap();

    let spans = spans.get_finished_spans().unwrap();
    let attempt = only_span(&spans, "GET /items/<id>");
    let call = only_span(&spans, "comms.call");
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
    // The conventions' types: integers, not their text.
    assert_eq!(
        attr(attempt, "server.port"),
        Some(&Value::I64(i64::from(port)))
    );
    assert_eq!(
        attr(attempt, "http.response.status_code"),
        Some(&Value::I64(200))
    );
    assert_eq!(attr(attempt, "error.type"), None);
    assert_eq!(attr(attempt, "http.request.resend_count"), None);
    assert_eq!(attempt.status, Status::Unset);

    // The request carried the attempt's context, covered by a signature that verifies.
    let request = &server.requests()[0];
    let traceparent = request.header("traceparent").expect("a traceparent");
    assert_eq!(traceparent, super::traceparent(&attempt.span_context));
    assert!(
        request
            .header("signature-input")
            .unwrap()
            .contains("\"traceparent\""),
        "{:?}",
        request.header("signature-input")
    );
    // No trace state, so no empty `tracestate` for an intermediary to drop.
    assert_eq!(request.header("tracestate"), None);
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
    // Opt-in for the metric: the span has it.
    assert!(!point.attributes.contains_key("url.template"));
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
    // The call's span counts its attempts and has its status as numbers a backend compares.
    let call = only_span(&spans, "comms.call");
    assert_eq!(call.span_context.span_id(), first.parent_span_id);
    assert_eq!(attr(call, "attempts"), Some(&Value::I64(2)));
    assert_eq!(attr(call, "status"), Some(&Value::I64(200)));
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
    let server = slow_server().await;
    let port = server.addr().port();
    let err = plain_executor(&server.url(), "billing", SECRET)
        .execute(item(2).timeout(Duration::from_millis(100)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");

    let spans = spans.get_finished_spans().unwrap();
    let attempt = only_span(&spans, "GET /items/<id>");
    let call = only_span(&spans, "comms.call");
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

/// A healthy target has its breaker's state too: 0, closed, from when its breaker was made
/// (with the client), before any transition.
#[tokio::test]
async fn a_healthy_targets_breaker_state_is_closed() {
    let _spans = record_spans();
    let server = TestServer::always(Reply::ok_json(serde_json::json!({}))).await;
    let port = server.addr().port();
    let exec = executor(&server.url(), RetryConfig::none(), BreakerConfig::default());
    exec.execute(item(4)).await.unwrap();

    let state = points("comms.client.breaker.state", port);
    assert_eq!(state.len(), 1, "{state:?}");
    assert_eq!(state[0].value, 0.0, "closed");
    assert!(points("comms.client.breaker.transitions", port).is_empty());
}

/// The state gauge is the target's: another client's breaker for it (of another config),
/// made while the first is open, does not report the target closed.
#[tokio::test]
async fn a_second_breaker_does_not_report_an_open_target_closed() {
    let _spans = record_spans();
    let server = TestServer::always(Reply::status(503)).await;
    let port = server.addr().port();
    let first = executor(
        &server.url(),
        RetryConfig::none(),
        BreakerConfig::default()
            .failure_threshold(1)
            .open_for(Duration::from_secs(60)),
    );
    first.execute(item(1)).await.unwrap_err();
    let state = points("comms.client.breaker.state", port);
    assert_eq!(state[0].value, 2.0, "open: {state:?}");

    let _second = executor(&server.url(), RetryConfig::none(), BreakerConfig::default());
    let refused = first.execute(item(1)).await.unwrap_err();
    assert!(matches!(refused, Error::CircuitOpen { .. }), "{refused}");
    let state = points("comms.client.breaker.state", port);
    assert_eq!(state.len(), 1, "{state:?}");
    assert_eq!(state[0].value, 2.0, "still open: {state:?}");
}

/// A retry the breaker would refuse when its wait ended is not waited for; it is counted as
/// refused all the same.
#[tokio::test]
async fn a_retry_the_open_breaker_would_refuse_is_counted_as_refused() {
    let _spans = record_spans();
    let server = TestServer::always(Reply::status(503)).await;
    let port = server.addr().port();
    let exec = executor(
        &server.url(),
        RetryConfig::default().base_delay(Duration::from_millis(1)),
        BreakerConfig::default()
            .failure_threshold(1)
            .open_for(Duration::from_secs(60)),
    );
    let err = exec.execute(item(3)).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(503));
    assert_eq!(server.count(), 1, "the retry was not made");
    let refusals = points("comms.client.breaker.refusals", port);
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert_eq!(refusals[0].value, 1.0);
    assert!(points("comms.client.retries", port).is_empty());
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

#[tokio::test]
async fn an_attempt_whose_header_hook_fails_ends_with_the_hooks_error_and_sends_nothing() {
    let (spans, _guard) = record_spans();
    let server = TestServer::always(Reply::ok_json(serde_json::json!({}))).await;
    let exec = comms_tests::plain_builder(&server.url(), "billing", SECRET)
        .header_hook(|| async {
            Err::<comms::http::HeaderMap, _>(Error::Config {
                key: "token".into(),
                message: "no token".into(),
            })
        })
        .build()
        .unwrap();
    let err = exec.execute(item(5)).await.unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err}");
    assert_eq!(server.count(), 0);

    let spans = spans.get_finished_spans().unwrap();
    let attempt = only_span(&spans, "GET /items/<id>");
    assert_eq!(text(attempt, "error.type").as_deref(), Some("config"));
    assert_eq!(attr(attempt, "http.response.status_code"), None);
}

/// A trace that arrived with a `tracestate` (here set on the caller's own span, as a server
/// extracting it would) carries it on to every attempt, covered by the signature like
/// `traceparent`.
#[tokio::test]
async fn a_tracestate_travels_signed_with_the_traceparent() {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };
    use tracing::Instrument;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    let (spans, _guard) = record_spans();
    let server = TestServer::start(|_, i| match i {
        0 => Reply::status(503),
        _ => Reply::ok_json(serde_json::json!({})),
    })
    .await;
    let incoming = SpanContext::new(
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
        SpanId::from_hex("00f067aa0ba902b7").unwrap(),
        TraceFlags::SAMPLED,
        true,
        TraceState::from_key_value([("vendor", "v1")]).unwrap(),
    );
    let handling = tracing::info_span!("handling");
    handling
        .set_parent(opentelemetry::Context::new().with_remote_span_context(incoming))
        .unwrap();
    let exec = executor(&server.url(), fast_retry(), BreakerConfig::disabled());
    // The call is made inside the span, as a handler's would be: its span's parent is the
    // span current when `execute` is called.
    async { exec.execute(item(6)).await }
        .instrument(handling)
        .await
        .unwrap();

    let verifier = Verifier::new().service("billing", SECRET);
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    for r in &requests {
        let traceparent = r.header("traceparent").unwrap();
        assert!(
            traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{traceparent}"
        );
        assert_eq!(r.header("tracestate"), Some("vendor=v1"));
        let input = r.header("signature-input").unwrap();
        assert!(
            input.contains("\"traceparent\"") && input.contains("\"tracestate\""),
            "{input}"
        );
        verifier
            .verify(&r.method, &r.uri, &r.headers, &r.body)
            .await
            .unwrap();
    }
    let spans = spans.get_finished_spans().unwrap();
    assert_eq!(
        spans_named(&spans, "GET /items/<id>").len(),
        2,
        "{spans:#?}"
    );
}

/// With comms' spans filtered out (`comms=off`), the trace still travels: the request carries
/// the caller's own context.
#[tokio::test]
async fn with_the_attempt_span_filtered_out_the_callers_context_travels() {
    use tracing::Instrument;
    use tracing_subscriber::layer::SubscriberExt;

    let (exporter, tracer) = test_tracer();
    let filter: tracing_subscriber::filter::Targets = "info,comms=off".parse().expect("a filter");
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(tracer))
        .with(filter);
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = TestServer::always(Reply::ok_json(serde_json::json!({}))).await;
    let exec = plain_executor(&server.url(), "billing", SECRET);
    let handling = tracing::info_span!("handling");
    async { exec.execute(item(8)).await }
        .instrument(handling)
        .await
        .unwrap();

    let spans = exporter.get_finished_spans().unwrap();
    let handling = only_span(&spans, "handling");
    assert_eq!(spans.len(), 1, "{spans:#?}");
    // Attempt spans come from the global tracer provider: none was made in this trace.
    let attempts = meters().attempts.get_finished_spans().unwrap();
    assert!(
        attempts
            .iter()
            .all(|a| a.span_context.trace_id() != handling.span_context.trace_id()),
        "{attempts:#?}"
    );
    let sent = server.requests()[0]
        .header("traceparent")
        .map(str::to_owned);
    assert_eq!(sent, Some(traceparent(&handling.span_context)));
}

/// A streamed call's attempt is over at its head: its span has ended with the status, and its
/// duration is recorded, while the body is still to come.
#[tokio::test]
async fn a_streamed_attempt_ends_at_its_head() {
    use bytes::Bytes;
    use comms_tests::{Fault, FaultServer};

    let (spans, _guard) = record_spans();
    let head = "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n\
                transfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n";
    let server = FaultServer::start(move |_, _| Fault::RawThenStall(Bytes::from(head))).await;
    let port: u16 = server.url().rsplit(':').next().unwrap().parse().unwrap();
    let exec = plain_executor(&server.url(), "billing", SECRET);
    let mut body = exec
        .execute_streaming(item(10))
        .await
        .unwrap()
        .into_stream();
    assert_eq!(body.next_chunk().await.unwrap().unwrap(), "first");

    // The body has not ended (the server stalls), yet the attempt's span has.
    let spans = spans.get_finished_spans().unwrap();
    let attempt = only_span(&spans, "GET /items/<id>");
    assert_eq!(
        text(attempt, "http.response.status_code").as_deref(),
        Some("200")
    );
    let durations = points("http.client.request.duration", port);
    assert_eq!(durations.len(), 1, "{durations:?}");
    assert_eq!(durations[0].value, 1.0);
    drop(body);
}

/// An application that uses the OpenTelemetry API without `tracing`: no attempt span is made
/// (the `tracing` filter decides that, and there is no subscriber), but the context it has
/// attached travels with the request.
#[tokio::test]
async fn without_a_subscriber_the_attached_opentelemetry_context_travels() {
    use opentelemetry::trace::{Span as _, TraceContextExt as _, Tracer as _, TracerProvider as _};

    meters();
    let _no_tracing = tracing::subscriber::set_default(tracing::subscriber::NoSubscriber::new());
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let server = TestServer::always(Reply::ok_json(serde_json::json!({}))).await;
    let exec = plain_executor(&server.url(), "billing", SECRET);
    let tracer = provider.tracer("app");
    let handling = tracer.start("handling");
    let expected = handling.span_context().clone();
    let cx = opentelemetry::Context::current_with_span(handling);
    {
        let _attached = cx.clone().attach();
        exec.execute(item(11)).await.unwrap();
    }

    let sent = server.requests()[0]
        .header("traceparent")
        .map(str::to_owned);
    assert_eq!(sent, Some(traceparent(&expected)));
    let attempts = meters().attempts.get_finished_spans().unwrap();
    assert!(
        attempts
            .iter()
            .all(|a| a.span_context.trace_id() != expected.trace_id()),
        "no attempt span in the application's trace: {attempts:#?}"
    );
    // The application's span is its own: the call neither ended it nor wrote into it.
    assert_eq!(exporter.get_finished_spans().unwrap().len(), 0);
    cx.span().end();
    let spans = exporter.get_finished_spans().unwrap();
    let [handling] = &spans[..] else {
        panic!("the application's span: {spans:#?}");
    };
    assert!(handling.attributes.is_empty(), "{handling:#?}");
    assert_eq!(handling.status, Status::Unset);
}

/// A call dropped mid-attempt (its caller gave up) still ends the attempt's span, with no
/// status code and no error of its own, and records no request duration.
#[tokio::test]
async fn a_call_dropped_mid_attempt_ends_its_span_without_a_duration() {
    let (spans, _guard) = record_spans();
    let server = slow_server().await;
    let port = server.addr().port();
    let exec = plain_executor(&server.url(), "billing", SECRET);
    let gave_up = tokio::time::timeout(Duration::from_millis(100), exec.execute(item(12))).await;
    assert!(
        gave_up.is_err(),
        "the call is still waiting when it is dropped"
    );

    let spans = spans.get_finished_spans().unwrap();
    let attempt = only_span(&spans, "GET /items/<id>");
    assert_eq!(attr(attempt, "http.response.status_code"), None);
    assert_eq!(attr(attempt, "error.type"), None);
    assert_eq!(attempt.status, Status::Unset);
    assert!(attempt.end_time >= attempt.start_time);
    let durations = points("http.client.request.duration", port);
    assert!(durations.is_empty(), "{durations:?}");
}

/// A response over the size limit is an error of type `response_too_large`, and keeps the
/// status code the service answered with.
#[tokio::test]
async fn a_response_too_large_keeps_its_status_code() {
    let (spans, _guard) = record_spans();
    let big = serde_json::json!({ "filler": "x".repeat(4096) });
    let server = TestServer::always(Reply::ok_json(big)).await;
    let port = server.addr().port();
    let exec = comms_tests::plain_builder(&server.url(), "billing", SECRET)
        .max_response_bytes(1024)
        .build()
        .unwrap();
    let err = exec.execute(item(13)).await.unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err}");

    let spans = spans.get_finished_spans().unwrap();
    let attempt = only_span(&spans, "GET /items/<id>");
    assert_eq!(
        text(attempt, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(
        text(attempt, "error.type").as_deref(),
        Some("response_too_large")
    );
    assert!(matches!(attempt.status, Status::Error { .. }));
    let durations = points("http.client.request.duration", port);
    assert_eq!(durations.len(), 1, "{durations:?}");
    assert_eq!(durations[0].attributes["http.response.status_code"], "200");
    assert_eq!(durations[0].attributes["error.type"], "response_too_large");
}

/// A call's span is made with the call, in the span current where the method is called: a
/// call made in a handler's span and spawned to run beside other work stays in the handler's
/// trace, as its attempts and the `traceparent` they send do.
#[tokio::test]
async fn a_spawned_call_stays_in_the_trace_it_was_made_in() {
    let (spans, _guard) = record_spans();
    let server = TestServer::always(Reply::ok_json(serde_json::json!({}))).await;
    // `'static`, as a spawned call's client is (a generated client's clone, say).
    let exec: &'static Executor = Box::leak(Box::new(executor(
        &server.url(),
        RetryConfig::none(),
        BreakerConfig::disabled(),
    )));
    let handler = tracing::info_span!("handler");
    let call = handler.in_scope(|| exec.execute(item(5)));
    tokio::spawn(call).await.unwrap().unwrap();
    drop(handler);

    let spans = spans.get_finished_spans().unwrap();
    let handler = only_span(&spans, "handler");
    let call = only_span(&spans, "comms.call");
    let attempt = only_span(&spans, "GET /items/<id>");
    assert_eq!(
        call.parent_span_id,
        handler.span_context.span_id(),
        "{spans:#?}"
    );
    assert_eq!(
        attempt.parent_span_id,
        call.span_context.span_id(),
        "{spans:#?}"
    );
    let sent = server.requests()[0]
        .header("traceparent")
        .unwrap()
        .to_owned();
    assert!(
        sent.contains(&handler.span_context.trace_id().to_string()),
        "{sent}"
    );
}

/// `http.response.status_code` is required when one was received (http-spans.md, HTTP client
/// span): a 200 head whose body is cut short keeps its code beside `error.type` `transport`,
/// on the span and on the duration.
#[tokio::test]
async fn a_body_cut_short_after_its_head_keeps_its_status_code() {
    let (spans, _guard) = record_spans();
    let server = FaultServer::start(|_, _| Fault::TruncatedBody).await;
    let port: u16 = server.url().rsplit_once(':').unwrap().1.parse().unwrap();
    let err = executor(
        &server.url(),
        RetryConfig::none(),
        BreakerConfig::disabled(),
    )
    .execute(item(21))
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err}");

    let spans = spans.get_finished_spans().unwrap();
    let attempt = only_span(&spans, "GET /items/<id>");
    assert_eq!(text(attempt, "error.type").as_deref(), Some("transport"));
    assert_eq!(
        text(attempt, "http.response.status_code").as_deref(),
        Some("200"),
        "{attempt:#?}"
    );
    let durations = points("http.client.request.duration", port);
    assert_eq!(durations.len(), 1, "{durations:?}");
    assert_eq!(durations[0].attributes["http.response.status_code"], "200");
    assert_eq!(durations[0].attributes["error.type"], "transport");
    // The call's span says so too.
    let call = only_span(&spans, "comms.call");
    assert_eq!(attr(call, "status"), Some(&Value::I64(200)), "{call:#?}");
    assert_eq!(text(call, "error.type").as_deref(), Some("transport"));
}

/// The same for a 503 head whose body stalls past the attempt's timeout: the 503's series, of
/// `error.type` `timeout`.
#[tokio::test]
async fn a_body_stalled_past_the_timeout_keeps_its_status_code() {
    let (spans, _guard) = record_spans();
    let head = "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 100\r\n\r\nab";
    let server = FaultServer::start(move |_, _| {
        Fault::RawThenStall(bytes::Bytes::from_static(head.as_bytes()))
    })
    .await;
    let port: u16 = server.url().rsplit_once(':').unwrap().1.parse().unwrap();
    let err = executor(
        &server.url(),
        RetryConfig::none(),
        BreakerConfig::disabled(),
    )
    .execute(item(22).timeout(Duration::from_millis(200)))
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");

    let spans = spans.get_finished_spans().unwrap();
    let attempt = only_span(&spans, "GET /items/<id>");
    assert_eq!(text(attempt, "error.type").as_deref(), Some("timeout"));
    assert_eq!(
        text(attempt, "http.response.status_code").as_deref(),
        Some("503"),
        "{attempt:#?}"
    );
    let durations = points("http.client.request.duration", port);
    assert_eq!(durations.len(), 1, "{durations:?}");
    assert_eq!(durations[0].attributes["http.response.status_code"], "503");
    assert_eq!(durations[0].attributes["error.type"], "timeout");
    let call = only_span(&spans, "comms.call");
    assert_eq!(attr(call, "status"), Some(&Value::I64(503)), "{call:#?}");
}

/// A method the conventions do not know is `_OTHER`, with its own name kept apart, and is
/// `HTTP` in the span's name, so that neither grows without bound; `QUERY` is known.
#[tokio::test]
async fn a_method_http_does_not_define_is_other_with_its_original() {
    let (spans, _guard) = record_spans();
    let server = TestServer::always(Reply::ok_json(serde_json::json!({}))).await;
    let port = server.addr().port();
    let purge = comms::http::Method::from_bytes(b"PURGE").unwrap();
    let executor = plain_executor(&server.url(), "billing", SECRET);
    executor
        .execute(Call::new(purge, "/items").route("/items"))
        .await
        .unwrap();
    let query = comms::http::Method::from_bytes(b"QUERY").unwrap();
    executor
        .execute(Call::new(query, "/search").route("/search"))
        .await
        .unwrap();

    let spans = spans.get_finished_spans().unwrap();
    let searched = only_span(&spans, "QUERY /search");
    assert_eq!(
        text(searched, "http.request.method").as_deref(),
        Some("QUERY")
    );
    let attempt = only_span(&spans, "HTTP /items");
    assert_eq!(attempt.span_kind, SpanKind::Client);
    assert_eq!(
        text(attempt, "http.request.method").as_deref(),
        Some("_OTHER")
    );
    assert_eq!(
        text(attempt, "http.request.method_original").as_deref(),
        Some("PURGE")
    );
    let durations = points("http.client.request.duration", port);
    assert_eq!(durations.len(), 2, "{durations:?}");
    let other = durations
        .iter()
        .find(|p| p.attributes["http.request.method"] == "_OTHER")
        .expect("PURGE's duration");
    assert!(
        !other
            .attributes
            .contains_key("http.request.method_original")
    );
}

/// Every attempt's duration is the same in its span and its metric, its header hook's time
/// included in both (as in the attempt's time limit): a retry's as well as the first's.
#[tokio::test]
async fn an_attempts_span_and_its_duration_metric_measure_the_same_time() {
    let (spans, _guard) = record_spans();
    let server = TestServer::start(|_, i| match i {
        0 => Reply::status(503),
        _ => Reply::ok_json(serde_json::json!({})),
    })
    .await;
    let port = server.addr().port();
    let executor = Executor::builder()
        .base_url(server.url())
        .service_id("billing")
        .secret(SECRET)
        .retry(fast_retry())
        .breaker(BreakerConfig::disabled())
        .header_hook(|| async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok::<_, Error>(comms::http::HeaderMap::new())
        })
        .build()
        .unwrap();
    executor.execute(item(5)).await.unwrap();

    let spans = spans.get_finished_spans().unwrap();
    let attempts = spans_named(&spans, "GET /items/<id>");
    assert_eq!(attempts.len(), 2, "{spans:#?}");
    let durations = points("http.client.request.duration", port);
    assert_eq!(durations.len(), 2, "{durations:?}");
    for attempt in attempts {
        let span_seconds = attempt
            .end_time
            .duration_since(attempt.start_time)
            .unwrap()
            .as_secs_f64();
        let status = text(attempt, "http.response.status_code").unwrap();
        let duration = durations
            .iter()
            .find(|p| p.attributes["http.response.status_code"] == status)
            .unwrap();
        assert!(span_seconds >= 0.3, "attempt {status}: {span_seconds} s");
        assert!(
            (span_seconds - duration.sum).abs() < 0.05,
            "attempt {status}: span {span_seconds} s, metric {} s",
            duration.sum
        );
    }
}

/// Under a base URL with a path, the template is the request path's: the base's path included.
#[tokio::test]
async fn a_base_urls_path_is_in_the_template() {
    let (spans, _guard) = record_spans();
    let server = TestServer::always(Reply::ok_json(serde_json::json!({}))).await;
    let port = server.addr().port();
    plain_executor(&format!("{}/api/", server.url()), "billing", SECRET)
        .execute(item(5))
        .await
        .unwrap();
    assert_eq!(server.requests()[0].uri.path(), "/api/items/5");

    let spans = spans.get_finished_spans().unwrap();
    let attempt = only_span(&spans, "GET /api/items/<id>");
    assert_eq!(
        text(attempt, "url.template").as_deref(),
        Some("/api/items/<id>")
    );
    let durations = points("http.client.request.duration", port);
    assert_eq!(durations.len(), 1, "{durations:?}");
}

/// A retry whose call is dropped during its header hook ends its span as one dropped in
/// flight does (see above): with neither a status code nor an error of its own, and no
/// duration. Nothing was sent, and nothing failed.
#[tokio::test]
async fn a_retry_dropped_during_its_header_hook_ends_as_one_dropped_in_flight() {
    use std::sync::atomic::{AtomicUsize, Ordering};

    let (spans, _guard) = record_spans();
    let server = TestServer::always(Reply::status(503)).await;
    let port = server.addr().port();
    let hooked = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = hooked.clone();
    let hooking = Executor::builder()
        .base_url(server.url())
        .service_id("billing")
        .secret(SECRET)
        .retry(fast_retry())
        .breaker(BreakerConfig::disabled())
        .header_hook(move || {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                // The retry's hook outlasts the caller's patience.
                if n == 1 {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                Ok::<_, Error>(comms::http::HeaderMap::new())
            }
        })
        .build()
        .unwrap();
    let call = hooking.execute(item(1));
    assert!(
        tokio::time::timeout(Duration::from_millis(500), call)
            .await
            .is_err()
    );
    assert_eq!(server.count(), 1, "the retry was never sent");
    assert_eq!(hooked.load(Ordering::SeqCst), 2);

    let spans = spans.get_finished_spans().unwrap();
    let attempts = spans_named(&spans, "GET /items/<id>");
    assert_eq!(attempts.len(), 2, "{attempts:#?}");
    let retry = attempts
        .iter()
        .find(|a| text(a, "http.request.resend_count").as_deref() == Some("1"))
        .unwrap();
    assert_eq!(attr(retry, "http.response.status_code"), None);
    assert_eq!(attr(retry, "error.type"), None);
    assert_eq!(retry.status, Status::Unset);
    // One duration: the first attempt's 503.
    let durations = points("http.client.request.duration", port);
    assert_eq!(durations.len(), 1, "{durations:?}");
    assert_eq!(durations[0].attributes["http.response.status_code"], "503");
}

/// An attempt a client given with `http_client` redirected ends as its call does, with
/// `error.type` `config`; the status it records is the other location's.
#[tokio::test]
async fn a_redirected_attempt_is_of_error_type_config() {
    let (spans, _guard) = record_spans();
    let target = TestServer::always(Reply::status(200)).await;
    let location = format!("{}/elsewhere", target.url());
    let server = TestServer::always(Reply::status(302).header("location", &location)).await;
    let exec = comms_tests::plain_builder(&server.url(), "billing", SECRET)
        .http_client(comms::reqwest::Client::new())
        .build()
        .unwrap();
    let err = exec.execute(item(5)).await.unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err}");

    let spans = spans.get_finished_spans().unwrap();
    let attempt = only_span(&spans, "GET /items/<id>");
    assert_eq!(text(attempt, "error.type").as_deref(), Some("config"));
    assert_eq!(
        attr(attempt, "http.response.status_code"),
        Some(&Value::I64(200))
    );
}

/// A 504 that arrives once the deadline the request carried has run out is the caller's
/// timeout (the hop behind gave up with the deadline it inherited): its attempt is of
/// `error.type` `timeout`, with no status code, whichever of the two came first.
#[tokio::test]
async fn a_504_at_the_told_deadline_is_an_attempt_of_error_type_timeout() {
    let (spans, _guard) = record_spans();
    let app = axum::Router::new().route(
        "/items/{id}",
        get(|headers: comms::http::HeaderMap| async move {
            let told: u64 = headers["comms-deadline-ms"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            // Not on the runtime's timer, whose ticks the caller's timer shares: so that the
            // 504 comes first in some of the calls.
            let sleep = move || std::thread::sleep(Duration::from_millis(told));
            tokio::task::spawn_blocking(sleep).await.unwrap();
            comms::http::StatusCode::GATEWAY_TIMEOUT
        }),
    );
    let url = serve(app).await;
    let exec = comms_tests::plain_builder(&url, "billing", SECRET)
        .deadline(Duration::from_millis(20))
        .build()
        .unwrap();
    for _ in 0..50 {
        let err = exec.execute(item(5)).await.unwrap_err();
        assert!(err.is_timeout(), "{err}");
    }

    let spans = spans.get_finished_spans().unwrap();
    let attempts = spans_named(&spans, "GET /items/<id>");
    assert_eq!(attempts.len(), 50);
    for attempt in attempts {
        assert_eq!(text(attempt, "error.type").as_deref(), Some("timeout"));
        // The 504, when it came first, was received: its code is kept beside the timeout.
        let status = attr(attempt, "http.response.status_code");
        assert!(
            status.is_none() || status == Some(&Value::I64(504)),
            "{status:?}"
        );
    }
}

/// A breaker of a fleet link every client has let go of is no longer shared, so the target's
/// next client makes its first breaker, and the state gauge starts over at closed: the
/// breaker let go, open when it went, is not taken for another one the target still has.
#[tokio::test]
async fn a_breaker_let_go_with_its_link_leaves_the_gauge_to_the_next_one() {
    let _spans = record_spans();
    let server = TestServer::always(Reply::status(503)).await;
    let port = server.addr().port();
    let sync = comms::redis::share_breakers("redis://127.0.0.1:1/", "gauge-let-go").unwrap();
    let first = comms_tests::plain_builder(&server.url(), "billing", SECRET)
        .breaker(
            BreakerConfig::default()
                .failure_threshold(1)
                .open_for(Duration::from_secs(60)),
        )
        .breaker_sync(sync.clone())
        .build()
        .unwrap();
    first.execute(item(1)).await.unwrap_err();
    let state = points("comms.client.breaker.state", port);
    assert_eq!(state[0].value, 2.0, "open: {state:?}");
    drop((first, sync));

    let next = executor(&server.url(), RetryConfig::none(), BreakerConfig::default());
    assert_eq!(next.circuit_state(), Some(comms::CircuitState::Closed));
    let state = points("comms.client.breaker.state", port);
    assert_eq!(state.len(), 1, "{state:?}");
    assert_eq!(
        state[0].value, 0.0,
        "the target's one breaker is closed: {state:?}"
    );
}

/// A target's durations land in one series per method, status and error, each counted as many
/// times as it was recorded: the first few series a target records into are bound to their
/// attributes once (see `Durations` in `telemetry/otel.rs`), and those past that are recorded
/// with their attributes each time, so this goes past the bound ones.
#[tokio::test]
async fn every_series_of_a_targets_durations_counts_each_attempt() {
    meters();
    const STATUSES: u16 = 45;
    // Each status twice, in turn: 400, 401, ... then 400, 401, ... again.
    let server =
        TestServer::start(|_, i| Reply::status(400 + (i % usize::from(STATUSES)) as u16)).await;
    let port = server.addr().port();
    let executor = executor(
        &server.url(),
        RetryConfig::none(),
        BreakerConfig::disabled(),
    );
    for _ in 0..2 * STATUSES {
        let error = executor.execute(item(1)).await.unwrap_err();
        assert!(error.status().is_some(), "{error:?}");
    }
    // Then a POST, whose 400 is a series of its own.
    let error = executor
        .execute(Call::post("/items").route("/items"))
        .await
        .unwrap_err();
    assert!(error.status().is_some(), "{error:?}");

    let durations = points("http.client.request.duration", port);
    assert_eq!(durations.len(), usize::from(STATUSES) + 1, "{durations:?}");
    for point in &durations {
        let status = &point.attributes["http.response.status_code"];
        assert_eq!(&point.attributes["error.type"], status);
        let (method, count) = match point.attributes["http.request.method"].as_str() {
            "GET" => ("GET", 2.0),
            _ => ("POST", 1.0),
        };
        assert_eq!(point.value, count, "{method} {status}: {point:?}");
    }
    assert!(
        durations
            .iter()
            .any(|p| p.attributes["http.request.method"] == "POST")
    );
}
