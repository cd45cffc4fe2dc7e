//! An argument under `#[cfg]` is refused at the attribute, and a method that is no `async fn`
//! and returns nothing is reported for those two mistakes only.

use comms::{Error, service_client};

#[service_client(base_url = "http://users:8080", service_id = "billing", secret_env = "S")]
pub trait Users {
    #[get("/search")]
    async fn search(
        &self,
        #[cfg(any())]
        #[query]
        debug: bool,
        #[query] q: u32,
    ) -> Result<u64, Error>;

    #[delete("/x")]
    fn sync_unit(&self);
}

fn main() {}
