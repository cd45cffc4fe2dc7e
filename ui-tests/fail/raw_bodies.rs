//! `#[body(raw)]`: the method's one body, never on a GET, and `raw` its only option.

use comms::{Error, service_client};

#[derive(serde::Serialize)]
pub struct Photo {
    pub name: String,
}

#[service_client(base_url = "http://users:8080", service_id = "a", secret_env = "S")]
pub trait Uploads {
    #[get("/read")]
    async fn on_a_get(&self, #[body(raw)] data: Vec<u8>) -> Result<(), Error>;

    #[put("/both")]
    async fn two_bodies(&self, #[body] photo: &Photo, #[body(raw)] data: Vec<u8>)
    -> Result<(), Error>;

    #[put("/option")]
    async fn other_option(&self, #[body(bytes)] data: Vec<u8>) -> Result<(), Error>;

    #[put("/value")]
    async fn a_value(&self, #[body = "raw"] data: Vec<u8>) -> Result<(), Error>;
}

fn main() {}
