//! Bytes given as a `#[body]`, which is JSON: refused at the type, rather than sent as an array
//! of numbers to a service expecting the bytes.

use comms::{Error, service_client};

/// Stands in for the `bytes` crate's: the check reads the type as written.
mod bytes {
    pub struct Bytes;
}

#[service_client(base_url = "http://users:8080", service_id = "a", secret_env = "S")]
pub trait Uploads {
    #[post("/blobs")]
    async fn slice(&self, #[body] data: &[u8]) -> Result<(), Error>;

    #[post("/blobs")]
    async fn vec(&self, #[body] data: Vec<u8>) -> Result<(), Error>;

    #[put("/blobs")]
    async fn array(&self, #[body] data: &[u8; 16]) -> Result<(), Error>;

    #[put("/blobs")]
    async fn boxed(&self, #[body] data: Box<[u8]>) -> Result<(), Error>;

    #[patch("/blobs")]
    async fn bytes(&self, #[body] data: bytes::Bytes) -> Result<(), Error>;

    // Not bytes: a list of numbers of another width is JSON as written.
    #[post("/numbers")]
    async fn numbers(&self, #[body] data: &[u16]) -> Result<(), Error>;
}

fn main() {}
