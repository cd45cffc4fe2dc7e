use comms::{Error, service_client};

#[derive(serde::Serialize)]
pub struct Filter {
    pub q: String,
}

#[service_client(base_url = "http://users:8080", service_id = "a", secret_env = "S")]
pub trait Shapes {
    #[get("/a")]
    async fn flatten_renamed(&self, #[query(flatten, rename = "f")] filter: &Filter) -> Result<(), Error>;

    #[get("/b")]
    async fn renamed_flatten(&self, #[query(rename = "f", flatten)] filter: &Filter) -> Result<(), Error>;

    #[get("/c")]
    async fn flatten_twice(&self, #[query(flatten, flatten)] filter: &Filter) -> Result<(), Error>;

    #[get("/d")]
    async fn flatten_value(&self, #[query(flatten = true)] filter: &Filter) -> Result<(), Error>;
}

fn main() {}
