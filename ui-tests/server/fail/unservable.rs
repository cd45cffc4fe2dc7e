//! With the `server` feature, an argument the client can send but the server cannot hand
//! over (an `impl Trait`, a `'static` reference) is refused at its type.

use comms::{Error, service_client};

#[service_client(base_url = "http://users:8080", service_id = "billing", secret_env = "S")]
pub trait Users {
    #[get("/users/<id>")]
    async fn by_display(&self, id: impl std::fmt::Display + Send + Sync) -> Result<(), Error>;

    #[get("/by-dyn/<id>")]
    async fn by_dyn(&self, id: &(dyn std::fmt::Display + Send + Sync)) -> Result<(), Error>;

    #[get("/names/<name>")]
    async fn by_static(&self, name: &'static str) -> Result<(), Error>;
}

fn main() {}
