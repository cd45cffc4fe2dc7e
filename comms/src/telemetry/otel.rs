//! With the `otel` feature: OpenTelemetry spans, trace propagation and metrics, following the
//! HTTP semantic conventions (see `telemetry.rs`).

use std::borrow::Cow;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use opentelemetry::baggage::BaggageExt as _;
use opentelemetry::context::{FutureExt as _, WithContext};
use opentelemetry::global::{BoxedSpan, BoxedTracer};
use opentelemetry::metrics::{BoundHistogram, Counter, Gauge, Histogram};
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::{SpanBuilder, SpanKind, SpanRef, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, InstrumentationScope, KeyValue, Value, global};
use tracing::Instrument;
use tracing::field::Empty;
use tracing::instrument::Instrumented;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::Error;
use crate::breaker::CircuitState;

/// The bucket boundaries the HTTP semantic conventions advise for request durations, in seconds.
const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// The instruments comms records, made from the global meter provider, and made again when
/// the application installs another (a provider installed after the first call or served
/// request is used from then on).
struct Metrics {
    client_duration: Histogram<f64>,
    retries: Counter<u64>,
    budget_refusals: Counter<u64>,
    breaker_transitions: Counter<u64>,
    breaker_refusals: Counter<u64>,
    breaker_state: Gauge<i64>,
    server_duration: Histogram<f64>,
}

/// The global meter provider, as `opentelemetry::global` holds it.
type GlobalMeterProvider = Arc<dyn opentelemetry::metrics::MeterProvider + Send + Sync>;

/// How many of a thread's uses of the instruments pass before it looks at the global meter
/// provider again: one installed (or replaced) after comms made its instruments is used from
/// within this many recordings on each thread.
const LOOK_EVERY: u32 = 64;

/// Runs `record` with the instruments in use: made from the global meter provider as it was
/// when this thread last looked (see [`LOOK_EVERY`]). Each thread keeps its own handle to
/// them, so that recording takes no lock and touches no count other threads write.
fn with_metrics<R>(record: impl FnOnce(&Arc<Metrics>) -> R) -> R {
    thread_local! {
        static IN_USE: std::cell::Cell<(u32, Option<Arc<Metrics>>)> =
            const { std::cell::Cell::new((0, None)) };
    }
    // A thread whose locals are being torn down (a task dropped as its runtime shuts down)
    // looks every time.
    let (until_look, kept) = IN_USE.try_with(std::cell::Cell::take).unwrap_or_default();
    let (until_look, metrics) = match (until_look.checked_sub(1), kept) {
        (Some(left), Some(metrics)) => (left, metrics),
        _ => (LOOK_EVERY, installed_metrics()),
    };
    let recorded = record(&metrics);
    let _ = IN_USE.try_with(|in_use| in_use.set((until_look, Some(metrics))));
    recorded
}

/// The instruments of the global meter provider installed now: those made last when it is the
/// provider they were made from, made anew otherwise.
fn installed_metrics() -> Arc<Metrics> {
    /// The instruments made last, and the provider they were made from, held weakly: its
    /// address is not reused while this is held, and it is not kept alive (an application that
    /// replaces it shuts it down when it lets go of it, not comms in the middle of a call).
    type Made = (
        Weak<dyn opentelemetry::metrics::MeterProvider + Send + Sync>,
        Arc<Metrics>,
    );
    static MADE: Mutex<Option<Made>> = Mutex::new(None);
    let mut made = MADE.lock().unwrap_or_else(PoisonError::into_inner);
    // Read under the lock: a thread that read the provider before another installed one and
    // made its instruments cannot put the old one back.
    let provider: GlobalMeterProvider = global::meter_provider();
    if let Some((from, metrics)) = &*made
        && std::ptr::addr_eq(from.as_ptr(), Arc::as_ptr(&provider))
    {
        return metrics.clone();
    }
    let metrics = Arc::new(Metrics::from(&provider));
    *made = Some((Arc::downgrade(&provider), metrics.clone()));
    metrics
}

impl Metrics {
    fn from(provider: &GlobalMeterProvider) -> Metrics {
        let meter = provider.meter_with_scope(scope());
        Metrics {
            client_duration: meter
                .f64_histogram("http.client.request.duration")
                .with_unit("s")
                .with_description("Duration of HTTP client requests (one per attempt).")
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build(),
            retries: meter
                .u64_counter("comms.client.retries")
                .with_unit("{retry}")
                .with_description("Attempts made again after a failed one.")
                .build(),
            budget_refusals: meter
                .u64_counter("comms.client.retry_budget.refusals")
                .with_unit("{retry}")
                .with_description("Retries the retry budget refused.")
                .build(),
            breaker_transitions: meter
                .u64_counter("comms.client.breaker.transitions")
                .with_unit("{transition}")
                .with_description("Circuit breaker state changes, by the state entered.")
                .build(),
            breaker_refusals: meter
                .u64_counter("comms.client.breaker.refusals")
                .with_unit("{request}")
                .with_description("Attempts a circuit breaker refused without sending.")
                .build(),
            breaker_state: meter
                .i64_gauge("comms.client.breaker.state")
                .with_unit("1")
                .with_description("Circuit breaker state: 0 closed, 1 half-open, 2 open.")
                .build(),
            server_duration: meter
                .f64_histogram("http.server.request.duration")
                .with_unit("s")
                .with_description("Duration of HTTP server requests.")
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build(),
        }
    }
}

/// Marks a failed call's span as an error, with its `error.type`.
pub(crate) fn call_ended(span: &tracing::Span, error: Option<&Error>) {
    let Some(error) = error else { return };
    match super::error_type(error) {
        Some(kind) => span.record("error.type", kind),
        None => span.record(
            "error.type",
            error.status().as_ref().map_or("_OTHER", StatusCode::as_str),
        ),
    };
    span.record("otel.status_code", "ERROR");
}

/// Writes a propagator's fields into a header map; with `only`, just the fields that map
/// already has (the ones the signature covers).
struct HeaderInjector<'a> {
    headers: &'a mut HeaderMap,
    only: Option<&'a HeaderMap>,
}

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        // An empty field (the W3C propagator's `tracestate` when there is none) is not sent:
        // a covered header that an intermediary drops as empty would fail the signature.
        if value.is_empty() {
            return;
        }
        // The W3C fields' names are made without parsing or copying them.
        let name = match key {
            "traceparent" => Ok(crate::signing::TRACEPARENT),
            "tracestate" => Ok(crate::signing::TRACESTATE),
            other => HeaderName::try_from(other),
        };
        let (Ok(name), Ok(value)) = (name, HeaderValue::try_from(value)) else {
            return;
        };
        if self.only.is_none_or(|covered| covered.contains_key(&name)) {
            self.headers.insert(name, value);
        }
    }
}

/// Whether every field of the global propagator's that `headers` has is one a signature
/// covers (`covered`): only then is the trace context a request carries its signer's.
pub(crate) fn trace_fields_covered(headers: &HeaderMap, covered: impl Fn(&str) -> bool) -> bool {
    global::get_text_map_propagator(|propagator| {
        propagator
            .fields()
            .all(|field| !headers.contains_key(field) || covered(field))
    })
}

/// Reads a propagator's fields from a request's headers.
struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

/// The query keys whose values a SERVER span's `url.query` shows as `REDACTED`: the ones the
/// conventions name, which carry a signed URL's credentials.
const REDACTED_QUERY_KEYS: [&str; 7] = [
    "AWSAccessKeyId",
    "Signature",
    "sig",
    "X-Goog-Signature",
    "X-Amz-Signature",
    "X-Amz-Credential",
    "X-Amz-Security-Token",
];

/// A query as `url.query` shows it: as received, but for the values of
/// [`REDACTED_QUERY_KEYS`], each replaced by `REDACTED` (the key kept). A key is matched as
/// the service reads it, percent-decoded: `X%2DAmz%2DSignature` is `X-Amz-Signature`.
fn redacted_query(query: &str) -> Cow<'_, str> {
    let secret = |pair: &str| {
        let key = pair.split_once('=').map_or(pair, |(key, _)| key);
        REDACTED_QUERY_KEYS.contains(&key)
            || key.contains('%')
                && percent_encoding::percent_decode_str(key)
                    .decode_utf8()
                    .is_ok_and(|key| REDACTED_QUERY_KEYS.contains(&&*key))
    };
    if !query.split('&').any(secret) {
        return Cow::Borrowed(query);
    }
    let pairs: Vec<Cow<'_, str>> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if secret(pair) => Cow::Owned(format!("{key}=REDACTED")),
            _ => Cow::Borrowed(pair),
        })
        .collect();
    Cow::Owned(pairs.join("&"))
}

/// `network.protocol.version` for a request's HTTP version: `1.0`, `1.1`, `2`, `3`.
fn protocol_version(version: http::Version) -> Option<&'static str> {
    match version {
        http::Version::HTTP_09 => Some("0.9"),
        http::Version::HTTP_10 => Some("1.0"),
        http::Version::HTTP_11 => Some("1.1"),
        http::Version::HTTP_2 => Some("2"),
        http::Version::HTTP_3 => Some("3"),
        _ => None,
    }
}

/// `server.address` and `server.port` of a request the server received: its target's authority
/// (an HTTP/2 request's `:authority`, an absolute-form request line's), else its `Host`
/// header, as the conventions have it; the port, when neither gives one, the scheme's. An
/// IPv6 address is written without its brackets. `None` when neither names a host.
fn served_at(uri: &Uri, headers: &HeaderMap, scheme: &str) -> Option<(String, u16)> {
    let host_header;
    let authority = match uri.authority() {
        Some(authority) => authority,
        None => {
            let value = headers.get(http::header::HOST)?.as_bytes();
            host_header = http::uri::Authority::try_from(value).ok()?;
            &host_header
        }
    };
    // Strictly `host[:port]`: no user information, and a port that is a number (which
    // `Authority` leaves to its reader).
    let written = authority.as_str();
    let host = authority.host();
    let port = match written.strip_prefix(host)? {
        "" => match scheme {
            "https" => 443,
            "http" => 80,
            _ => return None,
        },
        after => after.strip_prefix(':')?.parse().ok()?,
    };
    let host = unbracketed(host);
    (!host.is_empty()).then(|| (host.to_owned(), port))
}

/// `client.address`: the peer of the connection the request came on, when
/// the server was told it (axum's `into_make_service_with_connect_info::<SocketAddr>()`). A
/// `Forwarded` or `X-Forwarded-For` header is the caller's word, and is not taken for it.
#[cfg(feature = "server")]
fn client_at(extensions: &http::Extensions) -> Option<std::net::SocketAddr> {
    extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0)
}

#[cfg(not(feature = "server"))]
fn client_at(_: &http::Extensions) -> Option<std::net::SocketAddr> {
    None
}

/// A span's name under the conventions: `{method} {route}`, the method alone without a route;
/// a method the conventions do not know is written `HTTP`.
fn span_name(method: &Method, route: Option<&str>) -> Cow<'static, str> {
    let method = known_method(method).unwrap_or("HTTP");
    match route {
        Some(route) => Cow::Owned(span_name_of(method, route)),
        None => Cow::Borrowed(method),
    }
}

/// `{method} {route}`.
fn span_name_of(method: &str, route: &str) -> String {
    let mut name = String::with_capacity(method.len() + 1 + route.len());
    name.push_str(method);
    name.push(' ');
    name.push_str(route);
    name
}

/// What `VerifyLayer` leaves in a request's extensions: where a generated server behind it
/// names the route of the layer's SERVER span.
#[derive(Clone)]
struct LayerTrace(
    #[cfg_attr(not(feature = "server"), allow(dead_code))] Arc<OnceLock<Cow<'static, str>>>,
);

/// What every attempt of an executor's is reported with: its target's `server.address` and
/// `server.port`, made when the executor is built so that their copies are reference-counted,
/// and the tracer its CLIENT spans come from, the global tracer provider's at its first attempt,
/// taken again when it makes no spans of its own (OpenTelemetry's no-op provider, taken before
/// the application installed one).
pub(crate) struct Target {
    /// The tracer its spans come from: the first the global provider gave that made one.
    tracer: OnceLock<BoxedTracer>,
    /// Whether `tracer` has stopped making spans (its provider shut down): `replaced` is used.
    stale: AtomicBool,
    /// The tracer taken after `tracer` went stale, and again after this one did.
    replaced: RwLock<Option<BoxedTracer>>,
    /// How many attempts' spans the tracer in use did not make: the global provider's is taken
    /// again at the first, second, fourth, eighth ... and then every 256th, so that attempts
    /// asked for with no provider installed cost little more than the no-op spans they make.
    spans_not_made: AtomicU64,
    address: KeyValue,
    port: KeyValue,
    /// The base URL's path, which every request's path starts with; `None` for `/`.
    prefix: Option<Box<str>>,
    /// Where its attempts' durations are recorded.
    durations: Durations,
}

/// An attempt's duration series, by what its attributes are made from (its target's
/// `server.address` and `server.port` aside).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Series {
    method: &'static str,
    status: Option<u16>,
    error_type: Option<&'static str>,
}

/// How many of a target's duration series are bound at once (see [`Durations`]); the duration
/// of an attempt in a series past these is recorded with its attributes, as the SDK takes them.
const BOUND_SERIES: usize = 32;

/// How long a target keeps the series it bound before letting them go; those recorded into
/// again are bound anew.
const REBIND_AFTER: Duration = Duration::from_secs(60);

/// The series of `http.client.request.duration` a target's attempts have recorded, each bound
/// to its attributes once (OpenTelemetry's bound instruments): recording into one finds its
/// place in the histogram without hashing the attributes, which is most of what recording
/// with them costs. A target has a few (a method's successes, say, and its 503s). Finding one
/// takes the target's read lock, as the SDK's own lookup takes its map's.
///
/// The SDK keeps a series whose handle is held, even under delta temporality, which forgets
/// the others once a collection finds them unused; and a series bound while the histogram was
/// at its cardinality limit records into the overflow series while its handle is held. So a
/// target lets its handles go every [`REBIND_AFTER`]: a series no longer used can be forgotten,
/// and one bound at the limit finds a place of its own when there is room again.
#[derive(Default)]
struct Durations(RwLock<Bound>);

struct Bound {
    /// The instruments the series are bound in, held weakly: compared by address, which is not
    /// reused while this is held. When the global meter provider is replaced, the series are
    /// bound again in the new one's instruments. (While threads still hold the instruments of
    /// the provider before, for up to [`LOOK_EVERY`] recordings each, they and the others may
    /// let each other's series go: each is bound again, and nothing recorded is lost.)
    from: Weak<Metrics>,
    /// Until when the series are kept.
    until: Instant,
    series: Vec<(Series, BoundHistogram<f64>)>,
}

impl Default for Bound {
    fn default() -> Bound {
        Bound {
            from: Weak::new(),
            until: Instant::now(),
            series: Vec::new(),
        }
    }
}

/// Where a target records a duration.
enum Found<'a> {
    Bound(&'a BoundHistogram<f64>),
    /// With its attributes: the target has bound as many series as it keeps.
    Unbound,
    /// Not bound yet, or bound in instruments no longer in use, or too long ago.
    Neither,
}

impl Bound {
    /// Whether the series are bound in `metrics` and kept at `now`.
    fn current(&self, metrics: &Arc<Metrics>, now: Instant) -> bool {
        std::ptr::eq(self.from.as_ptr(), Arc::as_ptr(metrics)) && now < self.until
    }

    fn find(&self, metrics: &Arc<Metrics>, series: Series, now: Instant) -> Found<'_> {
        if !self.current(metrics, now) {
            return Found::Neither;
        }
        match self.series.iter().find(|(bound, _)| *bound == series) {
            Some((_, histogram)) => Found::Bound(histogram),
            None if self.series.len() >= BOUND_SERIES => Found::Unbound,
            None => Found::Neither,
        }
    }
}

impl Durations {
    /// Records `elapsed`, of an attempt that ended at `now`, in `series`, whose attributes are
    /// `attributes()`.
    fn record(
        &self,
        metrics: &Arc<Metrics>,
        series: Series,
        now: Instant,
        elapsed: f64,
        attributes: impl FnOnce() -> Vec<KeyValue>,
    ) {
        {
            let bound = self.0.read().unwrap_or_else(PoisonError::into_inner);
            match bound.find(metrics, series, now) {
                Found::Bound(histogram) => return histogram.record(elapsed),
                Found::Unbound => {
                    return metrics.client_duration.record(elapsed, &attributes());
                }
                Found::Neither => {}
            }
        }
        let mut bound = self.0.write().unwrap_or_else(PoisonError::into_inner);
        if !bound.current(metrics, now) {
            *bound = Bound {
                from: Arc::downgrade(metrics),
                until: now + REBIND_AFTER,
                series: Vec::new(),
            };
        }
        match bound.find(metrics, series, now) {
            Found::Bound(histogram) => histogram.record(elapsed),
            Found::Unbound => metrics.client_duration.record(elapsed, &attributes()),
            Found::Neither => {
                let histogram = metrics.client_duration.bind(&attributes());
                histogram.record(elapsed);
                bound.series.push((series, histogram));
            }
        }
    }
}

impl Target {
    /// The target of a base URL whose path is `prefix` (without its trailing `/`).
    pub(crate) fn new(base: &reqwest::Url, prefix: &str) -> Target {
        let [address, port] = server(base);
        Target {
            tracer: OnceLock::new(),
            stale: AtomicBool::new(false),
            replaced: RwLock::new(None),
            spans_not_made: AtomicU64::new(0),
            address,
            port,
            prefix: (!prefix.is_empty()).then(|| prefix.into()),
            durations: Durations::default(),
        }
    }

    /// `url.template`: the route as the request's path has it, under the base URL's path.
    fn template(&self, route: &'static str) -> Cow<'static, str> {
        match &self.prefix {
            None => Cow::Borrowed(route),
            Some(prefix) => Cow::Owned(format!("{prefix}{route}")),
        }
    }

    /// The attempt's span, made by `builder` in `parent`; `None` when no tracer makes one.
    ///
    /// A span that is not one of its own (with no span id of its own, as the no-op tracer makes
    /// them, and a provider shut down) says the tracer makes none: the global provider's is
    /// taken again (at once, then ever more rarely, see `spans_not_made`), and kept when it
    /// makes spans: the application installed its provider after the first call, or replaced
    /// one it shut down. Until a tracer has made a span, none is kept.
    fn span(&self, builder: impl Fn() -> SpanBuilder, parent: &Context) -> Option<BoxedSpan> {
        let made = match (self.tracer.get(), self.stale.load(Ordering::Acquire)) {
            (Some(tracer), false) => Some(tracer.build_with_context(builder(), parent)),
            (Some(_), true) => self
                .replaced
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
                .map(|tracer| tracer.build_with_context(builder(), parent)),
            (None, _) => None,
        };
        // Telemetry suppressed (an exporter's own calls): no span is right.
        if made.as_ref().is_some_and(|span| is_own(span, parent))
            || parent.is_telemetry_suppressed()
            || !self.may_look_again()
        {
            return made;
        }
        let fresh = global::tracer_with_scope(scope());
        let again = fresh.build_with_context(builder(), parent);
        if !is_own(&again, parent) {
            no_tracer_provider();
            return made;
        }
        if let Err(fresh) = self.tracer.set(fresh) {
            // The first tracer, or the one after it, stopped making spans: this one replaces it.
            *self
                .replaced
                .write()
                .unwrap_or_else(PoisonError::into_inner) = Some(fresh);
            self.stale.store(true, Ordering::Release);
        }
        // Counted afresh, should this one stop making spans in turn.
        self.spans_not_made.store(0, Ordering::Relaxed);
        Some(again)
    }

    /// Counts a span the tracer in use did not make, and says whether this is one to take the
    /// global provider's tracer again at.
    fn may_look_again(&self) -> bool {
        let n = self.spans_not_made.fetch_add(1, Ordering::Relaxed) + 1;
        n.is_power_of_two() || n.is_multiple_of(256)
    }
}

/// Whether `span` is one of its own, not its parent's context again (or none), as a no-op
/// tracer makes them.
fn is_own(span: &BoxedSpan, parent: &Context) -> bool {
    use opentelemetry::trace::Span as _;
    let made = span.span_context();
    made.is_valid() && made.span_id() != parent.span().span_context().span_id()
}

/// Says once, as a `WARN`, that attempt spans are asked for (the `tracing` subscriber enables
/// them) while the global tracer provider is OpenTelemetry's no-op one.
fn no_tracer_provider() {
    static SAID: AtomicBool = AtomicBool::new(false);
    if !SAID.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "comms makes each attempt's CLIENT span with the global tracer provider, which \
             makes none (none is installed, or it was shut down): install one with \
             `opentelemetry::global::set_tracer_provider` (a tracing-opentelemetry layer alone \
             does not make these spans); until then, attempts make no spans"
        );
    }
}

/// comms' instrumentation scope, for its tracer and its meter.
fn scope() -> InstrumentationScope {
    InstrumentationScope::builder("comms")
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
}

/// The method's name if it is one the conventions know: those HTTP defines, and `QUERY`; or,
/// when `OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS` is set, those it lists instead. Span names
/// and the `http.request.method` attribute keep to these, so a client cannot grow them without
/// bound.
fn known_method(method: &Method) -> Option<&'static str> {
    if let Some(listed) = listed_methods() {
        return listed
            .iter()
            .copied()
            .find(|known| *known == method.as_str());
    }
    Some(match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ if method.as_str() == "QUERY" => "QUERY",
        _ => return None,
    })
}

/// The methods `OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS` lists, read once, when it is set.
fn listed_methods() -> Option<&'static [&'static str]> {
    static LISTED: OnceLock<Option<Vec<&'static str>>> = OnceLock::new();
    LISTED
        .get_or_init(|| {
            // Empty is unset, as OpenTelemetry's environment variables have it.
            let list = std::env::var("OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS")
                .ok()
                .filter(|list| !list.trim().is_empty())?;
            // Read once for the process: the few names are kept for its life.
            Some(
                parse_methods(&list)
                    .map(|m| &*Box::leak(m.into()))
                    .collect(),
            )
        })
        .as_deref()
}

/// The names of a comma-separated list of methods, as the conventions' override writes them
/// (case-sensitive, a full replacement of the known methods).
fn parse_methods(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|m| !m.is_empty())
}

/// `http.request.method`: the method, or `_OTHER` for one the conventions do not know.
fn method_name(method: &Method) -> &'static str {
    known_method(method).unwrap_or("_OTHER")
}

/// `http.request.method`, as an attribute.
fn method_attribute(method: &Method) -> KeyValue {
    KeyValue::new("http.request.method", method_name(method))
}

/// One attempt's CLIENT span and what its duration is recorded with. Boxed: every call in
/// flight holds one in its future, which is kept small (see `call_future.rs`).
pub(crate) struct AttemptTrace(Box<Attempt>);

struct Attempt {
    /// What the propagator writes into the request: the caller's context with the attempt's
    /// span in it, or, when a filter leaves that span out, the caller's context alone.
    cx: Context,
    /// Whether `cx` holds a span of the attempt's own, which ending the attempt ends. (It
    /// records nothing when no tracer provider is installed or the sampler drops it.)
    own_span: bool,
    started: Instant,
    /// `http.request.method`.
    method: &'static str,
}

/// Whether the application's `tracing` subscriber lets attempt spans be made: they count as
/// `INFO` spans of target `comms::executor`, filtered as the call's span and the SERVER span
/// are. A filter on tracing-opentelemetry's layer alone is not asked (`enabled!` is true when
/// any layer would take the span): the span does not pass through that layer.
fn attempt_span_enabled() -> bool {
    tracing::enabled!(
        kind: tracing::metadata::Kind::SPAN,
        target: "comms::executor",
        tracing::Level::INFO
    )
}

/// The context an attempt's span is made in: that of the current `tracing` span (the call's,
/// or the caller's when the call's is not enabled) when tracing-opentelemetry knows it, and
/// the current OpenTelemetry context otherwise.
///
/// The `tracing` span is asked first: tracing-opentelemetry also makes an entered span's
/// context the current one, but only while its context activation is on; with it off, the
/// current context could be an outer span's. Its baggage, though, takes the current context's
/// entries over the span's: an application attaches baggage to the current context, after its
/// span was made, and a composite propagator would otherwise send none of it.
fn callers_context() -> Context {
    let span = tracing::Span::current();
    if !span.is_disabled() {
        let cx = span.context();
        if cx.span().span_context().is_valid() {
            return Context::map_current(|current| match current.baggage() {
                baggage if baggage.is_empty() => cx,
                baggage => {
                    // The span's entries, then the current context's, which replace any of the
                    // same name.
                    let entries = |b: &opentelemetry::baggage::Baggage| {
                        b.iter()
                            .map(|(key, (value, meta))| {
                                (key.clone(), (value.clone(), meta.clone()))
                            })
                            .collect::<Vec<_>>()
                    };
                    let mut merged = entries(cx.baggage());
                    merged.extend(entries(baggage));
                    cx.with_baggage(
                        merged
                            .into_iter()
                            .collect::<opentelemetry::baggage::Baggage>(),
                    )
                }
            });
        }
    }
    Context::current()
}

impl AttemptTrace {
    /// Opens the attempt's span, a child of the current one (the call's).
    ///
    /// The span is made by the OpenTelemetry tracer directly rather than as a `tracing` span
    /// that tracing-opentelemetry would turn into one: nothing runs inside an attempt that
    /// could be its child, and going through `tracing` cost over twice as much per attempt.
    pub(crate) fn start(
        target: &Target,
        method: &Method,
        route: Option<&'static str>,
        url: &reqwest::Url,
        resend_count: u32,
    ) -> AttemptTrace {
        let method_name = method_name(method);
        let template = route.map(|route| target.template(route));
        let parent = callers_context();
        let (cx, own_span) = if attempt_span_enabled() {
            let builder = || {
                // Room for what `end` adds.
                let mut span_attributes = Vec::with_capacity(9);
                span_attributes.extend([
                    KeyValue::new("http.request.method", method_name),
                    target.address.clone(),
                    target.port.clone(),
                ]);
                if let Some(template) = &template {
                    span_attributes.push(KeyValue::new("url.template", template.clone()));
                }
                span_attributes.push(KeyValue::new(
                    "url.full",
                    crate::response::without_query(url).to_owned(),
                ));
                if resend_count > 0 {
                    span_attributes.push(KeyValue::new(
                        "http.request.resend_count",
                        i64::from(resend_count),
                    ));
                }
                if known_method(method).is_none() {
                    span_attributes.push(KeyValue::new(
                        "http.request.method_original",
                        method.as_str().to_owned(),
                    ));
                }
                SpanBuilder::from_name(span_name(method, template.as_deref()))
                    .with_kind(SpanKind::Client)
                    .with_attributes(span_attributes)
            };
            match target.span(builder, &parent) {
                Some(span) => (parent.with_span(span), true),
                // No tracer makes spans yet: the caller's context travels, as when a filter
                // leaves the span out.
                None => (parent, false),
            }
        } else {
            (parent, false)
        };
        AttemptTrace(Box::new(Attempt {
            cx,
            own_span,
            started: Instant::now(),
            method: method_name,
        }))
    }

    /// Ends an attempt that was never sent (its header hook failed, or its request could not
    /// be built): its span ends with `error_type` (`_OTHER` without one), and no request
    /// duration is recorded.
    pub(crate) fn abandon(self, error_type: Option<&'static str>) {
        let Some(span) = self.0.span() else { return };
        span.set_attribute(KeyValue::new("error.type", error_type.unwrap_or("_OTHER")));
        span.set_status(Status::error(""));
        span.end();
    }

    /// Writes the attempt's trace context into `headers`. The first attempt's goes into the
    /// call's headers before the signature's covered components are decided, so that
    /// `traceparent` (and `tracestate`) are among them; a retry's goes into its request's
    /// headers for just the fields the signature covers (`covered`, the call's headers).
    pub(crate) fn inject(&self, headers: &mut HeaderMap, covered: Option<&HeaderMap>) {
        global::get_text_map_propagator(|propagator| {
            propagator.inject_context(
                &self.0.cx,
                &mut HeaderInjector {
                    headers,
                    only: covered,
                },
            );
        });
    }

    /// Ends the attempt: the status received, if any (that of a head whose body then failed
    /// too), or the kind of error, and its duration.
    pub(crate) fn end(
        self,
        target: &Target,
        status: Option<StatusCode>,
        error_type: Option<&'static str>,
    ) {
        let attempt = *self.0;
        let ended = Instant::now();
        let elapsed = ended.duration_since(attempt.started).as_secs_f64();
        let code =
            |s: StatusCode| KeyValue::new("http.response.status_code", i64::from(s.as_u16()));
        // A client counts every 4xx and 5xx as an error, of the status code's type.
        let error = || {
            match (error_type, status) {
                (Some(kind), _) => Some(Value::from(kind)),
                (None, Some(s)) if s.is_client_error() || s.is_server_error() => {
                    Some(Value::from(s.as_str().to_owned()))
                }
                _ => None,
            }
            .map(|kind| KeyValue::new("error.type", kind))
        };
        if let Some(span) = attempt.span() {
            if let Some(status) = status {
                span.set_attribute(code(status));
            }
            if let Some(error) = error() {
                span.set_attribute(error);
                span.set_status(Status::error(""));
            }
            span.end();
        }
        let series = Series {
            method: attempt.method,
            status: status.map(|s| s.as_u16()),
            error_type,
        };
        // The duration's attributes: those the conventions require or recommend.
        // `url.template` is opt-in for the metric, and instrumentation with no switch for it
        // must leave it out; the span has it, and a server's duration its `http.route`.
        let attributes = || {
            let mut attributes = Vec::with_capacity(5);
            attributes.extend([
                KeyValue::new("http.request.method", attempt.method),
                target.address.clone(),
                target.port.clone(),
            ]);
            attributes.extend(status.map(code));
            attributes.extend(error());
            attributes
        };
        with_metrics(|m| {
            target
                .durations
                .record(m, series, ended, elapsed, attributes)
        });
    }
}

impl Attempt {
    /// The attempt's own span, if it has one.
    fn span(&self) -> Option<SpanRef<'_>> {
        self.own_span.then(|| self.cx.span())
    }
}

/// The `server.address` and `server.port` of a URL.
fn server(url: &reqwest::Url) -> [KeyValue; 2] {
    [
        // Shared, not owned: a target's attributes are copied into every attempt's.
        KeyValue::new(
            "server.address",
            Arc::<str>::from(unbracketed(url.host_str().unwrap_or_default())),
        ),
        KeyValue::new(
            "server.port",
            i64::from(url.port_or_known_default().unwrap_or_default()),
        ),
    ]
}

/// The `server.address` and `server.port` of a breaker's authority, `scheme://host:port`.
fn authority(authority: &str) -> [KeyValue; 2] {
    let host_port = authority
        .split_once("://")
        .map_or(authority, |(_, rest)| rest);
    let (host, port) = host_port
        .rsplit_once(':')
        .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)))
        .unwrap_or((host_port, 0));
    [
        KeyValue::new("server.address", unbracketed(host).to_owned()),
        KeyValue::new("server.port", i64::from(port)),
    ]
}

/// A host as `server.address` has it: an IPv6 address without the brackets a URL writes it in
/// (`::1`), as the SERVER span on the other side records it.
fn unbracketed(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// The route axum matched for a request, as it registered it.
#[cfg(feature = "server")]
fn matched_path(extensions: &http::Extensions) -> Option<&str> {
    extensions
        .get::<axum::extract::MatchedPath>()
        .map(axum::extract::MatchedPath::as_str)
}

/// `http.route` of a request a generated server's method of `route` serves: the template, under
/// the prefix of the router it is nested in (`Router::nest`, `nest_service`) when there is one,
/// as the conventions want every static segment of the route. Axum's `MatchedPath` ends with
/// the route as registered, in as many segments as the template has (parameters named by
/// place), after the prefix it was nested at.
#[cfg(feature = "server")]
fn served_route(matched: Option<&str>, route: &'static str) -> Cow<'static, str> {
    let Some(matched) = matched else {
        return Cow::Borrowed(route);
    };
    if route == "/" {
        // A root nested at `/api` is matched as `/api`: the prefix is all of it.
        return match matched {
            "/" => Cow::Borrowed(route),
            nested => Cow::Owned(nested.to_owned()),
        };
    }
    let mut prefix = matched;
    for _ in 0..route.matches('/').count() {
        match prefix.rfind('/') {
            Some(at) => prefix = &prefix[..at],
            None => return Cow::Borrowed(route),
        }
    }
    match prefix {
        "" => Cow::Borrowed(route),
        prefix => Cow::Owned(format!("{prefix}{route}")),
    }
}

/// `served` running in the current OpenTelemetry context wherever it is polled: a task a
/// served request spawns stays in the request's trace (the one it carried, when a filter left
/// its SERVER span out).
#[cfg(feature = "server")]
pub(crate) fn in_current_trace<F: Future>(served: F) -> WithContext<F> {
    served.with_current_context()
}

/// A retry of a call to `target` is about to be made.
pub(crate) fn retried(target: &Target, method: &Method) {
    let attributes = [
        method_attribute(method),
        target.address.clone(),
        target.port.clone(),
    ];
    with_metrics(|m| m.retries.add(1, &attributes));
}

/// The retry budget refused a retry of a call to `target`.
pub(crate) fn budget_refused(target: &Target) {
    let attributes = [target.address.clone(), target.port.clone()];
    with_metrics(|m| m.budget_refusals.add(1, &attributes));
}

/// A breaker entered `state`.
pub(crate) fn breaker_changed(breaker: &str, state: CircuitState) {
    let [address, port] = authority(breaker);
    let (name, value) = match state {
        CircuitState::Closed => ("closed", 0),
        CircuitState::HalfOpen => ("half_open", 1),
        CircuitState::Open => ("open", 2),
    };
    with_metrics(|m| {
        m.breaker_state
            .record(value, &[address.clone(), port.clone()]);
        m.breaker_transitions.add(
            1,
            &[address, port, KeyValue::new("comms.breaker.state", name)],
        );
    });
}

/// The first breaker for `breaker`'s target was made, closed: the target's state gauge starts
/// at 0, so that a healthy target has a series too.
pub(crate) fn breaker_made(breaker: &str) {
    let [address, port] = authority(breaker);
    with_metrics(|m| m.breaker_state.record(0, &[address, port]));
}

/// The breaker of `target` refused an attempt.
pub(crate) fn breaker_refused(target: &Target) {
    let attributes = [target.address.clone(), target.port.clone()];
    with_metrics(|m| m.breaker_refusals.add(1, &attributes));
}

/// A served request's SERVER span, continuing the trace its headers carry when it is trusted
/// (see [`ServerTrace::start`]), and what its duration is recorded with. Dropped without
/// [`end`](ServerTrace::end) (its caller hung up before the answer, and the serving was
/// dropped), it ends as `cancelled`.
pub(crate) struct ServerTrace {
    span: tracing::Span,
    /// The method as span names write it (`HTTP` for one the conventions do not know), for a
    /// route learnt after the span was opened.
    method: &'static str,
    /// `VerifyLayer`'s: where a generated server behind it names its route (see
    /// [`ServerTrace::behind_layer`]).
    route_slot: Option<Arc<OnceLock<Cow<'static, str>>>>,
    /// `VerifyLayer`'s: the route axum matched, the span's unless a generated server names one.
    matched: Option<String>,
    /// The trace the request carried (trusted), when a filter left the span out: the serving
    /// runs in it all the same, so that the calls it makes continue the caller's trace.
    carried: Option<Context>,
    started: Instant,
    attributes: Vec<KeyValue>,
    ended: bool,
}

impl ServerTrace {
    /// Opens the span; `route` is the route template when the server knows it, `scheme` the
    /// one requests reach the service by when it was told (`Verifier::scheme`): an HTTP/1.1
    /// request line does not say, or says what its sender likes (`GET x1://host/path
    /// HTTP/1.1`, which hyper takes), so the request's own scheme counts only when it is
    /// `http` or `https`: the duration's series are not for a caller to multiply, signed or
    /// not.
    ///
    /// The span continues the trace the request carries only when it is `trusted`: a request
    /// whose head's signature held and covers its trace context (or one served unverified).
    /// Any other (its head refused, or signed without covering it) is served as one without a
    /// trace would be, with a link to the trace it claimed, so that an unauthenticated caller
    /// cannot put spans into another trace, nor decide whether a parent-based sampler records
    /// them.
    ///
    /// `uri` is the request's as its caller sent it (a nested router's prefix included).
    fn start(
        parts: &http::request::Parts,
        uri: &Uri,
        route: Option<Cow<'static, str>>,
        scheme: Option<&str>,
        trusted: bool,
    ) -> ServerTrace {
        let (method, headers) = (&parts.method, &parts.headers);
        let name = span_name(method, route.as_deref());
        let query = uri.query().map(redacted_query);
        let scheme = scheme
            .or_else(|| uri.scheme_str().filter(|s| matches!(*s, "http" | "https")))
            .unwrap_or("http");
        let served = served_at(uri, headers, scheme);
        let client = client_at(&parts.extensions);
        let span = tracing::info_span!(
            target: "comms::server",
            "comms.serve",
            otel.name = name.as_ref(),
            otel.kind = "server",
            http.request.method = known_method(method).unwrap_or("_OTHER"),
            http.request.method_original = known_method(method).is_none().then(|| method.as_str()),
            url.path = uri.path(),
            url.query = query.as_deref(),
            url.scheme = scheme,
            http.route = route.as_deref(),
            network.protocol.version = protocol_version(parts.version),
            server.address = served.as_ref().map(|(host, _)| host.as_str()),
            // As `i64`, the conventions' type: a `u16` field is recorded as text.
            server.port = served.as_ref().map(|(_, port)| i64::from(*port)),
            // `client.port` is opt-in: left out.
            client.address = client.map(|peer| tracing::field::display(peer.ip())),
            user_agent.original = headers
                .get(http::header::USER_AGENT)
                .and_then(|agent| agent.to_str().ok()),
            http.response.status_code = Empty,
            error.type = Empty,
            otel.status_code = Empty,
        );
        let parent = global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)));
        // Without a trace in the request, the span stays in the one it is served in (a
        // tower-http span around the router, say). A span a filter left out cannot hold it.
        let mut carried = None;
        if parent.span().span_context().is_valid() {
            if !trusted {
                // Served as a request without a trace would be, the one it claimed linked.
                span.add_link(parent.span().span_context().clone());
            } else if span.is_disabled() {
                carried = Some(parent);
            } else {
                let _ = span.set_parent(parent.clone());
                // A filter on tracing-opentelemetry's layer alone leaves the span to the
                // other layers (a log): made, it holds no trace, so it is served as one that
                // was left out, in the trace carried.
                if !span.context().span().span_context().is_valid() {
                    carried = Some(parent);
                }
            }
        }
        let mut attributes = vec![
            method_attribute(method),
            KeyValue::new("url.scheme", scheme.to_owned()),
        ];
        if let Some(version) = protocol_version(parts.version) {
            attributes.push(KeyValue::new("network.protocol.version", version));
        }
        if let Some(route) = route {
            attributes.push(KeyValue::new("http.route", route));
        }
        ServerTrace {
            span,
            method: known_method(method).unwrap_or("HTTP"),
            route_slot: None,
            matched: None,
            carried,
            started: Instant::now(),
            attributes,
            ended: false,
        }
    }

    /// `VerifyLayer`'s trace: the SERVER span of the request, which a generated server behind
    /// the layer does not open again, but names with its route; the request's `extensions`
    /// carry where it does; they also carry the route axum matched, when the layer runs after
    /// routing (`Router::layer`), which names the span unless a generated server does.
    pub(crate) fn start_layer(
        parts: &mut http::request::Parts,
        uri: &Uri,
        scheme: Option<&str>,
        trusted: bool,
    ) -> ServerTrace {
        let mut trace = ServerTrace::start(parts, uri, None, scheme, trusted);
        // Axum's routing, when it came before the layer (and brought axum in: `server`).
        #[cfg(feature = "server")]
        {
            trace.matched = matched_path(&parts.extensions).map(str::to_owned);
        }
        let slot = Arc::new(OnceLock::new());
        parts.extensions.insert(LayerTrace(slot.clone()));
        trace.route_slot = Some(slot);
        trace
    }

    /// A generated server's SERVER span for `parts`, served by the method of `route`.
    #[cfg(feature = "server")]
    pub(crate) fn start_served(
        parts: &http::request::Parts,
        uri: &Uri,
        route: &'static str,
        scheme: Option<&str>,
        trusted: bool,
    ) -> ServerTrace {
        let route = served_route(matched_path(&parts.extensions), route);
        ServerTrace::start(parts, uri, Some(route), scheme, trusted)
    }

    /// For a generated server behind `VerifyLayer`, whose SERVER span this request is already
    /// in: names that span with `route` (under the prefix it is served at), and returns a trace
    /// that records nothing more. `None` when no layer opened one.
    #[cfg(feature = "server")]
    pub(crate) fn behind_layer(
        extensions: &http::Extensions,
        route: &'static str,
    ) -> Option<ServerTrace> {
        let LayerTrace(slot) = extensions.get::<LayerTrace>()?;
        let _ = slot.set(served_route(matched_path(extensions), route));
        Some(ServerTrace {
            span: tracing::Span::none(),
            method: "",
            route_slot: None,
            matched: None,
            carried: None,
            started: Instant::now(),
            attributes: Vec::new(),
            ended: true,
        })
    }

    /// Names the span and its duration with `route`, learnt after the span was opened (and
    /// entered: tracing-opentelemetry then takes a new name only through the span itself).
    fn name_route(&mut self, route: Cow<'static, str>) {
        self.span.record("http.route", route.as_ref());
        if !self.span.is_disabled() {
            let name = span_name_of(self.method, &route);
            self.span.context().span().update_name(name);
        }
        self.attributes.push(KeyValue::new("http.route", route));
    }

    /// Runs the serving of the request inside the span, or, when a filter left the span out,
    /// in the trace the request carried.
    pub(crate) fn run<F: Future>(&self, served: F) -> WithContext<Instrumented<F>> {
        let cx = self.carried.clone().unwrap_or_else(Context::current);
        served.instrument(self.span.clone()).with_context(cx)
    }

    /// Ends the span with the response's status, and records the duration.
    pub(crate) fn end(mut self, status: StatusCode) {
        self.finish(Some(status), None);
    }

    /// Ends the span of a request its service failed to answer (the service behind
    /// `VerifyLayer` returned an error, not a response): `error.type` `_OTHER`, as the
    /// conventions have it for an error of no type of its own, not `cancelled`, which says
    /// the caller hung up.
    pub(crate) fn end_unanswered(mut self) {
        self.finish(None, Some("_OTHER"));
    }

    /// Ends the span of a request whose streamed body failed after its `status` head was sent.
    #[cfg(feature = "server")]
    pub(crate) fn end_failed(mut self, status: StatusCode) {
        self.finish(Some(status), Some("stream_error"));
    }

    /// Runs `f` inside the span: the reading of a streamed body, which the server does after
    /// the request's own future has returned.
    #[cfg(feature = "server")]
    pub(crate) fn in_span<R>(&self, f: impl FnOnce() -> R) -> R {
        let _carried = self.carried.clone().map(Context::attach);
        self.span.in_scope(f)
    }

    /// Records how the request ended: with the status of the response sent (and `failed`, the
    /// type of an error that cut its body short), or (`None`) with none: `failed`, or
    /// cancelled.
    fn finish(&mut self, status: Option<StatusCode>, failed: Option<&'static str>) {
        if self.ended {
            // Ended before, or one behind `VerifyLayer`, which records nothing.
            return;
        }
        self.ended = true;
        // A generated server behind the layer knows the route best, then axum.
        let late = self
            .route_slot
            .as_ref()
            .and_then(|slot| slot.get().cloned());
        match (late, self.matched.take()) {
            (Some(route), _) => self.name_route(route),
            (None, Some(matched)) => self.name_route(Cow::Owned(matched)),
            (None, None) => {}
        }
        let error = match status {
            Some(status) => {
                let code_value = i64::from(status.as_u16());
                self.span.record("http.response.status_code", code_value);
                self.attributes
                    .push(KeyValue::new("http.response.status_code", code_value));
                // A server counts only 5xx as its own error.
                match failed {
                    Some(failed) => Some(failed.to_owned()),
                    None => status.is_server_error().then(|| status.as_str().to_owned()),
                }
            }
            None => Some(failed.unwrap_or("cancelled").to_owned()),
        };
        if let Some(error) = error {
            self.span.record("error.type", error.as_str());
            self.span.record("otel.status_code", "ERROR");
            self.attributes.push(KeyValue::new("error.type", error));
        }
        let elapsed = self.started.elapsed().as_secs_f64();
        with_metrics(|m| m.server_duration.record(elapsed, &self.attributes));
    }
}

impl Drop for ServerTrace {
    fn drop(&mut self) {
        if !self.ended {
            self.finish(None, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn where_a_request_was_sent_is_its_targets_authority_or_its_host_header() {
        let at = |uri: &str, host: Option<&str>, scheme: &str| {
            let mut headers = HeaderMap::new();
            if let Some(host) = host {
                headers.insert(http::header::HOST, HeaderValue::from_str(host).unwrap());
            }
            served_at(&uri.parse().unwrap(), &headers, scheme)
        };
        let some = |host: &str, port| Some((host.to_owned(), port));
        assert_eq!(
            at("/x", Some("api.internal:8443"), "https"),
            some("api.internal", 8443)
        );
        assert_eq!(
            at("/x", Some("api.internal"), "https"),
            some("api.internal", 443)
        );
        assert_eq!(
            at("/x", Some("[2001:db8::1]:81"), "http"),
            some("2001:db8::1", 81)
        );
        // An absolute-form target (or HTTP/2's `:authority`) wins over the header.
        assert_eq!(
            at("http://a.example:1/x", Some("b.example"), "http"),
            some("a.example", 1)
        );
        for bad in [
            "",
            "a b",
            "host:port",
            "host:",
            "host:99999",
            "user@host",
            ":80",
        ] {
            assert_eq!(at("/x", Some(bad), "http"), None, "{bad:?}");
        }
        assert_eq!(at("/x", None, "http"), None);
    }

    #[test]
    fn a_query_is_shown_with_the_values_of_signed_urls_credentials_redacted() {
        for (query, shown) in [
            ("", ""),
            ("q=OpenTelemetry&page=2", "q=OpenTelemetry&page=2"),
            ("color=blue&sig=s3cr3t", "color=blue&sig=REDACTED"),
            (
                "Signature=a%2Fb&AWSAccessKeyId=AKIA&x=1&X-Goog-Signature=ff",
                "Signature=REDACTED&AWSAccessKeyId=REDACTED&x=1&X-Goog-Signature=REDACTED",
            ),
            // A key alone has no value to hide; the names are matched as the conventions
            // write them.
            ("sig&SIG=1&signature=2", "sig&SIG=1&signature=2"),
            ("sig=&sig=again", "sig=REDACTED&sig=REDACTED"),
            // Encoded, as a service decodes it.
            (
                "X%2DAmz%2DSignature=ff&%73ig=1&a%25=2",
                "X%2DAmz%2DSignature=REDACTED&%73ig=REDACTED&a%25=2",
            ),
        ] {
            assert_eq!(redacted_query(query), shown, "{query}");
        }
    }

    /// The prefix is what axum matched before the route's own segments, however the route
    /// ends: a parameter, a trailing segments parameter, a trailing slash, or the root.
    #[cfg(feature = "server")]
    #[test]
    fn a_served_route_is_its_template_under_what_was_matched_before_it() {
        let cases = [
            (None, "/shelf/<id>", "/shelf/<id>"),
            (Some("/shelf/{p0}"), "/shelf/<id>", "/shelf/<id>"),
            (Some("/v1/shelf/{p0}"), "/shelf/<id>", "/v1/shelf/<id>"),
            (
                Some("/{tenant}/shelf/{p0}"),
                "/shelf/<id>",
                "/{tenant}/shelf/<id>",
            ),
            (
                Some("/v1/files/{*p0}"),
                "/files/<path..>",
                "/v1/files/<path..>",
            ),
            (Some("/v1/items/"), "/items/", "/v1/items/"),
            // A method served at another verb's more literal route.
            (Some("/items/me"), "/items/<id>", "/items/<id>"),
            (Some("/"), "/", "/"),
            (Some("/v1"), "/", "/v1"),
        ];
        for (matched, route, expected) in cases {
            assert_eq!(
                served_route(matched, route),
                expected,
                "{matched:?} {route}"
            );
        }
    }

    #[test]
    fn the_known_methods_override_is_a_comma_separated_list() {
        let listed: Vec<&str> = parse_methods("GET, POST,,PURGE ").collect();
        assert_eq!(listed, ["GET", "POST", "PURGE"]);
        assert_eq!(parse_methods("").count(), 0);
    }

    #[test]
    fn unknown_methods_are_http_in_span_names_with_their_route() {
        let purge = Method::from_bytes(b"PURGE").unwrap();
        assert_eq!(span_name(&purge, Some("/items")), "HTTP /items");
        assert_eq!(span_name(&purge, None), "HTTP");
        assert_eq!(span_name(&Method::GET, Some("/items")), "GET /items");
        let query = Method::from_bytes(b"QUERY").unwrap();
        assert_eq!(known_method(&query), Some("QUERY"));
    }
}

#[cfg(test)]
mod bound_durations {
    use std::time::{Duration, Instant};

    use opentelemetry::KeyValue;
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
    use opentelemetry_sdk::metrics::{
        InMemoryMetricExporter, Instrument, PeriodicReader, SdkMeterProvider, Stream, Temporality,
    };

    use super::*;

    /// A meter provider exporting deltas, with room for two series of the client duration.
    fn provider() -> (SdkMeterProvider, InMemoryMetricExporter, Arc<Metrics>) {
        let exporter = opentelemetry_sdk::metrics::InMemoryMetricExporterBuilder::new()
            .with_temporality(Temporality::Delta)
            .build();
        let provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(exporter.clone()).build())
            .with_view(|instrument: &Instrument| {
                (instrument.name() == "http.client.request.duration")
                    .then(|| Stream::builder().with_cardinality_limit(2).build().unwrap())
            })
            .build();
        let global: GlobalMeterProvider = Arc::new(provider.clone());
        let metrics = Arc::new(Metrics::from(&global));
        (provider, exporter, metrics)
    }

    /// The client duration's points since the last collection: the status of each (`None` for
    /// the overflow series) and its count, by status.
    fn collect(
        provider: &SdkMeterProvider,
        exporter: &InMemoryMetricExporter,
    ) -> Vec<(Option<i64>, u64)> {
        provider.force_flush().unwrap();
        let mut points = Vec::new();
        for resource in exporter.get_finished_metrics().unwrap() {
            for scope in resource.scope_metrics() {
                for metric in scope.metrics() {
                    let AggregatedMetrics::F64(MetricData::Histogram(histogram)) = metric.data()
                    else {
                        continue;
                    };
                    for point in histogram.data_points() {
                        let status = point
                            .attributes()
                            .find(|kv| kv.key.as_str() == "http.response.status_code")
                            .map(|kv| match kv.value {
                                Value::I64(code) => code,
                                ref other => panic!("{other:?}"),
                            });
                        points.push((status, point.count()));
                    }
                }
            }
        }
        exporter.reset();
        points.sort();
        points
    }

    fn record(durations: &Durations, metrics: &Arc<Metrics>, status: u16, now: Instant) {
        let series = Series {
            method: "GET",
            status: Some(status),
            error_type: None,
        };
        durations.record(metrics, series, now, 0.01, || {
            vec![KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            )]
        });
    }

    /// A series bound while the histogram had no room records into the overflow series; once
    /// the series bound before it are let go and forgotten, it is bound again in a place of its
    /// own.
    #[test]
    fn a_series_bound_at_the_cardinality_limit_gets_its_own_once_there_is_room() {
        let (provider, exporter, metrics) = provider();
        let durations = Durations::default();
        let start = Instant::now();
        record(&durations, &metrics, 200, start);
        record(&durations, &metrics, 503, start);
        record(&durations, &metrics, 404, start);
        assert_eq!(
            collect(&provider, &exporter),
            [(None, 1), (Some(200), 1), (Some(503), 1)]
        );

        // Within the minute, the 404 stays where it was bound; the others, bound but unused,
        // are kept, and not exported.
        record(&durations, &metrics, 404, start + Duration::from_secs(1));
        assert_eq!(collect(&provider, &exporter), [(None, 1)]);

        // A minute on, the handles are let go and the 404 bound again: the 200 and 503, kept
        // until then, still fill the histogram; this collection forgets them, unused.
        let later = start + REBIND_AFTER + Duration::from_secs(1);
        record(&durations, &metrics, 404, later);
        assert_eq!(collect(&provider, &exporter), [(None, 1)]);

        // Another minute on, the 404 is bound in its own series.
        let later = later + REBIND_AFTER + Duration::from_secs(1);
        record(&durations, &metrics, 404, later);
        record(&durations, &metrics, 404, later);
        assert_eq!(collect(&provider, &exporter), [(Some(404), 2)]);
    }

    /// Past the series a target keeps bound, durations are recorded with their attributes; the
    /// bound ones are still found.
    #[test]
    fn past_the_bound_series_durations_are_recorded_with_their_attributes() {
        let (provider, exporter, metrics) = provider();
        let durations = Durations::default();
        let now = Instant::now();
        for status in 0..BOUND_SERIES as u16 {
            record(&durations, &metrics, 400 + status, now);
        }
        record(&durations, &metrics, 200, now);
        record(&durations, &metrics, 400, now);
        let bound = durations.0.read().unwrap();
        assert_eq!(bound.series.len(), BOUND_SERIES);
        assert!(matches!(
            bound.find(
                &metrics,
                Series {
                    method: "GET",
                    status: Some(200),
                    error_type: None
                },
                now
            ),
            Found::Unbound
        ));
        drop(bound);
        // Two series fit, the rest overflow: 32 + 2 recordings in all.
        let points = collect(&provider, &exporter);
        assert_eq!(
            points.iter().map(|(_, count)| count).sum::<u64>(),
            34,
            "{points:?}"
        );
        assert!(points.contains(&(Some(400), 2)), "{points:?}");
    }
}
