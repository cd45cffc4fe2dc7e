//! With `server`, two methods of one name under `#[cfg]`s that can both hold are refused with
//! one error, as without it: the later one gets no route where the earlier is compiled.

use comms::{Error, service_client};

#[service_client(base_url = "http://users:8080", service_id = "billing", secret_env = "S")]
pub trait Users {
    #[cfg(all())]
    #[get("/a")]
    async fn m(&self, #[query] q: u32) -> Result<u32, Error>;

    #[cfg(not(any()))]
    #[post("/c")]
    async fn m(&self, #[body] y: String) -> Result<String, Error>;
}

fn main() {}
