//! `crate` takes a string literal naming a path, once.

use comms::{Error, service_client};

#[service_client(base_url = "http://a:8080", service_id = "b", secret_env = "S", crate = rpc)]
pub trait Unquoted {
    #[get("/a")]
    async fn a(&self) -> Result<(), Error>;
}

#[service_client(base_url = "http://a:8080", service_id = "b", secret_env = "S", crate = "a b")]
pub trait NoPath {
    #[get("/a")]
    async fn a(&self) -> Result<(), Error>;
}

#[service_client(
    base_url = "http://a:8080",
    service_id = "b",
    secret_env = "S",
    crate = "comms",
    crate = "rpc"
)]
pub trait Twice {
    #[get("/a")]
    async fn a(&self) -> Result<(), Error>;
}

#[service_client(base_url = "http://a:8080", service_id = "b", secret_env = "S", crate)]
pub trait Bare {
    #[get("/a")]
    async fn a(&self) -> Result<(), Error>;
}

fn main() {}
