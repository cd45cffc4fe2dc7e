//! Request shapes: flattened query structs beside plain query arguments.

use comms::{Error, service_client};
use serde::Serialize;

#[derive(Serialize)]
pub struct Filter {
    #[serde(rename = "q")]
    pub text: String,
    pub min: Option<u32>,
    pub tag: Vec<String>,
}

#[derive(Serialize)]
pub struct Paging {
    pub page: u32,
}

#[service_client(base_url = "http://users:8080", service_id = "billing", secret_env = "S")]
pub trait Shapes {
    #[get("/search")]
    async fn search(
        &self,
        #[query] page: u32,
        #[query(flatten)] filter: &Filter,
        #[query(flatten)] paging: Paging,
    ) -> Result<(), Error>;
}

fn assert_send<T: Send>(_: T) {}

fn main() {
    let client = ShapesClient::builder()
        .secret("s")
        .build()
        .expect("built");
    let filter = Filter {
        text: "a".into(),
        min: None,
        tag: vec![],
    };
    assert_send(client.search(1, &filter, Paging { page: 2 }));
}
