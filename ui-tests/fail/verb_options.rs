//! Verb attributes written short or with values of another kind: each is reported at the
//! attribute it is in, not at `#[service_client]`, and a `timeout_ms` with a unit is refused
//! rather than read as that many milliseconds.

use comms::{Error, service_client};

#[service_client(base_url = "http://users:8080", service_id = "billing", secret_env = "S")]
pub trait Users {
    #[get()]
    async fn empty(&self) -> Result<(), Error>;

    #[get("/a", timeout_ms =)]
    async fn no_value(&self) -> Result<(), Error>;

    #[get("/b", timeout_ms)]
    async fn alone(&self) -> Result<(), Error>;

    #[get("/c", timeout_ms = 5s)]
    async fn with_unit(&self) -> Result<(), Error>;

    #[get("/d", timeout_ms = "500")]
    async fn quoted(&self) -> Result<(), Error>;

    #[get("/e", timeout = std::time::Duration::from_secs(5))]
    async fn duration(&self) -> Result<(), Error>;

    #[post("/f", idempotent =)]
    async fn idempotent_value(&self) -> Result<(), Error>;

    #[get("/g", timeout_ms = 1000u8)]
    async fn too_large_for_its_type(&self) -> Result<(), Error>;
}

fn main() {}
