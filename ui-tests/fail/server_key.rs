//! `server` takes `true` or `false`, once.

use comms::{Error, service_client};

#[service_client(base_url = "http://a:8080", service_id = "b", secret_env = "S", server = "no")]
pub trait Quoted {
    #[get("/a")]
    async fn a(&self) -> Result<(), Error>;
}

#[service_client(base_url = "http://a:8080", service_id = "b", secret_env = "S", server)]
pub trait Bare {
    #[get("/a")]
    async fn a(&self) -> Result<(), Error>;
}

#[service_client(
    base_url = "http://a:8080",
    service_id = "b",
    secret_env = "S",
    server = false,
    server = true
)]
pub trait Twice {
    #[get("/a")]
    async fn a(&self) -> Result<(), Error>;
}

#[service_client(base_url = "http://a:8080", service_id = "b", secret_env = "S", servr = false)]
pub trait Misspelt {
    #[get("/a")]
    async fn a(&self) -> Result<(), Error>;
}

fn main() {}
