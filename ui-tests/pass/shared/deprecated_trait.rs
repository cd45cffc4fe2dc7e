// The shared body of the `deprecated_trait` pass cases: without and with the `server`
// feature.

use comms::{Error, service_client};

#[deprecated(note = "use UsersV2")]
#[service_client(base_url = "http://users:8080", service_id = "billing", secret_env = "S")]
pub trait Users {
    #[get("/users/<id>")]
    async fn user(&self, id: u64) -> Result<u64, Error>;
}
