//! Tracing output of calls: a span per call, events for retries and breaker transitions, and
//! never a secret or a signature. Alone in its own test binary, so that the global subscriber
//! it installs sees every event.

use std::sync::Arc;

use comms::{BreakerConfig, Call, Executor};
use comms_tests::{Reply, TestServer, fast_retry};

const SECRET: &str = "tracing-test-secret";

/// Captures formatted tracing output in memory.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

#[tokio::test]
async fn calls_are_traced_without_secrets() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let server = TestServer::always(Reply::status(503)).await;
    let e = Executor::builder()
        .name("inventory")
        .base_url(server.url())
        .service_id("tests")
        .secret(SECRET)
        .retry(fast_retry().max_retries(2))
        .breaker(BreakerConfig::default().failure_threshold(3))
        .build()
        .unwrap();
    assert!(
        e.execute(Call::get("/items").segment(42).route("/items/<id>"))
            .await
            .is_err()
    );
    assert!(
        e.execute(Call::get("/items/1"))
            .await
            .unwrap_err()
            .is_circuit_open()
    );

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("comms.call"), "{text}");
    assert!(
        text.contains("service=inventory") && text.contains("route=/items/<id>"),
        "{text}"
    );
    assert_eq!(text.matches("retrying").count(), 2, "{text}");
    assert!(text.contains("circuit breaker opened"), "{text}");
    assert!(
        text.contains("attempts=3 status=503}: comms::executor: call failed"),
        "{text}"
    );
    assert!(!text.contains(SECRET), "the secret leaked into the logs");
    for r in server.requests() {
        let signature = r.header("x-signature").unwrap();
        assert!(
            !text.contains(&signature[3..]),
            "a signature leaked into the logs"
        );
    }
}
