//! An `unsafe` service trait: refused once, at `unsafe`, with nothing from Rust after it about
//! the client's impl.

use comms::{Error, service_client};

#[service_client(base_url = "http://users:8080", service_id = "billing", secret_env = "S")]
pub unsafe trait Users {
    #[get("/users/<id>")]
    async fn get_user(&self, id: u64) -> Result<String, Error>;
}

fn main() {}
