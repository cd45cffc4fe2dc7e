//! One trait, both sides: a generated server and a generated client from the same trait, over
//! loopback, with signatures verified. Every verb, argument kind and return kind round-trips;
//! an argument that does not parse is a 400 naming it; unsigned and wrongly signed requests get
//! a 401; a panicking method is a 500 and the server keeps serving.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use comms::verify::Verifier;
use comms::{BreakerConfig, Call, Error, RetryConfig, service_client};
use comms_tests::serve;
use serde::{Deserialize, Serialize};

const SECRET: &str = "server-test-secret";

#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct User {
    pub id: u64,
    pub name: String,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct NewUser {
    pub name: String,
}

#[service_client(
    base_url = "http://127.0.0.1:9",
    service_id = "billing",
    secret_env = "COMMS_TEST_SERVER_SECRET"
)]
pub trait Directory {
    #[get("/users/<id>")]
    async fn get_user(&self, id: u64) -> Result<User, Error>;

    #[get("/users")]
    async fn list(
        &self,
        #[query] page: u32,
        #[query(rename = "per-page")] per_page: Option<u32>,
        #[query] tag: Vec<String>,
        #[query] ids: &[u64],
        #[query] q: &str,
    ) -> Result<Vec<String>, Error>;

    #[post("/users")]
    async fn create(&self, #[body] user: &NewUser) -> Result<User, Error>;

    #[put("/users/<id>")]
    async fn replace(&self, id: u64, #[body] user: &NewUser) -> Result<(), Error>;

    #[patch("/users/<id>/name")]
    async fn rename(&self, id: u64, #[body] name: &str) -> Result<User, Error>;

    #[delete("/users/<id>")]
    async fn delete(&self, id: u64) -> Result<(), Error>;

    #[get("/orgs/<org>/files/<path..>")]
    async fn file(&self, org: &str, path: &str) -> Result<String, Error>;

    #[get("/me")]
    async fn me(
        &self,
        #[header("X-Request-Id")] request_id: &str,
        #[header("X-Tenant")] tenant: Option<String>,
    ) -> Result<Vec<String>, Error>;

    #[get("/whoami")]
    async fn whoami(&self) -> Result<Vec<String>, Error>;

    #[get("/panic/<n>")]
    async fn panics(&self, n: u32) -> Result<u32, Error>;

    #[get("/fail/<kind>")]
    async fn fail(&self, kind: &str) -> Result<(), Error>;

    #[head("/users/<id>")]
    async fn exists(&self, id: u64) -> Result<comms::Response, Error>;

    #[get("/raw")]
    async fn raw(&self) -> Result<comms::Response, Error>;

    #[post("/orders", idempotent)]
    async fn order(&self, #[body] item: &str) -> Result<u64, Error>;

    #[get("/busy")]
    async fn busy(&self) -> Result<u64, Error>;

    #[get("/maybe/<id>")]
    async fn maybe(&self, id: u64) -> Result<Option<User>, Error>;
}

/// The service behind the trait, counting the calls that reach it.
#[derive(Clone, Default)]
struct DirectoryImpl {
    calls: Arc<AtomicUsize>,
}

impl DirectoryImpl {
    fn count(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

impl Directory for DirectoryImpl {
    async fn get_user(&self, id: u64) -> Result<User, Error> {
        self.count();
        Ok(User {
            id,
            name: format!("user {id}"),
        })
    }

    async fn list(
        &self,
        page: u32,
        per_page: Option<u32>,
        tag: Vec<String>,
        ids: &[u64],
        q: &str,
    ) -> Result<Vec<String>, Error> {
        self.count();
        Ok(vec![
            format!("page={page}"),
            format!("per_page={per_page:?}"),
            format!("tag={tag:?}"),
            format!("ids={ids:?}"),
            format!("q={q}"),
        ])
    }

    async fn create(&self, user: &NewUser) -> Result<User, Error> {
        self.count();
        Ok(User {
            id: 1,
            name: user.name.clone(),
        })
    }

    async fn replace(&self, _id: u64, _user: &NewUser) -> Result<(), Error> {
        self.count();
        Ok(())
    }

    async fn rename(&self, id: u64, name: &str) -> Result<User, Error> {
        self.count();
        Ok(User {
            id,
            name: name.to_owned(),
        })
    }

    async fn delete(&self, _id: u64) -> Result<(), Error> {
        self.count();
        Ok(())
    }

    async fn file(&self, org: &str, path: &str) -> Result<String, Error> {
        self.count();
        Ok(format!("{org}|{path}"))
    }

    async fn me(&self, request_id: &str, tenant: Option<String>) -> Result<Vec<String>, Error> {
        self.count();
        Ok(vec![request_id.to_owned(), format!("{tenant:?}")])
    }

    async fn whoami(&self) -> Result<Vec<String>, Error> {
        self.count();
        let caller = comms::server::caller();
        Ok(vec![
            caller.service_id().to_owned(),
            caller.key_id().to_owned(),
            caller.signing().to_string(),
        ])
    }

    async fn panics(&self, n: u32) -> Result<u32, Error> {
        self.count();
        if n == 0 {
            panic!("the method panicked on purpose");
        }
        Ok(n)
    }

    async fn fail(&self, kind: &str) -> Result<(), Error> {
        self.count();
        Err(comms_tests::built_error(kind))
    }

    async fn exists(&self, id: u64) -> Result<comms::Response, Error> {
        self.count();
        comms::Response::builder(comms::http::StatusCode::OK)
            .header("x-exists", id)
            .build()
    }

    async fn order(&self, item: &str) -> Result<u64, Error> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) as u64 + 1;
        if item == "slow" {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        Ok(n)
    }

    async fn maybe(&self, id: u64) -> Result<Option<User>, Error> {
        self.count();
        match id {
            0 => Err(Error::forbidden("not yours")),
            1 => Ok(Some(User {
                id,
                name: "one".into(),
            })),
            3 => Err(Error::internal("broken")),
            _ => Ok(None),
        }
    }

    async fn busy(&self) -> Result<u64, Error> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) as u64 + 1;
        if n == 1 {
            return Err(Error::too_many_requests("slow down")
                .with_retry_after(std::time::Duration::from_secs(1)));
        }
        Ok(n)
    }

    async fn raw(&self) -> Result<comms::Response, Error> {
        self.count();
        comms::Response::builder(comms::http::StatusCode::CREATED)
            .header("x-kind", "raw")
            .body(&b"\x00bytes"[..])
            .build()
    }
}

/// A client of the server at `url`, signing with `secret`, retrying as `retry` says.
fn client_of(url: &str, secret: &str, retry: RetryConfig) -> DirectoryClient {
    DirectoryClient::builder()
        .base_url(url)
        .secret(secret)
        .retry(retry)
        .breaker(BreakerConfig::disabled())
        .build()
        .unwrap()
}

/// A served `DirectoryImpl` that verifies `billing`'s signatures, and a client of it.
async fn pair() -> (DirectoryImpl, DirectoryClient, String) {
    let service = DirectoryImpl::default();
    let router = DirectoryServer::new(service.clone())
        .verifier(Verifier::new().service("billing", SECRET))
        .into_router();
    let url = serve(router).await;
    let client = client_of(&url, SECRET, RetryConfig::none());
    (service, client, url)
}

#[tokio::test]
async fn every_verb_argument_and_return_round_trips() {
    let (service, client, _) = pair().await;
    assert_eq!(
        client.get_user(7).await.unwrap(),
        User {
            id: 7,
            name: "user 7".into()
        }
    );
    assert_eq!(
        client
            .list(
                2,
                Some(50),
                vec!["a b".into(), "x&y=z".into()],
                &[3, 1],
                "+1 %2B/?"
            )
            .await
            .unwrap(),
        [
            "page=2",
            "per_page=Some(50)",
            r#"tag=["a b", "x&y=z"]"#,
            "ids=[3, 1]",
            "q=+1 %2B/?"
        ]
    );
    assert_eq!(
        client.list(1, None, vec![], &[], "").await.unwrap()[1..4],
        ["per_page=None", "tag=[]", "ids=[]"]
    );
    let new = NewUser {
        name: "Zoë \"quoted\"".into(),
    };
    assert_eq!(client.create(&new).await.unwrap().name, new.name);
    client.replace(7, &new).await.unwrap();
    assert_eq!(
        client.rename(7, "Ada").await.unwrap(),
        User {
            id: 7,
            name: "Ada".into()
        }
    );
    client.delete(7).await.unwrap();
    assert_eq!(
        client
            .file("a/b ?", "docs/r\u{e9}sum\u{e9} 1.pdf")
            .await
            .unwrap(),
        "a/b ?|docs/r\u{e9}sum\u{e9} 1.pdf",
        "a path value is one segment, a trailing one keeps its slashes"
    );
    assert_eq!(
        client.me("req-1", Some("acme".into())).await.unwrap(),
        ["req-1", r#"Some("acme")"#]
    );
    assert_eq!(client.me("req-2", None).await.unwrap()[1], "None");
    assert_eq!(
        client.whoami().await.unwrap(),
        ["billing", "billing", "rfc9421"],
        "comms::server::caller() is the verified caller"
    );
    assert_eq!(service.calls.load(Ordering::SeqCst), 11);
}

#[tokio::test]
async fn a_value_that_does_not_parse_is_a_400_naming_the_argument() {
    let (service, _, url) = pair().await;
    let exec = comms_tests::plain_executor(&url, "billing", SECRET);
    let cases = [
        (Call::get("/users/seven"), "path parameter `id`"),
        (
            Call::get("/users").query("q", "x"),
            "query parameter `page` is missing",
        ),
        (
            Call::get("/users").query("page", "-1").query("q", "x"),
            "query parameter `page`",
        ),
        (
            Call::get("/users")
                .query("page", "1")
                .query("page", "2")
                .query("q", "x"),
            "query parameter `page` is given more than once",
        ),
        (
            Call::get("/users")
                .query("page", "1")
                .query("ids", "1")
                .query("ids", "x")
                .query("q", "x"),
            "query parameter `ids`",
        ),
        (Call::get("/me"), "header `X-Request-Id` is missing"),
        (
            Call::post("/users").body(&b"{\"nom\": 1}"[..], "application/json"),
            "the body does not parse",
        ),
    ];
    for (call, expected) in cases {
        let err = exec.execute(call).await.unwrap_err();
        match &err {
            Error::BadRequest(e) => assert!(
                e.message().is_some_and(|m| m.contains(expected)),
                "{expected}: {:?}",
                e.message()
            ),
            other => panic!("{expected}: {other}"),
        }
    }
    assert_eq!(service.calls.load(Ordering::SeqCst), 0, "no method ran");
}

#[tokio::test]
async fn unsigned_and_wrongly_signed_requests_get_a_401() {
    let (service, _, url) = pair().await;
    let plain = reqwest::Client::new()
        .get(format!("{url}/users/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 401);
    let intruder = client_of(&url, "not-the-secret", RetryConfig::none());
    assert!(matches!(
        intruder.get_user(1).await,
        Err(Error::Unauthorized(_))
    ));
    // A server never given a verifier refuses everything.
    let closed = serve(DirectoryServer::new(DirectoryImpl::default()).into_router()).await;
    let client = client_of(&closed, SECRET, RetryConfig::none());
    assert!(matches!(
        client.get_user(1).await,
        Err(Error::Unauthorized(_))
    ));
    assert_eq!(service.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_panicking_method_is_a_500_and_the_server_keeps_serving() {
    let (service, client, _) = pair().await;
    let err = client.panics(0).await.unwrap_err();
    assert!(
        matches!(&err, Error::Server(e) if e.status() == 500),
        "{err}"
    );
    assert_eq!(client.panics(3).await.unwrap(), 3);
    assert_eq!(client.get_user(1).await.unwrap().id, 1);
    assert_eq!(service.calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn an_unverified_server_serves_without_a_caller() {
    let router = DirectoryServer::new(DirectoryImpl::default())
        .unverified()
        .into_router();
    let url = serve(router).await;
    let text = reqwest::get(format!("{url}/users/5"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let body: User = serde_json::from_str(&text).unwrap();
    assert_eq!(body.id, 5);
    // `caller()` panics there, which the server turns into a 500.
    let status = reqwest::get(format!("{url}/whoami"))
        .await
        .unwrap()
        .status();
    assert_eq!(status, 500);
    // The body limit holds without verification too.
    let small = DirectoryServer::new(DirectoryImpl::default())
        .unverified()
        .max_body_bytes(64)
        .into_router();
    let url = serve(small).await;
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(100));
    let status = reqwest::Client::new()
        .post(format!("{url}/users"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 413);
}

#[tokio::test]
async fn the_router_merges_with_other_routes() {
    let router = DirectoryServer::new(DirectoryImpl::default())
        .verifier(Verifier::new().service("billing", SECRET))
        .into_router()
        .route("/health", axum::routing::get(|| async { "ok" }));
    let url = serve(router).await;
    let health = reqwest::get(format!("{url}/health")).await.unwrap();
    assert_eq!(health.text().await.unwrap(), "ok");
}

#[tokio::test]
async fn every_error_constructor_comes_back_as_its_variant_and_message() {
    let (_, client, _) = pair().await;
    for (kind, sent, is_variant) in comms_tests::built_errors() {
        let received = client.fail(kind).await.unwrap_err();
        assert!(is_variant(&received), "{kind}: {received}");
        assert_eq!(received.status(), sent.status(), "{kind}");
        assert_eq!(
            received.http_error().and_then(|e| e.message()),
            sent.http_error().and_then(|e| e.message()),
            "{kind}"
        );
    }
}

#[tokio::test]
async fn a_returned_response_is_sent_as_it_is() {
    let (_, client, _) = pair().await;
    let head = client.exists(42).await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["x-exists"], "42");
    let raw = client.raw().await.unwrap();
    assert_eq!(raw.status(), 201);
    assert_eq!(raw.headers()["x-kind"], "raw");
    assert_eq!(raw.bytes().as_ref(), b"\x00bytes");
}

/// A TCP proxy to `upstream` that, on its first connection, lets the request through and then
/// drops the connection as the response starts to come back: the method ran, its answer is lost.
async fn losing_first_answer(upstream: String) -> (String, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let upstream = upstream.trim_start_matches("http://").to_owned();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        let mut first = true;
        loop {
            let (mut client, _) = listener.accept().await.unwrap();
            counted.fetch_add(1, Ordering::SeqCst);
            let mut server = tokio::net::TcpStream::connect(&upstream).await.unwrap();
            if std::mem::take(&mut first) {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    let n = client.read(&mut buf).await.unwrap();
                    server.write_all(&buf[..n]).await.unwrap();
                    // Wait for the answer to start, then drop both sides unanswered.
                    let _ = server.read(&mut buf).await;
                });
            } else {
                tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
            }
        }
    });
    (format!("http://{addr}"), connections)
}

#[tokio::test]
async fn a_retried_idempotent_post_whose_answer_was_lost_runs_once() {
    let (service, _, url) = pair().await;
    let (proxy, connections) = losing_first_answer(url).await;
    let retry = RetryConfig::default()
        .base_delay(std::time::Duration::from_millis(10))
        .max_retries(2);
    let client = client_of(&proxy, SECRET, retry);
    // The first attempt runs the method (n = 1) and loses its answer; the retry, with the same
    // Idempotency-Key, gets that answer instead of running it again.
    assert_eq!(client.order("book").await.unwrap(), 1);
    assert_eq!(
        service.calls.load(Ordering::SeqCst),
        1,
        "the method ran once"
    );
    assert_eq!(
        connections.load(Ordering::SeqCst),
        2,
        "the first answer was lost, and the call retried"
    );
    // Another call is another key: it runs.
    assert_eq!(client.order("pen").await.unwrap(), 2);
}

#[tokio::test]
async fn an_idempotency_key_reused_or_still_running_is_refused() {
    let (service, _, url) = pair().await;
    let exec = comms_tests::plain_executor(&url, "billing", SECRET);
    let order = |item: &str, key: &str| {
        Call::post("/orders")
            .header("Idempotency-Key", key)
            .idempotent(true)
            .json(item)
    };
    let first = exec.execute(order("book", "k-1")).await.unwrap();
    let again = exec.execute(order("book", "k-1")).await.unwrap();
    assert_eq!(first.bytes(), again.bytes(), "the same answer");
    assert_eq!(service.calls.load(Ordering::SeqCst), 1);
    // The same key for another body: 422.
    let err = exec.execute(order("pen", "k-1")).await.unwrap_err();
    assert!(matches!(err, Error::UnprocessableEntity(_)), "{err}");
    // The same key while the first request still runs: 409.
    let slow = tokio::spawn({
        let exec = exec.clone();
        async move { exec.execute(order("slow", "k-2")).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let err = exec.execute(order("slow", "k-2")).await.unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err}");
    slow.await.unwrap().unwrap();
    assert_eq!(service.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_retry_after_from_a_method_is_honoured_by_the_client() {
    let (service, _, url) = pair().await;
    let retry = RetryConfig::default().base_delay(std::time::Duration::from_millis(1));
    let client = client_of(&url, SECRET, retry);
    let started = std::time::Instant::now();
    assert_eq!(
        client.busy().await.unwrap(),
        2,
        "the second attempt succeeds"
    );
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "the client waited the Retry-After the method asked for"
    );
    assert_eq!(service.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_optional_result_is_none_for_a_404_and_every_other_error_stays_one() {
    let (service, client, _) = pair().await;
    assert_eq!(
        client.maybe(1).await.unwrap(),
        Some(User {
            id: 1,
            name: "one".into()
        })
    );
    assert_eq!(
        client.maybe(2).await.unwrap(),
        None,
        "None is served as a 404"
    );
    assert!(matches!(client.maybe(0).await, Err(Error::Forbidden(_))));
    assert!(matches!(client.maybe(3).await, Err(Error::Server(_))));
    assert_eq!(service.calls.load(Ordering::SeqCst), 4);
    // A 404 from any server is `None` to the client.
    let elsewhere = comms_tests::TestServer::always(comms_tests::Reply::status(404)).await;
    let client = client_of(&elsewhere.url(), SECRET, RetryConfig::none());
    assert_eq!(client.maybe(1).await.unwrap(), None);
}
