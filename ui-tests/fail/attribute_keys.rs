//! `#[service_client]`'s keys written as other clients write them, and missing: one error each.

use comms::{Error, service_client};

#[service_client]
pub trait Bare {
    #[get("/a")]
    async fn a(&self) -> Result<(), Error>;
}

#[service_client(base_url = "http://users:8080", service-id = "billing", secret_env = "S")]
pub trait Dashed {
    #[get("/a")]
    async fn a(&self) -> Result<(), Error>;
}

#[service_client("http://users:8080", service_id = "billing", secret_env = "S")]
pub trait Positional {
    #[get("/a")]
    async fn a(&self) -> Result<(), Error>;
}

#[service_client(base_url = "http://users:8080", service_id = "billing", secret = "hunter2")]
pub trait Literal {
    #[get("/a")]
    async fn a(&self) -> Result<(), Error>;
}

#[service_client(base_url = "http://users:8080", service_id = "billing", secret_env = "S")]
impl Literal for () {
    #[get("/a")]
    async fn a(&self) -> Result<(), Error> {
        Ok(())
    }
}

fn main() {}
