//! A query argument's shape is read from its type as written: an alias of a list is taken for
//! one value, which a list cannot be; the note says to write the type out.

use comms::{Error, service_client};

pub type Ids = Vec<u64>;

#[service_client(base_url = "http://a:8080", service_id = "b", secret_env = "S")]
pub trait Lookup {
    #[get("/items")]
    async fn items(&self, #[query] ids: Ids) -> Result<(), Error>;
}

fn main() {}
