//! A `#[deprecated]` trait compiles under `deny(warnings)` without an `allow` of the user's:
//! its own generated client is no use of it.

#![deny(warnings)]

use comms::{Error, service_client};

#[deprecated(note = "use UsersV2")]
#[service_client(base_url = "http://users:8080", service_id = "billing", secret_env = "S")]
pub trait Users {
    #[get("/users/<id>")]
    async fn user(&self, id: u64) -> Result<u64, Error>;
}

fn main() {}
