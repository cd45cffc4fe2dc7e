//! Request shapes: flattened query structs beside plain query arguments, form bodies,
//! multipart bodies by value and by reference.

use comms::multipart::{Multipart, Part};
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

    #[post("/login")]
    async fn login(&self, #[query] next: &str, #[form] form: &Filter) -> Result<(), Error>;

    #[delete("/sessions")]
    async fn logout(&self, #[form] form: Paging) -> Result<(), Error>;

    #[post("/photos", idempotent)]
    async fn upload(&self, #[query] album: u32, #[multipart] parts: Multipart) -> Result<(), Error>;

    #[put("/photos/<id>")]
    async fn replace(&self, id: u64, #[multipart] parts: &comms::Multipart) -> Result<(), Error>;
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
    assert_send(client.login("/", &filter));
    assert_send(client.logout(Paging { page: 1 }));
    let parts = Multipart::new()
        .text("title", "t")
        .part(Part::new("f", vec![1, 2]).with_file_name("f.bin"));
    assert_send(client.replace(1, &parts));
    assert_send(client.upload(1, parts));
}
