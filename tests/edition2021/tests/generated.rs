//! The generated client in a Rust 2021 crate. The macro's output is compiled in the user's
//! edition, and 2021 differs from 2024 in what `impl Trait` captures; the workspace's other
//! crates are 2024. Checked here: methods that take references, futures awaited after their
//! arguments were built, a call spawned onto the runtime, and the request and response shapes
//! (a borrowed flattened query, a form, a `ResponseValue`, a streamed body, a per-call view).

use comms::{service_client, Error};
use comms_tests::{Reply, TestServer};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Debug, Deserialize, Serialize, PartialEq)]
pub struct User {
    pub id: u64,
    pub name: String,
}

/// Owned, so that it can also be the body a generated server parses (a workspace build turns
/// the `server` feature on for every crate in it).
#[derive(Deserialize, Serialize)]
pub struct NewUser {
    pub name: String,
}

#[derive(Deserialize, Serialize)]
pub struct Filter {
    pub name: Option<String>,
    pub tag: Vec<String>,
}

#[service_client(
    base_url = "http://127.0.0.1:9",
    service_id = "billing",
    secret_env = "COMMS_EDITION2021_SECRET"
)]
pub trait Users {
    #[get("/teams/<team>/users/<id>")]
    async fn get_user(
        &self,
        team: &str,
        id: u64,
        #[query] fields: &str,
        #[header("X-Request-Id")] request_id: Option<&str>,
    ) -> Result<User, Error>;

    #[post("/files/<path..>")]
    async fn upload(&self, path: &str, #[body] user: &NewUser) -> Result<(), Error>;

    #[get("/search")]
    async fn search(
        &self,
        #[query(flatten)] filter: &Filter,
        #[query] page: &str,
    ) -> Result<comms::ResponseValue<Vec<User>>, Error>;

    #[post("/sessions")]
    async fn login(&self, #[form] user: &NewUser) -> Result<(), Error>;

    #[get("/export/<name>")]
    async fn export(&self, name: &str) -> Result<comms::ByteStream, Error>;
}

#[tokio::test]
async fn generated_calls_borrow_their_arguments_and_can_be_spawned() {
    let server = TestServer::start(|r, _| {
        if r.method == "GET" {
            Reply::ok_json(json!({"id": 7, "name": "Ada"}))
        } else {
            Reply::status(204)
        }
    })
    .await;
    let users = UsersClient::builder()
        .base_url(server.url())
        .secret("edition-2021")
        .build()
        .unwrap();

    // Arguments that live shorter than the client, and a future awaited after they are built.
    let team = String::from("core team");
    let future = users.get_user(&team, 7, "name,id", Some("req-1"));
    let user = future.await.unwrap();
    assert_eq!(
        user,
        User {
            id: 7,
            name: "Ada".into()
        }
    );

    let name = String::from("Grace");
    users.upload("a/b.json", &NewUser { name }).await.unwrap();

    // A spawned call needs a `Send + 'static` future: the client moves into the task.
    let spawned = tokio::spawn(async move { users.get_user("x", 1, "id", None).await });
    assert_eq!(spawned.await.unwrap().unwrap().id, 7);

    let seen = server.requests();
    assert_eq!(seen.len(), 3);
    assert_eq!(
        seen[0].uri.to_string(),
        "/teams/core%20team/users/7?fields=name%2Cid"
    );
    assert_eq!(seen[0].header("x-request-id"), Some("req-1"));
    assert_eq!(seen[1].uri.path(), "/files/a/b.json");
    assert_eq!(seen[1].body.as_ref(), br#"{"name":"Grace"}"#);
    assert!(seen[2].header("x-request-id").is_none());
}

#[tokio::test]
async fn request_and_response_shapes_borrow_their_arguments_too() {
    let server = TestServer::start(|r, _| match r.uri.path() {
        "/search" => Reply::ok_json(json!([{"id": 1, "name": "Ada"}])).header("x-total", "1"),
        "/export/all" => Reply::ok_json(json!({"rows": 3})),
        _ => Reply::status(204),
    })
    .await;
    let users = UsersClient::builder()
        .base_url(server.url())
        .secret("edition-2021")
        .build()
        .unwrap();
    let view = users.with(comms::CallOptions::new().header("x-tenant", "acme"));

    let found = {
        let filter = Filter {
            name: Some(String::from("Ada")),
            tag: vec![String::from("a"), String::from("b")],
        };
        let page = String::from("1");
        view.search(&filter, &page).await.unwrap()
    };
    assert_eq!(found.headers()["x-total"], "1");
    assert_eq!(found[0].name, "Ada");

    let name = String::from("Grace");
    view.login(&NewUser { name }).await.unwrap();

    let mut body = {
        let which = String::from("all");
        view.export(&which).await.unwrap()
    };
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next_chunk().await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(bytes, br#"{"rows":3}"#);

    let seen = server.requests();
    assert_eq!(
        seen[0].uri.to_string(),
        "/search?name=Ada&tag=a&tag=b&page=1"
    );
    assert_eq!(seen[1].body.as_ref(), b"name=Grace");
    assert!(seen.iter().all(|r| r.header("x-tenant") == Some("acme")));
}
