//! A trait whose methods return streams is served: the implementation builds its streams by
//! hand, from an iterator or from any `Stream`.

use comms::verify::Verifier;
use comms::{ByteStream, Error, JsonLines, service_client};
use serde::{Deserialize, Serialize};

#[derive(Deserialize, Serialize)]
pub struct Event {
    pub id: u64,
}

#[service_client(base_url = "http://events:8080", service_id = "billing", secret_env = "S")]
pub trait Events {
    #[get("/exports/<id>")]
    async fn export(&self, id: u64) -> Result<ByteStream, Error>;

    #[post("/events")]
    async fn search(&self, #[body] q: &str, #[query] limit: Option<u32>)
    -> Result<JsonLines<Event>, Error>;
}

#[derive(Clone)]
struct EventsImpl;

impl Events for EventsImpl {
    async fn export(&self, id: u64) -> Result<ByteStream, Error> {
        Ok(ByteStream::from_chunks(std::iter::repeat_n(&b"block"[..], id as usize)))
    }

    async fn search(&self, _q: &str, limit: Option<u32>) -> Result<JsonLines<Event>, Error> {
        let limit = u64::from(limit.unwrap_or(10));
        Ok(JsonLines::from_items((0..limit).map(|id| Event { id })))
    }
}

fn main() {
    let _router: axum::Router = EventsServer::new(EventsImpl)
        .verifier(Verifier::new().service("billing", "s"))
        .into_router();
}
