//! Without the `otel` feature: the call span alone, and nothing else (see `telemetry.rs`).

use std::future::Future;

use http::{HeaderMap, Method, StatusCode, Uri};

use crate::Error;
use crate::breaker::CircuitState;

#[inline]
pub(crate) fn call_ended(_span: &tracing::Span, _error: Option<&Error>) {}

/// Nothing: the target is reported nowhere.
pub(crate) struct Target;

impl Target {
    #[inline]
    pub(crate) fn new(_base: &reqwest::Url, _prefix: &str) -> Target {
        Target
    }
}

/// Nothing: an attempt has no span of its own.
pub(crate) struct AttemptTrace;

impl AttemptTrace {
    #[inline]
    pub(crate) fn start(
        _target: &Target,
        _method: &Method,
        _route: Option<&'static str>,
        _url: &reqwest::Url,
        _resend_count: u32,
    ) -> AttemptTrace {
        AttemptTrace
    }

    #[inline]
    pub(crate) fn inject(&self, _headers: &mut HeaderMap, _covered: Option<&HeaderMap>) {}

    #[inline]
    pub(crate) fn abandon(self, _error_type: Option<&'static str>) {}

    #[inline]
    pub(crate) fn end(
        self,
        _target: &Target,
        _status: Option<StatusCode>,
        _error_type: Option<&'static str>,
    ) {
    }
}

#[cfg(feature = "server")]
#[inline]
pub(crate) fn in_current_trace<F: Future>(served: F) -> F {
    served
}

#[inline]
pub(crate) fn retried(_target: &Target, _method: &Method) {}

#[inline]
pub(crate) fn budget_refused(_target: &Target) {}

#[inline]
pub(crate) fn breaker_changed(_authority: &str, _state: CircuitState) {}

#[inline]
pub(crate) fn breaker_made(_authority: &str) {}

#[inline]
pub(crate) fn breaker_refused(_target: &Target) {}

/// Without `otel` no trace context is read from a request: whatever it carries is covered
/// enough.
#[inline]
pub(crate) fn trace_fields_covered(_headers: &HeaderMap, _covered: impl Fn(&str) -> bool) -> bool {
    true
}

/// Nothing: a served request has no span of its own.
pub(crate) struct ServerTrace;

impl ServerTrace {
    #[cfg(feature = "server")]
    #[inline]
    pub(crate) fn start_served(
        _parts: &http::request::Parts,
        _uri: &Uri,
        _route: &'static str,
        _scheme: Option<&str>,
        _trusted: bool,
    ) -> ServerTrace {
        ServerTrace
    }

    #[inline]
    pub(crate) fn start_layer(
        _parts: &mut http::request::Parts,
        _uri: &Uri,
        _scheme: Option<&str>,
        _trusted: bool,
    ) -> ServerTrace {
        ServerTrace
    }

    #[cfg(feature = "server")]
    #[inline]
    pub(crate) fn behind_layer(
        _extensions: &http::Extensions,
        _route: &'static str,
    ) -> Option<ServerTrace> {
        None
    }

    #[inline]
    pub(crate) fn run<F: Future>(&self, served: F) -> F {
        served
    }

    #[inline]
    pub(crate) fn end(self, _status: StatusCode) {}

    pub(crate) fn end_unanswered(self) {}

    #[cfg(feature = "server")]
    #[inline]
    pub(crate) fn end_failed(self, _status: StatusCode) {}

    #[cfg(feature = "server")]
    #[inline]
    pub(crate) fn in_span<R>(&self, f: impl FnOnce() -> R) -> R {
        f()
    }
}
