//! The call future's size, and what an executor shows of itself.

use super::*;

#[test]
fn a_call_future_stays_small() {
    // The future is moved into its caller's state when awaited, and every call in flight
    // keeps one, so its size is a cost of every call (`call_future.rs` says how it is kept
    // small).
    let e = Executor::builder()
        .base_url("http://h")
        .service_id("svc")
        .secret("s")
        .build()
        .unwrap();
    let call = e.execute(Call::get("/x"));
    let size = std::mem::size_of_val(&call);
    assert!(size <= 900, "the call's future is {size} bytes");
    let streamed = e.execute_streaming(Call::get("/x"));
    let streamed_size = std::mem::size_of_val(&streamed);
    assert_eq!(
        streamed_size, size,
        "a streamed call's future is {streamed_size} bytes"
    );
}

#[test]
fn debug_hides_the_secret() {
    let builder = Executor::builder()
        .base_url("http://h")
        .service_id("svc")
        .secret("hunter2-secret");
    assert!(!format!("{builder:?}").contains("hunter2"));
    let exec = builder.build().unwrap();
    let shown = format!("{exec:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("svc"));
}

#[test]
fn the_base_url_is_shown_as_the_url_parser_writes_it() {
    for (given, shown) in [
        ("http://h", "http://h"),
        ("http://h:80/", "http://h"),
        ("https://h:443/api/v1/", "https://h/api/v1"),
        (
            "http://Users.Internal:8080/x",
            "http://users.internal:8080/x",
        ),
        ("http://[::1]:9000", "http://[::1]:9000"),
    ] {
        let exec = Executor::builder()
            .base_url(given)
            .service_id("svc")
            .secret("s")
            .build()
            .unwrap();
        assert_eq!(exec.base_url(), shown, "{given}");
        assert!(format!("{exec:?}").contains(shown), "{given}");
    }
}

/// A listener on loopback that takes connections and never answers: its address.
fn silent_listener() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.extend(stream.ok());
        }
    });
    addr
}

/// A request body that fails as a connection the operating system gave up on does.
struct TimedOutBody;

impl http_body::Body for TimedOutBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        std::task::Poll::Ready(Some(Err(std::io::ErrorKind::TimedOut.into())))
    }
}

/// A timer's timeout (a client's own, given with `http_client`) is an attempt's timeout; an
/// I/O error of kind `TimedOut`, which reqwest also calls a timeout, is a broken connection:
/// reported as a timeout, it named one that never ran.
#[tokio::test]
async fn only_a_timers_timeout_is_an_attempt_timeout() {
    let url = format!("http://{}/", silent_listener());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let timer = client.get(&url).send().await.unwrap_err();
    assert!(timer.is_timeout(), "{timer:?}");
    assert!(matches!(classify(timer), Attempt::Timeout));

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let broken = client
        .post(&url)
        .body(reqwest::Body::wrap(TimedOutBody))
        .send()
        .await
        .unwrap_err();
    assert!(broken.is_timeout(), "{broken:?}");
    assert!(matches!(classify(broken), Attempt::Transport(_)));
}
