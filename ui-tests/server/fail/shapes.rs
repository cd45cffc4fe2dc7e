//! With the `server` feature, a flattened query struct and a form must be parsable back, and a
//! multipart body is a `comms::Multipart`: each unmet bound is reported at the argument's type.

use comms::{Error, service_client};
use serde::Serialize;

/// Serializes, so the client can send it, but cannot be deserialized.
#[derive(Serialize)]
pub struct SendOnly {
    pub q: String,
}

#[service_client(base_url = "http://users:8080", service_id = "billing", secret_env = "S")]
pub trait Shapes {
    #[get("/search")]
    async fn by_flattened_query(&self, #[query(flatten)] filter: &SendOnly) -> Result<(), Error>;

    #[post("/login")]
    async fn by_form(&self, #[form] login: SendOnly) -> Result<(), Error>;

    #[post("/upload")]
    async fn by_multipart(&self, #[multipart] parts: String) -> Result<(), Error>;
}

fn main() {}
