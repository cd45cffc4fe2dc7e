//! What a call and a served request report beyond the `tracing` events: with the `otel`
//! feature, OpenTelemetry spans, trace propagation and metrics; without it, nothing.
//!
//! The executor, the breaker and the receiving side call the same functions either way.
//! `otel.rs` implements them; `off.rs` has the same signatures doing nothing (and types with
//! no fields), so that with the feature off a call pays for none of this: the calls compile to
//! nothing, leaving at most a test of an `Option` of a field-less type.
//!
//! With `otel`:
//! - a call's `comms.call` span (`DEBUG`, as without the feature) records `error.type` and the
//!   span status when the call fails;
//! - each attempt has a CLIENT span, a child of `comms.call` when that is enabled and of the
//!   caller's current span otherwise, named `{method} {route}`, with the HTTP client semantic
//!   conventions' attributes. It is made by the global tracer provider's tracer (taken at the
//!   executor's first attempt, and again while it makes no spans), not as a `tracing` span: nothing
//!   runs inside an attempt that could be its child, and the `tracing` route cost over twice as
//!   much. The subscriber's filter still decides whether it is made, as an `INFO` span of target
//!   `comms::executor` (a filter on tracing-opentelemetry's layer alone does not: the span does not
//!   pass through it), and the tracer provider's sampler whether it is recorded. Its W3C trace
//!   context (`traceparent`, and `tracestate` when there is one) is written into the request by the
//!   global propagator before the request is signed, so an RFC 9421 signature covers it (a legacy
//!   one covers no header);
//! - a served request (the generated server, `VerifyLayer`) runs in a SERVER span whose parent
//!   is the context the request carried, when its signature covers it (otherwise the context
//!   is only linked: see `ServerTrace::start`); one whose caller hangs up before the answer
//!   ends as `error.type` `cancelled`;
//! - metrics are recorded through the global meter provider (see `otel.rs` for the list).
//!
//! The call and SERVER spans are `tracing` spans with the fields tracing-opentelemetry maps onto
//! OpenTelemetry (`otel.name`, `otel.kind`, `otel.status_code`), so they join the
//! application's own spans in one trace when its subscriber has tracing-opentelemetry's layer,
//! and a handler's spans are children of its SERVER span.

#[cfg(not(feature = "otel"))]
mod off;
#[cfg(feature = "otel")]
mod otel;

#[cfg(not(feature = "otel"))]
pub(crate) use off::*;
#[cfg(feature = "otel")]
pub(crate) use otel::*;

/// The call's span, `DEBUG`: recording it costs more than the rest of the runtime does. Its
/// `error.type` and `otel.status_code` are recorded only with `otel` (`call_ended`); fields
/// left empty cost nothing and are not shown.
#[inline]
pub(crate) fn call_span(service: &str, method: &http::Method, route: &str) -> tracing::Span {
    tracing::debug_span!(
        target: "comms::executor",
        "comms.call",
        service = %service,
        method = %method,
        route = %route,
        attempts = tracing::field::Empty,
        status = tracing::field::Empty,
        error.type = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    )
}

/// The low-cardinality `error.type` of a call or attempt that ended without a usable response,
/// or `None` for an error that is an HTTP status (whose `error.type` is the status code).
pub(crate) fn error_type(error: &crate::Error) -> Option<&'static str> {
    use crate::Error;
    Some(match error {
        Error::Timeout { .. } => "timeout",
        Error::Transport { connect: true, .. } => "connect",
        Error::Transport { .. } => "transport",
        Error::CircuitOpen { .. } => "circuit_open",
        Error::Decode { .. } => "decode",
        Error::Encode { .. } => "encode",
        Error::Config { .. } => "config",
        _ if error.status().is_some() => return None,
        _ => "_OTHER",
    })
}
