//! With the `server` feature, the items of a returned `JsonLines<T>` are sent as JSON: a `T`
//! that cannot be serialized is reported at `T`.

use comms::{Error, JsonLines, service_client};

/// Only decodable, so the client can receive it, but the server cannot send it.
#[derive(serde::Deserialize)]
pub struct ReceiveOnly {
    pub id: u64,
}

#[service_client(base_url = "http://events:8080", service_id = "billing", secret_env = "S")]
pub trait Events {
    #[get("/events")]
    async fn events(&self) -> Result<JsonLines<ReceiveOnly>, Error>;
}

fn main() {}
