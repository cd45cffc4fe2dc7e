//! Generated clients against a loopback server that checks method, path, query, headers, body
//! and signature of everything it receives.

use std::time::Duration;

use comms::verify::Verifier;
use comms::{Error, RetryConfig, service_client};
use comms_tests::{Recorded, Reply, TestServer};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Debug, Deserialize, Serialize, PartialEq)]
pub struct User {
    pub id: u64,
    pub name: String,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct NewUser {
    pub name: String,
}

/// The users service.
#[service_client(
    base_url = "http://127.0.0.1:9",
    service_id = "billing",
    secret_env = "COMMS_TEST_USERS_SECRET",
    base_url_env = "COMMS_TEST_USERS_URL",
    key_id_env = "COMMS_TEST_USERS_KEY_ID"
)]
pub trait Users {
    /// One user.
    #[get("/users/<id>")]
    async fn get_user(&self, id: u64) -> Result<User, Error>;

    #[get("/users")]
    async fn list(
        &self,
        #[query] page: u32,
        #[query(rename = "per-page")] per_page: Option<u32>,
        #[query] tag: Vec<String>,
    ) -> Result<Vec<User>, Error>;

    #[post("/users", idempotent)]
    async fn create(&self, #[body] user: &NewUser) -> Result<User, Error>;

    #[post("/users/plain")]
    async fn create_plain(&self, #[body] user: &NewUser) -> Result<User, Error>;

    #[put("/users/<id>", timeout_ms = 300)]
    async fn replace(&self, id: u64, #[body] user: &NewUser) -> Result<(), Error>;

    #[patch("/users/<id>")]
    async fn rename(&self, id: u64, #[body] user: &NewUser) -> Result<(), Error>;

    #[delete("/users/<id>")]
    async fn delete(&self, id: u64) -> Result<(), Error>;

    #[head("/users/<id>")]
    async fn exists(&self, id: u64) -> Result<comms::Response, Error>;

    #[get("/files/<path..>")]
    async fn file(&self, path: &str) -> Result<comms::Response, Error>;

    #[get("/me")]
    async fn me(
        &self,
        #[header("X-Request-Id")] request_id: &str,
        #[header("X-Tenant")] tenant: Option<String>,
    ) -> Result<User, Error>;

    #[get("/orgs/<org>/teams/<type>/")]
    async fn teams(
        &self,
        org: &str,
        r#type: &str,
        #[query] ids: &[u32],
    ) -> Result<serde_json::Value, Error>;

    #[get("/")]
    async fn root(&self) -> Result<(), Error>;
}

const SECRET: &str = "users-secret";

fn client(server: &TestServer) -> UsersClient {
    test_defaults(UsersClient::builder().base_url(server.url()))
        .build()
        .unwrap()
}

/// Settings shared by every client of these tests, for a builder of any generated client: a
/// helper written without naming a bound, as a fleet's shared defaults are.
fn test_defaults<C>(builder: comms::ClientBuilder<C>) -> comms::ClientBuilder<C> {
    builder
        .secret(SECRET)
        .retry(RetryConfig::default().base_delay(Duration::from_millis(1)))
        .breaker(comms::BreakerConfig::disabled())
}

async fn assert_signed(r: &Recorded) {
    let verifier = Verifier::new().service("billing", SECRET);
    let caller = verifier
        .verify(&r.method, &r.uri, &r.headers, &r.body)
        .await
        .unwrap_or_else(|e| panic!("{} {} failed verification: {e}", r.method, r.uri));
    assert_eq!(caller.service_id(), "billing");
}

fn echo_user(r: &Recorded, _: usize) -> Reply {
    match r.method.as_str() {
        "HEAD" | "DELETE" | "PUT" | "PATCH" => Reply::status(204),
        "POST" => Reply::json(201, json!({"id": 1, "name": "new"})),
        _ if r.uri.path() == "/users" => Reply::ok_json(json!([{"id": 1, "name": "a"}])),
        _ if r.uri.path().starts_with("/orgs") || r.uri.path().starts_with("/files") => {
            Reply::ok_json(json!({"ok": true}))
        }
        _ => Reply::ok_json(json!({"id": 7, "name": "ada"})),
    }
}

#[tokio::test]
async fn every_method_kind_reaches_the_wire_as_declared() {
    let server = TestServer::start(echo_user).await;
    let users = client(&server);
    let new = NewUser { name: "new".into() };

    assert_eq!(
        users.get_user(7).await.unwrap(),
        User {
            id: 7,
            name: "ada".into()
        }
    );
    assert_eq!(
        users
            .list(2, Some(50), vec!["a b".into(), "c".into()])
            .await
            .unwrap()
            .len(),
        1
    );
    users.list(1, None, vec![]).await.unwrap();
    assert_eq!(users.create(&new).await.unwrap().name, "new");
    users.create_plain(&new).await.unwrap();
    users.replace(7, &new).await.unwrap();
    users.rename(7, &new).await.unwrap();
    users.delete(7).await.unwrap();
    assert_eq!(users.exists(7).await.unwrap().status(), 204);
    users.file("docs/r\u{e9}sum\u{e9} 1.pdf").await.unwrap();
    users.me("req-1", Some("acme".into())).await.unwrap();
    users.me("req-2", None).await.unwrap();
    users.teams("a/b", "x?y", &[3, 1]).await.unwrap();
    users.root().await.unwrap();

    let seen = server.requests();
    let lines: Vec<String> = seen
        .iter()
        .map(|r| format!("{} {}", r.method, r.uri))
        .collect();
    assert_eq!(
        lines,
        [
            "GET /users/7",
            "GET /users?page=2&per-page=50&tag=a%20b&tag=c",
            "GET /users?page=1",
            "POST /users",
            "POST /users/plain",
            "PUT /users/7",
            "PATCH /users/7",
            "DELETE /users/7",
            "HEAD /users/7",
            "GET /files/docs/r%C3%A9sum%C3%A9%201.pdf",
            "GET /me",
            "GET /me",
            "GET /orgs/a%2Fb/teams/x%3Fy/?ids=3&ids=1",
            "GET /",
        ]
    );
    for r in &seen {
        assert_signed(r).await;
        assert!(
            r.header("signature-input")
                .unwrap()
                .contains(r#";keyid="billing";"#)
        );
    }
    // Bodies are JSON with a content type; bodiless requests carry none.
    assert_eq!(&seen[3].body[..], br#"{"name":"new"}"#);
    assert_eq!(seen[3].header("content-type"), Some("application/json"));
    assert!(seen[0].body.is_empty() && seen[0].header("content-type").is_none());
    // Only the POST marked idempotent carries a key.
    let key = seen[3]
        .header("idempotency-key")
        .expect("idempotent POST has a key");
    assert_eq!(key.len(), 32);
    assert!(seen[4].header("idempotency-key").is_none());
    assert!(
        seen[5].header("idempotency-key").is_none(),
        "PUT needs no key"
    );
    // Headers: required and optional.
    assert_eq!(seen[10].header("x-request-id"), Some("req-1"));
    assert_eq!(seen[10].header("x-tenant"), Some("acme"));
    assert_eq!(seen[11].header("x-request-id"), Some("req-2"));
    assert!(seen[11].header("x-tenant").is_none());
}

#[tokio::test]
async fn path_values_cannot_change_the_route() {
    let server = TestServer::start(echo_user).await;
    let users = client(&server);
    for bad in ["..", "."] {
        let err = users.teams(bad, "t", &[]).await.unwrap_err();
        assert!(matches!(err, Error::Encode { .. }), "{bad}: {err}");
        let err = users.file(&format!("a/{bad}/b")).await.unwrap_err();
        assert!(matches!(err, Error::Encode { .. }), "{bad}: {err}");
    }
    let err = users.teams("", "t", &[]).await.unwrap_err();
    assert!(matches!(err, Error::Encode { .. }));
    users.teams("../admin", "#frag", &[]).await.unwrap();
    assert_eq!(server.count(), 1, "refused calls are never sent");
    assert_eq!(
        server.requests()[0].uri.path(),
        "/orgs/..%2Fadmin/teams/%23frag/"
    );
}

#[tokio::test]
async fn header_injection_is_refused_before_sending() {
    let server = TestServer::start(echo_user).await;
    let users = client(&server);
    // White space at either end would arrive stripped, the value changed in transit; a
    // signature base holds ASCII only (RFC 9421 §2.5), and other verifiers refuse one without.
    for bad in [
        "a\r\nX-Evil: 1",
        "a\nb",
        "a\rb",
        " a",
        "a\t",
        " ",
        "Zo\u{eb}",
    ] {
        let err = users.me(bad, None).await.unwrap_err();
        assert!(matches!(err, Error::Encode { .. }), "{bad:?}: {err}");
        if bad.is_ascii() {
            assert!(!err.to_string().contains("ASCII"), "{err}");
        } else {
            assert!(err.to_string().contains("outside ASCII"), "{err}");
        }
        let err = users.me("ok", Some(bad.into())).await.unwrap_err();
        assert!(matches!(err, Error::Encode { .. }), "{bad:?}: {err}");
    }
    assert_eq!(server.count(), 0);
}

#[tokio::test]
async fn idempotent_post_is_retried_with_one_key_and_plain_post_is_not() {
    let server = TestServer::start(|r, _| {
        if r.uri.path() == "/users" && r.method == "POST" {
            // Fail the first two attempts of the idempotent call.
            static SEEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            if SEEN.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
                return Reply::status(503);
            }
            return Reply::json(201, json!({"id": 1, "name": "new"}));
        }
        Reply::status(503)
    })
    .await;
    let users = client(&server);
    let new = NewUser { name: "new".into() };
    users.create(&new).await.unwrap();
    let attempts = server.requests();
    assert_eq!(attempts.len(), 3);
    let keys: std::collections::HashSet<_> = attempts
        .iter()
        .map(|r| r.header("idempotency-key").unwrap().to_owned())
        .collect();
    assert_eq!(keys.len(), 1, "one key across attempts");
    let nonces: std::collections::HashSet<_> = attempts
        .iter()
        .map(|r| r.nonce().unwrap().to_owned())
        .collect();
    assert_eq!(nonces.len(), 3, "each attempt signed afresh");

    let err = users.create_plain(&new).await.unwrap_err();
    assert!(matches!(err, Error::Server(_)), "{err}");
    assert_eq!(server.count(), 4, "a plain POST is sent once");
}

#[tokio::test]
async fn per_method_timeout_applies() {
    let server = TestServer::always(Reply::status(204).delay(Duration::from_secs(2))).await;
    let users = UsersClient::builder()
        .base_url(server.url())
        .secret(SECRET)
        .retry(RetryConfig::none())
        .breaker(comms::BreakerConfig::disabled())
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let err = users
        .replace(1, &NewUser { name: "x".into() })
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Timeout { after, .. } if after == Duration::from_millis(300)),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_millis(1500));
}

/// `UsersClient::new()` reads `secret_env`, `base_url_env` and `key_id_env`. Setting variables is `unsafe` in
/// edition 2024 (and this workspace forbids `unsafe`), so the test runs itself in a child
/// process with the variables set, against a server in this process.
#[tokio::test]
async fn new_reads_the_environment() {
    if std::env::var_os("COMMS_TEST_ENV_CHILD").is_some() {
        let users = UsersClient::new().expect("built from the environment");
        assert!(!format!("{users:?}").contains(SECRET));
        assert_eq!(users.get_user(7).await.unwrap().id, 7);
        return;
    }
    // Without the secret variable, `new` names it.
    let err = UsersClient::new().unwrap_err();
    assert!(
        matches!(&err, Error::Config { key, .. } if key == "COMMS_TEST_USERS_SECRET"),
        "{err}"
    );

    let server = TestServer::start(echo_user).await;
    let url = server.url();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args(["new_reads_the_environment", "--exact", "--nocapture"])
            .env("COMMS_TEST_ENV_CHILD", "1")
            .env("COMMS_TEST_USERS_SECRET", SECRET)
            .env("COMMS_TEST_USERS_URL", url)
            .env("COMMS_TEST_USERS_KEY_ID", "billing-2026-12")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("1 passed"), "{stdout}");
    let seen = server.requests();
    assert_eq!(
        seen.len(),
        1,
        "the child called the URL from COMMS_TEST_USERS_URL"
    );
    // Signed under the key id from COMMS_TEST_USERS_KEY_ID.
    let caller = Verifier::new()
        .key("billing-2026-12", "billing", SECRET)
        .verify(
            &seen[0].method,
            &seen[0].uri,
            &seen[0].headers,
            &seen[0].body,
        )
        .await
        .unwrap();
    assert_eq!(
        (caller.service_id(), caller.key_id()),
        ("billing", "billing-2026-12")
    );
}

/// The secret's variable set but empty is told apart from one not set; one with a line break
/// at its end (a file's) is taken as it is, and logged by the variable's name, not its value.
/// The base URL's and key id's variables set but empty (or only white space) are refused as
/// well. In a child process, as above: one for each value.
#[test]
fn a_secret_variable_set_but_empty_or_ending_in_a_line_break_is_told() {
    match std::env::var("COMMS_TEST_SECRET_CHILD").as_deref() {
        Ok("empty") => {
            let err = UsersClient::new().unwrap_err();
            assert!(
                matches!(&err, Error::Config { key, .. } if key == "COMMS_TEST_USERS_SECRET"),
                "{err}"
            );
            assert!(err.to_string().ends_with("is set, but empty"), "{err}");
            return;
        }
        Ok("empty url") | Ok("empty key id") => {
            // An optional setting's variable, set but empty, is refused too, by its name:
            // not taken for unset, which would call the attribute's base URL.
            let err = UsersClient::new().unwrap_err();
            let var = std::env::var("COMMS_TEST_EMPTY_VAR").unwrap();
            assert!(
                matches!(&err, Error::Config { key, .. } if *key == var),
                "{err}"
            );
            assert!(err.to_string().contains("is set, but empty"), "{err}");
            return;
        }
        Ok("padded") => {
            let (logs, _guard) = comms_tests::record_logs(tracing::Level::WARN);
            UsersClient::new().expect("built with the secret as it is");
            let line = logs.line("the warning", &["COMMS_TEST_USERS_SECRET", "white space"]);
            assert!(!logs.text().contains(SECRET), "{line}");
            return;
        }
        _ => {}
    }
    let children = [
        ("empty", String::new(), None),
        ("padded", format!("{SECRET}\n"), None),
        (
            "empty url",
            SECRET.to_owned(),
            Some(("COMMS_TEST_USERS_URL", "")),
        ),
        (
            "empty key id",
            SECRET.to_owned(),
            Some(("COMMS_TEST_USERS_KEY_ID", " \n")),
        ),
    ];
    for (child, secret, empty) in children {
        let mut command = std::process::Command::new(std::env::current_exe().unwrap());
        command
            .args([
                "a_secret_variable_set_but_empty_or_ending_in_a_line_break_is_told",
                "--exact",
                "--nocapture",
            ])
            .env("COMMS_TEST_SECRET_CHILD", child)
            .env("COMMS_TEST_USERS_SECRET", secret);
        if let Some((var, value)) = empty {
            command.env("COMMS_TEST_EMPTY_VAR", var).env(var, value);
        }
        let output = command.output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("1 passed"),
            "{child} child failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[tokio::test]
async fn futures_are_send_and_clients_clone() {
    let server = TestServer::start(echo_user).await;
    let users = client(&server);
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let users = users.clone();
            tokio::spawn(async move { users.get_user(i).await })
        })
        .collect();
    for h in handles {
        h.await.unwrap().unwrap();
    }
    // Generic code over the trait can spawn too.
    async fn via_trait<U: Users + Clone + Send + Sync + 'static>(u: U) -> u64 {
        tokio::spawn(async move { u.get_user(1).await.unwrap().id })
            .await
            .unwrap()
    }
    assert_eq!(via_trait(users).await, 7);
}

/// A hand-written mock implements the same trait.
struct MockUsers;

impl Users for MockUsers {
    async fn get_user(&self, id: u64) -> Result<User, Error> {
        if id == 0 {
            return Err(Error::not_found("no user 0"));
        }
        Ok(User {
            id,
            name: "mock".into(),
        })
    }
    async fn list(&self, _: u32, _: Option<u32>, _: Vec<String>) -> Result<Vec<User>, Error> {
        Ok(vec![])
    }
    async fn create(&self, _: &NewUser) -> Result<User, Error> {
        unimplemented!()
    }
    async fn create_plain(&self, _: &NewUser) -> Result<User, Error> {
        unimplemented!()
    }
    async fn replace(&self, _: u64, _: &NewUser) -> Result<(), Error> {
        Ok(())
    }
    async fn rename(&self, _: u64, _: &NewUser) -> Result<(), Error> {
        Ok(())
    }
    async fn delete(&self, _: u64) -> Result<(), Error> {
        Ok(())
    }
    async fn exists(&self, _: u64) -> Result<comms::Response, Error> {
        unimplemented!()
    }
    async fn file(&self, _: &str) -> Result<comms::Response, Error> {
        unimplemented!()
    }
    async fn me(&self, _: &str, _: Option<String>) -> Result<User, Error> {
        unimplemented!()
    }
    async fn teams(&self, _: &str, _: &str, _: &[u32]) -> Result<serde_json::Value, Error> {
        unimplemented!()
    }
    async fn root(&self) -> Result<(), Error> {
        Ok(())
    }
}

#[tokio::test]
async fn the_trait_can_be_mocked() {
    async fn name_of(users: &impl Users, id: u64) -> Result<String, Error> {
        Ok(users.get_user(id).await?.name)
    }
    assert_eq!(name_of(&MockUsers, 3).await.unwrap(), "mock");
    assert!(matches!(
        name_of(&MockUsers, 0).await,
        Err(Error::NotFound(_))
    ));
}

/// A retry's warning says what went wrong underneath (the refused connection), not only the
/// kind of failure, which reads the same for a refused connection and a name that does not
/// resolve.
#[tokio::test]
async fn a_retry_warning_shows_what_went_wrong_underneath() {
    let dead = comms_tests::dead_addr().await;
    let exec = comms::Executor::builder()
        .base_url(format!("http://{dead}"))
        .service_id("billing")
        .secret(SECRET)
        .retry(comms_tests::fast_retry())
        .breaker(comms::BreakerConfig::disabled())
        .build()
        .unwrap();
    let (logs, _guard) = comms_tests::record_logs(tracing::Level::WARN);
    let err = exec.execute(comms::Call::get("/x")).await.unwrap_err();
    assert!(err.is_connect(), "{err}");
    let line = logs.line(
        "the retry warning",
        &["retrying", "could not connect for GET"],
    );
    assert!(line.contains("Connection refused"), "{line}");
}
