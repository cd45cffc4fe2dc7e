//! The trait is kept for mocks, and its futures can be spawned from generic code.

use comms::{Error, service_client};

#[service_client(base_url = "http://counter:8080", service_id = "a", secret_env = "S")]
pub trait Counter {
    #[get("/count/<name>")]
    async fn count(&self, name: &str) -> Result<u64, Error>;

    #[post("/count/<name>")]
    async fn bump(&self, name: &str, #[query] by: u64) -> Result<(), Error>;
}

#[derive(Clone)]
struct Fake;

impl Counter for Fake {
    async fn count(&self, _name: &str) -> Result<u64, Error> {
        Ok(3)
    }

    async fn bump(&self, _name: &str, _by: u64) -> Result<(), Error> {
        Ok(())
    }
}

async fn spawn_count<C: Counter + Clone + Send + Sync + 'static>(c: C) -> u64 {
    tokio::spawn(async move { c.count("x").await.unwrap() }).await.unwrap()
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    assert_eq!(rt.block_on(spawn_count(Fake)), 3);
    let _generic = spawn_count::<CounterClient>;
}
