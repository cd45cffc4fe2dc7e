//! With the `server` feature, every argument must be parsable back and every result
//! serializable: each unmet bound is reported at the argument's or the result's type.

use comms::{Error, service_client};
use serde::Serialize;

/// Displays, so the client can send it, but cannot be parsed back.
pub struct Shown;

impl std::fmt::Display for Shown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("shown")
    }
}

/// Serializes, so the client can send it, but cannot be deserialized.
#[derive(Serialize)]
pub struct SendOnly {
    pub name: String,
}

/// Only decodable, so the client can receive it, but the server cannot answer with it.
#[derive(serde::Deserialize)]
pub struct ReceiveOnly {
    pub id: u64,
}

#[service_client(base_url = "http://users:8080", service_id = "billing", secret_env = "S")]
pub trait Users {
    #[get("/users/<id>")]
    async fn by_path(&self, id: Shown) -> Result<(), Error>;

    #[get("/users")]
    async fn by_query(&self, #[query] q: Shown) -> Result<(), Error>;

    #[get("/me")]
    async fn by_header(&self, #[header("X-Thing")] thing: Shown) -> Result<(), Error>;

    #[post("/users")]
    async fn by_body(&self, #[body] user: &SendOnly) -> Result<(), Error>;

    #[get("/one")]
    async fn returning(&self) -> Result<ReceiveOnly, Error>;
}

fn main() {}
