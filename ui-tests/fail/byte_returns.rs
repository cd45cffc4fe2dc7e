//! Bytes returned from a method, which decodes its answer from JSON: refused at the type,
//! rather than failing every call to a service that answers with the bytes themselves.

use comms::{Error, ResponseValue, service_client};

/// Stands in for the `bytes` crate's: the check reads the type as written.
mod bytes {
    pub struct Bytes;
}

#[service_client(base_url = "http://files:8080", service_id = "a", secret_env = "S")]
pub trait Files {
    #[get("/avatars/<id>")]
    async fn vec(&self, id: u64) -> Result<Vec<u8>, Error>;

    #[get("/avatars/<id>")]
    async fn optional(&self, id: u64) -> Result<Option<Vec<u8>>, Error>;

    #[get("/avatars/<id>")]
    async fn with_status(&self, id: u64) -> Result<ResponseValue<Box<[u8]>>, Error>;

    #[get("/avatars/<id>")]
    async fn bytes(&self, id: u64) -> Result<bytes::Bytes, Error>;

    #[get("/digests/<id>")]
    async fn array(&self, id: u64) -> Result<[u8; 32], Error>;

    // Not bytes: a list of numbers of another width is JSON as written, and the body as it is
    // comes as `comms::Response`.
    #[get("/numbers")]
    async fn numbers(&self) -> Result<Vec<u16>, Error>;

    #[get("/avatars/<id>")]
    async fn raw(&self, id: u64) -> Result<comms::Response, Error>;
}

fn main() {}
