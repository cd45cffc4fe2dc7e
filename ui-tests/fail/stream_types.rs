//! The items of `JsonLines<T>` are decoded from JSON: a `T` that cannot be is reported at `T`.

use comms::{Error, JsonLines, service_client};

pub struct Opaque;

#[service_client(base_url = "http://events:8080", service_id = "a", secret_env = "S")]
pub trait StreamTypes {
    #[get("/events")]
    async fn events(&self) -> Result<JsonLines<Opaque>, Error>;
}

fn main() {}
