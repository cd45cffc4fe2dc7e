//! Streams where they make no sense: a HEAD response has no body, an optional stream has no
//! `None` to give, `JsonLines` needs its item type, and an idempotent method's answer must be
//! kept whole to answer a retry.

use comms::{ByteStream, Error, JsonLines, service_client};

#[derive(serde::Deserialize)]
pub struct Event {
    pub id: u64,
}

#[service_client(base_url = "http://events:8080", service_id = "a", secret_env = "S")]
pub trait Streams {
    #[head("/exports/<id>")]
    async fn head_bytes(&self, id: u64) -> Result<ByteStream, Error>;

    #[head("/events")]
    async fn head_lines(&self) -> Result<comms::JsonLines<Event>, Error>;

    #[get("/exports/<id>")]
    async fn optional(&self, id: u64) -> Result<Option<ByteStream>, Error>;

    #[get("/events")]
    async fn optional_lines(&self) -> Result<Option<JsonLines<Event>>, Error>;

    #[get("/events")]
    async fn no_item_type(&self) -> Result<JsonLines, Error>;

    #[post("/exports", idempotent)]
    async fn export_once(&self) -> Result<ByteStream, Error>;
}

fn main() {}
