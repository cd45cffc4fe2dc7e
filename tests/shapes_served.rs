//! Request shapes through a generated server and a generated client of the same trait, over
//! loopback, signatures verified: a flattened query struct beside plain query arguments. A
//! value that does not parse back is a 400 naming the argument, and the method never runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use comms::verify::Verifier;
use comms::{BreakerConfig, Call, Error, RetryConfig, service_client};
use comms_tests::serve;
use serde::{Deserialize, Serialize};

const SECRET: &str = "shapes-served-secret";

/// Refuses unknown keys: the plain query arguments' keys must not reach it.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    #[serde(rename = "q")]
    pub text: String,
    pub min: Option<u32>,
    #[serde(default)]
    pub tag: Vec<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct Paging {
    pub page: u32,
    pub size: Option<u32>,
}

#[service_client(
    base_url = "http://127.0.0.1:9",
    service_id = "billing",
    secret_env = "COMMS_TEST_SHAPES_SERVED_SECRET"
)]
pub trait Catalog {
    #[get("/search")]
    async fn search(
        &self,
        #[query] page: u32,
        #[query(flatten)] filter: &Filter,
        #[query(rename = "sort-by")] sort: Option<String>,
    ) -> Result<(u32, Filter, Option<String>), Error>;

    #[get("/pages")]
    async fn pages(
        &self,
        #[query(flatten)] paging: Paging,
        #[query(flatten)] more: &Paging2,
    ) -> Result<(Paging, Paging2), Error>;
}

#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct Paging2 {
    pub cursor: Option<String>,
}

#[derive(Clone, Default)]
struct CatalogImpl {
    calls: Arc<AtomicUsize>,
}

impl Catalog for CatalogImpl {
    async fn search(
        &self,
        page: u32,
        filter: &Filter,
        sort: Option<String>,
    ) -> Result<(u32, Filter, Option<String>), Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok((page, filter.clone(), sort))
    }

    async fn pages(&self, paging: Paging, more: &Paging2) -> Result<(Paging, Paging2), Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok((paging, more.clone()))
    }
}

async fn pair() -> (CatalogImpl, CatalogClient, String) {
    let service = CatalogImpl::default();
    let router = CatalogServer::new(service.clone())
        .verifier(Verifier::new().service("billing", SECRET))
        .into_router();
    let url = serve(router).await;
    let client = CatalogClient::builder()
        .base_url(&url)
        .secret(SECRET)
        .retry(RetryConfig::none())
        .breaker(BreakerConfig::disabled())
        .build()
        .unwrap();
    (service, client, url)
}

fn filter(text: &str, min: Option<u32>, tags: &[&str]) -> Filter {
    Filter {
        text: text.into(),
        min,
        tag: tags.iter().map(|t| t.to_string()).collect(),
    }
}

#[tokio::test]
async fn a_flattened_query_struct_round_trips_beside_plain_query_arguments() {
    let (service, client, _) = pair().await;
    for (page, f, sort) in [
        (
            2,
            filter("a b+c&d=é %2B/?", Some(3), &["x", "y z", ""]),
            Some("name&up".to_owned()),
        ),
        (0, filter("", None, &[]), None),
    ] {
        let back = client.search(page, &f, sort.clone()).await.unwrap();
        assert_eq!(back, (page, f, sort));
    }
    let paging = Paging {
        page: 4,
        size: None,
    };
    let more = Paging2 {
        cursor: Some("c+1".into()),
    };
    assert_eq!(
        client.pages(paging.clone(), &more).await.unwrap(),
        (paging, more),
        "two flattened structs share the query"
    );
    assert_eq!(service.calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_query_that_does_not_parse_into_the_struct_is_a_400_naming_it() {
    let (service, _, url) = pair().await;
    let exec = comms_tests::plain_executor(&url, "billing", SECRET);
    let cases = [
        (
            Call::get("/search").query("page", 1).query("min", "x"),
            "the query of `filter` does not parse",
        ),
        (
            Call::get("/search")
                .query("page", 1)
                .query("q", "a")
                .query("q", "b"),
            "the query of `filter` does not parse",
        ),
        (
            Call::get("/search")
                .query("page", 1)
                .query("q", "a")
                .query("color", "red"),
            "the query of `filter` does not parse",
        ),
        (
            Call::get("/search").query("q", "a"),
            "query parameter `page` is missing",
        ),
        (
            Call::get("/pages").query("size", 1),
            "the query of `paging`",
        ),
    ];
    for (call, expected) in cases {
        let query = call.query_string().to_owned();
        match exec.execute(call).await.unwrap_err() {
            Error::BadRequest(e) => assert!(
                e.message().is_some_and(|m| m.contains(expected)),
                "{query}: {expected}: {:?}",
                e.message()
            ),
            other => panic!("{query}: {other}"),
        }
    }
    assert_eq!(service.calls.load(Ordering::SeqCst), 0, "no method ran");
}
