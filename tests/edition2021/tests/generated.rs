//! The generated client in a Rust 2021 crate. The macro's output is compiled in the user's
//! edition, and 2021 differs from 2024 in what `impl Trait` captures; the workspace's other
//! crates are 2024. Checked here: methods that take references, futures awaited after their
//! arguments were built, and a call spawned onto the runtime.

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
