//! An argument under `#[cfg]` (or given `#[query]` by a `#[cfg_attr]`) is refused at the
//! attribute; a method that is no `async fn` and returns nothing, and one naming a lifetime,
//! are reported for their own mistakes only.

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

    #[get("/y")]
    async fn under_cfg_attr(
        &self,
        #[cfg_attr(all(), query)] q: u32,
        #[cfg_attr(all(), r#cfg(any()))] r: u32,
    ) -> Result<u64, Error>;

    #[get("/z")]
    async fn lifetime<'x>(&'x self) -> Result<&'x str, Error>;
}

fn main() {}
