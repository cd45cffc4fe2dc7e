//! A `#[body(raw)]` is bytes or text, sent as they are: anything else is refused at its type.

use comms::{Error, service_client};

#[derive(serde::Serialize)]
pub struct Photo {
    pub name: String,
}

#[service_client(base_url = "http://users:8080", service_id = "a", secret_env = "S")]
pub trait Uploads {
    #[put("/photo")]
    async fn not_bytes(&self, #[body(raw)] photo: &Photo) -> Result<(), Error>;

    #[put("/number")]
    async fn number(&self, #[body(raw)] n: u64) -> Result<(), Error>;
}

fn main() {}
