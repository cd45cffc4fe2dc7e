//! `ResponseValue<T>`: a generated client gets the decoded value with the status and headers it
//! came with; a generated server answers one with its status and headers.

use comms::http::StatusCode;
use comms::http::header::{ETAG, HeaderName, HeaderValue, LINK};
use comms::verify::Verifier;
use comms::{Error, ResponseValue, service_client};
use comms_tests::{Reply, TestServer, serve};
use serde::{Deserialize, Serialize};
use serde_json::json;

const SECRET: &str = "responses-secret";

#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct Item {
    pub id: u64,
}

#[service_client(
    base_url = "http://127.0.0.1:9",
    service_id = "billing",
    secret_env = "COMMS_TEST_RESPONSES_SECRET"
)]
pub trait Catalog {
    #[get("/items")]
    async fn page(&self, #[query] page: u32) -> Result<ResponseValue<Vec<Item>>, Error>;

    #[post("/items")]
    async fn add(&self, #[body] item: &Item) -> Result<ResponseValue<Item>, Error>;

    #[head("/items/<id>")]
    async fn probe(&self, id: u64) -> Result<ResponseValue<()>, Error>;
}

fn client(url: &str) -> CatalogClient {
    comms_tests::plain_client(url, SECRET)
}

#[tokio::test]
async fn a_client_gets_the_value_with_its_status_and_headers() {
    let server = TestServer::start(|r, _| match r.method.as_str() {
        "HEAD" => Reply::status(204).header("etag", "\"v7\""),
        "POST" => Reply::json(201, json!({"id": 9})).header("location", "/items/9"),
        _ => Reply::ok_json(json!([{"id": 1}, {"id": 2}]))
            .header("link", "</items?page=2>; rel=\"next\"")
            .header("x-total", "41"),
    })
    .await;
    let catalog = client(&server.url());

    let page = catalog.page(1).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()[LINK], "</items?page=2>; rel=\"next\"");
    assert_eq!(page.headers()["x-total"], "41");
    assert_eq!(page.len(), 2, "derefs to the Vec");
    assert_eq!(page.into_inner(), vec![Item { id: 1 }, Item { id: 2 }]);

    let added = catalog.add(&Item { id: 9 }).await.unwrap();
    assert_eq!(added.status(), StatusCode::CREATED);
    assert_eq!(added.headers()["location"], "/items/9");
    assert_eq!(added.id, 9);

    let probe = catalog.probe(7).await.unwrap();
    assert_eq!(probe.status(), StatusCode::NO_CONTENT);
    assert_eq!(probe.headers()[ETAG], "\"v7\"");

    // Every request was signed as usual.
    let verifier = Verifier::new().service("billing", SECRET);
    for r in server.requests() {
        verifier
            .verify(&r.method, &r.uri, &r.headers, &r.body)
            .await
            .unwrap();
    }
    // An error status stays an error, whatever the return type.
    let failing = TestServer::always(Reply::json(409, json!({"message": "taken"}))).await;
    let err = client(&failing.url())
        .add(&Item { id: 1 })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err}");
}

#[derive(Clone)]
struct Shelf;

impl Catalog for Shelf {
    async fn page(&self, page: u32) -> Result<ResponseValue<Vec<Item>>, Error> {
        Ok(ResponseValue::new(vec![Item {
            id: u64::from(page),
        }])
        .with_header(
            HeaderName::from_static("x-total"),
            HeaderValue::from_static("1"),
        ))
    }

    async fn add(&self, item: &Item) -> Result<ResponseValue<Item>, Error> {
        if item.id == 0 {
            return Err(Error::unprocessable("id 0 is reserved"));
        }
        Ok(ResponseValue::new(item.clone())
            .with_status(StatusCode::CREATED)
            .with_header(LINK, HeaderValue::from_static("</items/1>")))
    }

    async fn probe(&self, id: u64) -> Result<ResponseValue<()>, Error> {
        let etag = HeaderValue::try_from(format!("\"{id}\"")).unwrap();
        Ok(ResponseValue::new(()).with_header(ETAG, etag))
    }
}

#[tokio::test]
async fn a_generated_server_answers_with_the_status_and_headers_it_is_given() {
    let router = CatalogServer::new(Shelf)
        .verifier(Verifier::new().service("billing", SECRET))
        .into_router();
    let catalog = client(&serve(router).await);

    let page = catalog.page(3).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["x-total"], "1");
    assert_eq!(page.headers()["content-type"], "application/json");
    assert_eq!(*page, vec![Item { id: 3 }]);

    let added = catalog.add(&Item { id: 5 }).await.unwrap();
    assert_eq!(added.status(), StatusCode::CREATED);
    assert_eq!(added.headers()[LINK], "</items/1>");
    assert_eq!(added.into_inner(), Item { id: 5 });

    let probe = catalog.probe(8).await.unwrap();
    assert_eq!(probe.status(), StatusCode::OK);
    assert_eq!(probe.headers()[ETAG], "\"8\"");

    let err = catalog.add(&Item { id: 0 }).await.unwrap_err();
    assert!(matches!(err, Error::UnprocessableEntity(_)), "{err}");
}

/// An answer's JSON may begin with a UTF-8 byte order mark (RFC 8259 lets a parser ignore
/// it): a generated client's value, `Response::json`, and an error body's `message` read past
/// it.
#[tokio::test]
async fn a_json_answer_after_a_byte_order_mark_decodes() {
    let ok = TestServer::always(
        Reply::status(200)
            .header("content-type", "application/json")
            .body(&b"\xEF\xBB\xBF[{\"id\": 7}]"[..]),
    )
    .await;
    let page = client(&ok.url()).page(1).await.unwrap();
    assert_eq!(page.into_inner(), [Item { id: 7 }]);
    let response = comms_tests::plain_executor(&ok.url(), "billing", SECRET)
        .execute(comms::Call::get("/items"))
        .await
        .unwrap();
    assert_eq!(response.json::<Vec<Item>>().unwrap(), [Item { id: 7 }]);

    let refused = TestServer::always(
        Reply::status(404)
            .header("content-type", "application/json")
            .body(&b"\xEF\xBB\xBF{\"message\": \"no item 7\"}"[..]),
    )
    .await;
    let err = client(&refused.url()).page(1).await.unwrap_err();
    assert_eq!(
        err.http_error().unwrap().message(),
        Some("no item 7"),
        "{err}"
    );
}

#[service_client(
    base_url = "http://127.0.0.1:9",
    service_id = "billing",
    secret_env = "COMMS_TEST_RESPONSES_SECRET"
)]
pub trait Outbox {
    #[get("/outbox/<code>")]
    async fn next(&self, code: u16) -> Result<ResponseValue<Option<Item>>, Error>;

    #[post("/outbox")]
    async fn send(&self) -> Result<(), Error>;

    #[post("/outbox/maybe")]
    async fn send_maybe(&self) -> Result<Option<()>, Error>;

    #[post("/outbox/counted")]
    async fn send_counted(&self) -> Result<ResponseValue<()>, Error>;

    #[post("/outbox/read")]
    async fn send_read(&self) -> Result<Item, Error>;
}

#[derive(Clone)]
struct Empty;

impl Outbox for Empty {
    async fn next(&self, code: u16) -> Result<ResponseValue<Option<Item>>, Error> {
        let status = StatusCode::from_u16(code).unwrap();
        // Sent with 205 too, where it cannot go.
        let item = (code != 204).then_some(Item { id: 1 });
        Ok(ResponseValue::new(item).with_status(status))
    }

    async fn send(&self) -> Result<(), Error> {
        Ok(())
    }

    async fn send_maybe(&self) -> Result<Option<()>, Error> {
        Ok(Some(()))
    }

    async fn send_counted(&self) -> Result<ResponseValue<()>, Error> {
        Ok(ResponseValue::new(()))
    }

    async fn send_read(&self) -> Result<Item, Error> {
        Ok(Item { id: 2 })
    }
}

/// A status that carries no body (204, 205) is sent by a generated server without one; its
/// client decodes the value as `None`, where it failed to decode an empty body as JSON after
/// the method had run. A value other than `None` answered with such a status is not sent, and
/// the server says so.
#[tokio::test]
async fn a_value_answered_with_a_status_without_a_body_reaches_its_client_as_none() {
    let (logs, _guard) = comms_tests::record_logs(tracing::Level::WARN);
    let router = OutboxServer::new(Empty)
        .verifier(Verifier::new().service("billing", SECRET))
        .into_router();
    let outbox: OutboxClient = comms_tests::plain_client(&serve(router).await, SECRET);
    assert_eq!(*outbox.next(200).await.unwrap(), Some(Item { id: 1 }));
    let answer = outbox.next(204).await;
    assert!(
        matches!(&answer, Ok(value) if value.status() == StatusCode::NO_CONTENT && value.is_none()),
        "{answer:?}"
    );
    assert!(!logs.text().contains("carries no body"), "{}", logs.text());
    let answer = outbox.next(205).await;
    assert!(
        matches!(&answer, Ok(value) if value.status() == StatusCode::RESET_CONTENT && value.is_none()),
        "{answer:?}"
    );
    logs.line(
        "the dropped value's warning",
        &["WARN", "carries no body", "status=205"],
    );
}

/// A method returning `()` ignores its success's body, so one over `max_response_bytes` (a
/// service echoing what it stored, say) is the success it is, not a decode error after the
/// work was done; a method reading its body still refuses it, and an error's status stays
/// that error.
#[tokio::test]
async fn a_method_ignoring_its_body_succeeds_whatever_the_bodys_length() {
    let outbox = |url: &str| {
        comms::ClientBuilder::<OutboxClient>::new()
            .base_url(url)
            .secret(SECRET)
            .retry(comms::RetryConfig::none())
            .breaker(comms::BreakerConfig::disabled())
            .max_response_bytes(10)
            .build()
            .unwrap()
    };
    // Declared by its length, and sent in chunks without one.
    let declared = TestServer::always(Reply::json(200, json!({"id": 1, "pad": "x"}))).await;
    let chunked = serve(axum::Router::new().fallback(|| async {
        let pieces = vec![bytes::Bytes::from_static(b"{\"id\": 1,"); 400];
        axum::body::Body::from_stream(comms_tests::paced(pieces, std::time::Duration::ZERO))
    }))
    .await;
    for url in [declared.url(), chunked] {
        let client = outbox(&url);
        client.send().await.unwrap();
        assert_eq!(client.send_maybe().await.unwrap(), Some(()));
        assert_eq!(
            client.send_counted().await.unwrap().status(),
            StatusCode::OK
        );
        let read = client.send_read().await.unwrap_err();
        assert!(
            matches!(&read, Error::Decode { source, .. } if source.to_string().contains("10 byte limit")),
            "{read:?}"
        );
    }
    // Or whose body breaks off after the head: the success it is to a method ignoring it.
    let truncated = comms_tests::FaultServer::start(|_, _| {
        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\nabc";
        comms_tests::Fault::Raw(bytes::Bytes::from_static(head))
    })
    .await;
    let client = outbox(&truncated.url());
    client.send().await.unwrap();
    assert_eq!(
        client.send_counted().await.unwrap().status(),
        StatusCode::OK
    );
    let read = client.send_read().await.unwrap_err();
    assert!(matches!(read, Error::Transport { .. }), "{read:?}");
    let failing = TestServer::always(Reply::status(409).body(vec![b'x'; 4096])).await;
    let err = outbox(&failing.url()).send().await.unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
}
