//! Loopback servers for the integration tests: they record every request they receive and
//! answer from a script, and can be stopped (every connection dropped) and restarted on the
//! same port to simulate an outage.
//!
//! - [`TestServer`] (`test_server.rs`): a recording hyper server answering with [`Reply`]s;
//! - [`FaultServer`] (`fault.rs`): an HTTP/1.1 server on raw TCP that can also fail in every way a
//!   real one does ([`Fault`]);
//! - [`RedisServer`] (`redis.rs`): a `redis-server` a test owns, to kill and restart;
//! - [`CapturedLogs`] and [`record_logs`] (`logs.rs`): `tracing` output kept in memory;
//! - [`losing_first_answer`] (`lossy.rs`): a proxy that loses the first request's answer;
//! - [`fed`] and [`paced`] (`streams.rs`): bodies a server sends piece by piece, as a test
//!   feeds them or on a clock;
//! - helpers shared by the suites: [`spawn_calls`], the error constructors' table, vectors,
//!   a nonce store that is down ([`DownNonceStore`]).

mod fault;
mod logs;
mod lossy;
mod redis;
mod streams;
mod test_server;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;

pub use fault::{Fault, FaultServer};
pub use logs::{CapturedLogs, record_logs};
pub use lossy::losing_first_answer;
pub use redis::RedisServer;
pub use streams::{Feeder, fed, paced, serve_stream};
pub use test_server::{Recorded, Reply, TestServer};

/// A nonce store that cannot answer (Redis down, say): every check is an error.
pub struct DownNonceStore;

impl comms::verify::NonceStore for DownNonceStore {
    fn check_and_insert<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: std::time::SystemTime,
        _: std::time::SystemTime,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<bool, comms::BoxError>> + Send + 'a>,
    > {
        Box::pin(async { Err("the nonce store is down".into()) })
    }
}

/// A listener on a loopback port no other server of this process has had: what a test reads
/// back by port (the process's metrics, say) is then its own server's, not an earlier test's
/// that the system gave the same port.
pub async fn fresh_listener() -> TcpListener {
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
        if !handed_out.contains(&port) {
            handed_out.push(port);
            return listener;
        }
    }
}

/// An address on which nothing listens (bound, then released).
pub async fn dead_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// Retries with millisecond backoff and no budget, so tests count attempts quickly.
pub fn fast_retry() -> comms::RetryConfig {
    comms::RetryConfig::default()
        .base_delay(Duration::from_millis(1))
        .max_delay(Duration::from_millis(5))
        .no_budget()
}

/// Installs a tracing subscriber once, honouring `RUST_LOG`, for debugging test runs.
pub fn trace() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// The test vectors, read from this crate's `vectors/` folder.
pub fn vectors(name: &str) -> serde_json::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("vectors")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Writes `request` on a fresh connection to the server at `url` and reads what comes back
/// until the server closes it, for at most `wait`: what arrived, as text.
pub async fn raw_exchange(url: &str, request: &[u8], wait: Duration) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(url.trim_start_matches("http://"))
        .await
        .unwrap();
    stream.write_all(request).await.unwrap();
    let mut read = Vec::new();
    let _ = tokio::time::timeout(wait, stream.read_to_end(&mut read)).await;
    String::from_utf8_lossy(&read).into_owned()
}

/// Serves `app` on a free loopback port for the rest of the test; its base URL.
pub async fn serve(app: axum::Router) -> String {
    let listener = fresh_listener().await;
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// An executor signing as `service_id` with `secret`, retrying and breaking as given.
pub fn executor_with(
    url: &str,
    service_id: &str,
    secret: &str,
    retry: comms::RetryConfig,
    breaker: comms::BreakerConfig,
) -> comms::Executor {
    comms::Executor::builder()
        .base_url(url)
        .service_id(service_id)
        .secret(secret)
        .retry(retry)
        .breaker(breaker)
        .build()
        .unwrap()
}

/// An executor signing as `service_id` with `secret`, with no retries and no breaker: what a
/// test that counts requests calls with.
pub fn plain_executor(url: &str, service_id: &str, secret: &str) -> comms::Executor {
    plain_builder(url, service_id, secret).build().unwrap()
}

/// The builder of a [`plain_executor`], for a test that sets more (its client, a deadline).
pub fn plain_builder(url: &str, service_id: &str, secret: &str) -> comms::ExecutorBuilder {
    comms::Executor::builder()
        .base_url(url)
        .service_id(service_id)
        .secret(secret)
        .retry(comms::RetryConfig::none())
        .breaker(comms::BreakerConfig::disabled())
}

/// A generated client (`C`) of the service at `url`, signing as its attribute says with
/// `secret`, with no retries and no breaker: the client of a round trip through a generated
/// server.
pub fn plain_client<C: comms::__private::FromExecutor>(url: &str, secret: &str) -> C {
    comms::ClientBuilder::<C>::new()
        .base_url(url)
        .secret(secret)
        .retry(comms::RetryConfig::none())
        .breaker(comms::BreakerConfig::disabled())
        .build()
        .unwrap()
}

/// The W3C `traceparent` a sampled span's context is sent as.
pub fn traceparent(cx: &opentelemetry::trace::SpanContext) -> String {
    format!("00-{}-{}-01", cx.trace_id(), cx.span_id())
}

/// The results of `n` copies of a call made at once through `exec`.
#[derive(Debug)]
pub struct Calls(pub Vec<Result<comms::Response, comms::Error>>);

impl Calls {
    /// How many succeeded.
    pub fn ok(&self) -> usize {
        self.0.iter().filter(|r| r.is_ok()).count()
    }

    /// How many the open breaker refused at once.
    pub fn failed_fast(&self) -> usize {
        self.0
            .iter()
            .filter(|r| r.as_ref().is_err_and(comms::Error::is_circuit_open))
            .count()
    }

    /// How many reached the network (were not refused by the breaker).
    pub fn reached(&self) -> usize {
        self.0.len() - self.failed_fast()
    }
}

/// Makes `n` calls of `call()` at once through `exec`, each in a task of its own, and waits
/// for all of them.
pub async fn spawn_calls(
    exec: &comms::Executor,
    n: usize,
    call: impl Fn() -> comms::Call,
) -> Calls {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (exec, call) = (exec.clone(), call());
            tokio::spawn(async move { exec.execute(call).await })
        })
        .collect();
    let mut results = Vec::with_capacity(n);
    for task in tasks {
        results.push(task.await.unwrap());
    }
    Calls(results)
}

/// Whether an error is of one variant.
pub type IsVariant = fn(&comms::Error) -> bool;

/// Every way a server builds an error, by name: the error, and the variant a client must
/// receive it as (the `message` too).
pub fn built_errors() -> Vec<(&'static str, comms::Error, IsVariant)> {
    use comms::Error;
    use http::StatusCode;
    vec![
        ("bad_request", Error::bad_request("bad id `x`"), |e| {
            matches!(e, Error::BadRequest(_))
        }),
        ("unauthorized", Error::unauthorized("who are you"), |e| {
            matches!(e, Error::Unauthorized(_))
        }),
        ("forbidden", Error::forbidden("not yours"), |e| {
            matches!(e, Error::Forbidden(_))
        }),
        ("not_found", Error::not_found("no user 7"), |e| {
            matches!(e, Error::NotFound(_))
        }),
        ("conflict", Error::conflict("user 7 exists"), |e| {
            matches!(e, Error::Conflict(_))
        }),
        (
            "unprocessable",
            Error::unprocessable("name is empty"),
            |e| matches!(e, Error::UnprocessableEntity(_)),
        ),
        (
            "too_many_requests",
            Error::too_many_requests("slow down"),
            |e| matches!(e, Error::TooManyRequests(_)),
        ),
        ("internal", Error::internal("the database is gone"), |e| {
            matches!(e, Error::Server(_))
        }),
        (
            "teapot",
            Error::from_status(StatusCode::IM_A_TEAPOT, "short and stout"),
            |e| matches!(e, Error::Status(_)),
        ),
        (
            "unavailable",
            Error::from_status(StatusCode::SERVICE_UNAVAILABLE, "draining"),
            |e| matches!(e, Error::Server(_)),
        ),
        (
            "out_of_stock",
            Error::conflict("not enough in stock")
                .with_details(serde_json::json!({ "sku": "a-1", "available": 3 })),
            |e| matches!(e, Error::Conflict(_)),
        ),
    ]
}

/// The error [`built_errors`] names `kind`.
pub fn built_error(kind: &str) -> comms::Error {
    built_errors()
        .into_iter()
        .find(|(name, ..)| *name == kind)
        .map(|(_, e, _)| e)
        .unwrap_or_else(|| panic!("no error named {kind}"))
}
