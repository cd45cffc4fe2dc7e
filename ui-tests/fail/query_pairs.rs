//! Query pairs known only at run time, written as a list of pairs: refused at the pair as a
//! plain `#[query]`, and as a `#[query(flatten)]`, each pointing at a map (which either takes),
//! rather than one sending the user to the other.

use comms::{service_client, Error};

#[service_client(base_url = "http://users:8080", service_id = "billing", secret_env = "S")]
pub trait Search {
    #[get("/search")]
    async fn pairs(&self, #[query] params: &[(String, String)]) -> Result<(), Error>;

    #[get("/search")]
    async fn borrowed_pairs(&self, #[query] params: Vec<(&str, &str)>) -> Result<(), Error>;

    #[get("/search")]
    async fn one_pair(&self, #[query] param: Option<(String, u32)>) -> Result<(), Error>;

    #[get("/search")]
    async fn flattened_pairs(&self, #[query(flatten)] params: &[(String, String)]) -> Result<(), Error>;
}

fn main() {}
