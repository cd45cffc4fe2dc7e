//! Request shapes through a generated server and a generated client of the same trait, over
//! loopback, signatures verified: a flattened query struct beside plain query arguments, and a
//! form body. A value that does not parse back is a 400 naming the argument (a body of another
//! type, a 415), and the method never runs.

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

    #[post("/login/<realm>")]
    async fn login(
        &self,
        realm: &str,
        #[query] next: Option<String>,
        #[form] login: &Login,
    ) -> Result<(String, Option<String>, Login), Error>;

    #[delete("/sessions")]
    async fn logout(&self, #[form] login: Login) -> Result<(), Error>;
}

#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct Login {
    pub user: String,
    pub remember: bool,
    #[serde(default)]
    pub scope: Vec<String>,
    pub otp: Option<u32>,
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

    async fn login(
        &self,
        realm: &str,
        next: Option<String>,
        login: &Login,
    ) -> Result<(String, Option<String>, Login), Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok((realm.to_owned(), next, login.clone()))
    }

    async fn logout(&self, login: Login) -> Result<(), Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if login.user.is_empty() {
            return Err(Error::unprocessable("who?"));
        }
        Ok(())
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

fn login(user: &str, otp: Option<u32>, scope: &[&str]) -> Login {
    Login {
        user: user.into(),
        remember: otp.is_some(),
        scope: scope.iter().map(|s| s.to_string()).collect(),
        otp,
    }
}

#[tokio::test]
async fn a_form_body_round_trips() {
    let (service, client, _) = pair().await;
    for (realm, next, form) in [
        (
            "staff & co",
            Some("/home?x=1".to_owned()),
            login("ada + lovelace=é%", Some(7), &["read", "write all", ""]),
        ),
        ("r", None, login("", None, &[])),
    ] {
        let back = client.login(realm, next.clone(), &form).await.unwrap();
        assert_eq!(back, (realm.to_owned(), next, form));
    }
    client.logout(login("ada", None, &[])).await.unwrap();
    assert!(matches!(
        client.logout(login("", None, &[])).await,
        Err(Error::UnprocessableEntity(_))
    ));
    assert_eq!(service.calls.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_form_that_does_not_parse_is_a_400_and_another_body_type_a_415() {
    let (service, _, url) = pair().await;
    let exec = comms_tests::plain_executor(&url, "billing", SECRET);
    const FORM: &str = "application/x-www-form-urlencoded";
    let cases = [
        (
            Call::post("/login/r").body(&b"user=a&remember=maybe"[..], FORM),
            400,
            "the form `login` does not parse",
        ),
        (
            Call::post("/login/r").body(&b"remember=true"[..], FORM),
            400,
            "the form `login` does not parse",
        ),
        (
            Call::post("/login/r").body(&b"user=a&remember=true&otp=%FF"[..], FORM),
            400,
            "the form `login` does not parse",
        ),
        (
            Call::post("/login/r").json(&login("a", None, &[])),
            415,
            "the body of `login` must be `application/x-www-form-urlencoded`",
        ),
        (
            Call::delete("/sessions"),
            415,
            "the body of `login` must be",
        ),
    ];
    for (call, status, expected) in cases {
        let err = exec.execute(call).await.unwrap_err();
        let e = err.http_error().unwrap_or_else(|| panic!("{err}"));
        assert_eq!(e.status(), status, "{expected}: {err}");
        assert!(
            e.message().is_some_and(|m| m.contains(expected)),
            "{expected}: {:?}",
            e.message()
        );
    }
    // A form with its parameters named in another case is a form.
    let ok = exec
        .execute(Call::post("/login/r").body(
            &b"user=a&remember=true"[..],
            "Application/X-WWW-Form-Urlencoded; charset=UTF-8",
        ))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(service.calls.load(Ordering::SeqCst), 1);
}
