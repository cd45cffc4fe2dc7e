//! Two methods of one name under `#[cfg]`s that can both hold are refused where they do.

use comms::{Error, service_client};

#[service_client(base_url = "http://users:8080", service_id = "billing", secret_env = "S")]
pub trait Users {
    #[cfg(all())]
    #[get("/v2/users/<id>")]
    async fn user(&self, id: u64) -> Result<u64, Error>;

    #[cfg(not(any()))]
    #[get("/v1/users/<id>")]
    async fn user(&self, id: u64) -> Result<u64, Error>;
}

fn main() {}
