//! Methods returning streams: the trait is kept for mocks, which build their streams by hand,
//! and the futures and the streams they give can be spawned from generic code.

use comms::{ByteStream, Error, JsonLines, service_client};

#[derive(Debug, PartialEq, serde::Deserialize)]
pub struct Event {
    pub id: u64,
}

#[service_client(base_url = "http://events:8080", service_id = "a", secret_env = "S")]
pub trait Events {
    #[get("/exports/<id>")]
    async fn export(&self, id: u64) -> Result<ByteStream, Error>;

    #[post("/events", timeout_ms = 500)]
    async fn search(&self, #[body] q: &str, #[query] limit: u32)
    -> Result<comms::JsonLines<Event>, Error>;

    #[put("/exports/<id>")]
    async fn replace(&self, id: u64) -> Result<ByteStream, Error>;
}

#[derive(Clone)]
struct Fake;

impl Events for Fake {
    async fn export(&self, _id: u64) -> Result<ByteStream, Error> {
        Ok(ByteStream::from_chunks(["ab", "c"]))
    }

    async fn search(&self, _q: &str, limit: u32) -> Result<JsonLines<Event>, Error> {
        Ok(JsonLines::from_items((0..u64::from(limit)).map(|id| Event { id })))
    }

    async fn replace(&self, _id: u64) -> Result<ByteStream, Error> {
        Err(Error::not_found("no export"))
    }
}

async fn spawn_read<E: Events + Clone + Send + Sync + 'static>(e: E) -> (usize, Vec<Event>) {
    let mut body = tokio::spawn(async move { e.export(1).await.unwrap() }).await.unwrap();
    // The stream itself can move to another task.
    let length = tokio::spawn(async move {
        let mut length = 0;
        while let Some(chunk) = body.next_chunk().await {
            length += chunk.unwrap().len();
        }
        length
    });
    let mut events = Fake.search("x", 2).await.unwrap();
    let mut got = Vec::new();
    while let Some(event) = events.next_item().await {
        got.push(event.unwrap());
    }
    (length.await.unwrap(), got)
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (length, events) = rt.block_on(spawn_read(Fake));
    assert_eq!(length, 3);
    assert_eq!(events, [Event { id: 0 }, Event { id: 1 }]);
    let _generic = spawn_read::<EventsClient>;
}
