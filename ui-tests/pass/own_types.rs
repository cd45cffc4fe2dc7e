//! The macro knows comms' types by their path: a user's own type that ends in the same name
//! (`api::Response`) is decoded from JSON like any other, and paths through `comms::`,
//! `std::` and `core::` are comms' and the standard library's types.

use comms::{Error, service_client};

pub mod api {
    #[derive(serde::Deserialize)]
    pub struct Response {
        pub ok: bool,
    }
}

#[derive(serde::Deserialize)]
pub struct User {
    pub id: u64,
}

#[service_client(base_url = "http://users:8080", service_id = "billing", secret_env = "S")]
pub trait Users {
    #[get("/status")]
    async fn status(&self) -> Result<api::Response, Error>;

    #[get("/raw")]
    async fn raw(&self) -> ::core::result::Result<comms::Response, comms::Error>;

    #[get("/users/<id>")]
    async fn user(&self, id: u64) -> Result<std::option::Option<User>, ::comms::Error>;

    // Within a type, a bare `Response` may be the user's own (here, imported by `use`).
    #[get("/statuses/<id>")]
    async fn maybe_status(&self, id: u64) -> Result<Option<Response>, Error>;
}

/// Within a type, a bare name of comms' other types may be the user's own too.
pub mod bare {
    use super::mine::{ByteStream, JsonLines, ResponseValue};
    use comms::{Error, service_client};

    #[service_client(base_url = "http://users:8080", service_id = "billing", secret_env = "S")]
    pub trait Mine {
        #[get("/mine/a")]
        async fn a(&self) -> Result<Option<ResponseValue<u32>>, Error>;

        #[get("/mine/b")]
        async fn b(&self) -> Result<comms::ResponseValue<JsonLines>, Error>;

        #[get("/mine/c")]
        async fn c(&self) -> Result<comms::ResponseValue<ByteStream>, Error>;

        #[get("/mine/d")]
        async fn d(&self) -> Result<comms::ResponseValue<ResponseValue<u32>>, Error>;
    }
}

pub mod mine {
    #[derive(serde::Deserialize)]
    pub struct ResponseValue<T> {
        pub value: T,
    }

    #[derive(serde::Deserialize)]
    pub struct JsonLines {
        pub lines: Vec<String>,
    }

    #[derive(serde::Deserialize)]
    pub struct ByteStream(pub Vec<u8>);
}

use api::Response;

#[allow(dead_code)]
async fn use_them(users: &UsersClient) -> Result<(), Error> {
    let status: api::Response = users.status().await?;
    let raw: comms::Response = users.raw().await?;
    let user: Option<User> = users.user(1).await?;
    let maybe: Option<Response> = users.maybe_status(1).await?;
    let _ = (status.ok, raw.status(), user.map(|u| u.id), maybe.map(|r| r.ok));
    Ok(())
}

fn main() {}

/// A `Json<T>` of a crate that is no web framework (`sqlx::types::Json`, written bare once
/// imported) serializes as its value: a body and an answer like any other.
pub mod transparent_json {
    use comms::{Error, service_client};

    #[derive(serde::Serialize, serde::Deserialize)]
    #[serde(transparent)]
    pub struct Json<T>(pub T);

    pub mod types {
        pub use super::Json;
    }

    #[service_client(base_url = "http://users:8080", service_id = "billing", secret_env = "S")]
    pub trait Settings {
        #[put("/settings")]
        async fn save(&self, #[body] settings: &Json<Vec<String>>) -> Result<(), Error>;

        #[get("/settings")]
        async fn load(&self) -> Result<types::Json<Vec<String>>, Error>;
    }
}
