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
