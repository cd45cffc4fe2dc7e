//! A trait whose crate knows comms only as `rpc` (a renamed dependency): `crate = "rpc"` makes
//! the generated client and server reach it there, and comms' own types written through that
//! name (`rpc::Response`, `rpc::ByteStream`) are read as comms' own. Without the key, this
//! crate does not compile: the generated code would name `::comms`, which is not here.

use rpc::verify::Verifier;
use rpc::{Error, service_client};
use serde::{Deserialize, Serialize};

const SECRET: &str = "renamed-secret";

#[derive(Debug, PartialEq, Deserialize, Serialize)]
pub struct User {
    pub id: u64,
    pub name: String,
}

#[service_client(
    base_url = "http://127.0.0.1:9",
    service_id = "billing",
    secret_env = "COMMS_RENAMED_SECRET",
    crate = "rpc"
)]
pub trait Users {
    #[get("/users/<id>")]
    async fn get_user(&self, id: u64) -> Result<User, Error>;

    #[get("/users/<id>/raw")]
    async fn raw(&self, id: u64) -> Result<rpc::Response, rpc::Error>;

    #[get("/users/<id>/bytes")]
    async fn bytes(&self, id: u64) -> Result<rpc::ByteStream, Error>;
}

#[derive(Clone)]
struct Directory;

impl Users for Directory {
    async fn get_user(&self, id: u64) -> Result<User, Error> {
        match id {
            7 => Ok(User {
                id,
                name: "Ada".into(),
            }),
            _ => Err(Error::not_found(format!("no user {id}"))),
        }
    }

    async fn raw(&self, id: u64) -> Result<rpc::Response, Error> {
        rpc::Response::builder(rpc::http::StatusCode::CREATED)
            .body(format!("user {id}"))
            .build()
    }

    async fn bytes(&self, id: u64) -> Result<rpc::ByteStream, Error> {
        Ok(rpc::ByteStream::from_chunks([
            format!("user {id}").into_bytes()
        ]))
    }
}

#[tokio::test]
async fn a_trait_reaches_comms_under_the_name_its_crate_gives_it() {
    let router = UsersServer::new(Directory)
        .verifier(Verifier::new().service("billing", SECRET))
        .into_router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });

    let users = UsersClient::builder()
        .base_url(url)
        .secret(SECRET)
        .build()
        .unwrap();
    let ada = users.get_user(7).await.unwrap();
    assert_eq!(ada.name, "Ada");
    match users.get_user(8).await {
        Err(Error::NotFound(e)) => assert_eq!(e.message(), Some("no user 8")),
        other => panic!("{other:?}"),
    }
    let raw = users.raw(3).await.unwrap();
    assert_eq!(raw.status(), 201);
    assert_eq!(raw.text().unwrap(), "user 3");
    let mut stream = users.bytes(4).await.unwrap();
    let mut body = Vec::new();
    while let Some(chunk) = stream.next_chunk().await {
        body.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(body, b"user 4");
}
