//! An optional or repeated query value whose item type cannot be sent is reported at the
//! argument's type, once per argument, not at the attribute.

use comms::{Error, service_client};

pub struct Filter;

#[service_client(base_url = "http://users:8080", service_id = "billing", secret_env = "S")]
pub trait Users {
    #[get("/users")]
    async fn optional(&self, #[query] filter: Option<Filter>) -> Result<(), Error>;

    #[get("/users")]
    async fn repeated(&self, #[query] filters: Vec<Filter>) -> Result<(), Error>;
}

fn main() {}
