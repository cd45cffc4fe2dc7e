//! The generated server's own names do not capture the user's: a type named `S`, a method
//! named `clone`, and a deprecated method served under `deny(warnings)`.

#![deny(warnings)]

use comms::{Error, service_client};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct S {
    pub x: u32,
}

#[service_client(base_url = "http://repos:8080", service_id = "billing", secret_env = "S")]
pub trait Repos {
    #[post("/s")]
    async fn put_s(&self, #[body] s: &S) -> Result<S, Error>;

    #[post("/repos/<id>/clone")]
    async fn clone(&self, id: u64) -> Result<u64, Error>;

    #[deprecated(note = "use put_s")]
    #[get("/old")]
    async fn old(&self) -> Result<(), Error>;
}

#[derive(Clone)]
struct Service;

#[allow(deprecated)]
impl Repos for Service {
    async fn put_s(&self, s: &S) -> Result<S, Error> {
        Ok(s.clone())
    }

    async fn clone(&self, id: u64) -> Result<u64, Error> {
        Ok(id)
    }

    async fn old(&self) -> Result<(), Error> {
        Ok(())
    }
}

fn main() {
    let _router = ReposServer::new(Service).into_router();
}
