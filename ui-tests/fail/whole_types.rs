//! A value's type that cannot be sent is reported at all of it as written, not at its first
//! token: `&Filter`, `Vec<String>` and `std::collections::HashMap<..>` underlined whole.

use comms::{Error, service_client};

pub struct Filter;

#[service_client(base_url = "http://users:8080", service_id = "billing", secret_env = "S")]
pub trait Users {
    #[get("/users")]
    async fn search(&self, #[query] filter: &Filter) -> Result<(), Error>;

    #[get("/users")]
    async fn tagged(&self, #[header("X-Tags")] tags: Vec<String>) -> Result<(), Error>;

    #[get("/users")]
    async fn mapped(
        &self,
        #[query] pairs: std::collections::HashMap<String, String>,
    ) -> Result<(), Error>;

    #[get("/users/<id>")]
    async fn by_path(&self, id: &Filter) -> Result<(), Error>;
}

fn main() {}
