//! Request shapes through a generated server and a generated client of the same trait, over
//! loopback, signatures verified: a flattened query struct beside plain query arguments, a
//! form body and a multipart body. A value that does not parse back is a 400 naming the
//! argument (a body of another type, a 415), and the method never runs.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use comms::multipart::{Multipart, Part};
use comms::verify::Verifier;
use comms::{Call, Error, service_client};
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

    #[post("/albums/<album>/photos", idempotent)]
    async fn upload(&self, album: u32, #[multipart] form: Multipart) -> Result<Vec<Seen>, Error>;

    #[put("/albums/<album>/cover")]
    async fn cover(&self, album: u32, #[multipart] form: &Multipart) -> Result<Vec<Seen>, Error>;
}

/// A part as the served method saw it: name, file name, content type, bytes.
pub type Seen = (String, Option<String>, Option<String>, Vec<u8>);

fn seen(form: &Multipart) -> Vec<Seen> {
    form.parts()
        .iter()
        .map(|p| {
            (
                p.name().to_owned(),
                p.file_name().map(str::to_owned),
                p.content_type().map(str::to_owned),
                p.data().to_vec(),
            )
        })
        .collect()
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

    async fn upload(&self, album: u32, form: Multipart) -> Result<Vec<Seen>, Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut parts = seen(&form);
        parts.push(("album".into(), None, None, album.to_string().into_bytes()));
        Ok(parts)
    }

    async fn cover(&self, _album: u32, form: &Multipart) -> Result<Vec<Seen>, Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if form.get("cover").is_none() {
            return Err(Error::unprocessable("no `cover` part"));
        }
        Ok(seen(form))
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
    let client: CatalogClient = comms_tests::plain_client(&url, SECRET);
    (service, client, url)
}

/// A catalog served without a verifier, for requests a comms client would not send: its URL.
async fn unverified_catalog() -> String {
    serve(
        CatalogServer::new(CatalogImpl::default())
            .unverified()
            .into_router(),
    )
    .await
}

/// An unsigned `PUT /albums/1/cover` of a multipart `body` (boundary `B`) to an
/// [unverified catalog](unverified_catalog) at `url`: the answer's status and text.
async fn put_cover(url: &str, body: impl Into<reqwest::Body>) -> (reqwest::StatusCode, String) {
    let response = reqwest::Client::new()
        .put(format!("{url}/albums/1/cover"))
        .header("content-type", "multipart/form-data; boundary=B")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.text().await.unwrap())
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

/// A parser's error quotes what it could not read; the 400 carries at most the start of it,
/// whatever the request sent.
#[tokio::test]
async fn a_400_does_not_send_the_request_back() {
    let url = unverified_catalog().await;
    let http = reqwest::Client::new();
    let controls = "\u{1}".repeat(1_000_000);
    let long = "x".repeat(1_000_000);
    let cases = [
        (
            "/albums/1/photos",
            "multipart/form-data; boundary=B",
            format!("--B\r\n{controls}\r\n\r\nx\r\n--B--"),
        ),
        (
            "/login/r",
            "application/x-www-form-urlencoded",
            format!("user=a&remember={long}"),
        ),
    ];
    for (path, content_type, body) in cases {
        let response = http
            .post(format!("{url}{path}"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{path}");
        let answer = response.text().await.unwrap();
        assert!(answer.len() < 2048, "{path}: a {}-byte 400", answer.len());
        assert!(
            answer.contains("does not parse") || answer.contains("header line"),
            "{answer}"
        );
    }
}

/// What HTML forms, Python's `requests` and `URLSearchParams` send for a space in a query is
/// a `+`; a comms client sends `%20`, and a plus as `%2B`.
#[tokio::test]
async fn a_plus_in_a_query_from_another_client_is_a_space() {
    let url = unverified_catalog().await;
    let body = reqwest::get(format!(
        "{url}/search?page=2&q=ada+lovelace&tag=a+b&tag=c%2Bd&sort-by=name+%2B+up"
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    let back: (u32, Filter, Option<String>) = serde_json::from_str(&body).unwrap();
    assert_eq!(
        back,
        (
            2,
            filter("ada lovelace", None, &["a b", "c+d"]),
            Some("name + up".to_owned())
        ),
        "{body}"
    );
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
    // A form whose text is not UTF-8 once decoded is refused, as a query is, not handed to
    // the method with U+FFFD in place of what was sent (`%FF` and `%FE` alike).
    for body in [&b"user=%FF&remember=true"[..], b"user=\xfe&remember=true"] {
        let err = exec
            .execute(Call::post("/login/r").body(body, FORM))
            .await
            .unwrap_err();
        let e = err.http_error().unwrap_or_else(|| panic!("{err}"));
        assert_eq!(e.status(), 400, "{err}");
        assert!(
            e.message().is_some_and(|m| m.contains("is not UTF-8")),
            "{:?}",
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

/// A part's header lines (its name, file name and content type, with `"` written `%22`) are
/// read up to 16 KiB by a comms server: a client refuses a longer part unsent, and one at the
/// bound arrives.
#[tokio::test]
async fn a_part_whose_headers_a_server_would_refuse_is_refused_unsent() {
    let (service, client, _) = pair().await;
    // `Content-Disposition: form-data; name="photo"; filename=".."` and `Content-Type: ..`.
    let fixed = r#"Content-Disposition: form-data; name="photo""#.len()
        + r#"; filename="""#.len()
        + "\r\nContent-Type: image/png".len();
    let named = |len: usize| {
        let file_name = format!("\"{}", "n".repeat(len - fixed - 3));
        Multipart::new().file("photo", file_name, "image/png", vec![1, 2])
    };
    let at_bound = named(16 * 1024);
    assert_eq!(
        client.upload(1, at_bound.clone()).await.unwrap()[0],
        seen(&at_bound)[0]
    );
    let calls = service.calls.load(Ordering::SeqCst);
    let refused = client.upload(1, named(16 * 1024 + 1)).await.unwrap_err();
    assert!(
        matches!(&refused, Error::Encode { message } if message.contains("part `photo`") && message.contains("16 KiB")),
        "{refused:?}"
    );
    assert_eq!(service.calls.load(Ordering::SeqCst), calls, "nothing sent");
}

#[tokio::test]
async fn a_multipart_body_round_trips_with_every_part_field() {
    let (service, client, _) = pair().await;
    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let form = Multipart::new()
        .text("title", "Zoë \"quoted\"; name=x\r\n")
        .text("empty", "")
        .file("photo", "dir/beach \"1\".jpg", "image/jpeg", binary.clone())
        .part(Part::new("meta\r\n\"x\"", r#"{"a":1}"#).with_content_type("application/json"))
        .part(Part::new("title", "second title"));
    let mut expected = seen(&form);
    expected.push(("album".into(), None, None, b"7".to_vec()));
    assert_eq!(client.upload(7, form.clone()).await.unwrap(), expected);
    assert_eq!(
        client.upload(8, Multipart::new()).await.unwrap(),
        [("album".into(), None, None, b"8".to_vec())],
        "a body of no parts"
    );
    let cover = Multipart::new().file("cover", "c.png", "image/png", vec![0x89, b'P']);
    assert_eq!(client.cover(1, &cover).await.unwrap(), seen(&cover));
    assert!(matches!(
        client.cover(1, &form).await,
        Err(Error::UnprocessableEntity(_))
    ));
    assert_eq!(service.calls.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_malformed_multipart_body_is_a_400_and_another_body_type_a_415() {
    let (service, _, url) = pair().await;
    let exec = comms_tests::plain_executor(&url, "billing", SECRET);
    const MULTIPART: &str = "multipart/form-data; boundary=B";
    let part = |body: &'static [u8]| Call::put("/albums/1/cover").body(body, MULTIPART);
    let cases = [
        (
            part(b"--B\r\nContent-Disposition: form-data; name=cover\r\n\r\nx"),
            400,
            "is not closed",
        ),
        (
            part(b"--B\r\nContent-Type: text/plain\r\n\r\nx\r\n--B--"),
            400,
            "has no `Content-Disposition",
        ),
        (part(b"no delimiter at all"), 400, "no delimiter line"),
        (
            Call::put("/albums/1/cover").body(&b"--B--"[..], "multipart/form-data"),
            400,
            "has no boundary",
        ),
        (
            Call::put("/albums/1/cover").json(&"x"),
            415,
            "must be `multipart/form-data`",
        ),
        (
            Call::put("/albums/1/cover"),
            415,
            "must be `multipart/form-data`",
        ),
    ];
    for (call, status, expected) in cases {
        let err = exec.execute(call).await.unwrap_err();
        let e = err.http_error().unwrap_or_else(|| panic!("{err}"));
        assert_eq!(e.status(), status, "{expected}: {err}");
        let message = e.message().unwrap_or_default();
        assert!(
            message.contains("`form`") && message.contains(expected),
            "{expected}: {message}"
        );
    }
    assert_eq!(service.calls.load(Ordering::SeqCst), 0, "no method ran");
    // A body a browser would send, preamble and all, is read.
    let ok = exec
        .execute(part(
            b"preamble\r\n--B\r\ncontent-disposition: form-data; name=\"cover\"; filename=\"a.txt\"\r\n\r\nhi\r\n--B--\r\n",
        ))
        .await
        .unwrap();
    let parts: Vec<Seen> = ok.json().unwrap();
    assert_eq!(
        parts,
        [("cover".into(), Some("a.txt".into()), None, b"hi".to_vec())]
    );
}

/// A generated server reads a body as it arrived, the bytes its digest covers, and decodes no
/// content coding: a JSON, form or multipart body sent with one is a 415 saying so, neither parsed as if it had none nor blamed on its syntax,
/// and the method does not run.
#[tokio::test]
async fn a_body_with_a_content_coding_is_a_415_and_the_method_does_not_run() {
    let (service, _, url) = pair().await;
    let exec = comms_tests::plain_executor(&url, "billing", SECRET);
    const FORM: &str = "application/x-www-form-urlencoded";
    let form = Multipart::new().text("cover", "x");
    let router = HeadsServer::new(HeadsImpl)
        .verifier(Verifier::new().service("billing", SECRET))
        .into_router();
    let heads = comms_tests::plain_executor(&serve(router).await, "billing", SECRET);
    let patch = Patch {
        name: Some("a".into()),
    };
    let cases = [
        (
            &exec,
            Call::post("/login/r")
                .body(&b"user=a&remember=true"[..], FORM)
                .header("Content-Encoding", "gzip"),
        ),
        (
            &exec,
            Call::put("/albums/1/cover")
                .multipart(&form)
                .header("Content-Encoding", "identity, br"),
        ),
        (
            &heads,
            Call::patch("/after")
                .json(&patch)
                .header("Content-Encoding", "gzip"),
        ),
    ];
    for (exec, call) in cases {
        let err = exec.execute(call).await.unwrap_err();
        let e = err.http_error().unwrap_or_else(|| panic!("{err}"));
        assert_eq!(e.status(), 415, "{err}");
        assert!(
            e.message()
                .is_some_and(|m| m.contains("has a Content-Encoding")),
            "{:?}",
            e.message()
        );
    }
    assert_eq!(service.calls.load(Ordering::SeqCst), 0, "no method ran");
    // `identity` is no coding at all.
    let ok = exec
        .execute(
            Call::post("/login/r")
                .body(&b"user=a&remember=true"[..], FORM)
                .header("Content-Encoding", "identity"),
        )
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

/// `min` is a field of both flattened structs below, and a plain argument's key.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Serialize)]
pub struct Range {
    pub min: Option<u32>,
    pub max: Option<u32>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Serialize)]
pub struct Bounds {
    pub min: Option<u32>,
}

#[service_client(
    base_url = "http://127.0.0.1:9",
    service_id = "billing",
    secret_env = "COMMS_TEST_SHAPES_SERVED_SECRET"
)]
pub trait PlainClash {
    #[get("/plain")]
    async fn plain(
        &self,
        #[query] min: Option<u32>,
        #[query(flatten)] range: &Range,
    ) -> Result<(), Error>;
}

#[service_client(
    base_url = "http://127.0.0.1:9",
    service_id = "billing",
    secret_env = "COMMS_TEST_SHAPES_SERVED_SECRET"
)]
pub trait FlattenedClash {
    #[get("/two")]
    async fn two(
        &self,
        #[query(flatten)] range: &Range,
        #[query(flatten)] bounds: &Bounds,
    ) -> Result<(), Error>;
}

#[service_client(
    base_url = "http://127.0.0.1:9",
    service_id = "billing",
    secret_env = "COMMS_TEST_SHAPES_SERVED_SECRET"
)]
pub trait AnyKeyClash {
    #[get("/any")]
    async fn any(
        &self,
        #[query(flatten)] any: &std::collections::BTreeMap<String, String>,
        #[query(flatten)] bounds: &Bounds,
    ) -> Result<(), Error>;
}

/// `Bounds` as a newtype: parsed as the struct it wraps.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Serialize)]
pub struct Wrapped(pub Bounds);

#[service_client(
    base_url = "http://127.0.0.1:9",
    service_id = "billing",
    secret_env = "COMMS_TEST_SHAPES_SERVED_SECRET"
)]
pub trait NewtypeClash {
    #[get("/wrapped")]
    async fn wrapped(
        &self,
        #[query] min: u32,
        #[query(flatten)] bounds: &Wrapped,
    ) -> Result<(), Error>;
}

impl NewtypeClash for Clashing {
    async fn wrapped(&self, _: u32, _: &Wrapped) -> Result<(), Error> {
        Ok(())
    }
}

#[derive(Clone)]
struct Clashing;

impl PlainClash for Clashing {
    async fn plain(&self, _: Option<u32>, _: &Range) -> Result<(), Error> {
        Ok(())
    }
}

impl FlattenedClash for Clashing {
    async fn two(&self, _: &Range, _: &Bounds) -> Result<(), Error> {
        Ok(())
    }
}

impl AnyKeyClash for Clashing {
    async fn any(
        &self,
        _: &std::collections::BTreeMap<String, String>,
        _: &Bounds,
    ) -> Result<(), Error> {
        Ok(())
    }
}

/// The message of the panic `build` ends with.
fn panic_of(build: impl FnOnce() + std::panic::UnwindSafe) -> String {
    let payload = std::panic::catch_unwind(build).expect_err("the router is refused");
    payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_query_key_two_arguments_could_take_is_refused_as_the_router_is_built() {
    let plain = panic_of(|| drop(PlainClashServer::new(Clashing).unverified().into_router()));
    assert!(
        plain.contains("`plain`: query key `min` is a field of `range`"),
        "{plain}"
    );
    let two = panic_of(|| {
        drop(
            FlattenedClashServer::new(Clashing)
                .unverified()
                .into_router(),
        )
    });
    assert!(
        two.contains("`two`: query key `min` is a field of both `range` and `bounds`"),
        "{two}"
    );
    let any = panic_of(|| drop(AnyKeyClashServer::new(Clashing).unverified().into_router()));
    assert!(
        any.contains("`any` takes any query key") && any.contains("`bounds`"),
        "{any}"
    );
    let wrapped = panic_of(|| drop(NewtypeClashServer::new(Clashing).unverified().into_router()));
    assert!(
        wrapped.contains("`wrapped`: query key `min` is a field of `bounds`"),
        "{wrapped}"
    );
    // Keys apart, as `Catalog`'s `pages` has them, build a router.
    drop(
        CatalogServer::new(CatalogImpl::default())
            .unverified()
            .into_router(),
    );
}

#[tokio::test]
async fn a_flattened_field_a_plain_argument_names_is_not_sent_even_alone() {
    // A server could only give `min=7` to the plain argument: the client sends nothing.
    let client: PlainClashClient = comms_tests::plain_client("http://127.0.0.1:9", SECRET);
    let range = Range {
        min: Some(7),
        max: None,
    };
    let err = client.plain(None, &range).await.unwrap_err();
    assert!(
        matches!(&err, Error::Encode { message } if message.contains("`min`")),
        "{err:?}"
    );
    // Its other fields go as they are (the port is closed: the call is sent, and fails).
    let range = Range {
        min: None,
        max: Some(7),
    };
    let err = client.plain(Some(1), &range).await.unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Serialize)]
pub struct Patch {
    pub name: Option<String>,
}

#[service_client(
    base_url = "http://127.0.0.1:9",
    service_id = "billing",
    secret_env = "COMMS_TEST_SHAPES_SERVED_SECRET"
)]
pub trait Heads {
    /// A JSON merge patch: the caller's `Content-Type` in place of `application/json`,
    /// whichever argument comes first.
    #[patch("/before")]
    async fn before(
        &self,
        #[header("Content-Type")] content_type: &str,
        #[body] patch: &Patch,
    ) -> Result<(String, Patch), Error>;

    #[patch("/after")]
    async fn after(
        &self,
        #[body] patch: &Patch,
        #[header("Content-Type")] content_type: &str,
    ) -> Result<(String, Patch), Error>;

    #[get("/name")]
    async fn name(&self, #[header("X-Name")] name: &str) -> Result<String, Error>;

    #[get("/files/<path..>")]
    async fn file(&self, path: &str) -> Result<String, Error>;

    #[post("/tags")]
    async fn tags(&self, #[form] tags: &Tags) -> Result<Tags, Error>;
}

/// Its `Vec` has no `#[serde(default)]`.
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct Tags {
    pub user: String,
    pub tag: Vec<String>,
}

#[derive(Clone)]
struct HeadsImpl;

impl Heads for HeadsImpl {
    async fn before(&self, content_type: &str, patch: &Patch) -> Result<(String, Patch), Error> {
        Ok((content_type.to_owned(), patch.clone()))
    }

    async fn after(&self, patch: &Patch, content_type: &str) -> Result<(String, Patch), Error> {
        Ok((content_type.to_owned(), patch.clone()))
    }

    async fn name(&self, name: &str) -> Result<String, Error> {
        Ok(name.to_owned())
    }

    async fn file(&self, path: &str) -> Result<String, Error> {
        Ok(path.to_owned())
    }

    async fn tags(&self, tags: &Tags) -> Result<Tags, Error> {
        Ok(tags.clone())
    }
}

async fn heads() -> HeadsClient {
    let router = HeadsServer::new(HeadsImpl)
        .verifier(Verifier::new().service("billing", SECRET))
        .into_router();
    comms_tests::plain_client(&serve(router).await, SECRET)
}

#[tokio::test]
async fn a_content_type_argument_beside_a_json_body_is_sent_in_either_order() {
    let client = heads().await;
    let patch = Patch {
        name: Some("ada".into()),
    };
    let merge = "application/merge-patch+json";
    let sent = (merge.to_owned(), patch.clone());
    assert_eq!(client.before(merge, &patch).await.unwrap(), sent);
    assert_eq!(client.after(&patch, merge).await.unwrap(), sent);
}

/// A header argument in ASCII round-trips; one outside it is refused unsent, as RFC 9421
/// writes a signature base in ASCII and other verifiers refuse one without.
#[tokio::test]
async fn a_header_argument_round_trips_in_ascii_and_is_refused_unsent_outside_it() {
    let client = heads().await;
    for name in ["plain", "a b~!#$%&'*+-.^_`|"] {
        assert_eq!(client.name(name).await.unwrap(), name);
    }
    for name in ["café", "naïve 東京"] {
        let err = client.name(name).await.unwrap_err();
        assert!(
            matches!(&err, Error::Encode { message } if message.contains("outside ASCII")),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn a_trailing_argument_round_trips_or_is_refused_unsent() {
    let client = heads().await;
    for path in ["a", "a/b", "a//b", "a/b/"] {
        assert_eq!(client.file(path).await.unwrap(), path);
    }
    // `/files/` would match no route of the server's: refused before it is sent.
    let err = client.file("").await.unwrap_err();
    assert!(
        matches!(&err, Error::Encode { message } if message.contains("empty")),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_empty_vec_without_a_default_is_a_400_that_says_what_to_add() {
    let client = heads().await;
    let tags = Tags {
        user: "ada".into(),
        tag: vec!["a".into()],
    };
    assert_eq!(client.tags(&tags).await.unwrap(), tags);
    let empty = Tags {
        user: "ada".into(),
        tag: vec![],
    };
    let Error::BadRequest(err) = client.tags(&empty).await.unwrap_err() else {
        panic!("a 400");
    };
    let message = err.message().unwrap_or_default();
    assert!(
        message.contains("missing field `tag`") && message.contains("#[serde(default)]"),
        "{message}"
    );
}

/// Repeated query values in every collection the client sends one from.
#[service_client(
    base_url = "http://127.0.0.1:9",
    service_id = "billing",
    secret_env = "COMMS_TEST_SHAPES_SERVED_SECRET"
)]
pub trait Collections {
    #[get("/collections")]
    async fn collections(
        &self,
        #[query] tag: BTreeSet<String>,
        #[query] id: &HashSet<u32>,
        #[query] word: VecDeque<&str>,
        #[query] near: &BTreeSet<&str>,
        #[query] pair: [u8; 2],
        #[query] names: &[&str; 2],
    ) -> Result<Vec<String>, Error>;
}

#[derive(Clone)]
struct CollectionsImpl;

impl Collections for CollectionsImpl {
    async fn collections(
        &self,
        tag: BTreeSet<String>,
        id: &HashSet<u32>,
        word: VecDeque<&str>,
        near: &BTreeSet<&str>,
        pair: [u8; 2],
        names: &[&str; 2],
    ) -> Result<Vec<String>, Error> {
        let mut ids: Vec<u32> = id.iter().copied().collect();
        ids.sort_unstable();
        Ok(vec![
            format!("{tag:?}"),
            format!("{ids:?}"),
            format!("{word:?}"),
            format!("{near:?}"),
            format!("{pair:?}"),
            format!("{names:?}"),
        ])
    }
}

#[tokio::test]
async fn repeated_query_values_round_trip_into_every_collection() {
    let router = CollectionsServer::new(CollectionsImpl)
        .verifier(Verifier::new().service("billing", SECRET))
        .into_router();
    let client: CollectionsClient = comms_tests::plain_client(&serve(router).await, SECRET);
    let tag: BTreeSet<String> = ["b".into(), "a".into()].into();
    let id: HashSet<u32> = [3, 1, 2].into();
    let word: VecDeque<&str> = ["x", "y", "x"].into();
    let near: BTreeSet<&str> = ["q"].into();
    let got = client
        .collections(tag, &id, word, &near, [7, 8], &["p", "r"])
        .await
        .unwrap();
    assert_eq!(
        got,
        [
            r#"{"a", "b"}"#,
            "[1, 2, 3]",
            r#"["x", "y", "x"]"#,
            r#"{"q"}"#,
            "[7, 8]",
            r#"["p", "r"]"#,
        ]
    );
    // An array takes exactly its length of values.
    let one_pair = Call::get("/collections")
        .query("tag", "a")
        .query("id", 1)
        .query("word", "x")
        .query("near", "q")
        .query("pair", 7)
        .query("names", "p")
        .query("names", "r");
    let Error::BadRequest(err) = client.executor().execute(one_pair).await.unwrap_err() else {
        panic!("a 400");
    };
    let message = err.message().unwrap_or_default();
    assert!(
        message.contains("`pair` takes 2 values; the request has 1"),
        "{message}"
    );
}

/// A trait a `macro_rules!` macro declares: its argument and return types arrive grouped
/// (`$t:ty`), and are read as they are when written out.
macro_rules! declare_by_macro {
    ($name:ident, $ids:ty, $words:ty, $unit:ty, $maybe:ty, $raw:ty, $whole:ty) => {
        #[service_client(
            base_url = "http://127.0.0.1:9",
            service_id = "billing",
            secret_env = "COMMS_TEST_SHAPES_SERVED_SECRET"
        )]
        pub trait $name {
            #[get("/by-macro")]
            async fn by_macro(
                &self,
                #[query] id: $ids,
                #[query] word: $words,
            ) -> Result<String, Error>;

            #[delete("/by-macro/<id>")]
            async fn remove(&self, id: u32) -> Result<$unit, Error>;

            #[get("/by-macro/<id>")]
            async fn maybe(&self, id: u32) -> Result<$maybe, Error>;

            #[get("/by-macro/raw")]
            async fn raw(&self) -> Result<$raw, Error>;

            #[get("/by-macro/whole")]
            async fn whole(&self) -> $whole;
        }
    };
}

declare_by_macro!(
    ByMacro,
    VecDeque<u32>,
    &[&str],
    (),
    Option<u32>,
    comms::Response,
    Result<u32, Error>
);

#[derive(Clone)]
struct ByMacroImpl;

impl ByMacro for ByMacroImpl {
    async fn by_macro(&self, id: VecDeque<u32>, word: &[&str]) -> Result<String, Error> {
        Ok(format!("{id:?} {word:?}"))
    }

    async fn remove(&self, _id: u32) -> Result<(), Error> {
        Ok(())
    }

    async fn maybe(&self, id: u32) -> Result<Option<u32>, Error> {
        Ok((id == 1).then_some(10))
    }

    async fn raw(&self) -> Result<comms::Response, Error> {
        comms::Response::builder(http::StatusCode::ACCEPTED)
            .body("raw")
            .build()
    }

    async fn whole(&self) -> Result<u32, Error> {
        Ok(5)
    }
}

#[tokio::test]
async fn types_a_macro_declares_are_read_as_written_out() {
    let router = ByMacroServer::new(ByMacroImpl)
        .verifier(Verifier::new().service("billing", SECRET))
        .into_router();
    let client: ByMacroClient = comms_tests::plain_client(&serve(router).await, SECRET);
    let got = client.by_macro([2, 1].into(), &["a", "b"]).await.unwrap();
    assert_eq!(got, r#"[2, 1] ["a", "b"]"#);
    // `()` answers 204 with no body, and is read as nothing; `None` is a 404.
    let removed = client
        .executor()
        .execute(Call::delete("/by-macro/1"))
        .await
        .unwrap();
    assert_eq!(removed.status(), 204);
    client.remove(1).await.unwrap();
    assert_eq!(client.maybe(1).await.unwrap(), Some(10));
    assert_eq!(client.maybe(2).await.unwrap(), None);
    let raw = client.raw().await.unwrap();
    assert_eq!((raw.status().as_u16(), raw.text().unwrap()), (202, "raw"));
    assert_eq!(client.whole().await.unwrap(), 5);
}

#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct Big {
    pub i: i128,
    pub u: u128,
}

#[service_client(
    base_url = "http://127.0.0.1:9",
    service_id = "billing",
    secret_env = "COMMS_TEST_SHAPES_SERVED_SECRET"
)]
pub trait Wide {
    #[get("/plain")]
    async fn plain(&self, #[query] i: i128, #[query] u: u128) -> Result<String, Error>;

    #[get("/flat")]
    async fn flat(&self, #[query(flatten)] big: &Big) -> Result<String, Error>;

    #[post("/form")]
    async fn form(&self, #[form] big: &Big) -> Result<String, Error>;
}

#[derive(Clone)]
struct WideImpl;

impl Wide for WideImpl {
    async fn plain(&self, i: i128, u: u128) -> Result<String, Error> {
        Ok(format!("{i} {u}"))
    }
    async fn flat(&self, big: &Big) -> Result<String, Error> {
        Ok(format!("{big:?}"))
    }
    async fn form(&self, big: &Big) -> Result<String, Error> {
        Ok(format!("{big:?}"))
    }
}

/// serde_html_form reads integers of up to 64 bits: a 128-bit field of a flattened struct or a
/// form is a 400 that says what to do instead; a plain argument (`FromStr`) reads any.
#[tokio::test]
async fn a_128_bit_field_of_a_query_struct_or_form_is_a_400_that_says_what_to_do() {
    let router = WideServer::new(WideImpl)
        .verifier(Verifier::new().service("billing", SECRET))
        .into_router();
    let client: WideClient = comms_tests::plain_client(&serve(router).await, SECRET);
    assert_eq!(
        client.plain(i128::MIN, u128::MAX).await.unwrap(),
        format!("{} {}", i128::MIN, u128::MAX)
    );
    let big = Big { i: -1, u: 1 };
    for (result, name) in [
        (client.flat(&big).await, "query"),
        (client.form(&big).await, "form"),
    ] {
        match result {
            Err(Error::BadRequest(e)) => {
                let message = e.message().unwrap_or_default();
                assert!(
                    message.contains("integers of up to 64 bits") && message.contains("`String`"),
                    "{name}: {message}"
                );
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[service_client(
    base_url = "http://127.0.0.1:9",
    service_id = "billing",
    secret_env = "COMMS_TEST_SHAPES_SERVED_SECRET"
)]
pub trait Removal {
    #[delete("/things/<id>")]
    async fn remove(&self, id: u32) -> Result<Option<()>, Error>;
}

#[derive(Clone)]
struct RemovalImpl;

impl Removal for RemovalImpl {
    async fn remove(&self, id: u32) -> Result<Option<()>, Error> {
        match id {
            0 => Err(Error::forbidden("not yours")),
            1 => Ok(Some(())),
            _ => Ok(None),
        }
    }
}

/// `Option<()>`, a removal where a 404 means there was nothing to remove: its body is ignored
/// as `()`'s is (any service's 204, or a 200 with whatever body), a 404 is `None`; a generated
/// server answers `Some(())` with a 204.
#[tokio::test]
async fn an_optional_unit_ignores_the_body_and_takes_a_404_for_none() {
    use comms_tests::{Reply, TestServer};

    let server = TestServer::start(|_, i| match i {
        0 => Reply::status(204),
        1 => Reply::status(200).body("removed, thanks"),
        _ => Reply::status(404),
    })
    .await;
    let client: RemovalClient = comms_tests::plain_client(&server.url(), SECRET);
    assert_eq!(client.remove(1).await.unwrap(), Some(()));
    assert_eq!(client.remove(1).await.unwrap(), Some(()));
    assert_eq!(client.remove(1).await.unwrap(), None);

    let router = RemovalServer::new(RemovalImpl)
        .verifier(Verifier::new().service("billing", SECRET))
        .into_router();
    let url = serve(router).await;
    let client: RemovalClient = comms_tests::plain_client(&url, SECRET);
    assert_eq!(client.remove(1).await.unwrap(), Some(()));
    assert_eq!(client.remove(2).await.unwrap(), None);
    let err = client.remove(0).await.unwrap_err();
    assert!(matches!(err, Error::Forbidden(_)), "{err}");
    let answer = client
        .executor()
        .execute(Call::delete("/things/1"))
        .await
        .unwrap();
    assert_eq!(answer.status(), 204);
    assert!(answer.bytes().is_empty());
}

#[tokio::test]
async fn a_multipart_body_whose_content_type_its_signature_does_not_cover_is_refused() {
    // The boundary is in the `Content-Type`: changed on the way, it would read other parts out
    // of the same signed bytes (a file's contents taken for fields).
    let (service, _, url) = pair().await;
    let authority = url.trim_start_matches("http://").to_owned();
    let body = b"--B\r\ncontent-disposition: form-data; name=\"cover\"\r\n\r\nx\r\n--B--\r\n";
    let request = |covered: &[&str]| {
        let mut head = comms_tests::Recorded::head(
            comms::http::Method::PUT,
            "/albums/1/cover",
            &authority,
            body,
        );
        head.headers.insert(
            "content-type",
            "multipart/form-data; boundary=B".parse().unwrap(),
        );
        head.sign_now("billing", SECRET, covered);
        head
    };
    let (status, text) = request(&[]).send_to(&url, body).await;
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains("is not covered by the request's signature"),
        "{text}"
    );
    assert_eq!(service.calls.load(Ordering::SeqCst), 0);
    let (status, text) = request(&["content-type"]).send_to(&url, body).await;
    assert_eq!(status, 200, "{text}");
}

/// The 415 for a coded body says which coding would do (`Accept-Encoding: identity`); a
/// `Content-Encoding` that names no coding but `identity`, in any case or spacing, or none at
/// all, is a body as it is.
#[tokio::test]
async fn a_coded_body_is_told_to_use_identity_and_identity_written_any_way_is_read() {
    let router = HeadsServer::new(HeadsImpl).unverified().into_router();
    let url = serve(router).await;
    let http = reqwest::Client::new();
    let send = |coding: &'static str| {
        http.patch(format!("{url}/after"))
            .header("content-type", "application/json")
            .header("content-encoding", coding)
            .body(r#"{"name":"a"}"#)
            .send()
    };
    let refused = send("gzip").await.unwrap();
    assert_eq!(refused.status(), 415);
    assert_eq!(
        refused.headers().get("accept-encoding").unwrap(),
        "identity"
    );
    for coding in ["", "identity", "IDENTITY", " identity ,\tIdentity ", ","] {
        let ok = send(coding).await.unwrap();
        assert_eq!(ok.status(), 200, "{coding:?}");
    }
}

/// A part's header line whose name is not a token (a folded continuation line, a space before
/// the `:`) is refused: readers that fold it into the line before (Go's `textproto`, PHP) or
/// trim the name would read a file name, or another name, that a reader ignoring it does not.
#[tokio::test]
async fn a_part_header_folded_or_with_a_space_before_its_colon_is_a_400() {
    let url = unverified_catalog().await;
    let bodies: [&[u8]; 3] = [
        b"--B\r\nContent-Disposition: form-data; name=\"cover\"\r\n ; filename=\"a:b.php\"\r\n\r\nx\r\n--B--",
        b"--B\r\nContent-Disposition: form-data; name=\"cover\"\r\n\tfilename=\"a:b.php\"\r\n\r\nx\r\n--B--",
        b"--B\r\nContent-Disposition: form-data; name=\"cover\"\r\nContent-Disposition : form-data; name=\"other\"\r\n\r\nx\r\n--B--",
    ];
    for body in bodies {
        let (status, text) = put_cover(&url, body).await;
        assert_eq!(status, 400, "{}: {text}", String::from_utf8_lossy(body));
        assert!(text.contains("not a token"), "{text}");
    }
}

/// A request with two `Content-Type` headers (both signed, as one combined field) is refused
/// for a form or multipart body rather than read by the first: a reader taking the last would
/// read another boundary, or another type, out of the same signed request.
#[tokio::test]
async fn two_content_types_for_a_form_or_multipart_body_are_a_400() {
    let url = unverified_catalog().await;
    let http = reqwest::Client::new();
    let cases: [(&str, [&str; 2], &[u8]); 2] = [
        (
            "/albums/1/cover",
            [
                "multipart/form-data; boundary=A",
                "multipart/form-data; boundary=B",
            ],
            b"--A\r\nContent-Disposition: form-data; name=cover\r\n\r\nx\r\n--A--",
        ),
        (
            "/login/r",
            ["application/x-www-form-urlencoded", "application/json"],
            b"user=a&remember=true",
        ),
    ];
    for (path, types, body) in cases {
        let mut headers = reqwest::header::HeaderMap::new();
        for t in types {
            headers.append("content-type", t.parse().unwrap());
        }
        let response = http
            .request(
                if path.starts_with("/login") {
                    reqwest::Method::POST
                } else {
                    reqwest::Method::PUT
                },
                format!("{url}{path}"),
            )
            .headers(headers)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, 400, "{path}: {text}");
        assert!(text.contains("two Content-Type"), "{path}: {text}");
    }
}

/// A part's `name*` or `filename*` (RFC 2231 / 8187, continuations `*0` too), which RFC 7578
/// §4.2 says senders must not use, is refused: Go's `mime` decodes it and takes it over the
/// plain parameter, which a reader ignoring it reads, so that the two would read other names or
/// file names out of the same signed bytes. Other parameters, those whose names merely start
/// with `name` among them, are ignored as before.
#[tokio::test]
async fn a_starred_name_or_filename_parameter_is_a_400_and_others_are_ignored() {
    let url = unverified_catalog().await;
    let put = |disposition: &str| {
        let body =
            format!("--B\r\nContent-Disposition: form-data; {disposition}\r\n\r\nx\r\n--B--");
        put_cover(&url, body)
    };
    for disposition in [
        "name=\"cover\"; name*=UTF-8''other",
        "name=\"cover\"; filename=\"a.txt\"; filename*=UTF-8''b.php",
        "name=\"cover\"; FILENAME*=UTF-8''b.php",
        "name=\"cover\"; filename*0=\"b.php\"",
    ] {
        let (status, text) = put(disposition).await;
        assert_eq!(status, 400, "{disposition}: {text}");
        assert!(text.contains("RFC 7578"), "{disposition}: {text}");
    }
    for disposition in [
        "name=\"cover\"; names=\"x\"; name_2=y; filenames=z",
        "namex=\"q\"; name=\"cover\"",
    ] {
        let (status, text) = put(disposition).await;
        assert_eq!(status, 200, "{disposition}: {text}");
        let parts: Vec<Seen> = serde_json::from_str(&text).unwrap();
        assert_eq!(parts, [("cover".into(), None, None, b"x".to_vec())]);
    }
}

#[service_client(
    base_url = "http://127.0.0.1:9",
    service_id = "billing",
    secret_env = "COMMS_TEST_SHAPES_SERVED_SECRET"
)]
pub trait Floats {
    /// The bits of the body's `f64`, as the server parsed it.
    #[post("/f64")]
    async fn bits_of(&self, #[body] x: f64) -> Result<u64, Error>;

    /// The `f64` of `bits`, answered as JSON.
    #[get("/f64/<bits>")]
    async fn of_bits(&self, bits: u64) -> Result<f64, Error>;
}

#[derive(Clone)]
struct FloatsImpl;

impl Floats for FloatsImpl {
    async fn bits_of(&self, x: f64) -> Result<u64, Error> {
        Ok(x.to_bits())
    }

    async fn of_bits(&self, bits: u64) -> Result<f64, Error> {
        Ok(f64::from_bits(bits))
    }
}

#[tokio::test]
async fn a_json_f64_arrives_with_its_bits_either_way() {
    let router = FloatsServer::new(FloatsImpl)
        .verifier(Verifier::new().service("billing", SECRET))
        .into_router();
    let client: FloatsClient = comms_tests::plain_client(&serve(router).await, SECRET);
    // Two values a JSON parser that is not exact reads one unit in the last place off, then
    // finite values of bits drawn at random (a fixed xorshift, so a failure repeats).
    let mut values = vec![3.4993797343246517e-47_f64, 2.109731129412775e-194];
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    while values.len() < 400 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let x = f64::from_bits(state);
        if x.is_finite() {
            values.push(x);
        }
    }
    for x in values {
        assert_eq!(client.bits_of(x).await.unwrap(), x.to_bits(), "{x:e} sent");
        let back = client.of_bits(x.to_bits()).await.unwrap();
        assert_eq!(back.to_bits(), x.to_bits(), "{x:e} answered as {back:e}");
    }
}

#[service_client(
    base_url = "http://127.0.0.1:9",
    service_id = "billing",
    secret_env = "COMMS_TEST_SHAPES_SERVED_SECRET"
)]
pub trait Files {
    #[put("/files/<name>")]
    async fn put(
        &self,
        name: &str,
        #[header("Content-Type")] content_type: &str,
        #[body(raw)] data: bytes::Bytes,
    ) -> Result<(String, String, Vec<u8>), Error>;

    #[post("/vec")]
    async fn vec(&self, #[body(raw)] data: Vec<u8>) -> Result<comms::Response, Error>;

    #[post("/slice")]
    async fn slice(&self, #[body(raw)] data: &[u8]) -> Result<comms::Response, Error>;

    #[post("/text")]
    async fn text(&self, #[body(raw)] text: String) -> Result<String, Error>;

    #[post("/str")]
    async fn str(&self, #[body(raw)] text: &str) -> Result<String, Error>;

    #[post("/boxed")]
    async fn boxed(&self, #[body(raw)] data: Box<[u8]>) -> Result<comms::Response, Error>;

    #[post("/array")]
    async fn array(&self, #[body(raw)] data: &[u8; 4]) -> Result<comms::Response, Error>;
}

#[derive(Clone, Default)]
struct FilesImpl {
    calls: Arc<AtomicUsize>,
}

impl Files for FilesImpl {
    async fn put(
        &self,
        name: &str,
        content_type: &str,
        data: bytes::Bytes,
    ) -> Result<(String, String, Vec<u8>), Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok((name.to_owned(), content_type.to_owned(), data.to_vec()))
    }

    async fn vec(&self, data: Vec<u8>) -> Result<comms::Response, Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        echoed(data)
    }

    async fn slice(&self, data: &[u8]) -> Result<comms::Response, Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        echoed(data.to_vec())
    }

    async fn text(&self, text: String) -> Result<String, Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(text)
    }

    async fn str(&self, text: &str) -> Result<String, Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(text.to_owned())
    }

    async fn boxed(&self, data: Box<[u8]>) -> Result<comms::Response, Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        echoed(data)
    }

    async fn array(&self, data: &[u8; 4]) -> Result<comms::Response, Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        echoed(data.to_vec())
    }
}

/// The bytes answered as they are: bytes returned whole are a `comms::Response`, as a
/// `Vec<u8>` would be decoded from JSON (a compile error).
fn echoed(data: impl Into<bytes::Bytes>) -> Result<comms::Response, Error> {
    comms::Response::builder(http::StatusCode::OK)
        .header("Content-Type", "application/octet-stream")
        .body(data)
        .build()
}

async fn files() -> (FilesImpl, FilesClient, String) {
    let service = FilesImpl::default();
    let router = FilesServer::new(service.clone())
        .verifier(Verifier::new().service("billing", SECRET))
        .into_router();
    let url = serve(router).await;
    (service, comms_tests::plain_client(&url, SECRET), url)
}

#[tokio::test]
async fn a_raw_body_round_trips_as_bytes_or_text() {
    let (service, client, _) = files().await;
    let octets: Vec<u8> = (0..=255).rev().chain([0, b'\r', b'\n']).collect();
    assert_eq!(
        client
            .put("a b.png", "image/png", bytes::Bytes::from(octets.clone()))
            .await
            .unwrap(),
        ("a b.png".to_owned(), "image/png".to_owned(), octets.clone())
    );
    assert_eq!(client.vec(octets.clone()).await.unwrap().bytes(), &octets);
    assert_eq!(client.vec(Vec::new()).await.unwrap().bytes(), &b""[..]);
    assert_eq!(client.slice(&octets).await.unwrap().bytes(), &octets);
    let text = "ünïcode\r\n, \"as it is\"\0";
    assert_eq!(client.text(text.to_owned()).await.unwrap(), text);
    assert_eq!(client.str(text).await.unwrap(), text);
    let boxed: Box<[u8]> = octets.clone().into();
    assert_eq!(client.boxed(boxed).await.unwrap().bytes(), &octets);
    assert_eq!(
        client.array(&[0, 1, 0xfe, 0xff]).await.unwrap().bytes(),
        &[0, 1, 0xfe, 0xff][..]
    );
    assert_eq!(service.calls.load(Ordering::SeqCst), 8);
}

#[tokio::test]
async fn a_raw_text_body_that_is_not_utf_8_or_is_coded_is_refused_and_the_method_does_not_run() {
    let (service, _, url) = files().await;
    let exec = comms_tests::plain_executor(&url, "billing", SECRET);
    let cases = [
        (
            Call::post("/text").body(&b"caf\xe9"[..], "text/plain"),
            400,
            "not UTF-8",
        ),
        (
            Call::post("/str").body(&b"\xff"[..], "text/plain"),
            400,
            "not UTF-8",
        ),
        (
            Call::post("/array").body(&b"12345"[..], "application/octet-stream"),
            400,
            "the body is 5 bytes long, not 4",
        ),
        (
            Call::post("/vec")
                .body(&b"\x1f\x8b"[..], "application/octet-stream")
                .header("Content-Encoding", "gzip"),
            415,
            "has a Content-Encoding",
        ),
    ];
    for (call, status, says) in cases {
        let err = exec.execute(call).await.unwrap_err();
        let e = err.http_error().unwrap_or_else(|| panic!("{err}"));
        assert_eq!(e.status(), status, "{err}");
        assert!(
            e.message().is_some_and(|m| m.contains(says)),
            "{:?}",
            e.message()
        );
    }
    assert_eq!(service.calls.load(Ordering::SeqCst), 0, "no method ran");
    // Bytes are bytes, whatever their type says.
    let ok = exec
        .execute(Call::post("/vec").body(&b"\xff{"[..], "application/json"))
        .await
        .unwrap();
    assert_eq!(ok.bytes(), &b"\xff{"[..]);
}

/// A crate that lints strictly sees nothing of the generated code: the client and the server of
/// a trait in a module denying `clippy::pedantic` and the restriction lint against `impl Trait`
/// arguments (which the workspace's clippy run would report). Its path value is written as the
/// primitive's full path, which the server parses as it does `&str`; and shared strings
/// (`Arc<str>`, `Box<str>`, `Cow<str>`), which have no `FromStr`, are parsed as
/// `String` and converted, alone or in lists; a `Box<[T]>` or `Arc<[T]>` is a list.
#[deny(clippy::pedantic, clippy::impl_trait_in_params)]
mod strict {
    use comms::{Error, service_client};

    #[service_client(
        base_url = "http://127.0.0.1:9",
        service_id = "billing",
        secret_env = "COMMS_TEST_STRICT_SECRET"
    )]
    pub trait Strict {
        #[get("/echo/<text>")]
        async fn echo(&self, text: &core::primitive::str) -> Result<String, Error>;

        #[post("/bytes")]
        async fn bytes(&self, #[body(raw)] body: &[std::primitive::u8]) -> Result<usize, Error>;

        #[get("/shared/<a>")]
        async fn shared(
            &self,
            a: std::sync::Arc<str>,
            #[query] b: Box<str>,
            #[query] c: Option<std::borrow::Cow<'static, str>>,
            #[header("X-D")] d: Option<std::sync::Arc<str>>,
        ) -> Result<String, Error>;

        #[get("/lists")]
        async fn lists(
            &self,
            #[query] words: Vec<std::sync::Arc<str>>,
            #[query] scores: Box<[u32]>,
            #[query] pair: [Box<str>; 2],
            #[query] notes: &[std::borrow::Cow<'static, str>],
            #[query] tags: std::collections::BTreeSet<std::sync::Arc<str>>,
            #[query] keys: std::sync::Arc<[&str]>,
        ) -> Result<String, Error>;
    }

    #[derive(Clone)]
    pub struct Echo;

    impl Strict for Echo {
        async fn echo(&self, text: &str) -> Result<String, Error> {
            Ok(text.to_owned())
        }

        async fn bytes(&self, body: &[u8]) -> Result<usize, Error> {
            Ok(body.len())
        }

        async fn shared(
            &self,
            a: std::sync::Arc<str>,
            b: Box<str>,
            c: Option<std::borrow::Cow<'static, str>>,
            d: Option<std::sync::Arc<str>>,
        ) -> Result<String, Error> {
            let (c, d) = (c.as_deref().unwrap_or("-"), d.as_deref().unwrap_or("-"));
            Ok(format!("{a}|{b}|{c}|{d}"))
        }

        async fn lists(
            &self,
            words: Vec<std::sync::Arc<str>>,
            scores: Box<[u32]>,
            pair: [Box<str>; 2],
            notes: &[std::borrow::Cow<'static, str>],
            tags: std::collections::BTreeSet<std::sync::Arc<str>>,
            keys: std::sync::Arc<[&str]>,
        ) -> Result<String, Error> {
            let tags: Vec<_> = tags.into_iter().collect();
            Ok(format!(
                "{words:?}|{scores:?}|{pair:?}|{notes:?}|{tags:?}|{keys:?}"
            ))
        }
    }
}

#[tokio::test]
async fn generated_code_passes_strict_lints_and_reads_primitives_and_shared_strings() {
    use strict::Strict as _;
    let router = strict::StrictServer::new(strict::Echo)
        .verifier(Verifier::new().service("billing", SECRET))
        .idempotency_store(comms::server::MemoryIdempotencyStore::default())
        .into_router();
    let client: strict::StrictClient = comms_tests::plain_client(&serve(router).await, SECRET);
    assert_eq!(client.echo("a b/c").await.unwrap(), "a b/c");
    assert_eq!(client.bytes(&[0, 1, 2]).await.unwrap(), 3);
    // Shared strings, which have no `FromStr`, parsed as `String` and converted.
    let shared = client
        .shared(
            "a/1".into(),
            "b 2".into(),
            Some("c".into()),
            Some("d".into()),
        )
        .await
        .unwrap();
    assert_eq!(shared, "a/1|b 2|c|d");
    let shared = client
        .shared("a".into(), "b".into(), None, None)
        .await
        .unwrap();
    assert_eq!(shared, "a|b|-|-");
    // And lists of them, and lists in a shared slice (`Box<[T]>`, `Arc<[T]>`).
    let lists = client
        .lists(
            vec!["e 1".into(), "e2".into()],
            vec![1, 2].into(),
            ["g1".into(), "g&2".into()],
            &["h".into()],
            ["i2".into(), "i1".into()].into(),
            std::sync::Arc::from(["j=1", "j2"]),
        )
        .await
        .unwrap();
    assert_eq!(
        lists,
        r#"["e 1", "e2"]|[1, 2]|["g1", "g&2"]|["h"]|["i1", "i2"]|["j=1", "j2"]"#
    );
    let lists = client
        .lists(
            vec![],
            vec![].into(),
            ["".into(), "-".into()],
            &[],
            [].into(),
            std::sync::Arc::from([]),
        )
        .await
        .unwrap();
    assert_eq!(lists, r#"[]|[]|["", "-"]|[]|[]|[]"#);
}
