//! A `where` clause or a named lifetime is reported at it, in words that say what to write.

use comms::{Error, service_client};

#[service_client(base_url = "http://users:8080", service_id = "billing", secret_env = "S")]
pub trait Bounded
where
    Self: Send + Sync,
{
    #[get("/a")]
    async fn a(&self) -> Result<(), Error>;
}

#[service_client(base_url = "http://users:8080", service_id = "billing", secret_env = "S")]
pub trait Users {
    #[get("/a")]
    async fn bounded(&self) -> Result<(), Error>
    where
        Self: Sync;

    #[get("/users/<id>")]
    async fn named<'a>(&'a self, id: &'a str) -> Result<(), Error>;
}

fn main() {}
