//! A generated server answering with what a comms client received: a gateway forwarding an
//! upstream's `ResponseValue` or `Response`. The upstream's framing (`Content-Length` but for
//! a HEAD, `Transfer-Encoding`) and hop-by-hop headers described its own connection, not the
//! answer the gateway sends, so they are left out of it; the rest of its headers are
//! forwarded. A method's own answer keeps its hop-by-hop headers, but not a framing that does
//! not fit its body.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use comms::ResponseValue;
use comms::http::{HeaderValue, header};

use super::*;

/// What the gateway serves, and (but for `framed`) what its upstream answers: the gateway
/// calls the upstream through a client of the same trait.
#[service_client(
    base_url = "http://127.0.0.1:9",
    service_id = "billing",
    secret_env = "COMMS_TEST_FORWARDING_SECRET"
)]
pub trait Gateway {
    #[get("/users")]
    async fn users(&self) -> Result<ResponseValue<Vec<u64>>, Error>;

    #[get("/raw")]
    async fn raw(&self) -> Result<comms::Response, Error>;

    #[head("/file")]
    async fn stat(&self) -> Result<comms::Response, Error>;

    #[get("/framed")]
    async fn framed(&self) -> Result<ResponseValue<String>, Error>;
}

#[derive(Clone)]
struct GatewayImpl {
    upstream: GatewayClient,
}

impl Gateway for GatewayImpl {
    async fn users(&self) -> Result<ResponseValue<Vec<u64>>, Error> {
        self.upstream.users().await
    }

    async fn raw(&self) -> Result<comms::Response, Error> {
        self.upstream.raw().await
    }

    async fn stat(&self) -> Result<comms::Response, Error> {
        self.upstream.stat().await
    }

    async fn framed(&self) -> Result<ResponseValue<String>, Error> {
        Ok(ResponseValue::new("hello".to_owned())
            .with_header(header::CONTENT_LENGTH, HeaderValue::from_static("100"))
            .with_header(
                header::TRANSFER_ENCODING,
                HeaderValue::from_static("chunked"),
            )
            .with_header(header::CONNECTION, HeaderValue::from_static("close"))
            .with_header(
                header::HeaderName::from_static("x-kept"),
                HeaderValue::from_static("2"),
            ))
    }
}

/// A body in two chunks, which hyper sends with `Transfer-Encoding: chunked`.
struct TwoChunks(Vec<&'static str>);

impl futures_core::Stream for TwoChunks {
    type Item = Result<bytes::Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = (!self.0.is_empty()).then(|| self.0.remove(0));
        Poll::Ready(next.map(|chunk| Ok(bytes::Bytes::from_static(chunk.as_bytes()))))
    }
}

/// A gateway's client, the gateway (a generated server) and its upstream, a plain axum service
/// answering pretty-printed JSON (so the gateway's own serialization is shorter) and a chunked
/// body.
async fn gateway() -> GatewayClient {
    comms_tests::plain_client(&gateway_url().await, SECRET)
}

/// Where [`gateway`] serves.
async fn gateway_url() -> String {
    use axum::routing::get;
    let upstream = axum::Router::new()
        .route(
            "/users",
            get(|| async {
                (
                    [
                        ("content-type", "application/json"),
                        ("link", "</users?page=2>; rel=\"next\""),
                        ("connection", "x-hop"),
                        ("x-hop", "1"),
                    ],
                    "[\n  1,\n  2\n]",
                )
            }),
        )
        .route("/file", get(|| async { "hello world" }))
        .route(
            "/raw",
            get(|| async {
                (
                    [("x-upstream", "yes")],
                    axum::body::Body::from_stream(TwoChunks(vec!["hello ", "world"])),
                )
            }),
        );
    let upstream: GatewayClient = comms_tests::plain_client(&serve(upstream).await, "unused");
    let router = GatewayServer::new(GatewayImpl { upstream })
        .verifier(Verifier::new().service("billing", SECRET))
        .into_router();
    serve(router).await
}

#[tokio::test]
async fn a_received_response_value_is_answered_with_its_headers_but_its_own_framing() {
    let gateway = gateway().await;
    let got = tokio::time::timeout(Duration::from_secs(5), gateway.users())
        .await
        .expect("answered in time")
        .expect("the forwarded value");
    assert_eq!(*got, [1, 2]);
    assert_eq!(got.headers()["link"], "</users?page=2>; rel=\"next\"");
    // The gateway's body, `[1,2]`, framed as itself, not as the upstream's 14 bytes.
    assert_eq!(got.headers()["content-length"], "5");
    // What the upstream's `Connection` named was its connection's.
    assert!(got.headers().get("x-hop").is_none(), "{:?}", got.headers());
}

/// A HEAD of a route answering a received `ResponseValue` says the length of the body a GET
/// gets, the gateway's own serialization, not the upstream's.
#[tokio::test]
async fn a_head_of_a_received_response_value_says_the_length_of_its_own_body() {
    let url = gateway_url().await;
    let exec = comms_tests::plain_executor(&url, "billing", SECRET);
    let get = exec.execute(Call::get("/users")).await.unwrap();
    let head = exec.execute(Call::head("/users")).await.unwrap();
    assert_eq!(get.bytes().as_ref(), b"[1,2]");
    assert!(head.bytes().is_empty());
    assert_eq!(
        head.headers()["content-length"],
        "5",
        "{:?}",
        head.headers()
    );
}

#[tokio::test]
async fn a_received_chunked_response_is_answered_whole() {
    let gateway = gateway().await;
    let got = tokio::time::timeout(Duration::from_secs(5), gateway.raw())
        .await
        .expect("answered in time")
        .expect("the forwarded response");
    assert_eq!(got.bytes().as_ref(), b"hello world");
    assert_eq!(got.headers()["x-upstream"], "yes");
    assert_eq!(got.headers()["content-length"], "11");
    assert!(got.headers().get("transfer-encoding").is_none());
}

#[tokio::test]
async fn a_received_answer_to_a_head_keeps_its_content_length() {
    let gateway = gateway().await;
    let got = tokio::time::timeout(Duration::from_secs(5), gateway.stat())
        .await
        .expect("answered in time")
        .expect("the forwarded head");
    assert!(got.bytes().is_empty());
    // The size of the resource, `hello world`.
    assert_eq!(got.headers()["content-length"], "11");
}

#[tokio::test]
async fn a_method_s_framing_is_the_body_s_and_its_connection_header_is_kept() {
    let gateway = gateway().await;
    let got = tokio::time::timeout(Duration::from_secs(5), gateway.framed())
        .await
        .expect("answered in time")
        .expect("the answer");
    assert_eq!(*got, "hello");
    assert_eq!(got.headers()["content-length"], "7");
    assert!(got.headers().get("transfer-encoding").is_none());
    assert_eq!(got.headers()["x-kept"], "2");
    // The method's own choice, to close the connection after this answer.
    assert_eq!(got.headers()["connection"], "close");
}
