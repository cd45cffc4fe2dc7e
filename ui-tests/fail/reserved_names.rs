//! `executor` and `with` are the generated client's own methods: a service method of either
//! name would be hidden by them, so it is refused at its name.

use comms::{Error, service_client};

#[service_client(base_url = "http://users:8080", service_id = "billing", secret_env = "S")]
pub trait Users {
    #[get("/executor")]
    async fn executor(&self) -> Result<(), Error>;

    #[get("/with/<id>")]
    async fn with(&self, id: u64) -> Result<(), Error>;
}

fn main() {}
