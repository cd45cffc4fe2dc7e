use comms::{Error, service_client};

#[service_client(base_url = "http://users:8080", service_id = "a", secret_env = "S")]
pub trait Bodies {
    #[post("/users")]
    async fn two_bodies(&self, #[body] a: String, #[body] b: String) -> Result<(), Error>;

    #[get("/users")]
    async fn body_on_get(&self, #[body] filter: String) -> Result<(), Error>;

    #[head("/users")]
    async fn body_on_head(&self, #[body] filter: String) -> Result<(), Error>;

    #[head("/users/<id>")]
    async fn head_decodes_json(&self, id: u64) -> Result<String, Error>;

    #[head("/users/<id>/maybe")]
    async fn head_decodes_an_option(&self, id: u64) -> Result<Option<String>, Error>;

    #[head("/users/<id>/value")]
    async fn head_decodes_a_value(&self, id: u64) -> Result<comms::ResponseValue<String>, Error>;

    #[post("/login")]
    async fn content_type_beside_a_form(
        &self,
        #[header("Content-Type")] content_type: &str,
        #[form] login: &std::collections::HashMap<String, String>,
    ) -> Result<(), Error>;

    #[post("/photos")]
    async fn content_type_beside_multipart(
        &self,
        #[multipart] photos: comms::Multipart,
        #[header("content-type")] content_type: &str,
    ) -> Result<(), Error>;

    #[head("/users/<id>/meta")]
    async fn head_keeps_status_and_headers(&self, id: u64) -> Result<comms::ResponseValue<()>, Error>;
}

fn main() {}
